"""The library speaks Python, the command line speaks flags: one table says one as the other.

Library messages name keyword arguments (``pass region=``, ``verify=True``,
``set_auth_mode(..., new_password=...)``) because a library caller can act on
them.  Someone at a shell cannot, so every message this CLI prints for people
(errors, refusal details, plan text, the doctor's findings) goes through
:func:`to_cli`, which rewrites each phrase of :data:`PHRASES` into the flag,
or the command, that does the same here.  Where the CLI has no such flag the
translation says what to do instead.  JSON output and secrets are never
rewritten.

A phrase is matched only as a whole keyword: ``region=`` but not
``token_region=`` or ``?region=``.  A keyword's value, when the library shows
one (``region='eu-west-1'``, ``token_port=5433``, ``hostaddr=<ip>``), becomes
the flag's argument (``--region eu-west-1``), quoted for a shell if needed.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable

import attrs

__all__ = ["PHRASES", "Phrase", "to_cli"]

# What may stand before a keyword: not part of a longer name, path, URL or option
# (``token_host=/token_port=`` names two keywords, ``a/region=`` is a path).
_START = r"(?<![\w.?&=-])(?<![\w.]/)"
# A keyword's value as a message shows it: a Python string, a <placeholder>, a number or name.
_VALUE = r"(?P<value>'[^'\n]*'|\"[^\"\n]*\"|<[^<>]*>|\.\.\.|[\w.-]+)?"


@attrs.frozen
class Phrase:
    """One library phrase (``library``, a regular expression) and how the CLI says it."""

    name: str
    library: re.Pattern[str]
    cli: str | Callable[[re.Match[str]], str]

    def say(self, match: re.Match[str]) -> str:
        """The CLI's words for one occurrence of the phrase."""
        return self.cli if isinstance(self.cli, str) else self.cli(match)


def _flag(flag: str) -> Callable[[re.Match[str]], str]:
    """``keyword=value`` -> ``--flag value``; a bare ``keyword=`` -> ``--flag``."""

    def say(match: re.Match[str]) -> str:
        value = match.group("value")
        if not value:
            return flag
        if value[0] in "'\"":
            value = shlex.quote(value[1:-1])
        return f"{flag} {value}"

    return say


def _keyword(name: str, flag: str) -> Phrase:
    """``name=`` (with its value, if shown) said as ``flag``."""
    return Phrase(name, re.compile(_START + re.escape(name) + "=" + _VALUE), _flag(flag))


def _bare(name: str, flag: str) -> Phrase:
    """``name=`` shown without a value (``pass policies=``) said as ``flag``."""
    return Phrase(name, re.compile(_START + re.escape(name) + "=(?![\\w'\"<.])"), flag)


def _switch_command(match: re.Match[str]) -> str:
    user = ast.literal_eval(match.group("user"))
    return f"rdsiamkit switch {shlex.quote(user)} {match.group('mode')}"


def _ca_update_command(match: re.Match[str]) -> str:
    partition = match.group("partition")
    return "rdsiamkit ca update" + ("" if partition is None else f" --partition {partition[1:-1]}")


def _literal(name: str, library: str, cli: str) -> Phrase:
    """A fixed library phrase and its fixed CLI wording."""
    return Phrase(name, re.compile(_START + re.escape(library) + r"(?!\w)"), cli)


#: Most specific first: a call like ``set_auth_mode(..., new_password=...)`` before the
#: bare keywords; each entry has a unit test in tests/unit/test_cli_unit.py.
PHRASES: tuple[Phrase, ...] = (
    # set_auth_mode / switch: the CLI's switch command has a flag for these two ...
    _literal("new_password", "set_auth_mode(..., new_password=...)", "--new-password-stdin"),
    # ... and none for this one: say where it is.
    _literal(
        "include_members",
        "set_auth_mode(..., include_members=True)",
        "rdsiamkit.set_auth_mode(..., include_members=True) in Python (rdsiamkit switch "
        "has no option for it)",
    ),
    Phrase(
        "set_auth_mode_call",
        re.compile(
            _START + r"rdsiamkit\.set_auth_mode\(conn, (?P<user>'(?:[^'\\\n]|\\.)*'"
            r"|\"(?:[^\"\\\n]|\\.)*\"), '(?P<mode>iam|password)'\)"
        ),
        _switch_command,
    ),
    _literal("verify", "verify=True", "--verify"),
    _literal("has_password", "has_password=True", "--has-password"),
    # a password refused by PAM: the admin logs in with a token
    _literal("iam", "iam=True", "--iam"),
    # credentials: the CLI signs with a named profile (or the default chain).
    Phrase(
        "session_or_profile",
        re.compile(_START + r"session=(?:/| or )profile="),
        "--profile",
    ),
    # where to log in, and what the token names
    _keyword("token_host", "--token-host"),
    _keyword("token_port", "--token-port"),
    _keyword("region", "--region"),
    _keyword("hostaddr", "--hostaddr"),
    _keyword("host", "--host"),
    _keyword("user", "--user"),
    _keyword("sslrootcert", "--sslrootcert"),
    # rdsiamkit.tls.refresh_ca_bundle: rdsiamkit ca update
    _keyword("url", "--url"),
    # doctor's evidence
    _literal("aws", "aws=False", "--offline"),
    _literal("login", "login=False", "--no-login"),
    _bare("token", "--token-stdin"),
    _bare("policies", "--policy FILE"),
    _keyword("principal_arn", "--principal-arn"),
    _keyword("account_id", "--account-id"),
    _keyword("resource_id", "--resource-id"),
    _bare("admin_conn", "--admin-user"),
    # rdsiamkit.tls.refresh_ca_bundle() is rdsiamkit ca update
    Phrase(
        "refresh_ca_bundle",
        re.compile(
            _START + r"rdsiamkit\.refresh_ca_bundle\((?:partition=(?P<partition>'[\w-]+'))?\)"
        ),
        _ca_update_command,
    ),
    # a token for a client other than Python
    _literal(
        "fresh_token",
        "as the password (rdsiamkit.connect)",
        "as the password (rdsiamkit token prints one; rdsiamkit.connect in Python)",
    ),
    # discovery: the discover command prints the resource id
    _literal("discover", "rdsiamkit.discovery.discover() finds it", "rdsiamkit discover shows it"),
    _literal("discover_top", "rdsiamkit.discover() finds it", "rdsiamkit discover shows it"),
)


def to_cli(text: str) -> str:
    """``text`` (a library message) with its Python phrases said as this CLI's flags.

    Every phrase is looked for in the text as the library wrote it (so one
    translation cannot hide or create the context of another); where two would
    overlap, the one earlier in :data:`PHRASES` wins.
    """
    found: list[tuple[int, int, str]] = []
    for phrase in PHRASES:
        for match in phrase.library.finditer(text):
            start, end = match.span()
            if not any(start < e and s < end for s, e, _ in found):
                found.append((start, end, phrase.say(match)))
    parts, position = [], 0
    for start, end, said in sorted(found):
        parts += [text[position:start], said]
        position = end
    return "".join([*parts, text[position:]])
