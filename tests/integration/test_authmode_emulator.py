"""Auth modes against the RDS IAM emulator: reading, switching, guards, bulk plans."""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql

from rdsiamkit.authmode import (
    AuthMode,
    RefusalReason,
    StalePlanError,
    auth_status,
    get_auth_mode,
    plan_auth_modes,
    set_auth_mode,
)
from rdsiamkit.connection import connect
from rdsiamkit.errors import (
    AuthModeError,
    ConfigurationError,
    InheritedMembershipError,
    LockoutRefusedError,
    RdsIamRoleMissingError,
    SwitchRefusedError,
    UserNotFoundError,
    VerificationFailedError,
)
from rdsiamkit.explore import list_users
from rdsiamkit.testing import AuthFailureReason, FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider

PASSWORD = "Corr3ct-horse-battery"  # test-only password for roles made here

MakeRole = Callable[..., str]


@pytest.fixture
def admin(rds_emulator: RdsIamEmulator) -> Iterator[psycopg.Connection[Any]]:
    """The master user's autocommit connection, over TLS like a real RDS admin session."""
    with rds_emulator.connect_admin() as conn:
        yield conn


@pytest.fixture
def make_role(admin: psycopg.Connection[Any]) -> Iterator[MakeRole]:
    """Create uniquely named roles (any name, any options); drop them all afterwards."""
    created: list[str] = []

    def make(
        name: str | None = None,
        *,
        login: bool = True,
        password: str | None = PASSWORD,
        member_of: Sequence[str] = (),
        options: str = "",
    ) -> str:
        name = name or f"am_{uuid.uuid4().hex[:10]}"
        query = sql.SQL("CREATE ROLE {} {} {}").format(
            sql.Identifier(name),
            sql.SQL("LOGIN" if login else "NOLOGIN"),
            sql.SQL(options),
        )
        admin.execute(query)
        created.append(name)
        if password is not None:
            admin.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
        for group in member_of:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name))
            )
        return name

    yield make
    for name in reversed(created):
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    return rds_emulator.add_credentials()


def password_login(emu: RdsIamEmulator, user: str, password: str = PASSWORD) -> str:
    """Log in with a password over TLS; return current_user."""
    with psycopg.connect(**emu.conninfo(user, password=password), connect_timeout=10) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def token_login(emu: RdsIamEmulator, user: str, creds: FakeCredentials) -> str:
    """Log in with an IAM token through the kit; return current_user."""
    info = dict(emu.conninfo(user))
    info.pop("sslmode", None)
    provider = TokenProvider(session=creds.boto3_session(region=emu.region))
    with connect(**info, token_provider=provider, region=emu.region) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


@contextmanager
def round_trips(conn: psycopg.Connection[Any]) -> Iterator[list[int]]:
    """Count client/server round trips (one ReadyForQuery each) with libpq's protocol trace."""
    counted: list[int] = []
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield counted
        finally:
            conn.pgconn.untrace()
            trace.seek(0)
            counted.append(sum(1 for line in trace if line.startswith("B\t5\tReadyForQuery")))


# --- the acceptance scenario ------------------------------------------------------------------


def test_password_to_iam_and_back(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    creds: FakeCredentials,
) -> None:
    """Password login -> IAM (password refused, token works) -> PASSWORD (password works)."""
    user = make_role()
    assert password_login(rds_emulator, user) == user
    change = set_auth_mode(admin, user, AuthMode.IAM)
    assert (change.before, change.after, change.changed) == (
        AuthMode.PASSWORD,
        AuthMode.IAM,
        True,
    )
    assert change.statements == (f'GRANT "rds_iam" TO "{user}"',)
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        password_login(rds_emulator, user)
    assert token_login(rds_emulator, user, creds) == user
    back = set_auth_mode(admin, user, AuthMode.PASSWORD)
    assert (back.before, back.after, back.changed) == (AuthMode.IAM, AuthMode.PASSWORD, True)
    assert password_login(rds_emulator, user) == user


def test_switching_to_the_current_mode_changes_nothing(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """A second identical switch reports changed=False and sends no GRANT."""
    user = make_role()
    assert set_auth_mode(admin, user, "iam").changed
    again = set_auth_mode(admin, user, "IAM")
    assert not again.changed and again.statements == ()
    assert "already iam" in again.message


# --- reading ----------------------------------------------------------------------------------


def test_mode_follows_direct_and_nested_grants_like_pg_hba(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """Direct and two-level nested members read IAM and really are refused a password."""
    outer = make_role(login=False, password=None, member_of=["rds_iam"])
    inner = make_role(login=False, password=None, member_of=[outer])
    direct = make_role(member_of=["rds_iam"])
    nested = make_role(member_of=[inner])
    plain = make_role()
    assert get_auth_mode(admin, direct) is AuthMode.IAM
    assert get_auth_mode(admin, nested) is AuthMode.IAM
    assert get_auth_mode(admin, plain) is AuthMode.PASSWORD
    for user in (direct, nested):
        with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
            password_login(rds_emulator, user)
    assert password_login(rds_emulator, plain) == plain


def test_auth_status_reports_paths_and_flags_in_one_round_trip(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """auth_status lists each path to rds_iam, admin and session flags, in one round trip."""
    group = make_role(login=False, password=None, member_of=["rds_iam"])
    user = make_role(member_of=["rds_iam", group], options="CONNECTION LIMIT 7")
    with round_trips(admin) as count:
        status = auth_status(admin, user)
    assert count == [1]
    assert status.mode is AuthMode.IAM and status.direct
    assert status.paths == ((user, "rds_iam"), (user, group, "rds_iam"))
    assert status.can_login and not status.is_admin and not status.is_superuser
    assert status.connection_limit == 7 and status.valid_until is None
    assert f"{user} -> {group} -> rds_iam" in str(status)
    master = auth_status(admin, rds_emulator.master_user)
    assert master.mode is AuthMode.PASSWORD
    assert master.is_admin and master.is_session_user and not master.is_superuser


def test_paths_are_one_shortest_per_group_and_holders_cover_the_longer_ones(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """u -> g -> rds_iam and u -> g -> h -> rds_iam: one path through g, both g and h named
    as holders, and the PASSWORD refusal says to revoke rds_iam from both."""
    h = make_role(login=False, password=None, member_of=["rds_iam"])
    g = make_role(login=False, password=None, member_of=["rds_iam", h])
    user = make_role(member_of=[g])
    status = auth_status(admin, user)
    assert status.paths == ((user, g, "rds_iam"),)
    with pytest.raises(InheritedMembershipError) as info:
        set_auth_mode(admin, user, AuthMode.PASSWORD)
    assert status.holders == tuple(sorted([g, h]))
    holders = ", ".join(f'"{role}"' for role in sorted([g, h]))
    assert f'REVOKE "rds_iam" FROM {holders}' in str(info.value)


def test_deep_diamond_of_groups_costs_linear_paths_not_exponential(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """18 levels of two groups each granted both groups above (2**18 routes to rds_iam): the
    status holds one path per group the user is granted, of the shortest length."""
    levels = 18
    tag = uuid.uuid4().hex[:6]
    top = [
        make_role(f"dia_{tag}_{levels}{s}", login=False, password=None, member_of=["rds_iam"])
        for s in "ab"
    ]
    above = top
    for level in range(levels - 1, 0, -1):
        above = [
            make_role(f"dia_{tag}_{level}{s}", login=False, password=None, member_of=above)
            for s in "ab"
        ]
    user = make_role(member_of=above)
    with round_trips(admin) as count:
        status = auth_status(admin, user)
    assert count == [1]
    assert [p[1] for p in status.paths] == above
    assert all(len(p) == levels + 2 and p[-2] == top[0] for p in status.paths)
    users = {u.name: u for u in list_users(admin)}
    assert users[user].paths == status.paths and users[user].via == tuple(above)


def grant_cycle(emu: RdsIamEmulator, a: str, b: str) -> None:
    """Make ``a`` a member of ``b`` and ``b`` of ``a`` with two concurrent GRANTs, each of
    whose loop checks misses the other's uncommitted row (PostgreSQL 14-15)."""
    with (
        emu.connect_admin(autocommit=False) as first,
        emu.connect_admin(autocommit=False) as second,
    ):
        for conn in (first, second):
            conn.execute("SET lock_timeout = '5s'")  # should a server lock here, fail fast
        first.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(b), sql.Identifier(a)))
        second.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(a), sql.Identifier(b)))
        first.commit()
        second.commit()


def test_a_membership_cycle_from_concurrent_grants_is_walked_to_the_end(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """Two concurrent GRANTs can commit p -> q -> p (each check misses the other's row): the
    reads still end, and p's way back through q is no inherited path."""
    p = make_role(login=False, password=None, member_of=["rds_iam"])
    q = make_role(login=False, password=None)
    user = make_role(member_of=[p])
    grant_cycle(rds_emulator, p, q)
    admin.execute("SET statement_timeout = '20s'")  # a walk that never ends fails, not hangs
    assert auth_status(admin, user).paths == ((user, p, "rds_iam"),)
    status = auth_status(admin, p)
    assert (status.mode, status.paths, status.holders) == (AuthMode.IAM, ((p, "rds_iam"),), ())
    other = auth_status(admin, q)
    assert (other.paths, other.holders) == (((q, p, "rds_iam"),), (p,))
    assert {u.name for u in list_users(admin, include_nologin=True)} >= {p, q, user}
    admin.execute("RESET statement_timeout")


def test_a_cycle_that_hides_the_shortest_way_still_refuses_password(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """a -> rds_iam, a <-> g (a cycle), g -> h -> rds_iam: the name tie-break sends g's
    shortest way back through a, yet a still needs IAM through h, and is refused PASSWORD."""
    tag = uuid.uuid4().hex[:6]
    holder = make_role(f"h_{tag}", login=False, password=None, member_of=["rds_iam"])
    group = make_role(f"g_{tag}", login=False, password=None, member_of=[holder])
    user = make_role(f"a_{tag}", member_of=["rds_iam"])
    grant_cycle(rds_emulator, user, group)
    admin.execute("SET statement_timeout = '20s'")
    status = auth_status(admin, user)
    assert status.holders == (holder,) and status.direct
    with pytest.raises(InheritedMembershipError) as info:
        set_auth_mode(admin, user, AuthMode.PASSWORD, include_members=True)
    assert f'REVOKE "rds_iam" FROM "{holder}"' in str(info.value)
    assert get_auth_mode(admin, user) is AuthMode.IAM
    admin.execute("RESET statement_timeout")


def test_prepare_threshold_zero_and_pipeline_mode(
    rds_emulator: RdsIamEmulator, make_role: MakeRole
) -> None:
    """A connection that prepares every query still reads and switches; inside a pipeline the
    kit says it cannot run there instead of failing on an empty result."""
    user = make_role()
    info = rds_emulator.conninfo(password=rds_emulator.master_password)
    with psycopg.connect(**info, autocommit=True, prepare_threshold=0) as conn:
        assert set_auth_mode(conn, user, AuthMode.IAM).changed
        assert get_auth_mode(conn, user) is AuthMode.IAM
        assert user in {u.name for u in list_users(conn)}
        with conn.pipeline(), pytest.raises(ConfigurationError, match="pipeline"):
            auth_status(conn, user)
        assert get_auth_mode(conn, user) is AuthMode.IAM


def test_superuser_is_not_iam_although_pg_has_role_says_member(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any]
) -> None:
    """The known trap: pg_has_role() counts superusers as rds_iam members, pg_hba does not."""
    name = f"am_super_{uuid.uuid4().hex[:8]}"
    create = sql.SQL("CREATE ROLE {} SUPERUSER LOGIN PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(PASSWORD)
    )
    # The master user cannot create superusers; the emulator's bootstrap superuser can.
    with rds_emulator._superuser() as superuser:
        superuser.execute(create)
    try:
        has_role = admin.execute("SELECT pg_has_role(%s, 'rds_iam', 'member')", [name])
        assert has_role.fetchone() == (True,)
        assert get_auth_mode(admin, name) is AuthMode.PASSWORD
        status = auth_status(admin, name)
        assert status.is_superuser and status.is_admin and status.paths == ()
        assert password_login(rds_emulator, name) == name
        with pytest.raises(LockoutRefusedError, match="superuser"):
            set_auth_mode(admin, name, AuthMode.IAM)
    finally:
        with rds_emulator._superuser() as superuser:
            superuser.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_kerberos_and_iam_membership_is_reported_as_a_conflict(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """A user in both rds_iam and rds_ad shows the conflict; switching rds_ad users is refused."""
    both = make_role(member_of=["rds_iam", "rds_ad"])
    assert any("rds_ad" in c for c in auth_status(admin, both).conflicts)
    kerberos = make_role(member_of=["rds_ad"])
    with pytest.raises(SwitchRefusedError, match="Kerberos"):
        set_auth_mode(admin, kerberos, AuthMode.IAM)
    assert get_auth_mode(admin, kerberos) is AuthMode.PASSWORD


def test_missing_user_and_overlong_name(admin: psycopg.Connection[Any]) -> None:
    """An unknown role raises UserNotFoundError; a name over 63 bytes ConfigurationError."""
    missing = f"am_missing_{uuid.uuid4().hex[:8]}"
    for call in (get_auth_mode, auth_status):
        with pytest.raises(UserNotFoundError, match=missing):
            call(admin, missing)
    with pytest.raises(UserNotFoundError):
        set_auth_mode(admin, missing, AuthMode.IAM)
    with pytest.raises(ConfigurationError, match="64 bytes"):
        set_auth_mode(admin, "a" * 64, AuthMode.IAM)


def test_server_without_rds_iam_role(rds_emulator: RdsIamEmulator) -> None:
    """With rds_iam renamed away (in a rolled-back transaction) reads say the role is missing."""
    with rds_emulator.connect_admin(autocommit=False) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE rds_iam RENAME TO {}").format(
                sql.Identifier(f"rds_iam_{uuid.uuid4().hex[:6]}")
            )
        )
        try:
            with pytest.raises(RdsIamRoleMissingError, match="no rds_iam role"):
                get_auth_mode(conn, rds_emulator.master_user)
            with pytest.raises(RdsIamRoleMissingError):
                plan_auth_modes(conn, {rds_emulator.master_user: "iam"})
        finally:
            conn.rollback()
        assert get_auth_mode(conn, rds_emulator.master_user) is AuthMode.PASSWORD


HOSTILE = [
    'qu"ote',
    "semi;colon DROP ROLE postgres; --",
    "sp ace",
    "back\\slash",
    "ünïcødé-ß-名前",
    "it's",
    "NULL",
    "a,b{c}",
    " lead",
]


def test_hostile_names_switch_both_ways(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """Quotes, semicolons, spaces, backslashes, unicode and 63-byte names round-trip safely."""
    suffix = uuid.uuid4().hex[:6]
    names = [make_role(f"{n}{suffix}") for n in HOSTILE]
    exact = make_role(("é" * 28) + suffix + "x")
    assert len(exact.encode()) == 63
    names.append(exact)
    for name in names:
        assert set_auth_mode(admin, name, AuthMode.IAM).changed
        assert get_auth_mode(admin, name) is AuthMode.IAM
    plan = plan_auth_modes(admin, dict.fromkeys(names, AuthMode.PASSWORD))
    assert set(plan.to_revoke) == set(names) and not plan.refused
    plan.apply(admin, batch_size=3)
    assert {get_auth_mode(admin, n) for n in names} == {AuthMode.PASSWORD}


# --- safety rules -----------------------------------------------------------------------------


def test_inherited_membership_cannot_be_switched_to_password(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """IAM through a group raises InheritedMembershipError with both fixes; nothing changes."""
    group = make_role(login=False, password=None, member_of=["rds_iam"])
    user = make_role(member_of=[group])
    with pytest.raises(InheritedMembershipError) as info:
        set_auth_mode(admin, user, AuthMode.PASSWORD)
    message = str(info.value)
    assert f'REVOKE "{group}" FROM "{user}"' in message
    assert f'REVOKE "rds_iam" FROM "{group}"' in message
    assert get_auth_mode(admin, user) is AuthMode.IAM
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        password_login(rds_emulator, user)


def test_group_with_members_is_not_switched_to_password_silently(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """REVOKE from a group would switch its IAM-only members: refused unless asked for."""
    group = make_role(login=False, password=None, member_of=["rds_iam"])
    member = make_role(password=None, member_of=[group])
    with pytest.raises(LockoutRefusedError, match="1 member role"):
        set_auth_mode(admin, group, AuthMode.PASSWORD)
    plan = plan_auth_modes(admin, {group: AuthMode.PASSWORD})
    assert [r.reason for r in plan.refused] == [RefusalReason.LOCKOUT_GUARD]
    assert get_auth_mode(admin, member) is AuthMode.IAM
    change = set_auth_mode(admin, group, AuthMode.PASSWORD, include_members=True)
    assert change.changed
    assert get_auth_mode(admin, member) is AuthMode.PASSWORD


def test_interrupted_verification_keeps_a_user_that_already_needed_iam(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C during verify=True of an unchanged IAM user undoes nothing and re-raises."""
    user = make_role(member_of=["rds_iam"])

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("rdsiamkit.connection.connect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        set_auth_mode(admin, user, AuthMode.IAM, verify=True, region=rds_emulator.region)
    assert get_auth_mode(admin, user) is AuthMode.IAM


def test_interrupted_verification_undoes_its_own_grant(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C during verify=True of a fresh grant revokes it and re-raises the interruption."""
    user = make_role()

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("rdsiamkit.connection.connect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        set_auth_mode(admin, user, AuthMode.IAM, verify=True, region=rds_emulator.region)
    assert get_auth_mode(admin, user) is AuthMode.PASSWORD


def test_direct_plus_inherited_membership_keeps_the_direct_grant(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """With a direct and an inherited path, the refusal leaves the direct grant in place."""
    group = make_role(login=False, password=None, member_of=["rds_iam"])
    user = make_role(member_of=["rds_iam", group])
    with pytest.raises(InheritedMembershipError, match="direct grant"):
        set_auth_mode(admin, user, AuthMode.PASSWORD)
    assert auth_status(admin, user).direct


def test_new_password_is_hashed_on_the_client_and_never_shown(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Switching back with new_password sets it (old one stops working) without revealing it."""
    user = make_role(member_of=["rds_iam"])
    secret = f"n3w-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    change = set_auth_mode(admin, user, AuthMode.PASSWORD, new_password=secret)
    assert change.password_set and change.changed
    shown = repr(change) + str(change) + "".join(change.statements) + caplog.text
    assert secret not in shown and "SCRAM-SHA-256$" not in shown
    assert any("redacted" in s for s in change.statements)
    assert password_login(rds_emulator, user, secret) == user
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        password_login(rds_emulator, user)


def test_master_user_is_not_switched_without_verify(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any]
) -> None:
    """The RDS master user (CREATEROLE, rds_superuser, this session) is guarded."""
    with pytest.raises(LockoutRefusedError, match="verify=True"):
        set_auth_mode(admin, rds_emulator.master_user, AuthMode.IAM)
    assert get_auth_mode(admin, rds_emulator.master_user) is AuthMode.PASSWORD


@pytest.mark.parametrize("admin_kind", ["createrole", "rds_superuser"])
def test_other_admins_are_guarded(
    admin: psycopg.Connection[Any], make_role: MakeRole, admin_kind: str
) -> None:
    """CREATEROLE users and rds_superuser members need verify=True to go IAM."""
    if admin_kind == "createrole":
        user = make_role(options="CREATEROLE")
    else:
        user = make_role(member_of=["rds_superuser"])
    with pytest.raises(LockoutRefusedError, match="admin"):
        set_auth_mode(admin, user, AuthMode.IAM)
    assert get_auth_mode(admin, user) is AuthMode.PASSWORD


def test_own_session_user_is_guarded(rds_emulator: RdsIamEmulator, make_role: MakeRole) -> None:
    """A user switching itself to IAM is refused before any GRANT is tried."""
    user = make_role()
    info = rds_emulator.conninfo(user, password=PASSWORD)
    with (
        psycopg.connect(**info, autocommit=True) as conn,
        pytest.raises(LockoutRefusedError, match="this session's user"),
    ):
        set_auth_mode(conn, user, AuthMode.IAM)


def test_group_containing_the_master_user_is_guarded(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """GRANT rds_iam to a group would switch its admin members too: refused even with verify."""
    group = make_role(login=False, password=None)
    admin.execute(
        sql.SQL("GRANT {} TO {}").format(
            sql.Identifier(group), sql.Identifier(rds_emulator.master_user)
        )
    )
    with pytest.raises(LockoutRefusedError, match=rds_emulator.master_user):
        set_auth_mode(admin, group, AuthMode.IAM, verify=True)
    assert get_auth_mode(admin, rds_emulator.master_user) is AuthMode.PASSWORD


def test_failed_verification_of_master_rolls_back(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    creds: FakeCredentials,
) -> None:
    """Master + verify=True with a policy for another user: rolled back, password still works."""
    master = rds_emulator.master_user
    other = make_role()
    rds_emulator.set_policy(creds.access_key_id, [rds_emulator.db_user_arn(other)])
    rds_emulator.clear_auth_events()
    with pytest.raises(VerificationFailedError) as info:
        set_auth_mode(
            admin,
            master,
            AuthMode.IAM,
            verify=True,
            session=creds.boto3_session(region=rds_emulator.region),
            region=rds_emulator.region,
        )
    message = str(info.value)
    assert "rolled back" in message and "PAM authentication failed" in message
    assert "does not allow rds-db:connect" in message
    assert "X-Amz-Signature" not in message
    assert get_auth_mode(admin, master) is AuthMode.PASSWORD
    assert password_login(rds_emulator, master, rds_emulator.master_password) == master
    outcomes = [e.outcome for e in rds_emulator.auth_events() if e.user == master]
    assert AuthFailureReason.NOT_AUTHORIZED in outcomes


def test_verified_switch_keeps_iam_when_the_login_works(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    creds: FakeCredentials,
) -> None:
    """verify=True for an allowed user commits, logs in with a token, and reports verified."""
    user = make_role()
    rds_emulator.set_policy(creds.access_key_id, [rds_emulator.db_user_arn(user)])
    change = set_auth_mode(
        admin,
        user,
        AuthMode.IAM,
        verify=True,
        session=creds.boto3_session(region=rds_emulator.region),
        region=rds_emulator.region,
    )
    assert change.verified and change.changed and "verified" in change.message
    assert get_auth_mode(admin, user) is AuthMode.IAM
    assert rds_emulator.auth_events()[-1].ok


def test_verified_switch_lets_an_admin_through(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    creds: FakeCredentials,
) -> None:
    """An admin whose IAM login works may go IAM with verify=True."""
    user = make_role(options="CREATEROLE")
    change = set_auth_mode(
        admin,
        user,
        AuthMode.IAM,
        verify=True,
        session=creds.boto3_session(region=rds_emulator.region),
        region=rds_emulator.region,
    )
    assert change.verified and get_auth_mode(admin, user) is AuthMode.IAM


def test_verify_refuses_an_open_transaction_before_changing_anything(
    rds_emulator: RdsIamEmulator, make_role: MakeRole, creds: FakeCredentials
) -> None:
    """verify=True in a caller's transaction raises ConfigurationError and grants nothing."""
    user = make_role()
    with rds_emulator.connect_admin(autocommit=False) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(ConfigurationError, match="transaction"):
            set_auth_mode(
                conn,
                user,
                AuthMode.IAM,
                verify=True,
                session=creds.boto3_session(region=rds_emulator.region),
            )
        conn.rollback()
        assert get_auth_mode(conn, user) is AuthMode.PASSWORD


# --- transactions -----------------------------------------------------------------------------


def test_switch_joins_the_callers_transaction(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """In an open transaction the switch is a savepoint: hidden until commit, undone by rollback."""
    user = make_role()
    with rds_emulator.connect_admin(autocommit=False) as conn:
        conn.execute("SELECT 1")
        assert set_auth_mode(conn, user, AuthMode.IAM).changed
        assert get_auth_mode(conn, user) is AuthMode.IAM
        assert get_auth_mode(admin, user) is AuthMode.PASSWORD
        conn.rollback()
        assert get_auth_mode(admin, user) is AuthMode.PASSWORD
        set_auth_mode(conn, user, AuthMode.IAM)
        conn.commit()
    assert get_auth_mode(admin, user) is AuthMode.IAM


def test_idle_non_autocommit_switch_is_committed(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """On an idle non-autocommit connection the switch commits by itself."""
    user = make_role()
    with rds_emulator.connect_admin(autocommit=False) as conn:
        set_auth_mode(conn, user, AuthMode.IAM)
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        assert get_auth_mode(admin, user) is AuthMode.IAM


def test_dry_run_changes_nothing(admin: psycopg.Connection[Any], make_role: MakeRole) -> None:
    """dry_run returns the statements and runs the checks, but grants nothing."""
    user = make_role()
    change = set_auth_mode(admin, user, AuthMode.IAM, dry_run=True)
    assert change.dry_run and change.changed and change.statements
    assert get_auth_mode(admin, user) is AuthMode.PASSWORD


# --- bulk -------------------------------------------------------------------------------------


def test_plan_sorts_roles_into_changes_unchanged_and_refusals(
    rds_emulator: RdsIamEmulator, admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """One plan covers grants, revokes, no-ops and each refusal reason; apply does the rest."""
    group = make_role(login=False, password=None, member_of=["rds_iam"])
    to_iam, to_password, same = make_role(), make_role(member_of=["rds_iam"]), make_role()
    inherited = make_role(member_of=[group])
    missing = f"am_missing_{uuid.uuid4().hex[:8]}"
    with round_trips(admin) as count:
        plan = plan_auth_modes(
            admin,
            {
                to_iam: "iam",
                to_password: AuthMode.PASSWORD,
                same: "password",
                inherited: "password",
                missing: "iam",
                rds_emulator.master_user: "iam",
            },
        )
    assert count == [1]
    assert plan.to_grant == (to_iam,) and plan.to_revoke == (to_password,)
    assert [u.user for u in plan.unchanged] == [same]
    reasons = {r.user: r.reason for r in plan.refused}
    assert reasons == {
        inherited: RefusalReason.INHERITED_MEMBERSHIP,
        missing: RefusalReason.USER_NOT_FOUND,
        rds_emulator.master_user: RefusalReason.LOCKOUT_GUARD,
    }
    assert len(plan.to_dicts()) == 6 and "REFUSED" in str(plan)
    result = plan.apply(admin)
    assert (result.granted, result.revoked, result.batches) == ((to_iam,), (to_password,), 1)
    assert get_auth_mode(admin, to_iam) is AuthMode.IAM
    assert get_auth_mode(admin, to_password) is AuthMode.PASSWORD
    assert get_auth_mode(admin, rds_emulator.master_user) is AuthMode.PASSWORD


def _recorder(seen: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda done, total: seen.append((done, total))


def test_each_batch_costs_one_round_trip(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """Apply costs BEGIN + COMMIT + exactly one round trip per batch, whatever the batch holds."""
    users = [make_role() for _ in range(6)]
    admin.execute(
        sql.SQL("GRANT rds_iam TO {}").format(
            sql.SQL(", ").join(sql.Identifier(u) for u in users[3:])
        )
    )
    targets = {u: AuthMode.IAM if i < 3 else AuthMode.PASSWORD for i, u in enumerate(users)}
    for batch_size, batches in [(6, 1), (4, 2), (2, 3), (1, 6)]:
        plan = plan_auth_modes(admin, targets)
        seen: list[tuple[int, int]] = []
        with round_trips(admin) as count:
            result = plan.apply(admin, batch_size=batch_size, progress=_recorder(seen))
        assert result.batches == batches
        assert count == [batches + 2]
        assert seen[-1] == (6, 6) and len(seen) == batches
        targets = {
            u: AuthMode.PASSWORD if m is AuthMode.IAM else AuthMode.IAM for u, m in targets.items()
        }


def test_stale_plan_is_refused_and_nothing_is_applied(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """A role changed since planning (granted elsewhere, made an admin) fails the whole plan."""
    first, granted_meanwhile, promoted = make_role(), make_role(), make_role()
    plan = plan_auth_modes(admin, dict.fromkeys([first, granted_meanwhile, promoted], "iam"))
    admin.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(granted_meanwhile)))
    admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(promoted)))
    with pytest.raises(StalePlanError) as info:
        plan.apply(admin)
    assert f"{granted_meanwhile} (already iam)" in str(info.value)
    assert f"{promoted} (now refused" in str(info.value)
    assert get_auth_mode(admin, first) is AuthMode.PASSWORD
    assert get_auth_mode(admin, promoted) is AuthMode.PASSWORD


@pytest.mark.parametrize("single_transaction", [True, False])
def test_failing_batch_rolls_back(
    admin: psycopg.Connection[Any], make_role: MakeRole, single_transaction: bool
) -> None:
    """A role dropped after planning fails its batch: all batches roll back, or only that one."""
    users = [make_role() for _ in range(6)]
    plan = plan_auth_modes(admin, dict.fromkeys(users, "iam"))
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(users[4])))
    with pytest.raises(StalePlanError, match="batch 3/3"):
        plan.apply(admin, batch_size=2, single_transaction=single_transaction)
    modes = [get_auth_mode(admin, u) for u in users[:4] + users[5:]]
    if single_transaction:
        assert modes == [AuthMode.PASSWORD] * 5
    else:
        assert modes == [AuthMode.IAM] * 4 + [AuthMode.PASSWORD]


def test_catalog_round_trips_leave_the_callers_planner_settings_alone(
    rds_emulator: RdsIamEmulator, make_role: MakeRole
) -> None:
    """JIT and sequential scans are off only inside each catalog round trip; the session and
    the transaction keep theirs."""
    user = make_role()
    with rds_emulator.connect_admin() as conn:
        conn.execute("SET jit = on")
        conn.execute("SET enable_seqscan = on")
        auth_status(conn, user)
        assert conn.execute("SHOW jit").fetchone() == ("on",)
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("on",)
    with rds_emulator.connect_admin(autocommit=False) as conn:
        conn.execute("SET LOCAL jit = on")
        conn.execute("SET LOCAL enable_seqscan = on")
        set_auth_mode(conn, user, AuthMode.IAM)
        plan_auth_modes(conn, {user: "password"}).apply(conn)
        assert conn.execute("SHOW jit").fetchone() == ("on",)
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("on",)
        conn.rollback()


# --- review fixes: snapshots, plans that switch groups and their members ---------------------


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE"])
def test_writes_refuse_a_snapshot_older_than_the_statement(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    level: str,
) -> None:
    """In a REPEATABLE READ/SERIALIZABLE transaction an admin made meanwhile cannot slip through."""
    group = make_role(login=False, password=None)
    with rds_emulator.connect_admin(autocommit=False) as conn:
        conn.execute(sql.SQL("SET TRANSACTION ISOLATION LEVEL {}").format(sql.SQL(level)))
        plan = plan_auth_modes(conn, {group: "iam"})
        assert plan.to_grant == (group,)
        make_role(member_of=[group], options="CREATEROLE")  # another session, after the snapshot
        with pytest.raises(ConfigurationError, match=f"{level}.*READ COMMITTED"):
            plan.apply(conn)
        with pytest.raises(ConfigurationError, match="READ COMMITTED"):
            set_auth_mode(conn, group, AuthMode.IAM)
        conn.rollback()
    assert get_auth_mode(admin, group) is AuthMode.PASSWORD
    with pytest.raises(StalePlanError, match="now refused"):
        plan.apply(admin)  # at READ COMMITTED the re-check sees the new admin member


def test_switch_rechecks_in_the_same_round_trip_as_the_grant(
    admin: psycopg.Connection[Any], make_role: MakeRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin added to a group between set_auth_mode's read and its GRANT is caught."""
    import rdsiamkit.roles.switch as switch

    group = make_role(login=False, password=None)
    real_read = switch.read_states

    def read_then_promote(conn: psycopg.Connection[Any], names: Sequence[str]) -> Any:
        states = real_read(conn, names)
        make_role(member_of=[group], options="CREATEROLE")
        return states

    monkeypatch.setattr(switch, "read_states", read_then_promote)
    with pytest.raises(LockoutRefusedError, match="CREATEROLE|admin"):
        set_auth_mode(admin, group, AuthMode.IAM)
    monkeypatch.undo()
    assert get_auth_mode(admin, group) is AuthMode.PASSWORD


@pytest.mark.parametrize("batch_size", [1, 500])
def test_plan_refuses_a_group_grant_that_undoes_a_members_revoke(
    rds_emulator: RdsIamEmulator,
    admin: psycopg.Connection[Any],
    make_role: MakeRole,
    batch_size: int,
) -> None:
    """{member: password, its group: iam} refuses the group: the member really ends on PASSWORD."""
    member = make_role(member_of=["rds_iam"])
    group = make_role(login=False, password=None)
    admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))
    plan = plan_auth_modes(admin, {member: "password", group: "iam"})
    (refusal,) = plan.refused
    assert (refusal.user, refusal.reason) == (group, RefusalReason.PLAN_CONFLICT)
    assert member in refusal.detail
    assert plan.to_revoke == (member,) and plan.to_grant == ()
    plan.apply(admin, batch_size=batch_size)
    assert get_auth_mode(admin, member) is AuthMode.PASSWORD
    assert get_auth_mode(admin, group) is AuthMode.PASSWORD
    assert password_login(rds_emulator, member) == member


@pytest.mark.parametrize("batch_size", [1, 500])
def test_plan_granting_a_group_and_its_member_applies_in_any_batches(
    admin: psycopg.Connection[Any], make_role: MakeRole, batch_size: int
) -> None:
    """A member switched by its group's GRANT in an earlier batch is not mistaken for stale."""
    group = make_role(login=False, password=None)
    member = make_role(member_of=[group])
    plan = plan_auth_modes(admin, {group: "iam", member: "iam"})
    assert plan.to_grant == (group, member)
    result = plan.apply(admin, batch_size=batch_size)
    assert result.granted == (group, member)
    status = auth_status(admin, member)
    assert status.mode is AuthMode.IAM and status.direct


def test_single_transaction_plan_reads_back_every_role_it_names(
    admin: psycopg.Connection[Any], make_role: MakeRole
) -> None:
    """An unchanged PASSWORD role that needs IAM by apply time fails the plan, all rolled back."""
    group = make_role(login=False, password=None)
    keep = make_role(member_of=[group])
    switch = make_role()
    plan = plan_auth_modes(admin, {keep: "password", switch: "iam"})
    assert [u.user for u in plan.unchanged] == [keep] and plan.to_grant == (switch,)
    admin.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(group)))
    with pytest.raises(AuthModeError, match=f"{keep} is not password at the end of the plan"):
        plan.apply(admin)
    assert get_auth_mode(admin, switch) is AuthMode.PASSWORD
