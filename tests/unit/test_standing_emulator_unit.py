"""The standing emulator's parts that need no server: patterns, exports, the control protocol."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rdsiamkit.cli import main
from rdsiamkit.cli.emulator import default_state_dir, shell_exports
from rdsiamkit.errors import EmulatorError
from rdsiamkit.testing.standing import (
    CONTROL_FILE,
    _control_socket,
    _Daemon,
    expand_pattern,
    request,
)

PREFIX = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABC/"
STATE: dict[str, Any] = {
    "pid": 42,
    "endpoint": "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
    "hostaddr": "127.0.0.1",
    "port": 5433,
    "region": "us-east-1",
    "ca_file": "/tmp/with space/ca.pem",
    "master_user": "postgres",
    "master_password": "fake-pw",
    "access_key_id": "AKIAEXAMPLE",
    "secret_access_key": "abc+/def=$(touch x)'q",
    "db_user_arn_pattern": PREFIX + "*",
}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose path fits a Unix socket."""
    with tempfile.TemporaryDirectory(prefix="rik-u-", dir="/tmp") as path:
        yield Path(path)


def test_patterns_expand_to_the_emulators_arns() -> None:
    """A user pattern and a dbuser: pattern get the emulator's prefix; a full ARN is kept."""
    assert expand_pattern("app_*", arn_prefix=PREFIX) == PREFIX + "app_*"
    assert expand_pattern("dbuser:*/app_*", arn_prefix=PREFIX) == (
        "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/app_*"
    )
    full = "arn:aws:rds-db:eu-west-1:1:dbuser:x/y"
    assert expand_pattern(full, arn_prefix=PREFIX) == full


def test_exports_survive_a_shell() -> None:
    """The export lines, run by bash, set exactly the values, hostile characters included."""
    script = shell_exports(STATE) + '\nprintf "%s\\n" "$AWS_SECRET_ACCESS_KEY" "$PGSSLROOTCERT"'
    shown = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    assert shown.stdout.splitlines() == [STATE["secret_access_key"], STATE["ca_file"]]
    assert "FAKE" in shell_exports(STATE) and "export PGSSLMODE=verify-full" in script


def test_default_state_dir_prefers_the_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """$XDG_RUNTIME_DIR wins; without it the directory is under ~/.cache."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_state_dir() == Path("/run/user/1000/rdsiamkit-emulator")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_state_dir().parts[-3:] == (".cache", "rdsiamkit", "emulator")


def test_commands_are_checked_before_the_emulator_is_touched(short_dir: Path) -> None:
    """Unknown ops, bad arguments and unknown keys are answered with errors."""
    daemon = _Daemon(short_dir)
    daemon.credentials.append({"access_key_id": "AKIAKNOWN", "secret_access_key": "s", "arn": "a"})
    assert daemon.handle({"op": "dance"}) == {"ok": False, "error": "unknown op 'dance'"}
    assert not daemon.handle({"op": "add_user", "name": ""})["ok"]
    assert not daemon.handle({"op": "add_user", "name": "x", "password": 3})["ok"]
    assert not daemon.handle({"op": "allow", "access_key_id": "AKIAKNOWN", "patterns": "x"})["ok"]
    unknown = daemon.handle({"op": "allow", "access_key_id": "AKIANOPE", "patterns": ["*"]})
    assert "does not know access key AKIANOPE" in unknown["error"]
    assert daemon.handle({"op": "stop"})["ok"] and daemon.stopping.is_set()


def test_control_socket_round_trip_and_refusal(short_dir: Path) -> None:
    """A request gets the daemon's answer; an error answer raises; a second listener is refused."""
    daemon = _Daemon(short_dir)
    path = short_dir / CONTROL_FILE
    with _control_socket(path) as listener:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        server = threading.Thread(target=daemon.serve, args=(listener,))
        server.start()
        try:
            with pytest.raises(EmulatorError, match="unknown op"):
                request(short_dir, {"op": "dance"}, timeout=5)
            with pytest.raises(EmulatorError, match="already answers"), _control_socket(path):
                pass
        finally:
            assert request(short_dir, {"op": "stop"}, timeout=5)["ok"]
            server.join(5)
    assert not path.exists()
    with pytest.raises(EmulatorError, match="no standing emulator answers"):
        request(short_dir, {"op": "ping"}, timeout=1)


def test_garbage_on_the_socket_is_an_error(short_dir: Path) -> None:
    """A message that is not a JSON object is refused, and the daemon keeps serving."""
    daemon = _Daemon(short_dir)
    with _control_socket(short_dir / CONTROL_FILE) as listener:
        server = threading.Thread(target=daemon.serve, args=(listener,))
        server.start()
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(str(short_dir / CONTROL_FILE))
                conn.sendall(b"[1, 2]")
                conn.shutdown(socket.SHUT_WR)
                answer = json.loads(conn.recv(4096))
            assert answer["ok"] is False and "unreadable command" in answer["error"]
        finally:
            request(short_dir, {"op": "stop"}, timeout=5)
            server.join(5)


def test_env_without_an_emulator_fails(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`emulator env` and `stop` on an empty state directory exit 1 and say so."""
    assert main(["emulator", "env", "--state-dir", str(short_dir)]) == 1
    assert "no standing emulator runs in" in capsys.readouterr().err
    assert main(["emulator", "stop", "--state-dir", str(short_dir)]) == 1
    assert "no standing emulator runs in" in capsys.readouterr().err
