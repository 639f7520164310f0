"""The command line's own output for the library's log records (configured once, in main).

The library only adds a ``NullHandler``; the CLI shows its warnings on stderr as
``rdsiamkit: <message>``, translated to the CLI's flags. A record that spans several
lines (an explanation with its "Likely causes" block) is held until the command ends:
when the command then fails with an error that already carries that explanation, the
record is dropped, so the explanation is printed once, as the error.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rdsiamkit.cli._messages import to_cli

__all__ = ["CliLogHandler", "cli_logging", "repeats", "restore_logging"]

PREFIX = "rdsiamkit: "


def repeats(record_text: str, error_text: str) -> bool:
    """Whether most detail lines of a multi-line record are lines of the error text."""
    details = [line.strip() for line in record_text.splitlines()[1:] if line.strip()]
    if not details:
        return False
    error_lines = {line.strip() for line in error_text.splitlines()}
    shared = sum(line in error_lines for line in details)
    return shared * 2 >= len(details)


class CliLogHandler(logging.Handler):
    """Writes records to stderr; holds multi-line ones until :meth:`finish`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = to_cli(record.getMessage())
            if "\n" in text:
                self._held.append(text)
            else:
                self._write(text)
        except Exception:  # logging must never break the command
            self.handleError(record)

    def finish(self, error_text: str | None = None) -> None:
        """Print the held records, except those the final error already explains."""
        held, self._held = self._held, []
        for text in held:
            if error_text is None or not repeats(text, error_text):
                self._write(text)

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(PREFIX + text + "\n")
        stream.flush()


def cli_logging(*, verbose: bool) -> tuple[CliLogHandler, tuple[int, bool]]:
    """Attach the CLI's handler to the ``rdsiamkit`` logger; returns it and what to restore."""
    package = logging.getLogger("rdsiamkit")
    saved = (package.level, package.propagate)
    handler = CliLogHandler()
    package.addHandler(handler)
    package.setLevel(logging.INFO if verbose else logging.WARNING)
    # The CLI is the application here: its handler is the output, not the root logger's.
    package.propagate = False
    return handler, saved


def restore_logging(handler: CliLogHandler, saved: tuple[int, bool]) -> None:
    """Detach the handler and put back the logger's level and propagation."""
    package = logging.getLogger("rdsiamkit")
    package.removeHandler(handler)
    package.setLevel(saved[0])
    package.propagate = saved[1]
