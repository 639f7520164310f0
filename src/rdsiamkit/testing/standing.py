"""A standing emulator: one :class:`RdsIamEmulator` in a background process, driven from a shell.

``rdsiamkit emulator start`` runs ``python -m rdsiamkit.testing.standing
--state-dir DIR`` as a detached process.  It starts the emulator, mints one
fake access key (trusted by nothing but this emulator), and then:

* writes ``DIR/state.json`` (mode 0600, replaced atomically): its pid, the
  endpoint, port, region, CA file, master user and password and the fake keys;
* listens on the Unix socket ``DIR/control.sock`` (mode 0600) for one JSON
  object per connection, answering with one JSON object (``{"ok": true, ...}``
  or ``{"ok": false, "error": "..."}``): ``ping``, ``add_user``, ``allow``,
  ``add_credentials`` and ``stop``;
* logs to ``DIR/emulator.log``;
* on ``stop``, SIGTERM or SIGINT stops the emulator and removes the socket and
  the state file.

Everything in the state file is FAKE: the keys and passwords only work against
this local emulator.  The client half (:func:`read_state`, :func:`request`)
is what the CLI uses; nothing here prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from rdsiamkit.errors import EmulatorError

__all__ = [
    "CONTROL_FILE",
    "LOG_FILE",
    "STATE_FILE",
    "expand_pattern",
    "read_state",
    "request",
    "serve",
]

logger = logging.getLogger("rdsiamkit.testing.standing")

STATE_FILE = "state.json"
CONTROL_FILE = "control.sock"
LOG_FILE = "emulator.log"
FAKE_NOTE = "FAKE credentials: trusted only by this local rdsiamkit emulator, never by AWS"
_MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes
_MAX_REQUEST = 64 * 1024
_CLIENT_TIMEOUT = 30.0
_ACCEPT_POLL = 0.5


# -- client side ------------------------------------------------------------------------------


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The state file's contents, or ``None`` when there is none (or it is unreadable)."""
    try:
        value = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def request(state_dir: Path, message: dict[str, Any], *, timeout: float = 60.0) -> dict[str, Any]:
    """Send one command to the standing emulator in ``state_dir``; its answer.

    Raises :class:`EmulatorError` when nothing answers or the command failed.
    """
    path = state_dir / CONTROL_FILE
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(path))
            conn.sendall(json.dumps(message).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            raw = _read_all(conn)
    except OSError as err:
        raise EmulatorError(f"no standing emulator answers on {path}: {err}") from err
    try:
        answer = json.loads(raw)
    except ValueError as err:
        raise EmulatorError(f"the standing emulator sent an unreadable answer: {err}") from err
    if not isinstance(answer, dict):
        raise EmulatorError("the standing emulator sent an unreadable answer")
    if not answer.get("ok"):
        raise EmulatorError(str(answer.get("error") or "the standing emulator refused"))
    return answer


def _read_all(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := conn.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_REQUEST:
            raise OSError("message too large")
    return b"".join(chunks)


def expand_pattern(pattern: str, *, arn_prefix: str) -> str:
    """An ``rds-db:connect`` resource pattern, made a full ARN pattern.

    ``arn:...`` is kept; ``dbuser:RESOURCE/USER`` gets ``arn:PARTITION:rds-db:REGION:ACCOUNT:``
    in front; anything else is a user name pattern on the emulator's cluster.
    ``arn_prefix`` is the emulator's ARN for a user, without the user name.
    """
    if pattern.startswith("arn:"):
        return pattern
    if pattern.startswith("dbuser:"):
        return arn_prefix.split("dbuser:", 1)[0] + pattern
    return arn_prefix + pattern


# -- the daemon -------------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class _Daemon:
    """The emulator, its fake keys and the control socket of one standing process."""

    def __init__(self, state_dir: Path) -> None:
        from rdsiamkit.testing.emulator import RdsIamEmulator  # noqa: PLC0415

        self.state_dir = state_dir
        self.emulator = RdsIamEmulator()
        self.credentials: list[dict[str, str]] = []
        self.stopping = threading.Event()

    @property
    def arn_prefix(self) -> str:
        return self.emulator.db_user_arn("probe").removesuffix("probe")

    def state(self) -> dict[str, Any]:
        emu = self.emulator
        first = self.credentials[0]
        return {
            "note": FAKE_NOTE,
            "pid": os.getpid(),
            "endpoint": emu.endpoint,
            "reader_endpoint": emu.reader_endpoint,
            "hostaddr": emu.hostaddr,
            "port": emu.port,
            "region": emu.region,
            "account_id": emu.account_id,
            "ca_file": str(emu.ca_file),
            "master_user": emu.master_user,
            "master_password": emu.master_password,
            "access_key_id": first["access_key_id"],
            "secret_access_key": first["secret_access_key"],
            "credentials": self.credentials,
            "db_user_arn_pattern": self.arn_prefix + "*",
            "auth_log_file": str(emu.auth_log_file),
            "log_file": str(self.state_dir / LOG_FILE),
            "control_socket": str(self.state_dir / CONTROL_FILE),
        }

    def add_credentials(self) -> dict[str, str]:
        creds = self.emulator.add_credentials()
        entry = {
            "access_key_id": creds.access_key_id,
            "secret_access_key": creds.secret_access_key,
            "arn": creds.arn,
        }
        self.credentials.append(entry)
        logger.info("trusting new fake access key %s (%s)", creds.access_key_id, creds.arn)
        return entry

    def write_state(self) -> None:
        _write_private(self.state_dir / STATE_FILE, json.dumps(self.state(), indent=2) + "\n")

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """Run one command; the answer to send back."""
        op = message.get("op")
        if op == "ping":
            return {"ok": True, "state": self.state()}
        if op == "stop":
            self.stopping.set()
            return {"ok": True, "pid": os.getpid()}
        if op == "add_credentials":
            entry = self.add_credentials()
            self.write_state()
            return {"ok": True, "credentials": entry, "note": FAKE_NOTE}
        if op == "add_user":
            return self._add_user(message)
        if op == "allow":
            return self._allow(message)
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _add_user(self, message: dict[str, Any]) -> dict[str, Any]:
        name, password = message.get("name"), message.get("password")
        if not isinstance(name, str) or not name:
            return {"ok": False, "error": "add_user needs a user name"}
        if password is not None and not isinstance(password, str):
            return {"ok": False, "error": "add_user: the password must be a string"}
        iam = bool(message.get("iam"))
        self.emulator.create_user(name, password=password, iam=iam)
        logger.info("created user %s (iam=%s, password=%s)", name, iam, password is not None)
        return {"ok": True, "name": name, "iam": iam, "arn": self.emulator.db_user_arn(name)}

    def _allow(self, message: dict[str, Any]) -> dict[str, Any]:
        key, patterns = message.get("access_key_id"), message.get("patterns")
        if not isinstance(key, str) or not key:
            return {"ok": False, "error": "allow needs an access key id"}
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            return {"ok": False, "error": "allow needs a list of resource patterns"}
        if key not in {c["access_key_id"] for c in self.credentials}:
            return {"ok": False, "error": f"the emulator does not know access key {key}"}
        arns = [expand_pattern(p, arn_prefix=self.arn_prefix) for p in patterns]
        self.emulator.set_policy(key, arns)
        logger.info("access key %s may now connect as %s", key, arns)
        return {"ok": True, "access_key_id": key, "patterns": arns}

    def serve(self, listener: socket.socket) -> None:
        """Answer commands until told to stop."""
        listener.settimeout(_ACCEPT_POLL)
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except InterruptedError:
                continue
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(_CLIENT_TIMEOUT)
        try:
            message = json.loads(_read_all(conn))
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            answer: dict[str, Any] = {"ok": False, "error": f"unreadable command: {err}"}
        else:
            try:
                answer = self.handle(message)
            except EmulatorError as err:
                answer = {"ok": False, "error": str(err)}
            except Exception as err:
                logger.exception("command %r failed", message.get("op"))
                answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(answer).encode() + b"\n")


@contextlib.contextmanager
def _control_socket(path: Path) -> Iterator[socket.socket]:
    if len(str(path)) > _MAX_SOCKET_PATH:
        raise EmulatorError(f"the state directory's path is too long for a Unix socket: {path}")
    if path.exists():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2.0)
            if probe.connect_ex(str(path)) == 0:
                raise EmulatorError(f"a standing emulator already answers on {path}")
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(16)
    try:
        yield listener
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def serve(state_dir: Path) -> None:
    """Run a standing emulator in the foreground until ``stop``, SIGTERM or SIGINT."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    daemon = _Daemon(state_dir)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received signal %s: stopping", signum)
        daemon.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with _control_socket(state_dir / CONTROL_FILE) as listener:
            daemon.emulator.start()
            try:
                daemon.add_credentials()
                daemon.write_state()
                logger.info("standing emulator ready (pid %s)", os.getpid())
                daemon.serve(listener)
            finally:
                daemon.emulator.stop()
    finally:
        with contextlib.suppress(FileNotFoundError):
            (state_dir / STATE_FILE).unlink()
        logger.info("standing emulator stopped (pid %s)", os.getpid())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rdsiamkit.testing.standing --state-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m rdsiamkit.testing.standing")
    parser.add_argument("--state-dir", required=True, type=Path, help="state directory")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.absolute()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    logging.basicConfig(
        filename=state_dir / LOG_FILE,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        serve(state_dir)
    except EmulatorError as err:
        logger.error("the standing emulator could not run: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
