"""Process plumbing for the CLI: termination signals, and psql with a private passfile.

Kept apart from the commands so they stay readable; nothing here is
public API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType

from rdsiamkit.errors import ConfigurationError

__all__ = ["Terminated", "passfile_line", "run_psql", "terminations_interrupt"]

#: Signals that ask a process to stop and that Python does not turn into an exception.
TERMINATIONS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived; raised like :class:`KeyboardInterrupt`, so cleanup runs.

    A :class:`BaseException`, like ``KeyboardInterrupt``: ``except Exception``
    blocks (which treat errors, not stops) let it through, and the
    ``except BaseException`` blocks that undo half-done work see it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


@contextmanager
def terminations_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    ``timeout 60 rdsiamkit switch ... --verify`` sends SIGTERM, a closed terminal
    SIGHUP; by default either would end the process before a verified switch
    could roll its grant back.  The first signal raises; later ones are ignored
    until this block ends, so the rollback itself is not interrupted.  Nothing
    can catch SIGKILL.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        for sig in TERMINATIONS:
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, stop) for sig in TERMINATIONS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _passfile_field(value: str) -> str:
    """``value`` as a literal passfile field: ``\\`` and ``:`` escaped, and a lone ``*``
    (which would match anything) written ``\\*``."""
    if value == "*":
        return "\\*"
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile_line(host: str, port: int | str, user: str, password: str) -> str:
    """One ``.pgpass`` line for ``host:port``, any database, ``user`` (``:`` and ``\\`` escaped).

    libpq offers a passfile's password only to a server that matches the line,
    so a psql ``\\connect`` to another host gets nothing (PGPASSWORD goes to every
    server).
    """
    if any(c in value for value in (host, user) for c in "\r\n"):
        raise ConfigurationError(
            "a host or user name with a line break cannot be written to a passfile"
        )
    fields = (
        _passfile_field(host),
        str(port),
        "*",
        _passfile_field(user),
        _passfile_field(password),
    )
    return ":".join(fields) + "\n"


def run_psql(
    executable: str, argv: Sequence[str], env: Mapping[str, str], *, passfile_text: str
) -> int:
    """Run psql with the token in a private temporary passfile; psql's exit code.

    The file is created 0600 in a private directory, named in ``PGPASSFILE``
    (never the token itself in the environment, which ``\\!`` subshells and
    ``/proc/<pid>/environ`` readers would see), and removed when psql ends,
    however it ends.  Ctrl-C belongs to psql (it cancels the running query), so
    this process ignores SIGINT meanwhile; SIGTERM and SIGHUP are passed on to psql.
    """
    with tempfile.TemporaryDirectory(prefix="rdsiamkit-psql-") as folder:
        path = os.path.join(folder, "pgpass")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(passfile_text)
        child_env = {k: v for k, v in env.items() if k != "PGPASSWORD"}
        child_env["PGPASSFILE"] = path
        process = subprocess.Popen([executable, *argv[1:]], env=child_env)  # noqa: S603
        if threading.current_thread() is not threading.main_thread():
            return process.wait()

        def forward(signum: int, _frame: FrameType | None) -> None:
            process.send_signal(signum)

        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
        previous.update({sig: signal.signal(sig, forward) for sig in TERMINATIONS})
        try:
            return process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
