"""Role names and statements as text: the one place that escapes them for people.

Role names come from the catalog and may hold anything PostgreSQL accepts: a
newline, a carriage return, a terminal escape sequence.  Text output shows them
through :func:`printable` (``repr()`` when not printable), so a name cannot forge
lines; statements shown to be pasted use :func:`ident`, whose ``U&"..."`` form
stays printable yet still names the real role in psql.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

__all__ = ["first", "ident", "printable", "yes"]


def printable(text: str) -> str:
    """``text``, or its ``repr()`` if it holds a character that is not printable.

    A newline, a carriage return or a terminal escape sequence in a role name
    would otherwise forge lines of text output.
    """
    return text if text.isprintable() else repr(text)


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier for messages and shown statements.

    A name with a character that is not printable (a newline, a terminal escape) is
    written with PostgreSQL's Unicode escapes, ``U&"ev\\000Ail"``: the text stays
    printable, yet still names the real role when pasted into psql.
    """
    if name.isprintable():
        return sql.Identifier(name).as_string(None)
    escaped = "".join(_unicode_escape(char) for char in name)
    return f'U&"{escaped}"'


def _unicode_escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char == '"':
        return '""'
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\{code:04X}" if code <= 0xFFFF else f"\\+{code:06X}"


def first(items: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` of ``items`` joined by ``;``, and how many more there are."""
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def yes(flag: bool) -> str:
    return "yes" if flag else "no"
