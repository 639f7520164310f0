"""Security audit findings on auth modes, reproduced against the emulator (issue 17).

Item 4: an IAM-only admin switched to PASSWORD could no longer log in at all.
Item 5: role names with terminal escapes reached text output raw.
Item 7: ``new_password`` stayed in the frame locals of a raising ``set_auth_mode``.
"""

from __future__ import annotations

import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from rdsiamkit.authmode import (
    AuthMode,
    RefusalReason,
    StalePlanError,
    get_auth_mode,
    plan_auth_modes,
    set_auth_mode,
)
from rdsiamkit.connection import connect
from rdsiamkit.errors import (
    AuthModeError,
    ConfigurationError,
    LockoutRefusedError,
    UserNotFoundError,
)
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider

PASSWORD = "Corr3ct-horse-battery"  # test-only password for roles made here


@pytest.fixture
def admin(rds_emulator: RdsIamEmulator) -> Iterator[psycopg.Connection[Any]]:
    """The master user's autocommit connection."""
    with rds_emulator.connect_admin() as conn:
        yield conn


@pytest.fixture
def roles(admin: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """Names appended here are dropped after the test."""
    made: list[str] = []
    yield made
    for name in reversed(made):
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _role(
    admin: psycopg.Connection[Any],
    roles: list[str],
    *,
    name: str | None = None,
    options: str = "",
    password: str | None = PASSWORD,
    iam: bool = False,
) -> str:
    name = name or f"au_{uuid.uuid4().hex[:10]}"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(name), sql.SQL(options)))
    roles.append(name)
    if password is not None:
        admin.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )
    if iam:
        admin.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(name)))
    return name


def _iam_connect(emu: RdsIamEmulator, user: str, creds: FakeCredentials) -> psycopg.Connection[Any]:
    info = dict(emu.conninfo(user))
    info.pop("sslmode", None)
    provider = TokenProvider(session=creds.boto3_session(region=emu.region))
    return connect(**info, token_provider=provider, region=emu.region, autocommit=True)


def _password_login(emu: RdsIamEmulator, user: str, password: str) -> str:
    with psycopg.connect(**emu.conninfo(user, password=password), connect_timeout=10) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def test_iam_only_admin_cannot_switch_itself_to_password_without_one(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], roles: list[str]
) -> None:
    """An IAM-only admin, connected as itself, is refused PASSWORD unless it sets a password."""
    creds = rds_emulator.add_credentials()
    me = _role(admin, roles, options="CREATEROLE", password=None, iam=True)
    with _iam_connect(rds_emulator, me, creds) as conn:
        with pytest.raises(LockoutRefusedError, match="new_password="):
            set_auth_mode(conn, me, AuthMode.PASSWORD)
        assert get_auth_mode(admin, me) is AuthMode.IAM
        change = set_auth_mode(conn, me, "password", new_password="N3w-pass-for-me")
    assert change.changed and change.password_set
    assert _password_login(rds_emulator, me, "N3w-pass-for-me") == me


def test_other_admin_to_password_needs_a_new_or_known_password(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], roles: list[str]
) -> None:
    """Another admin in IAM goes back to PASSWORD only with new_password or has_password=True."""
    other = _role(admin, roles, options="CREATEROLE", iam=True)
    with pytest.raises(LockoutRefusedError, match="has_password=True"):
        set_auth_mode(admin, other, AuthMode.PASSWORD)
    plan = plan_auth_modes(admin, {other: "password"})
    assert [r.reason for r in plan.refused] == [RefusalReason.LOCKOUT_GUARD]
    assert get_auth_mode(admin, other) is AuthMode.IAM
    change = set_auth_mode(admin, other, AuthMode.PASSWORD, has_password=True)
    assert change.changed
    assert _password_login(rds_emulator, other, PASSWORD) == other


def test_switch_statements_escape_terminal_codes_but_name_the_real_role(
    admin: psycopg.Connection[Any], roles: list[str]
) -> None:
    """Shown statements hold no control character, and pasted into SQL they switch the role."""
    odd = _role(admin, roles, name=f"ev\x1b[2J\nil_{uuid.uuid4().hex[:6]}")
    change = set_auth_mode(admin, odd, AuthMode.IAM, dry_run=True)
    (statement,) = change.statements
    assert statement.isprintable() and statement.startswith('GRANT "rds_iam" TO U&"ev\\001B[2J')
    admin.execute(statement.encode())  # the shown text is real SQL naming the real role
    assert get_auth_mode(admin, odd) is AuthMode.IAM


def test_stale_plan_error_escapes_role_names(
    admin: psycopg.Connection[Any], roles: list[str]
) -> None:
    """A StalePlanError about an odd role shows it escaped, not as terminal codes."""
    odd = _role(admin, roles, name=f"st\x1b]0;pwn\x07_{uuid.uuid4().hex[:6]}")
    plan = plan_auth_modes(admin, {odd: "iam"})
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(odd)))
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(odd)))
    with pytest.raises(StalePlanError) as caught:
        plan.apply(admin)
    message = str(caught.value)
    assert "\x1b" not in message and "\x07" not in message and "dropped and re-created" in message


def _frames_text(err: BaseException) -> str:
    """Every local of every kit frame of ``err``'s traceback, as an error reporter records it
    (the test's own frame, which holds the password it passed, is left out)."""
    assert err.__traceback__ is not None
    inner = err.__traceback__.tb_next
    seen = ""
    for frame, _ in traceback.walk_tb(inner):
        summary = traceback.FrameSummary(
            frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, locals=frame.f_locals
        )
        seen += repr(summary.locals) + "".join(repr(v) for v in frame.f_locals.values())
    assert seen, "the error was raised inside the kit, so its frames must be there"
    return seen


@pytest.mark.parametrize(
    ("user", "mode", "suffix", "error"),
    [
        ("no_such_role_xyz", "password", "", UserNotFoundError),
        ("postgres", "iam", "", ConfigurationError),  # new_password with IAM
        ("postgres", "password", "\x00", ConfigurationError),  # a NUL in the password
    ],
)
def test_new_password_is_not_in_traceback_locals(
    admin: psycopg.Connection[Any], user: str, mode: str, suffix: str, error: type[Exception]
) -> None:
    """A raising set_auth_mode leaves its new_password in no frame an error reporter reads."""
    secret_text = "".join(["Pl41n", "-text-", uuid.uuid4().hex])
    with pytest.raises(error) as caught:
        set_auth_mode(admin, user, mode, new_password=secret_text + suffix)
    assert secret_text not in _frames_text(caught.value)


class FreezableProxy:
    """A TCP relay to the emulator whose traffic can be frozen: a network that stalls silently
    (the client's writes are accepted, nothing ever comes back)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def close(self) -> None:
        self.frozen.clear()
        self.listener.close()


def test_apply_is_bounded_when_the_network_stalls(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], roles: list[str]
) -> None:
    """plan.apply(timeout=) closes a connection whose network went silent, commits nothing."""
    users = [_role(admin, roles) for _ in range(3)]
    proxy = FreezableProxy((rds_emulator.hostaddr, rds_emulator.port))
    info = {**rds_emulator.conninfo(rds_emulator.master_user), "port": proxy.port}
    info["password"] = rds_emulator.master_password
    try:
        with psycopg.connect(**info, autocommit=True) as conn:
            plan = plan_auth_modes(conn, dict.fromkeys(users, "iam"))
            proxy.frozen.set()
            started = time.monotonic()
            with pytest.raises(AuthModeError, match="no answer from the server within 4 s"):
                plan.apply(conn, timeout=2)
            assert time.monotonic() - started < 15
    finally:
        proxy.close()
    assert all(get_auth_mode(admin, u) is AuthMode.PASSWORD for u in users)


def test_apply_statement_waiting_on_a_lock_is_bounded(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], roles: list[str]
) -> None:
    """A GRANT blocked behind another transaction's lock gives up after the timeout."""
    user = _role(admin, roles)
    plan = plan_auth_modes(admin, {user: "iam"})
    with rds_emulator.connect_admin(autocommit=False) as other:
        other.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(user)))
        started = time.monotonic()
        with pytest.raises(AuthModeError):
            plan.apply(admin, timeout=1.5)
        assert time.monotonic() - started < 15
        other.rollback()
    assert get_auth_mode(admin, user) is AuthMode.PASSWORD


def test_apply_refuses_a_nonsense_timeout(admin: psycopg.Connection[Any]) -> None:
    """A zero or negative timeout is a configuration error, before anything is sent."""
    plan = plan_auth_modes(admin, {"postgres": "password"})
    with pytest.raises(ConfigurationError, match="timeout must be positive"):
        plan.apply(admin, timeout=0)
