"""Tables for people: aligned text by display width, escaped HTML, short reprs.

One escaping rule for both outputs: :func:`cell` shows a value that holds a
character that is not printable (a newline, a carriage return, a terminal
escape sequence) in its ``repr()`` form, in text and in HTML alike, so a role
name cannot forge lines in a terminal nor hide in a notebook.  HTML then
escapes ``<``, ``&`` and quotes on top.

Text columns are aligned by *display* width, as a terminal draws them: East
Asian wide and fullwidth characters (``unicodedata.east_asian_width`` ``W`` or
``F``) take two columns, combining marks none.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence

from rdsiamkit.roles._text import printable

__all__ = ["REPR_ROWS", "cell", "display_width", "html_table", "ljust", "more", "text_table"]

#: Rows a short ``repr()`` shows before "... and N more".
REPR_ROWS = 10


def cell(value: str) -> str:
    """``value`` as a table shows it, in text and in HTML: its ``repr()`` if not printable."""
    return printable(value)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide/fullwidth 2, combining marks 0, others 1."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def ljust(text: str, width: int) -> str:
    """``text`` padded with blanks to ``width`` display columns."""
    return text + " " * max(width - display_width(text), 0)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with columns aligned by display width (no trailing blanks)."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        widths = [max(w, display_width(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(ljust(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    caption: str,
    footer: str | None = None,
) -> str:
    """An escaped HTML table: role names may hold ``<``, ``&`` or quotes.

    ``footer``: one more row, across every column, after the body (``<tfoot>``).
    Cells are HTML-escaped only; pass them through :func:`cell` first for the
    text tables' treatment of characters that are not printable.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    foot = (
        ""
        if footer is None
        else f'<tfoot><tr><td colspan="{len(headers)}">{html.escape(footer)}</td></tr></tfoot>'
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>"
    )


def more(total: int, shown: int, noun: str = "row") -> str:
    """``... and N more rows`` (singular for one), or ``""`` when nothing is left out."""
    left = total - shown
    if left <= 0:
        return ""
    return f"... and {left} more {noun}{'' if left == 1 else 's'}"
