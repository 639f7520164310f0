"""Security audit findings on the CLI, reproduced with the real console script (issue 17).

Item 2: a verified switch killed by SIGTERM/SIGHUP left its grant (the admin locked out).
Item 3: ``--host @name`` made psql send the token over an abstract Unix socket, in clear.
Item 9: the token travelled in psql's environment (``PGPASSWORD``), seen by ``\\!`` shells.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdsiamkit.authmode import AuthMode, get_auth_mode
from rdsiamkit.cli import _admin_connection, build_parser
from rdsiamkit.cli._proc import passfile_line
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator

SCRIPT = Path(sys.executable).with_name("rdsiamkit")


@pytest.fixture
def env(rds_emulator: RdsIamEmulator) -> dict[str, str]:
    """Fake AWS credentials and the admin password, passed the way a shell would."""
    creds: FakeCredentials = rds_emulator.add_credentials()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    return {
        **base,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_DEFAULT_REGION": rds_emulator.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PGPASSWORD": rds_emulator.master_password,
        "RDSIAMKIT_CA_BUNDLE": str(rds_emulator.ca_file),
    }


class FirstOnlyProxy:
    """Relays its first TCP connection to the emulator; later ones are accepted and left
    hanging (no byte answered), as a login to an unreachable endpoint would hang."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.stalled = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted == 1:
                server = socket.create_connection(self.upstream)
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
            else:
                self._held.append(client)
                self.stalled.set()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def close(self) -> None:
        self.listener.close()
        for held in self._held:
            held.close()


@pytest.fixture
def proxy(rds_emulator: RdsIamEmulator) -> Iterator[FirstOnlyProxy]:
    relay = FirstOnlyProxy((rds_emulator.hostaddr, rds_emulator.port))
    yield relay
    relay.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_killed_verified_switch_rolls_its_grant_back(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],
    proxy: FirstOnlyProxy,
    signum: signal.Signals,
) -> None:
    """SIGTERM/SIGHUP while `switch --verify` waits on a hanging IAM login undoes the GRANT."""
    admin = f"adm_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(admin, password="pw-" + uuid.uuid4().hex)
    with rds_emulator.connect_admin() as conn:
        conn.execute(f'ALTER ROLE "{admin}" CREATEROLE')
    args = ["switch", admin, "iam", "--verify", "--host", rds_emulator.endpoint]
    args += ["--hostaddr", "127.0.0.1", "--port", str(proxy.port), "--dbname", "postgres"]
    args += ["--user", rds_emulator.master_user]
    process = subprocess.Popen(
        [str(SCRIPT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proxy.stalled.wait(60), "the verification login never started"
        time.sleep(0.3)  # the login is now waiting for the server's answer
        with rds_emulator.connect_admin() as conn:
            assert get_auth_mode(conn, admin) is AuthMode.IAM  # granted, being verified
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    assert f"stopped by {signum.name}" in stderr
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, admin) is AuthMode.PASSWORD
    rds_emulator.drop_user(admin)


def test_verification_login_is_bounded_by_default(
    rds_emulator: RdsIamEmulator, env: dict[str, str], proxy: FirstOnlyProxy
) -> None:
    """A hanging verification login fails within seconds (connect_timeout), and rolls back."""
    admin = f"adm_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(admin, password="pw-" + uuid.uuid4().hex)
    with rds_emulator.connect_admin() as conn:
        conn.execute(f'ALTER ROLE "{admin}" CREATEROLE')
    args = ["switch", admin, "iam", "--verify", "--host", rds_emulator.endpoint]
    args += ["--hostaddr", "127.0.0.1", "--port", str(proxy.port), "--dbname", "postgres"]
    args += ["--user", rds_emulator.master_user]
    started = time.monotonic()
    result = subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "rolled back" in result.stderr and "timeout expired" in result.stderr
    assert elapsed < 60  # psycopg's own default would wait 130 s per attempt
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, admin) is AuthMode.PASSWORD
    rds_emulator.drop_user(admin)


@pytest.mark.parametrize("where", ["@rdsiamkit-trap", "/tmp"])
def test_connect_refuses_socket_hosts(
    rds_emulator: RdsIamEmulator, env: dict[str, str], where: str
) -> None:
    """`connect --host @name` (an abstract socket, no TLS) and socket paths are refused."""
    trap = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trap.bind(f"\0rdsiamkit-trap/.s.PGSQL.{rds_emulator.port}")
    trap.listen()
    trap.settimeout(0.5)
    try:
        for args in (["--host", where], []):
            run_env = {**env, "PGHOST": where} if not args else env
            result = subprocess.run(
                [str(SCRIPT), "connect", *args, "--port", str(rds_emulator.port), "--user", "x"],
                env=run_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 2, result.stderr
            assert "TCP" in result.stderr or "socket" in result.stderr
        with pytest.raises(TimeoutError):
            trap.accept()  # nothing ever reached the trap
    finally:
        trap.close()


def test_connect_passes_the_token_in_a_private_passfile(
    rds_emulator: RdsIamEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    """psql gets PGPASSFILE (0600, removed afterwards), never the token in PGPASSWORD."""
    user = f"cli_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(user, iam=True)
    fake_psql = tmp_path / "psql"
    seen = tmp_path / "seen"
    fake_psql.write_text(
        "#!/bin/sh\n"
        f'echo "pw=${{PGPASSWORD:-unset}} file=$PGPASSFILE" > {seen}\n'
        f'stat -c %a "$PGPASSFILE" >> {seen}\n'
        f'exec psql "$@"\n'
    )
    fake_psql.chmod(0o755)
    args = ["connect", "--host", rds_emulator.endpoint, "--hostaddr", rds_emulator.hostaddr]
    args += ["--port", str(rds_emulator.port), "--user", user, "--dbname", "postgres"]
    args += ["--psql", str(fake_psql), "--", "-tAX", "-c", "SELECT current_user"]
    result = subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == user
    first, mode = seen.read_text().splitlines()
    assert first.startswith("pw=unset file=") and mode == "600"
    assert not Path(first.split("file=", 1)[1]).exists()  # removed when psql ended
    rds_emulator.drop_user(user)


def test_passfile_line_escapes_and_names_one_server() -> None:
    """Colons and backslashes are escaped, a '*' user stays literal; the database is any."""
    line = passfile_line("db.example", 5432, "*", "a:b\\c")
    assert line == "db.example:5432:*:\\*:a\\:b\\\\c\n"


def test_admin_connection_has_keepalives_and_a_user_timeout(
    rds_emulator: RdsIamEmulator, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's admin session notices a dead network path (keepalives, tcp_user_timeout)."""

    monkeypatch.setenv("PGPASSWORD", rds_emulator.master_password)
    monkeypatch.setenv("RDSIAMKIT_CA_BUNDLE", str(rds_emulator.ca_file))
    where = ["--host", rds_emulator.endpoint, "--hostaddr", rds_emulator.hostaddr]
    where += ["--port", str(rds_emulator.port), "--user", rds_emulator.master_user]
    args = build_parser().parse_args(["status", *where, "--dbname", "postgres"])
    with _admin_connection(args) as conn:
        params = conn.info.get_parameters()
    assert params["keepalives_idle"] == "30" and params["tcp_user_timeout"] == "60000"
