"""Reading ``user,mode`` plan files (CSV, text lines or JSON) with exact role names.

Role names are exact: ``"victim "`` and ``victim`` are two roles, so a name is
never trimmed.  An unquoted name with leading or trailing white space is
ambiguous (did the author mean the spaces?) and refused with its line number;
quote it to keep the spaces.  A ``#`` starts a comment only as the first
character of a line (after white space) outside quotes, so ``"#ops",iam``
names the role ``#ops``.  JSON keeps names exactly as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import attrs

from rdsiamkit.errors import ConfigurationError

__all__ = ["read_plan_file"]


@attrs.frozen
class _Field:
    text: str
    quoted: bool


@attrs.frozen
class _Record:
    line: int
    fields: tuple[_Field, ...]
    comma: bool  # fields were separated by commas (else by white space)


def read_plan_file(text: str, *, name: str = "<input>") -> dict[str, str]:
    """``{user: mode}`` from CSV / text lines (``user,mode`` or ``user mode``) or JSON."""
    from rdsiamkit.authmode import AuthMode  # noqa: PLC0415 - the CLI's --help stays light

    wanted: dict[str, str] = {}

    def put(user: str, mode: str, where: str) -> None:
        parsed = AuthMode.parse(mode).value
        if wanted.get(user, parsed) != parsed:
            raise ConfigurationError(f"{where}: {user!r} is listed with two different modes")
        wanted[user] = parsed

    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        for user, mode in _json_pairs(stripped, name):
            put(user, mode, name)
        return wanted
    for index, record in enumerate(_records(text, name)):
        user, mode = _user_mode(record, name)
        if index == 0 and (user.lower(), mode.lower()) == ("user", "mode"):
            continue
        put(user, mode, f"{name}:{record.line}")
    return wanted


def _json_pairs(text: str, name: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigurationError(f"{name}: invalid JSON: {err}") from err
    if isinstance(data, dict):
        return [(str(user), str(mode)) for user, mode in data.items()]
    if not isinstance(data, list) or not all(
        isinstance(i, dict) and {"user", "mode"} <= i.keys() for i in data
    ):
        raise ConfigurationError(
            f'{name}: JSON must be {{"user": "mode", ...}} or [{{"user": ..., "mode": ...}}]'
        )
    return [(str(i["user"]), str(i["mode"])) for i in data]


def _user_mode(record: _Record, name: str) -> tuple[str, str]:
    """The record's user (exact) and mode (white space around it does not matter)."""
    where = f"{name}:{record.line}"
    shown = ("," if record.comma else " ").join(
        f'"{f.text}"' if f.quoted else f.text for f in record.fields
    )
    if len(record.fields) != 2:
        raise ConfigurationError(f"{where}: expected 'user,mode', got {shown!r}")
    user, mode = record.fields
    if not user.quoted:
        if not user.text.strip():
            raise ConfigurationError(
                f"{where}: the user name is empty or only white space; quote it "
                '(" ",iam) if a role really has such a name'
            )
        if user.text != user.text.strip():
            raise ConfigurationError(
                f"{where}: user name {user.text!r} has leading or trailing white space, which "
                f'is part of a role name; quote it ("{user.text}",...) to mean that role, or '
                f"remove the spaces to mean {user.text.strip()!r}"
            )
    elif not user.text:
        raise ConfigurationError(f"{where}: the user name is empty")
    return user.text, mode.text.strip()


def _records(text: str, name: str) -> Iterator[_Record]:
    """The non-blank, non-comment records of ``text``, fields marked quoted or not."""
    scanner = _Scanner(text, name)
    while not scanner.done:
        record = scanner.record()
        if record is not None:
            yield record


class _Scanner:
    """A small CSV reader that remembers which fields were quoted (``csv`` forgets)."""

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.pos = 0
        self.line = 1

    @property
    def done(self) -> bool:
        return self.pos >= len(self.text)

    def _rest_of_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1
        self.line += 1

    def record(self) -> _Record | None:
        """The record starting at the current position; None for a blank or comment line."""
        start_line = self.line
        line_end = self.text.find("\n", self.pos)
        raw = self.text[self.pos : len(self.text) if line_end < 0 else line_end]
        if not raw.strip() or raw.lstrip().startswith("#"):
            self._rest_of_line()
            return None
        fields: list[_Field] = []
        comma = False
        while True:
            field, separator = self._field(start_line)
            fields.append(field)
            if separator != ",":
                break
            comma = True
        if not comma and len(fields) == 1 and not fields[0].quoted:
            # "user mode": white space separates; names with spaces need the quoted CSV form.
            fields = [_Field(part, False) for part in fields[0].text.split()]
        return _Record(start_line, tuple(fields), comma)

    def _field(self, start_line: int) -> tuple[_Field, str]:
        """One field and what ended it: ``","``, ``"\\n"`` or ``""`` (end of text)."""
        text = self.text
        lead = self.pos
        while self.pos < len(text) and text[self.pos] in " \t":
            self.pos += 1
        if self.pos < len(text) and text[self.pos] == '"':
            value = self._quoted(start_line)
            while self.pos < len(text) and text[self.pos] in " \t\r":
                self.pos += 1
            return _Field(value, True), self._separator(start_line, after_quote=True)
        self.pos = lead
        end = self.pos
        while end < len(text) and text[end] not in ",\n":
            end += 1
        value = text[self.pos : end].removesuffix("\r")
        if '"' in value:
            raise ConfigurationError(
                f"{self.name}:{start_line}: a quote inside an unquoted field ({value!r}); "
                'quote the whole field and double inner quotes ("a""b")'
            )
        self.pos = end
        return _Field(value, False), self._separator(start_line, after_quote=False)

    def _quoted(self, start_line: int) -> str:
        text, parts = self.text, []
        self.pos += 1  # the opening quote
        while True:
            close = text.find('"', self.pos)
            if close < 0:
                raise ConfigurationError(f"{self.name}:{start_line}: unterminated quoted field")
            parts.append(text[self.pos : close])
            self.line += text.count("\n", self.pos, close)
            self.pos = close + 1
            if text.startswith('"', self.pos):  # "" is a quote inside the field
                parts.append('"')
                self.pos += 1
                continue
            return "".join(parts)

    def _separator(self, start_line: int, *, after_quote: bool) -> str:
        if self.pos >= len(self.text):
            return ""
        char = self.text[self.pos]
        if char not in ",\n":
            raise ConfigurationError(
                f"{self.name}:{start_line}: unexpected text after a quoted field"
                if after_quote
                else f"{self.name}:{start_line}: cannot read this line"
            )
        self.pos += 1
        if char == "\n":
            self.line += 1
        return char
