"""Auth modes without a server: parsing, name checks, the refusal rule book, rendering."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdsiamkit._authmode_state import RoleState, check_name, parse_modes, parse_states
from rdsiamkit.authmode import (
    _REDACTED,
    AuthMode,
    AuthModePlan,
    AuthStatus,
    PlannedSwitch,
    Refusal,
    RefusalReason,
    UnchangedRole,
    _check_can_verify,
    _decide,
    _iam_login_params,
    _not_switched,
    _password_statement,
    _switch_statement,
    set_auth_mode,
)
from rdsiamkit.errors import ConfigurationError, RdsIamRoleMissingError
from rdsiamkit.explore import UserInfo


def role(name: str = "app", **changes: Any) -> RoleState:
    """A plain password user that can log in; ``changes`` override fields."""
    base = RoleState(
        name=name,
        oid=16400,
        is_iam=False,
        direct_grantors=(),
        paths=(),
        holders=(),
        can_login=True,
        is_superuser=False,
        can_create_role=False,
        in_rds_superuser=False,
        in_rds_ad=False,
        is_session_user=False,
        member_count=0,
        guarded_members=(),
        member_of_requested=(),
        connection_limit=None,
        valid_until=None,
    )
    return attrs.evolve(base, **changes)


def iam_role(name: str = "app", *vias: str, direct: bool = True) -> RoleState:
    """A role that reaches rds_iam directly and/or through ``vias`` (one hop each)."""
    paths = [(name, "rds_iam")] if direct else []
    paths += [(name, via, "rds_iam") for via in vias]
    return role(
        name,
        is_iam=True,
        direct_grantors=("postgres",) if direct else (),
        paths=tuple(paths),
        holders=vias,
    )


# --- AuthMode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("iam", AuthMode.IAM),
        ("IAM", AuthMode.IAM),
        (" Iam ", AuthMode.IAM),
        ("password", AuthMode.PASSWORD),
        ("PASSWORD", AuthMode.PASSWORD),
        (AuthMode.IAM, AuthMode.IAM),
    ],
)
def test_auth_mode_parses_case_insensitively(text: str, mode: AuthMode) -> None:
    """Names parse regardless of case and surrounding blanks, both via parse() and the enum."""
    assert AuthMode.parse(text) is mode
    assert AuthMode(text) is mode


@pytest.mark.parametrize("bad", ["", "kerberos", "iam2", 1, None])
def test_unknown_auth_mode_is_a_configuration_error(bad: Any) -> None:
    """Anything else raises ConfigurationError (a ValueError) naming the valid choices."""
    with pytest.raises(ConfigurationError, match="expected one of 'password', 'iam'"):
        AuthMode.parse(bad)


def test_auth_mode_prints_its_value() -> None:
    """str() and the str value are the lower-case names, usable in JSON and CLIs."""
    assert str(AuthMode.IAM) == "iam"
    assert AuthMode.PASSWORD == "password"


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", 'we"ird', "sp ace", "semi;colon", "back\\slash", "ünïcødé", "x" * 63, "é" * 31 + "x"],
)
def test_names_postgres_keeps_unchanged_are_accepted(name: str) -> None:
    """Any name up to 63 UTF-8 bytes without NUL passes, whatever its characters."""
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("a\x00b", "NUL"),
        ("x" * 64, "64 bytes"),
        ("é" * 32, "64 bytes"),
        (b"app", "must be a str"),
    ],
)
def test_names_postgres_would_mangle_are_refused(name: Any, message: str) -> None:
    """Empty, NUL, non-str and names over 63 bytes (silently truncated by PG) are refused."""
    with pytest.raises(ConfigurationError, match=message):
        check_name(name)


# --- the rule book ----------------------------------------------------------------------------


def test_missing_role_is_refused() -> None:
    """A name with no role is refused as USER_NOT_FOUND, whatever the target."""
    for target in AuthMode:
        decision = _decide(role(oid=None), target, verify=True)
        assert decision.reason is RefusalReason.USER_NOT_FOUND


def test_rds_iam_itself_is_not_a_user_to_switch() -> None:
    """Switching the marker role rds_iam is refused as RESERVED_ROLE."""
    state = role("rds_iam", is_iam=True, paths=(("rds_iam",),))
    assert _decide(state, AuthMode.PASSWORD, verify=False).reason is RefusalReason.RESERVED_ROLE


def test_plain_switches_grant_and_revoke() -> None:
    """A password user is granted, a directly granted IAM user is revoked."""
    assert _decide(role(), AuthMode.IAM, verify=False).switch
    assert _decide(iam_role(), AuthMode.PASSWORD, verify=False).switch


def test_switch_to_current_mode_is_a_no_op() -> None:
    """Already in the wanted mode (also via inheritance for IAM): no statement, no refusal."""
    for state, target in [
        (role(), AuthMode.PASSWORD),
        (iam_role(), AuthMode.IAM),
        (iam_role("app", "team", direct=False), AuthMode.IAM),
        (attrs.evolve(iam_role(), can_create_role=True), AuthMode.IAM),
    ]:
        decision = _decide(state, target, verify=False)
        assert (decision.switch, decision.reason) == (False, None)


@pytest.mark.parametrize("direct", [True, False])
def test_inherited_membership_blocks_password(direct: bool) -> None:
    """IAM through a group (with or without a direct grant) is refused, naming both fixes."""
    state = iam_role("app", "team", direct=direct)
    decision = _decide(state, AuthMode.PASSWORD, verify=True)
    assert decision.reason is RefusalReason.INHERITED_MEMBERSHIP
    assert 'REVOKE "team" FROM "app"' in decision.detail
    assert 'REVOKE "rds_iam" FROM "team"' in decision.detail
    assert ("direct grant" in decision.detail) is direct


def test_inherited_detail_names_the_role_holding_rds_iam_on_deep_paths() -> None:
    """For app -> sub -> dept -> rds_iam the fixes are REVOKE sub FROM app or rds_iam FROM dept."""
    state = role(is_iam=True, paths=(("app", "sub", "dept", "rds_iam"),), holders=("dept",))
    detail = _decide(state, AuthMode.PASSWORD, verify=False).detail
    assert 'REVOKE "sub" FROM "app"' in detail
    assert 'REVOKE "rds_iam" FROM "dept"' in detail
    assert "app -> sub -> dept -> rds_iam" in detail


def test_status_text_escapes_unprintable_role_names() -> None:
    """A newline or escape in a role or group name cannot forge lines of str(status), and the
    refusal's prose names the role escaped (its SQL keeps the real, quoted name)."""
    state = role(
        "ev\nil", is_iam=True, paths=(("ev\nil", "gr\x1bp", "rds_iam"),), holders=("gr\x1bp",)
    )
    text = str(AuthStatus._from_state(state))
    assert "ev\nil" not in text and "\x1b" not in text
    assert text.startswith("'ev\\nil': IAM (through 'gr\\x1bp')")
    assert "  path: 'ev\\nil' -> 'gr\\x1bp' -> rds_iam" in text.splitlines()
    detail = _decide(state, AuthMode.PASSWORD, verify=False).detail
    assert detail.startswith("'ev\\nil' needs IAM through 'gr\\x1bp' (shortest paths: ")
    assert 'REVOKE U&"gr\\001Bp" FROM U&"ev\\000Ail"' in detail  # real names, printable


def test_kerberos_refusal_escapes_the_name_in_prose_only() -> None:
    """The Kerberos conflict names an odd role escaped, and its REVOKE the real role."""
    detail = _decide(role("ev\nil", in_rds_ad=True), AuthMode.IAM, verify=True).detail
    assert detail.startswith("'ev\\nil' is a member of rds_ad")
    assert 'REVOKE rds_ad FROM U&"ev\\000Ail"' in detail


def test_holders_without_a_path_still_count_as_inherited() -> None:
    """In a cycle the shown paths can miss the way through a holder: holders decide."""
    state = role(is_iam=True, direct_grantors=("postgres",), paths=(("app", "rds_iam"),))
    state = attrs.evolve(state, holders=("hold",))
    decision = _decide(state, AuthMode.PASSWORD, verify=False, include_members=True)
    assert decision.reason is RefusalReason.INHERITED_MEMBERSHIP
    assert 'REVOKE "rds_iam" FROM "hold"' in decision.detail
    assert "through hold" in decision.detail


def test_inherited_detail_cuts_every_path_at_once() -> None:
    """Two groups and two holders: one REVOKE names both groups, the other both holders."""
    state = role(
        is_iam=True,
        paths=(("app", "a", "x", "rds_iam"), ("app", "b", "y", "rds_iam")),
        holders=("x", "y", "z"),
    )
    detail = _decide(state, AuthMode.PASSWORD, verify=False).detail
    assert 'REVOKE "a", "b" FROM "app"' in detail
    assert 'REVOKE "rds_iam" FROM "x", "y", "z"' in detail


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"is_session_user": True}, "this session's user"),
        ({"is_superuser": True}, "a superuser"),
        ({"can_create_role": True}, "CREATEROLE"),
        ({"in_rds_superuser": True}, "member of rds_superuser"),
    ],
)
def test_lockout_guard_needs_verify(changes: dict[str, bool], why: str) -> None:
    """Admins and the session's user go IAM only with verify=True."""
    state = role(**changes)
    refused = _decide(state, AuthMode.IAM, verify=False)
    assert refused.reason is RefusalReason.LOCKOUT_GUARD
    assert why in refused.detail and "verify=True" in refused.detail
    assert _decide(state, AuthMode.IAM, verify=True).switch


def test_group_with_admin_members_is_refused_even_with_verify() -> None:
    """Granting to a group whose members include admins is refused: verify cannot test them."""
    state = role("staff", can_login=False, member_count=3, guarded_members=("postgres",))
    decision = _decide(state, AuthMode.IAM, verify=True)
    assert decision.reason is RefusalReason.LOCKOUT_GUARD
    assert "postgres" in decision.detail


def test_kerberos_user_is_not_switched_to_iam() -> None:
    """A member of rds_ad is refused as CONFLICT, with the REVOKE rds_ad fix."""
    decision = _decide(role(in_rds_ad=True), AuthMode.IAM, verify=True)
    assert decision.reason is RefusalReason.CONFLICT
    assert 'REVOKE rds_ad FROM "app"' in decision.detail


@pytest.mark.parametrize(
    "flags",
    [{"is_session_user": True}, {"can_create_role": True}, {"is_superuser": True}],
)
def test_password_switch_of_admin_needs_a_known_password(flags: dict[str, bool]) -> None:
    """An admin or the session's user goes back to PASSWORD only with a new or known password."""
    state = attrs.evolve(iam_role(), **flags)
    refused = _decide(state, AuthMode.PASSWORD, verify=False)
    assert refused.reason is RefusalReason.LOCKOUT_GUARD and not refused.switch
    assert "new_password=" in refused.detail and "has_password=True" in refused.detail
    assert _decide(state, AuthMode.PASSWORD, verify=False, password_ok=True).switch


def test_password_switch_of_plain_user_is_not_guarded() -> None:
    """A role that is neither an admin nor the session's user switches to PASSWORD freely."""
    assert _decide(iam_role(), AuthMode.PASSWORD, verify=False).switch


@given(
    is_iam=st.booleans(),
    direct=st.booleans(),
    inherited=st.booleans(),
    guarded=st.booleans(),
    kerberos=st.booleans(),
    verify=st.booleans(),
    target=st.sampled_from(AuthMode),
)
def test_a_decision_never_asks_for_a_switch_that_could_not_work(
    is_iam: bool,
    direct: bool,
    inherited: bool,
    guarded: bool,
    kerberos: bool,
    verify: bool,
    target: AuthMode,
) -> None:
    """REVOKE only without inherited paths, GRANT only for non-IAM, unguarded (or verified)."""
    paths = [("app", "rds_iam")] if is_iam and direct else []
    paths += [("app", "team", "rds_iam")] if is_iam and inherited else []
    state = role(
        is_iam=bool(paths),
        direct_grantors=("postgres",) if is_iam and direct else (),
        paths=tuple(paths),
        holders=("team",) if is_iam and inherited else (),
        can_create_role=guarded,
        in_rds_ad=kerberos,
    )
    decision = _decide(state, target, verify=verify)
    assert not (decision.switch and decision.reason)
    if decision.switch and target is AuthMode.PASSWORD:
        assert state.is_iam and not state.inherited_paths
    if decision.switch and target is AuthMode.IAM:
        assert not state.is_iam and not kerberos and (verify or not guarded)
    if not decision.switch and decision.reason is None:
        assert state.is_iam == (target is AuthMode.IAM)


# --- SQL text ---------------------------------------------------------------------------------


def test_switch_statements_quote_every_name() -> None:
    """GRANT/REVOKE lists are Identifier-quoted, so hostile names stay names."""
    grant = _switch_statement(AuthMode.IAM, ['a"; DROP ROLE x; --', "b c"]).as_string(None)
    assert grant == 'GRANT "rds_iam" TO "a""; DROP ROLE x; --", "b c"'
    revoke = _switch_statement(AuthMode.PASSWORD, ["back\\slash"]).as_string(None)
    assert revoke == 'REVOKE "rds_iam" FROM "back\\slash"'


def test_reported_password_statement_is_redacted_and_not_runnable() -> None:
    """The shown ALTER ROLE carries a comment, not a literal: pasting it cannot set a password."""
    text = _password_statement("app", _REDACTED).as_string(None)
    assert text == 'ALTER ROLE "app" PASSWORD /* scram-sha-256 verifier, redacted */'
    assert "'" not in text


def test_post_check_message_explains_pg16_grantor_rule() -> None:
    """A REVOKE that left the membership names the PG16 grantor rule only on PostgreSQL 16+."""
    message = _not_switched(iam_role(), AuthMode.PASSWORD, 160004)
    assert "granted by postgres" in message and "PostgreSQL 16+" in message
    older = _not_switched(iam_role(), AuthMode.PASSWORD, 150018)
    assert "PostgreSQL 16+" not in older and "auth_status()" in older


# --- parsing rows -----------------------------------------------------------------------------


def test_missing_rds_iam_role_raises() -> None:
    """A server without rds_iam (the first column false) raises RdsIamRoleMissingError."""
    with pytest.raises(RdsIamRoleMissingError, match="not Amazon RDS"):
        parse_states([(False, *([None] * 15))])
    with pytest.raises(RdsIamRoleMissingError):
        parse_modes([(False, "app", 1, False)])


def test_padding_row_of_an_empty_request_is_dropped() -> None:
    """The all-NULL row returned for an empty name list yields no state."""
    assert parse_modes([(True, None, None, None)]) == []


# --- rendering --------------------------------------------------------------------------------


def test_auth_status_str_shows_mode_paths_and_flags() -> None:
    """str(AuthStatus) names the mode, every path, admin flags and the password expiry."""
    until = dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc)
    state = attrs.evolve(
        iam_role("app", "team"), in_rds_ad=True, valid_until=until, connection_limit=5
    )
    status = AuthStatus._from_state(state)
    text = str(status)
    assert text.startswith("app: IAM (granted rds_iam directly and through team)")
    assert "path: app -> rds_iam" in text and "path: app -> team -> rds_iam" in text
    assert "connection limit: 5" in text and "2030-01-02" in text
    assert status.conflicts and "rds_ad" in status.conflicts[0]
    assert str(AuthStatus._from_state(role())).startswith("app: PASSWORD")


def make_plan() -> AuthModePlan:
    return AuthModePlan(
        changes=(
            PlannedSwitch("a", AuthMode.PASSWORD, AuthMode.IAM, 1),
            PlannedSwitch("b", AuthMode.IAM, AuthMode.PASSWORD, 2),
        ),
        unchanged=(UnchangedRole("c", AuthMode.IAM),),
        refused=(Refusal("d", AuthMode.IAM, RefusalReason.USER_NOT_FOUND, "role 'd' is gone"),),
    )


def test_plan_lists_grants_revokes_and_renders() -> None:
    """A plan splits grants from revokes and its str() is a readable dry run."""
    plan = make_plan()
    assert plan.to_grant == ("a",) and plan.to_revoke == ("b",)
    text = str(plan)
    assert (
        "1 to IAM (GRANT rds_iam), 1 to PASSWORD (REVOKE rds_iam), 1 unchanged, 1 refused" in text
    )
    assert "GRANT   a: password -> iam" in text
    assert "REFUSED d -> iam (user_not_found): role 'd' is gone" in text


def test_plan_to_dicts_has_one_row_per_role() -> None:
    """to_dicts() gives plain str values, one row per role, with refusal reasons."""
    rows = make_plan().to_dicts()
    assert [r["action"] for r in rows] == ["grant", "revoke", "none", "refused"]
    assert rows[3]["reason"] == "user_not_found"
    assert all(isinstance(v, (str, type(None))) for r in rows for v in r.values())


def test_plan_repr_hides_oids() -> None:
    """A planned switch's repr shows the user and modes, not catalog internals."""
    assert "oid" not in repr(make_plan().changes[0])


def test_apply_refuses_a_bad_batch_size_before_touching_the_connection() -> None:
    """batch_size < 1 is a ConfigurationError raised before any I/O."""
    with pytest.raises(ConfigurationError, match="batch_size"):
        make_plan().apply(None, batch_size=0)  # type: ignore[arg-type]


# --- checks before any I/O --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "iam", "new_password": "pw"}, "only applies when switching to PASSWORD"),
        ({"mode": "password", "new_password": ""}, "non-empty"),
        ({"mode": "password", "new_password": "a\x00b"}, "NUL"),
        ({"mode": "password", "verify": True}, "switches to IAM only"),
        ({"mode": "sideways"}, "unknown auth mode"),
    ],
)
def test_set_auth_mode_rejects_bad_options_without_io(kwargs: dict[str, Any], message: str) -> None:
    """Contradictory or malformed options raise ConfigurationError before the connection is used."""
    mode = kwargs.pop("mode")
    with pytest.raises(ConfigurationError, match=message) as info:
        set_auth_mode(None, "app", mode, **kwargs)  # type: ignore[arg-type]
    assert "pw" not in str(info.value).replace("password", "")


class FakeInfo:
    """Just enough of psycopg's ConnectionInfo for the verify helpers."""

    def __init__(self, status: psycopg.pq.TransactionStatus, host: str, **params: str) -> None:
        self.transaction_status = status
        self.host = host
        self.port = 5432
        self.dbname = "postgres"
        self._params = {"host": host, **params}

    def get_parameters(self) -> dict[str, str]:
        return self._params


class FakeConn:
    def __init__(self, info: FakeInfo) -> None:
        self.info = info


IDLE = psycopg.pq.TransactionStatus.IDLE
HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"


def test_verify_needs_a_connection_outside_a_transaction() -> None:
    """verify=True must commit, so an open transaction is refused before anything changes."""
    conn = FakeConn(FakeInfo(psycopg.pq.TransactionStatus.INTRANS, HOST))
    with pytest.raises(ConfigurationError, match="INTRANS"):
        _check_can_verify(conn)  # type: ignore[arg-type]


def test_verify_needs_a_tcp_endpoint() -> None:
    """A Unix-socket admin connection cannot tell where an IAM login should go."""
    with pytest.raises(ConfigurationError, match="Unix socket"):
        _check_can_verify(FakeConn(FakeInfo(IDLE, "/var/run/postgresql")))  # type: ignore[arg-type]


def test_iam_login_copies_endpoint_and_tls_settings() -> None:
    """The IAM login reuses host, hostaddr, port, dbname, sslrootcert and verify-full, bounded."""
    info = FakeInfo(IDLE, HOST, hostaddr="127.0.0.1", sslrootcert="/ca.pem", sslmode="verify-full")
    params = _iam_login_params(FakeConn(info), "app")  # type: ignore[arg-type]
    assert params == {
        "host": HOST,
        "port": 5432,
        "dbname": "postgres",
        "user": "app",
        "hostaddr": "127.0.0.1",
        "sslrootcert": "/ca.pem",
        "sslmode": "verify-full",
        "connect_timeout": "10",
    }


@pytest.mark.parametrize("sslmode", ["require", "prefer", "verify-ca"])
def test_iam_login_never_inherits_a_weaker_sslmode(sslmode: str) -> None:
    """A weaker sslmode on the admin connection is dropped: the token login stays verify-full."""
    info = FakeInfo(IDLE, HOST, sslmode=sslmode)
    assert "sslmode" not in _iam_login_params(FakeConn(info), "app")  # type: ignore[arg-type]


# --- layers: options, enum alias, one model of a role ------------------------------------------


def test_refusal_reason_kerberos_is_the_name_conflict_an_alias() -> None:
    """KERBEROS names the Kerberos refusal; CONFLICT is the same member, value still 'conflict'."""
    assert RefusalReason["CONFLICT"] is RefusalReason.KERBEROS
    assert RefusalReason["CONFLICT"].name == "KERBEROS"
    assert RefusalReason("conflict") is RefusalReason.KERBEROS
    assert RefusalReason.KERBEROS.value == "conflict"
    assert [r.value for r in RefusalReason].count("conflict") == 1


def test_verification_options_are_checked_before_anything_is_read() -> None:
    """A bad verification option is refused before any query (FakeConn cannot run one)."""
    conn = FakeConn(FakeInfo(IDLE, HOST))
    with pytest.raises(ConfigurationError, match="token_port"):
        set_auth_mode(conn, "app", AuthMode.IAM, verify=True, token_port=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="session= or profile="):
        set_auth_mode(
            conn,  # type: ignore[arg-type]
            "app",
            AuthMode.IAM,
            verify=True,
            session=object(),  # type: ignore[arg-type]
            profile="dev",
        )


def test_unknown_keyword_is_a_type_error_even_without_verify() -> None:
    """A misspelt option is not swallowed by **options: it fails like any unknown keyword."""
    conn = FakeConn(FakeInfo(IDLE, HOST))
    with pytest.raises(TypeError, match="'regoin'"):
        set_auth_mode(conn, "app", AuthMode.IAM, regoin="us-east-1")  # type: ignore[arg-type,call-arg]


def test_set_auth_mode_signature_shows_the_kits_options() -> None:
    """help(set_auth_mode) lists the verification login's options by name, keyword-only."""
    params = inspect.signature(set_auth_mode).parameters
    for name in ("session", "region", "token_provider", "token_host", "token_port", "profile"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is None
    assert params["verify"].default is False


@pytest.mark.parametrize(
    "state",
    [
        role(),
        iam_role("app", "team"),
        role("boss", is_superuser=True, connection_limit=3),
        role("ops", in_rds_superuser=True, is_iam=True, in_rds_ad=True, can_login=False),
    ],
)
def test_auth_status_and_user_info_agree_on_every_shared_field(state: RoleState) -> None:
    """AuthStatus and UserInfo, built from one catalog row, never disagree on a shared field."""
    status, info = AuthStatus._from_state(state), UserInfo._from_state(state)
    shared = ("mode", "direct", "paths", "can_login", "is_superuser", "connection_limit")
    assert [getattr(status, f) for f in shared] == [getattr(info, f) for f in shared]
    assert (status.user, status.is_admin, status.via) == (info.name, info.is_admin, info.via)
    assert status.valid_until == info.valid_until
