"""The RDS IAM emulator behaves like RDS PostgreSQL with IAM database authentication."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rdsiamkit.errors import EmulatorError
from rdsiamkit.testing.credentials import FakeCredentials
from rdsiamkit.testing.emulator import RdsIamEmulator, instance_roots
from rdsiamkit.testing.pam import PAM_DIR
from rdsiamkit.testing.sigv4 import AuthFailureReason
from rdsiamkit.testing.tunnel import TcpTunnel

PAM_FAILED = "PAM authentication failed for user"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def login(emu: RdsIamEmulator, user: str, password: str, **overrides: Any) -> str:
    """Log in and return current_user."""
    with psycopg.connect(**(emu.conninfo(user, password=password) | overrides)) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def token_for(
    emu: RdsIamEmulator,
    creds: FakeCredentials,
    user: str,
    *,
    host: str | None = None,
    port: int | None = None,
) -> str:
    client = creds.boto3_session(region=emu.region).client("rds")
    token: str = client.generate_db_auth_token(
        DBHostname=host or emu.endpoint, Port=port or emu.port, DBUsername=user
    )
    return token


def refused(emu: RdsIamEmulator, user: str, password: str, **overrides: Any) -> str:
    """Attempt a login that must fail; return the error text."""
    with pytest.raises(psycopg.OperationalError) as info:
        login(emu, user, password, **overrides)
    return str(info.value)


@pytest.fixture
def iam_user(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    name = rds_emulator.create_user(unique("iam"), iam=True)
    yield name
    rds_emulator.drop_user(name)


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    return rds_emulator.add_credentials()


def test_password_user_logs_in_with_password(rds_emulator: RdsIamEmulator) -> None:
    """A user outside rds_iam logs in with its SCRAM password; a wrong one is refused."""
    name = rds_emulator.create_user(unique("pw"), password="right-password")
    try:
        assert login(rds_emulator, name, "right-password") == name
        assert "password authentication failed" in refused(rds_emulator, name, "wrong")
        assert rds_emulator.auth_events() == []  # password logins never reach the verifier
    finally:
        rds_emulator.drop_user(name)


def test_direct_rds_iam_member_needs_a_token(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials
) -> None:
    """GRANT rds_iam: the password is refused like on RDS, a long-term-key token works."""
    name = rds_emulator.create_user(unique("direct"), password="pw-direct", iam=True)
    try:
        assert f'{PAM_FAILED} "{name}"' in refused(rds_emulator, name, "pw-direct")
        assert login(rds_emulator, name, token_for(rds_emulator, creds, name)) == name
        outcomes = [e.outcome for e in rds_emulator.auth_events()]
        assert outcomes == [AuthFailureReason.MALFORMED, None]
    finally:
        rds_emulator.drop_user(name)


def test_nested_rds_iam_member_needs_a_token(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials
) -> None:
    """user -> group -> rds_iam: pg_hba's +rds_iam follows the nesting."""
    group, name = unique("grp"), unique("nested")
    with rds_emulator.connect_admin() as admin:
        admin.execute(
            psycopg.sql.SQL("CREATE ROLE {} NOLOGIN").format(psycopg.sql.Identifier(group))
        )
        admin.execute(psycopg.sql.SQL("GRANT rds_iam TO {}").format(psycopg.sql.Identifier(group)))
    rds_emulator.create_user(name, password="pw-nested")
    try:
        assert login(rds_emulator, name, "pw-nested") == name
        with rds_emulator.connect_admin() as admin:
            admin.execute(
                psycopg.sql.SQL("GRANT {} TO {}").format(
                    psycopg.sql.Identifier(group), psycopg.sql.Identifier(name)
                )
            )
        assert PAM_FAILED in refused(rds_emulator, name, "pw-nested")
        assert login(rds_emulator, name, token_for(rds_emulator, creds, name)) == name
    finally:
        rds_emulator.drop_user(name)
        rds_emulator.drop_user(group)


def test_temporary_credentials_token_over_1_2_kb_logs_in(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """ASIA key + 1.5 kB session token: a > 1.2 kB token gets through PAM whole."""
    temporary = rds_emulator.add_credentials(temporary=True)
    token = token_for(rds_emulator, temporary, iam_user)
    assert temporary.access_key_id.startswith("ASIA") and len(token) > 1200
    assert login(rds_emulator, iam_user, token) == iam_user
    assert rds_emulator.auth_events()[-1].access_key_id == temporary.access_key_id


def test_4kb_token_logs_in(rds_emulator: RdsIamEmulator, iam_user: str) -> None:
    """Tokens well past pam_exec's 511-byte cut (here > 4 kB) verify."""
    big = rds_emulator.add_credentials(temporary=True, session_token_size=4096)
    token = token_for(rds_emulator, big, iam_user)
    assert len(token) > 4096
    assert login(rds_emulator, iam_user, token) == iam_user


def test_reader_and_instance_endpoints_accept_their_tokens(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """Each endpoint name is in the certificate and valid as the token's host."""
    for host in (rds_emulator.reader_endpoint, rds_emulator.instance_endpoint):
        token = token_for(rds_emulator, creds, iam_user, host=host)
        assert login(rds_emulator, iam_user, token, host=host) == iam_user


def _expire(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    token = token_for(emu, creds, user)
    emu.max_token_age = 1.0
    time.sleep(1.1)  # X-Amz-Date is truncated to the second: > 1 s after it
    return token


def _tamper(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    token = token_for(emu, creds, user)
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def _wrong_user(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    return token_for(emu, creds, "someone_else")


def _wrong_host(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    return token_for(
        emu, creds, user, host="other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
    )


def _wrong_secret(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    forged = FakeCredentials(creds.access_key_id, "not-the-secret", None, creds.arn)
    return token_for(emu, forged, user)


def _unknown_key(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    emu.revoke_credentials(creds.access_key_id)
    return token_for(emu, creds, user)


def _policy_denied(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    emu.set_policy(creds.access_key_id, [emu.db_user_arn("someone_else")])
    return token_for(emu, creds, user)


def _wrong_region(emu: RdsIamEmulator, creds: FakeCredentials, user: str) -> str:
    client = creds.boto3_session(region="eu-west-1").client("rds")
    token: str = client.generate_db_auth_token(emu.endpoint, emu.port, user)
    return token


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (_expire, AuthFailureReason.EXPIRED),
        (_tamper, AuthFailureReason.INVALID_SIGNATURE),
        (_wrong_user, AuthFailureReason.USER_MISMATCH),
        (_wrong_host, AuthFailureReason.ENDPOINT_MISMATCH),
        (_wrong_secret, AuthFailureReason.INVALID_SIGNATURE),
        (_unknown_key, AuthFailureReason.UNKNOWN_KEY),
        (_policy_denied, AuthFailureReason.NOT_AUTHORIZED),
        (_wrong_region, AuthFailureReason.WRONG_REGION),
    ],
    ids=lambda p: getattr(p, "__name__", str(p)).strip("_"),
)
def test_bad_tokens_are_refused_with_the_logged_reason(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    creds: FakeCredentials,
    make_token: Any,
    reason: AuthFailureReason,
) -> None:
    """The client sees only 'PAM authentication failed'; the event log says why."""
    token = make_token(rds_emulator, creds, iam_user)
    error = refused(rds_emulator, iam_user, token)
    assert f'{PAM_FAILED} "{iam_user}"' in error
    assert reason.value not in error
    event = rds_emulator.auth_events()[-1]
    assert (event.user, event.outcome, event.ok) == (iam_user, reason, False)


def test_non_tls_connection_is_refused_by_pg_hba(rds_emulator: RdsIamEmulator) -> None:
    """Without TLS the server answers with RDS's pg_hba 'no encryption' rejection."""
    error = refused(
        rds_emulator, rds_emulator.master_user, rds_emulator.master_password, sslmode="disable"
    )
    assert 'pg_hba.conf rejects connection for host "127.0.0.1"' in error
    assert "no encryption" in error


def test_wrong_ca_is_refused_by_the_client(rds_emulator: RdsIamEmulator) -> None:
    """With the decoy CA, verify-full fails before any credential is sent."""
    error = refused(
        rds_emulator,
        rds_emulator.master_user,
        rds_emulator.master_password,
        sslrootcert=str(rds_emulator.untrusted_ca_file),
    )
    assert "certificate verify failed" in error


def test_name_outside_the_certificate_is_refused_by_the_client(
    rds_emulator: RdsIamEmulator,
) -> None:
    """verify-full checks the endpoint name: a name not in the SANs fails."""
    error = refused(
        rds_emulator,
        rds_emulator.master_user,
        rds_emulator.master_password,
        host="other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
    )
    assert "does not match host name" in error


def test_master_user_is_rds_like(rds_emulator: RdsIamEmulator) -> None:
    """Master: password login, not superuser, in rds_superuser, not in rds_iam, CREATEROLE."""
    with rds_emulator.connect_admin() as admin:
        row = admin.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb,"
            " pg_has_role(current_user, 'rds_superuser', 'MEMBER'),"
            " pg_has_role(current_user, 'rds_iam', 'MEMBER')"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        roles = admin.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'rds\\_%' ORDER BY 1"
        ).fetchall()
    assert row == (rds_emulator.master_user, False, True, True, True, False)
    assert roles == [
        ("rds_ad", False),
        ("rds_iam", False),
        ("rds_password", False),
        ("rds_replication", False),
        ("rds_superuser", False),
    ]
    error = refused(rds_emulator, "rdsadmin", "anything")  # RDS's bootstrap superuser
    assert "pg_hba.conf rejects connection" in error


def test_master_user_grants_and_revokes_rds_iam(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials
) -> None:
    """The master switches a user to IAM and back with plain GRANT / REVOKE."""
    name = rds_emulator.create_user(unique("switch"), password="pw-switch")
    ident = psycopg.sql.Identifier(name)
    try:
        with rds_emulator.connect_admin() as admin:
            admin.execute(psycopg.sql.SQL("GRANT rds_iam TO {}").format(ident))
        assert PAM_FAILED in refused(rds_emulator, name, "pw-switch")
        assert login(rds_emulator, name, token_for(rds_emulator, creds, name)) == name
        with rds_emulator.connect_admin() as admin:
            admin.execute(psycopg.sql.SQL("REVOKE rds_iam FROM {}").format(ident))
        assert login(rds_emulator, name, "pw-switch") == name
    finally:
        rds_emulator.drop_user(name)


def test_credential_and_policy_changes_apply_live(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """Policies, new keys and revocations change the next login, without a restart."""
    creds = rds_emulator.add_credentials(allowed_arns=[rds_emulator.db_user_arn("nobody")])
    assert PAM_FAILED in refused(rds_emulator, iam_user, token_for(rds_emulator, creds, iam_user))
    pattern = rds_emulator.db_user_arn(iam_user[:5] + "*")
    rds_emulator.set_policy(creds.access_key_id, [pattern])
    assert login(rds_emulator, iam_user, token_for(rds_emulator, creds, iam_user)) == iam_user
    rds_emulator.set_policy(creds.access_key_id, [])
    assert PAM_FAILED in refused(rds_emulator, iam_user, token_for(rds_emulator, creds, iam_user))
    rds_emulator.set_policy(creds.access_key_id, None)
    token = token_for(rds_emulator, creds, iam_user)
    assert login(rds_emulator, iam_user, token) == iam_user
    rds_emulator.revoke_credentials(creds.access_key_id)
    assert PAM_FAILED in refused(rds_emulator, iam_user, token)
    outcomes = [e.outcome for e in rds_emulator.auth_events()]
    assert outcomes == [
        AuthFailureReason.NOT_AUTHORIZED,
        None,
        AuthFailureReason.NOT_AUTHORIZED,
        None,
        AuthFailureReason.UNKNOWN_KEY,
    ]


def test_reset_restores_knobs_and_registered_policies(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """reset() puts back max age, skew, rate limit and each key's original policy."""
    creds = rds_emulator.add_credentials(allowed_arns=[rds_emulator.db_user_arn(iam_user)])
    rds_emulator.set_policy(creds.access_key_id, [])
    rds_emulator.max_token_age = 1.0
    rds_emulator.max_clock_skew = 0.0
    rds_emulator.set_iam_rate_limit(0.001)
    rds_emulator.reset()
    assert (rds_emulator.max_token_age, rds_emulator.max_clock_skew) == (900.0, 300.0)
    assert login(rds_emulator, iam_user, token_for(rds_emulator, creds, iam_user)) == iam_user
    assert len(rds_emulator.auth_events()) == 1


def test_rate_limit_refuses_iam_logins_above_the_rate(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """Above set_iam_rate_limit, IAM logins fail with rate_limited; lifting it restores them."""
    token = token_for(rds_emulator, creds, iam_user)
    rds_emulator.set_iam_rate_limit(0.05)  # a burst of one, then one per 20 s
    assert login(rds_emulator, iam_user, token) == iam_user
    assert PAM_FAILED in refused(rds_emulator, iam_user, token)
    assert rds_emulator.auth_events()[-1].outcome is AuthFailureReason.RATE_LIMITED
    rds_emulator.set_iam_rate_limit(None)
    assert login(rds_emulator, iam_user, token) == iam_user


def test_verifier_error_fails_closed(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    creds: FakeCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If deciding raises, the PAM module gets a refusal, never a pass."""
    token = token_for(rds_emulator, creds, iam_user)

    def broken(user: str, token: str) -> object:
        raise RuntimeError("verifier bug")

    monkeypatch.setattr(rds_emulator._gate, "judge", broken)
    assert PAM_FAILED in refused(rds_emulator, iam_user, token)
    monkeypatch.undo()
    assert login(rds_emulator, iam_user, token) == iam_user


def test_tunnel_needs_a_token_for_the_real_endpoint_port(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """Through a port forward, a token signed for the tunnel port fails; the real port works."""
    with TcpTunnel(rds_emulator.hostaddr, rds_emulator.port) as tunnel:
        via_tunnel = {"port": str(tunnel.port)}
        bad = token_for(rds_emulator, creds, iam_user, port=tunnel.port)
        assert PAM_FAILED in refused(rds_emulator, iam_user, bad, **via_tunnel)
        assert rds_emulator.auth_events()[-1].outcome is AuthFailureReason.ENDPOINT_MISMATCH
        good = token_for(rds_emulator, creds, iam_user)
        assert login(rds_emulator, iam_user, good, **via_tunnel) == iam_user
        assert tunnel.connections_total == 2


def test_auth_log_is_json_lines_without_secrets(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """Each decision is a JSON line with its reason; no token, signature or secret is written."""
    temporary = rds_emulator.add_credentials(temporary=True)
    token = token_for(rds_emulator, temporary, iam_user)
    assert login(rds_emulator, iam_user, token) == iam_user
    refused(rds_emulator, iam_user, token + "0")
    refused(rds_emulator, iam_user, "my-password")
    lines = rds_emulator.auth_log_file.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[-3:]]
    assert [r["reason"] for r in records] == [None, "malformed", "malformed"]
    assert records[0]["access_key_id"] == temporary.access_key_id
    assert records[0]["host"] == rds_emulator.endpoint
    text = rds_emulator.auth_log_file.read_text(encoding="utf-8")
    assert temporary.session_token is not None
    for secret in (
        token.split("X-Amz-Signature=")[1],
        temporary.secret_access_key,
        temporary.session_token[:32],
        "my-password",
    ):
        assert secret not in text


def test_lifecycle_cold_and_warm_start_restart_and_clean_stop(tmp_path: Path) -> None:
    """Cold/warm start (timed, printed), a second server beside the session one, restart, stop."""
    cold = RdsIamEmulator(cluster_id="lifecycle", cache_dir=tmp_path)
    with cold:
        cold_seconds = cold.startup_seconds
    warm = RdsIamEmulator(cluster_id="lifecycle", cache_dir=tmp_path)
    warm.start()
    try:
        print(f"\nemulator start: cold {cold_seconds:.2f} s, warm {warm.startup_seconds:.2f} s")
        name = warm.create_user("survivor", password="pw-survivor")
        port, ca = warm.port, warm.ca_file.read_bytes()
        warm.restart()
        assert (warm.port, warm.ca_file.read_bytes()) == (port, ca)
        assert login(warm, name, "pw-survivor") == name
        base = warm.ca_file.parent
        [service] = [p for p in PAM_DIR.glob("rdsiamkit-*") if str(base) in p.read_text()]
        pid = warm._require().server.pid
        assert pid is not None
    finally:
        warm.stop()
    assert not base.exists() and not service.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    warm.stop()  # stopping twice is harmless


def test_demo_command_walks_the_scenario() -> None:
    """'python -m rdsiamkit demo' exits 0, shows each step and never prints a token."""
    result = subprocess.run(
        [sys.executable, "-m", "rdsiamkit", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[8/8]" in out and "FAILED" not in out
    assert 'refused as on RDS: PAM authentication failed for user "app_user"' in out
    assert "current_database=postgres, current_user=app_user" in out
    assert "X-Amz" not in out + result.stderr


FAKE_POSTGRES = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "postgres (PostgreSQL) 15.99"; exit 0; fi
echo "FATAL:  simulated crash at start-up" >&2
exit 1
"""
FAKE_INITDB = """#!/bin/sh
for arg in "$@"; do
  if [ "$prev" = "-D" ]; then mkdir -p "$arg" && echo 15 > "$arg/PG_VERSION"; fi
  prev=$arg
done
"""


def _owned_by_this_process() -> tuple[set[Path], set[Path]]:
    marker = f"pid={os.getpid()}"
    services = {p for p in PAM_DIR.glob("rdsiamkit-*") if marker in p.read_text()}
    bases = {
        p
        for root in instance_roots()
        for p in root.glob("rdsiamkit-emu-*")
        if (p / "owner.pid").is_file() and (p / "owner.pid").read_text() == str(os.getpid())
    }
    return services, bases


def test_failed_start_names_the_cause_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A server that dies at start-up: EmulatorError with its log; no PAM file or dir remains."""
    bindir = Path(tempfile.mkdtemp(prefix="rdsiamkit-fakebin-"))
    try:
        bindir.chmod(0o755)  # the fake initdb runs as the postgres OS user
        for name, script in (("postgres", FAKE_POSTGRES), ("initdb", FAKE_INITDB)):
            (bindir / name).write_text(script)
            (bindir / name).chmod(0o755)
        before = _owned_by_this_process()
        emu = RdsIamEmulator(pg_bindir=bindir, cache_dir=tmp_path)
        with pytest.raises(EmulatorError, match="simulated crash at start-up"):
            emu.start()
        assert not emu.started
        assert _owned_by_this_process() == before
    finally:
        shutil.rmtree(bindir)


def test_start_fails_loudly_when_postgres_cannot_use_the_pam_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module PAM cannot load is caught by the start-up probe, not by a later test."""
    broken = tmp_path / "not-a-module.so"
    broken.write_bytes(b"this is not an ELF file")
    monkeypatch.setattr("rdsiamkit.testing.emulator.build_module", lambda cache: broken)
    before = _owned_by_this_process()
    emu = RdsIamEmulator(cluster_id="broken")
    with pytest.raises(EmulatorError, match="did not consult the emulator's verifier") as info:
        emu.start()
    assert PAM_FAILED in str(info.value)
    assert _owned_by_this_process() == before
