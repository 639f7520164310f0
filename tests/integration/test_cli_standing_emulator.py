"""`rdsiamkit emulator start|env|add-user|allow|stop`: a standing emulator used from a shell."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from rdsiamkit.testing.pytest_plugin import in_ci

SCRIPT = Path(sys.executable).with_name("rdsiamkit")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; an unreaped zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _shell_env() -> dict[str, str]:
    """The test's environment without AWS or libpq settings, as a clean shell would have."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    return {
        **base,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def run(
    args: Sequence[str], env: dict[str, str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; never through a shell."""
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short private state directory; whatever still runs in it is stopped afterwards."""
    path = Path(tempfile.mkdtemp(prefix="rik-emu-", dir="/tmp"))  # short: socket paths
    try:
        yield path
    finally:
        state_file = path / "state.json"
        if state_file.exists():
            run(["emulator", "stop", "--state-dir", str(path)], _shell_env())
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid = int(json.loads(state_file.read_text())["pid"])
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(path, ignore_errors=True)


def test_standing_emulator_from_a_shell(state_dir: Path) -> None:
    """start, env --json, add-user, allow, log in with only the printed settings, stop."""
    where = ["--state-dir", str(state_dir)]
    shell = _shell_env()
    started = run(["emulator", "start", *where], shell)
    if started.returncode != 0 and not in_ci():
        pytest.skip(f"the standing emulator cannot start: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    assert "FAKE" in started.stdout and "export PGHOST=" in started.stdout
    assert "export PGSSLMODE=verify-full" in started.stdout

    again = run(["emulator", "start", *where], shell)
    assert again.returncode == 3 and "already runs" in again.stderr

    shown = run(["emulator", "env", "--json", *where], shell)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    for name in ("state.json", "control.sock", "emulator.log"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
    base = Path(state["ca_file"]).parent
    postmaster = int((base / "data" / "postmaster.pid").read_text().split()[0])
    daemon = int(state["pid"])
    assert _alive(postmaster) and _alive(daemon)

    for user in ("app_standing", "other_standing"):
        made = run(["emulator", "add-user", user, "--iam", *where], shell)
        assert made.returncode == 0, made.stderr
    allowed = run(["emulator", "allow", state["access_key_id"], "app_*", *where], shell)
    assert allowed.returncode == 0, allowed.stderr
    assert state["db_user_arn_pattern"].removesuffix("*") + "app_*" in allowed.stdout

    # From here on, only what `env` printed: a shell that ran eval "$(rdsiamkit emulator env)".
    env = {**shell, **state["env"]}
    libpq = {k: env[f"PG{k.upper()}"] for k in ("host", "hostaddr", "port", "sslmode")}
    libpq["sslrootcert"] = env["PGSSLROOTCERT"]
    token = run(["token", "--user", "app_standing"], env)
    assert token.returncode == 0, token.stderr
    conninfo = make_conninfo(**libpq, dbname="postgres", user="app_standing")
    with psycopg.connect(conninfo, password=token.stdout.strip()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("app_standing",)
    if shutil.which("psql"):
        psql = run(["connect", "--user", "app_standing", "--", "-tAXc", "SELECT current_user"], env)
        assert psql.returncode == 0 and psql.stdout.strip() == "app_standing", psql.stderr
    secret = "pw-" + os.urandom(6).hex()
    made = run(
        ["emulator", "add-user", "pw_standing", "--password-stdin", *where],
        shell,
        stdin=secret + "\n",
    )
    assert made.returncode == 0, made.stderr
    for user, password in (
        ("pw_standing", secret),
        (state["master_user"], state["master_password"]),
    ):
        with psycopg.connect(
            make_conninfo(**libpq, dbname="postgres", user=user), password=password
        ) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
    refused = run(["token", "--user", "other_standing"], env)
    assert refused.returncode == 0, refused.stderr
    other = make_conninfo(**libpq, dbname="postgres", user="other_standing")
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(other, password=refused.stdout.strip())

    stopped = run(["emulator", "stop", *where], shell)
    assert stopped.returncode == 0, stopped.stderr
    assert not _alive(daemon) and not _alive(postmaster)
    assert not base.exists()
    assert sorted(p.name for p in state_dir.iterdir()) == ["emulator.log"]
    assert state["secret_access_key"] not in (state_dir / "emulator.log").read_text()
    gone = run(["emulator", "env", *where], shell)
    assert gone.returncode == 1 and "no standing emulator" in gone.stderr
