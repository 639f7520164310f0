"""Read and switch database users between PASSWORD and IAM login, safely.

On RDS / Aurora PostgreSQL a role that reaches ``rds_iam`` through
``pg_auth_members`` (directly or through nested roles) must log in with an IAM
token; ``REVOKE rds_iam`` gives it its password back.  This module reads that
exactly as pg_hba's ``+rds_iam`` does (superusers are *not* members unless
granted), and switches it with guard rails:

* a membership inherited through another role cannot be revoked from the user,
  so the switch is refused with the statement that would work;
* switching an admin (superuser, CREATEROLE, ``rds_superuser`` member) or the
  session's own user to IAM is refused unless ``verify=True``, which tests an
  IAM login and rolls the grant back if it fails;
* thousands of users switch through :func:`plan_auth_modes` and
  :meth:`AuthModePlan.apply` in batches, each batch one round trip, with the
  plan re-checked in that same round trip.

Transactions: reads run on ``conn`` as-is, like any psycopg query (in a
non-autocommit connection they join or start its transaction).  Writes run in
``conn.transaction()``: committed at once when ``conn`` is in autocommit mode or
idle, or a savepoint inside the caller's open transaction, which the caller
then commits or rolls back.  Writes need READ COMMITTED (PostgreSQL's default):
each re-checks the catalogs right before its GRANT / REVOKE, which a REPEATABLE
READ or SERIALIZABLE snapshot would show as they were, so those are refused with
:class:`~rdsiamkit.ConfigurationError`.  ``verify=True`` must commit before it
can test a login, so it needs ``conn`` outside a transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
import psycopg
from psycopg import sql

from rdsiamkit._authmode_state import (
    IAM_ROLE,
    KERBEROS_ROLE,
    RoleState,
    check_name,
    modes_query,
    names_literal,
    parse_modes,
    parse_states,
    printable,
    read_modes,
    read_states,
    round_trip,
    state_query,
)
from rdsiamkit._secret import Secret
from rdsiamkit._watchdog import RoundTripWatchdog
from rdsiamkit.errors import (
    AuthModeError,
    ConfigurationError,
    InheritedMembershipError,
    LockoutRefusedError,
    RdsIamError,
    StalePlanError,
    SwitchRefusedError,
    UserNotFoundError,
    VerificationFailedError,
)

if TYPE_CHECKING:
    import boto3

    from rdsiamkit.tokens import TokenProvider

__all__ = [
    "ApplyResult",
    "AuthMode",
    "AuthModeChange",
    "AuthModePlan",
    "AuthStatus",
    "PlannedSwitch",
    "Refusal",
    "RefusalReason",
    "StalePlanError",
    "UnchangedRole",
    "auth_status",
    "get_auth_mode",
    "plan_auth_modes",
    "set_auth_mode",
]

log = logging.getLogger("rdsiamkit.authmode")

_R = TypeVar("_R")

DEFAULT_BATCH_SIZE = 500
#: Seconds one round trip of :meth:`AuthModePlan.apply` may wait for the server.
DEFAULT_APPLY_TIMEOUT = 60.0
#: Seconds the IAM login of ``verify=True`` may take at most (less if ``conn`` says so).
VERIFY_CONNECT_TIMEOUT = 10
# What the returned statements show instead of a password verifier.  A comment,
# so that pasting the statement fails instead of setting a known password.
_REDACTED = sql.SQL("/* scram-sha-256 verifier, redacted */")


class AuthMode(str, enum.Enum):
    """How a database user logs in: with its password, or with an IAM token."""

    PASSWORD = "password"  # noqa: S105  (a mode's name, not a secret)
    IAM = "iam"

    @classmethod
    def _missing_(cls, value: object) -> AuthMode:
        if isinstance(value, str):
            for mode in cls:
                if mode.value == value.strip().lower():
                    return mode
        choices = ", ".join(repr(m.value) for m in cls)
        raise ConfigurationError(f"unknown auth mode {value!r}: expected one of {choices}")

    @classmethod
    def parse(cls, value: AuthMode | str) -> AuthMode:
        """``AuthMode`` from itself or a case-insensitive name (``"IAM"``, ``"password"``)."""
        return cls(value)

    def __str__(self) -> str:
        return self.value


class RefusalReason(enum.Enum):
    """Why a switch was refused; each maps to one exception of :mod:`rdsiamkit.errors`."""

    #: No such role (:class:`~rdsiamkit.UserNotFoundError`).
    USER_NOT_FOUND = "user_not_found"
    #: The name is ``rds_iam`` itself (:class:`~rdsiamkit.ConfigurationError`).
    RESERVED_ROLE = "reserved_role"
    #: IAM comes through another role (:class:`~rdsiamkit.InheritedMembershipError`).
    INHERITED_MEMBERSHIP = "inherited_membership"
    #: An admin or the session's user could be locked out (:class:`~rdsiamkit.LockoutRefusedError`).
    LOCKOUT_GUARD = "lockout_guard"
    #: Also a Kerberos (``rds_ad``) user (:class:`~rdsiamkit.SwitchRefusedError`).
    CONFLICT = "conflict"
    #: Plans only: a GRANT to this group would switch members the plan wants on PASSWORD.
    PLAN_CONFLICT = "plan_conflict"


@attrs.frozen
class AuthStatus:
    """Everything that decides how ``user`` logs in, read in one round trip."""

    user: str
    mode: AuthMode
    #: Granted ``rds_iam`` itself (not only through other roles).
    direct: bool
    #: How ``user`` reaches ``rds_iam``: ``(user, "rds_iam")`` for a direct grant, and one
    #: shortest ``(user, group, ..., "rds_iam")`` through each group granted to ``user`` that
    #: leads there; shortest first.  (Every route would be exponential in nested groups.)
    paths: tuple[tuple[str, ...], ...]
    #: The other roles ``user`` reaches that are granted ``rds_iam`` directly, on any route.
    holders: tuple[str, ...]
    can_login: bool
    is_superuser: bool
    #: Superuser, CREATEROLE, or member of ``rds_superuser``: a lockout would hurt.
    is_admin: bool
    #: The role this session is logged in as (``session_user``) or acts as.
    is_session_user: bool
    #: Other settings that fight with the auth mode, each a sentence.
    conflicts: tuple[str, ...]
    #: ``None``: unlimited.
    connection_limit: int | None
    #: When the *password* expires (IAM logins ignore it); ``None``: never.
    valid_until: dt.datetime | None

    @classmethod
    def _from_state(cls, state: RoleState) -> AuthStatus:
        conflicts: tuple[str, ...] = ()
        if state.is_iam and state.in_rds_ad:
            conflicts = (_kerberos_conflict(state.name),)
        return cls(
            user=state.name,
            mode=AuthMode.IAM if state.is_iam else AuthMode.PASSWORD,
            direct=state.direct,
            paths=state.paths,
            holders=state.holders,
            can_login=state.can_login,
            is_superuser=state.is_superuser,
            is_admin=state.is_admin,
            is_session_user=state.is_session_user,
            conflicts=conflicts,
            connection_limit=state.connection_limit,
            valid_until=state.valid_until,
        )

    def __str__(self) -> str:
        if self.mode is AuthMode.IAM:
            how = []
            if self.direct:
                how.append("granted rds_iam directly")
            vias = sorted({p[1] for p in self.paths if len(p) > 2})
            if vias:
                how.append("through " + ", ".join(map(printable, vias)))
            head = f"{printable(self.user)}: IAM ({' and '.join(how) or 'is rds_iam'})"
        else:
            head = f"{printable(self.user)}: PASSWORD (not a member of rds_iam)"
        lines = [head]
        lines.extend("  path: " + " -> ".join(map(printable, p)) for p in self.paths)
        flags = [
            "can log in" if self.can_login else "NOLOGIN",
            f"superuser: {_yes(self.is_superuser)}",
            f"admin: {_yes(self.is_admin)}",
        ]
        if self.is_session_user:
            flags.append("this session's user")
        lines.append("  " + ", ".join(flags))
        limit = "unlimited" if self.connection_limit is None else str(self.connection_limit)
        until = "never" if self.valid_until is None else self.valid_until.isoformat()
        lines.append(f"  connection limit: {limit}, password valid until: {until}")
        lines.extend(f"  conflict: {c}" for c in self.conflicts)
        return "\n".join(lines)


@attrs.frozen
class AuthModeChange:
    """What :func:`set_auth_mode` did (or, with ``dry_run``, would do)."""

    user: str
    before: AuthMode
    after: AuthMode
    #: The auth mode changed (with ``dry_run``: would change).
    changed: bool
    #: An IAM login as ``user`` was tested and worked.
    verified: bool
    #: A new password was set (with ``dry_run``: would be set).
    password_set: bool
    dry_run: bool
    #: The SQL sent (or to send); any password verifier is redacted.
    statements: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


@attrs.frozen
class PlannedSwitch:
    """One role the plan switches: ``GRANT`` to go IAM, ``REVOKE`` to go PASSWORD."""

    user: str
    before: AuthMode
    after: AuthMode
    #: The role's oid when planned: a role dropped and re-created makes the plan stale.
    oid: int = attrs.field(repr=False)
    #: Groups of this plan that it belongs to: their GRANT switches it to IAM as well.
    also_through: tuple[str, ...] = attrs.field(default=(), repr=False)

    @property
    def statement(self) -> str:
        return _verb(self.after)


@attrs.frozen
class UnchangedRole:
    """A role already in the wanted mode."""

    user: str
    mode: AuthMode


@attrs.frozen
class Refusal:
    """A role the plan will not switch, and why, with what to do instead."""

    user: str
    wanted: AuthMode
    reason: RefusalReason
    detail: str


@attrs.frozen
class ApplyResult:
    """What :meth:`AuthModePlan.apply` changed."""

    granted: tuple[str, ...]
    revoked: tuple[str, ...]
    batches: int
    elapsed: float

    def __str__(self) -> str:
        return (
            f"granted rds_iam to {len(self.granted)}, revoked it from {len(self.revoked)} "
            f"in {self.batches} batch(es), {self.elapsed:.3f} s"
        )


@attrs.frozen
class AuthModePlan:
    """What switching many roles would do; read it (``str()``), then :meth:`apply` it."""

    changes: tuple[PlannedSwitch, ...]
    unchanged: tuple[UnchangedRole, ...]
    refused: tuple[Refusal, ...]

    @property
    def to_grant(self) -> tuple[str, ...]:
        """Roles to switch to IAM."""
        return tuple(c.user for c in self.changes if c.after is AuthMode.IAM)

    @property
    def to_revoke(self) -> tuple[str, ...]:
        """Roles to switch to PASSWORD."""
        return tuple(c.user for c in self.changes if c.after is AuthMode.PASSWORD)

    def __str__(self) -> str:
        lines = [
            f"auth mode plan: {len(self.to_grant)} to IAM (GRANT rds_iam), "
            f"{len(self.to_revoke)} to PASSWORD (REVOKE rds_iam), "
            f"{len(self.unchanged)} unchanged, {len(self.refused)} refused"
        ]
        lines.extend(
            f"  {c.statement:<7} {printable(c.user)}: {c.before} -> {c.after}" for c in self.changes
        )
        lines.extend(f"  same    {printable(u.user)}: {u.mode}" for u in self.unchanged)
        lines.extend(
            f"  REFUSED {printable(r.user)} -> {r.wanted} ({r.reason.value}): {r.detail}"
            for r in self.refused
        )
        return "\n".join(lines)

    def to_dicts(self) -> list[dict[str, str | None]]:
        """One plain dict per role, for JSON or a table."""
        rows: list[dict[str, str | None]] = [
            {
                "user": c.user,
                "action": c.statement.lower(),
                "before": c.before.value,
                "after": c.after.value,
                "reason": None,
                "detail": None,
            }
            for c in self.changes
        ]
        rows.extend(
            {
                "user": u.user,
                "action": "none",
                "before": u.mode.value,
                "after": u.mode.value,
                "reason": None,
                "detail": None,
            }
            for u in self.unchanged
        )
        rows.extend(
            {
                "user": r.user,
                "action": "refused",
                "before": None,
                "after": r.wanted.value,
                "reason": r.reason.value,
                "detail": r.detail,
            }
            for r in self.refused
        )
        return rows

    def _expected(self) -> dict[str, AuthMode]:
        """Every role the plan does not refuse, with the mode it must end in."""
        expected = {u.user: u.mode for u in self.unchanged}
        expected.update((c.user, c.after) for c in self.changes)
        return expected

    def apply(
        self,
        conn: psycopg.Connection[_R],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int, int], object] | None = None,
        single_transaction: bool = True,
        timeout: float | None = DEFAULT_APPLY_TIMEOUT,
    ) -> ApplyResult:
        """Apply :attr:`changes` (refused roles are left alone) in batches.

        Each batch is one round trip: it re-reads the batch's roles, sends one
        ``GRANT rds_iam TO ...`` and one ``REVOKE rds_iam FROM ...``, and reads
        the result back (in one transaction, the last batch reads back every
        role of the plan, since a GRANT to a group switches its members).
        ``conn`` must be at READ COMMITTED, so the re-check sees today's catalogs.
        If any role changed since planning, :class:`StalePlanError` is raised;
        if a role does not end up in the wanted mode,
        :class:`~rdsiamkit.AuthModeError`.  Either way, or on any
        server error, everything is rolled back: all batches by default, only
        the failing batch with ``single_transaction=False`` (earlier batches
        stay committed).  ``progress(done, total)`` runs after each batch;
        with ``single_transaction`` "done" is not yet committed.

        ``timeout`` bounds each round trip (each batch, and the commit) in seconds,
        on both sides: the server cancels a statement that runs longer (a GRANT
        waiting on a lock; in a transaction the kit opens itself), and the client
        closes the connection when no answer comes within ``1.5 * timeout + 1``
        seconds (a network that stalls silently), so nothing is committed and
        nothing waits forever.  ``None`` waits as long as it takes.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size!r}")
        if timeout is not None and not timeout > 0:
            raise ConfigurationError(f"timeout must be positive seconds or None, got {timeout!r}")
        watchdog = RoundTripWatchdog(cast("psycopg.Connection[Any]", conn), timeout)
        started = time.perf_counter()
        total = len(self.changes)
        batches = [self.changes[i : i + batch_size] for i in range(0, total, batch_size)]
        if self.refused:
            log.warning(
                "applying an auth mode plan that leaves %d refused role(s) alone", len(self.refused)
            )
        done = 0
        if single_transaction and batches:
            what = f"applying the auth mode plan ({total} roles)"
            with _writing(conn, what, rolled="all", watchdog=watchdog):
                for number, batch in enumerate(batches, 1):
                    last = number == len(batches)
                    expected = self._expected() if last else None
                    _apply_batch(
                        conn, batch, number, len(batches), expected=expected, watchdog=watchdog
                    )
                    done += len(batch)
                    if progress is not None:
                        progress(done, total)
        else:
            for number, batch in enumerate(batches, 1):
                what = f"batch {number}/{len(batches)} of the auth mode plan"
                rolled = f"this batch ({done} earlier role(s) stay switched)"
                with _writing(conn, what, rolled=rolled, watchdog=watchdog):
                    _apply_batch(conn, batch, number, len(batches), watchdog=watchdog)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        result = ApplyResult(
            granted=self.to_grant,
            revoked=self.to_revoke,
            batches=len(batches),
            elapsed=time.perf_counter() - started,
        )
        log.info("auth mode plan applied: %s", result)
        return result


@attrs.frozen
class _Decision:
    """What to do with one role: switch it, leave it, or refuse (with why)."""

    switch: bool = False
    reason: RefusalReason | None = None
    detail: str = ""


def get_auth_mode(conn: psycopg.Connection[_R], user: str) -> AuthMode:
    """How ``user`` logs in: IAM iff it reaches ``rds_iam`` as pg_hba's ``+rds_iam`` sees it."""
    (mode,) = read_modes(conn, [check_name(user)])
    if mode.oid is None:
        raise UserNotFoundError(f"role {user!r} does not exist")
    return AuthMode.IAM if mode.is_iam else AuthMode.PASSWORD


def auth_status(conn: psycopg.Connection[_R], user: str) -> AuthStatus:
    """Mode, paths to ``rds_iam``, admin rights and conflicts of ``user``, in one round trip."""
    (state,) = read_states(conn, [check_name(user)])
    if state.oid is None:
        raise UserNotFoundError(f"role {user!r} does not exist")
    return AuthStatus._from_state(state)


def set_auth_mode(
    conn: psycopg.Connection[_R],
    user: str,
    mode: AuthMode | str,
    *,
    verify: bool = False,
    new_password: str | None = None,
    session: boto3.Session | None = None,
    region: str | None = None,
    token_provider: TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    dry_run: bool = False,
    include_members: bool = False,
    has_password: bool = False,
) -> AuthModeChange:
    """Switch ``user`` to ``mode``; a no-op when it is already there (``changed=False``).

    To IAM: ``GRANT rds_iam``.  Admins and the session's own user are refused
    (:class:`~rdsiamkit.LockoutRefusedError`) unless ``verify=True``, which
    commits the grant, logs in as ``user`` with an IAM token over the same
    endpoint and TLS settings as ``conn`` (signed with ``session`` /
    ``token_provider``, for ``token_host:token_port`` behind a tunnel), and
    revokes the grant again if that login fails
    (:class:`~rdsiamkit.VerificationFailedError`).

    To PASSWORD: ``REVOKE rds_iam``, refused with
    :class:`~rdsiamkit.InheritedMembershipError` when IAM also comes through
    another role.  ``new_password`` is set in the same transaction, hashed on
    the client (SCRAM-SHA-256) so the plain text never reaches the server; it
    never stays in a frame that raises (error reporters capture frame locals).
    An admin or the session's own user is refused
    (:class:`~rdsiamkit.LockoutRefusedError`) unless ``new_password`` is given
    or ``has_password=True`` says it has a working password: a role made for
    IAM often has none, and would then not log in at all.
    A role that has members (a group) is refused
    (:class:`~rdsiamkit.LockoutRefusedError`): its members would switch to
    PASSWORD with it, and any without a password would be locked out; pass
    ``include_members=True`` to switch the group and its members together.

    ``dry_run`` runs every check and returns the statements without changing
    anything.  See the module docstring for how ``conn``'s transaction is used.
    """
    check_name(user)
    target = AuthMode.parse(mode)
    # From here on the plain text lives only inside a Secret (see rdsiamkit._secret).
    problem = None if new_password is None else _password_problem(new_password, target)
    secret = None if new_password is None else Secret(new_password)
    new_password = None
    if problem is not None:
        raise ConfigurationError(problem)
    password_ok = has_password or secret is not None
    if verify and target is AuthMode.PASSWORD:
        raise ConfigurationError(
            "verify=True tests an IAM login, so it applies to switches to IAM only"
        )
    if verify and not dry_run:
        _check_can_verify(conn)

    def decide(state: RoleState) -> _Decision:
        return _decide(
            state, target, verify=verify, include_members=include_members, password_ok=password_ok
        )

    if dry_run:
        (state,) = read_states(conn, [user])
        decision = decide(state)
        _raise_refusal(decision)
        return _describe(conn, state, target, decision, secret, dry_run=True)
    with _writing(conn, f"switching {user!r} to {target}", rolled="it"):
        (state,) = read_states(conn, [user])
        decision = decide(state)
        _raise_refusal(decision)
        change = _describe(conn, state, target, decision, secret, dry_run=False)
        if change.changed or change.password_set:
            _execute_switch(conn, state, target, decision, secret, decide=decide)
    if change.changed:
        log.info("%s", change.message)
    if not verify:
        return change
    _verify_or_undo(
        conn,
        change,
        session=session,
        region=region,
        token_provider=token_provider,
        token_host=token_host,
        token_port=token_port,
    )
    return attrs.evolve(change, verified=True, message=change.message + "; IAM login verified")


def plan_auth_modes(
    conn: psycopg.Connection[_R], targets: Mapping[str, AuthMode | str]
) -> AuthModePlan:
    """Decide, in one round trip, what switching every ``user: mode`` in ``targets`` takes.

    Nothing is changed.  Refusals follow :func:`set_auth_mode`'s rules; admins
    and the session's own user are always refused here (switch them one at a
    time with ``verify=True``).
    """
    wanted = {check_name(user): AuthMode.parse(mode) for user, mode in targets.items()}
    states = read_states(conn, list(wanted))
    decisions = {s.name: _decide(s, wanted[s.name], verify=False) for s in states}
    decisions.update(_plan_conflicts(states, wanted, decisions))
    granting = _granting(states, wanted, decisions)
    changes: list[PlannedSwitch] = []
    unchanged: list[UnchangedRole] = []
    refused: list[Refusal] = []
    for state in states:
        target = wanted[state.name]
        decision = decisions[state.name]
        if decision.reason is not None:
            refused.append(Refusal(state.name, target, decision.reason, decision.detail))
        elif decision.switch and state.oid is not None:
            before = AuthMode.IAM if state.is_iam else AuthMode.PASSWORD
            through = tuple(sorted(granting.intersection(state.member_of_requested)))
            changes.append(PlannedSwitch(state.name, before, target, state.oid, through))
        else:
            unchanged.append(UnchangedRole(state.name, target))
    return AuthModePlan(tuple(changes), tuple(unchanged), tuple(refused))


def _plan_conflicts(
    states: Sequence[RoleState],
    wanted: Mapping[str, AuthMode],
    decisions: Mapping[str, _Decision],
) -> dict[str, _Decision]:
    """Refuse each GRANT that would switch roles this same plan wants on PASSWORD.

    A GRANT to a group switches its members too, and the per-batch read-back of
    a later batch would not look at a member revoked in an earlier one.
    """
    granting = _granting(states, wanted, decisions)
    caught: dict[str, list[str]] = {}
    for state in states:
        if wanted[state.name] is AuthMode.PASSWORD:
            for group in granting.intersection(state.member_of_requested):
                caught.setdefault(group, []).append(state.name)
    return {
        group: _Decision(
            reason=RefusalReason.PLAN_CONFLICT,
            detail=(
                f"granting rds_iam to {printable(group)} would also switch its member role(s) "
                f"{', '.join(map(printable, sorted(members)))} to IAM, but this plan wants them "
                f"on PASSWORD; drop one of the two from the plan, or take them out of "
                f"{printable(group)}"
            ),
        )
        for group, members in caught.items()
    }


def _granting(
    states: Sequence[RoleState], wanted: Mapping[str, AuthMode], decisions: Mapping[str, _Decision]
) -> set[str]:
    """The roles a plan grants ``rds_iam`` to."""
    return {s.name for s in states if wanted[s.name] is AuthMode.IAM and decisions[s.name].switch}


# --- deciding -------------------------------------------------------------------------------


def _decide(
    state: RoleState,
    target: AuthMode,
    *,
    verify: bool,
    include_members: bool = False,
    password_ok: bool = False,
) -> _Decision:
    """The one rule book for :func:`set_auth_mode`, plans, and re-checks at apply time.

    ``password_ok``: a switch to PASSWORD sets a new password or the caller said
    the role has a working one.
    """
    user = printable(state.name)
    if state.oid is None:
        return _Decision(
            reason=RefusalReason.USER_NOT_FOUND, detail=f"role {state.name!r} does not exist"
        )
    if user == IAM_ROLE:
        return _Decision(
            reason=RefusalReason.RESERVED_ROLE,
            detail="rds_iam is the role that marks IAM users, not a user to switch",
        )
    if target is AuthMode.PASSWORD:
        return _decide_password(state, include_members=include_members, password_ok=password_ok)
    return _decide_iam(state, verify=verify)


def _decide_password(state: RoleState, *, include_members: bool, password_ok: bool) -> _Decision:
    user = printable(state.name)
    if state.holders:
        return _Decision(reason=RefusalReason.INHERITED_MEMBERSHIP, detail=_inherited_detail(state))
    if state.is_iam and state.member_count and not include_members:
        return _Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"{user} has {state.member_count} member role(s) below it that would switch "
                "to PASSWORD with it, and any of them without a password would be locked "
                "out; switch it alone with set_auth_mode(..., include_members=True) once "
                "they have passwords"
            ),
        )
    why = _guard_reasons(state) if state.is_iam and not password_ok else []
    if why:
        return _Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"{user} is {' and '.join(why)}: after REVOKE rds_iam it must log in with "
                "its password, and a role made for IAM often has none, so it could no "
                "longer log in at all. Switch it alone with set_auth_mode(..., "
                "new_password=...) to set one in the same transaction, or with "
                "has_password=True if it has a working password"
            ),
        )
    return _Decision(switch=state.is_iam)


def _decide_iam(state: RoleState, *, verify: bool) -> _Decision:
    user = printable(state.name)
    if state.is_iam:
        return _Decision()
    if state.in_rds_ad:
        return _Decision(reason=RefusalReason.CONFLICT, detail=_kerberos_conflict(state.name))
    if state.guarded_members:
        members = ", ".join(map(printable, state.guarded_members))
        return _Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"granting rds_iam to {user} also makes its member role(s) {members} need IAM, "
                "and they are admins or this session's user; switch each of them alone with "
                f"verify=True, or remove them from {user} first"
            ),
        )
    why = _guard_reasons(state)
    if why and not verify:
        return _Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"{user} is {' and '.join(why)}: if its IAM login does not work (IAM policy, "
                "region, endpoint...) it can no longer log in at all. Switch it alone with "
                "verify=True: that grants, tests an IAM login as "
                f"{user}, and revokes again if the login fails"
            ),
        )
    return _Decision(switch=True)


def _guard_reasons(state: RoleState) -> list[str]:
    why = []
    if state.is_session_user:
        why.append("this session's user")
    if state.is_superuser:
        why.append("a superuser")
    elif state.can_create_role:
        why.append("an admin (CREATEROLE)")
    elif state.in_rds_superuser:
        why.append("an admin (member of rds_superuser)")
    return why


def _inherited_detail(state: RoleState) -> str:
    user = _ident(state.name)
    vias = sorted({p[1] for p in state.inherited_paths})
    cuts = [f"REVOKE {', '.join(_ident(v) for v in vias)} FROM {user}"] if vias else []
    cuts.append(
        f"REVOKE {_ident(IAM_ROLE)} FROM {', '.join(_ident(h) for h in state.holders)} "
        f"(switches every member of {', '.join(map(printable, state.holders))})"
    )
    also = " It also has a direct grant, which the switch would revoke." if state.direct else ""
    shown = "; ".join(" -> ".join(map(printable, p)) for p in state.inherited_paths)
    name = printable(state.name)
    through = ", ".join(map(printable, vias or state.holders))
    return (
        f"{name} needs IAM through {through} (shortest paths: {shown or 'through a cycle'}), "
        f"so revoking rds_iam from {name} cannot switch it to PASSWORD.{also} Cut every path "
        f"first, with {' or '.join(cuts)}; then switch it again"
    )


def _kerberos_conflict(name: str) -> str:
    return (
        f"{printable(name)} is a member of {KERBEROS_ROLE} (Kerberos): an RDS user logs in with "
        f"Kerberos or IAM, not both; REVOKE {KERBEROS_ROLE} FROM {_ident(name)} first if it "
        "should use IAM"
    )


_REFUSAL_ERRORS: dict[RefusalReason, type[RdsIamError]] = {
    RefusalReason.USER_NOT_FOUND: UserNotFoundError,
    RefusalReason.RESERVED_ROLE: ConfigurationError,
    RefusalReason.INHERITED_MEMBERSHIP: InheritedMembershipError,
    RefusalReason.LOCKOUT_GUARD: LockoutRefusedError,
    RefusalReason.CONFLICT: SwitchRefusedError,
    RefusalReason.PLAN_CONFLICT: SwitchRefusedError,
}


def _raise_refusal(decision: _Decision) -> None:
    if decision.reason is not None:
        raise _REFUSAL_ERRORS[decision.reason](decision.detail)


# --- writing --------------------------------------------------------------------------------


@contextmanager
def _writing(
    conn: psycopg.Connection[_R],
    what: str,
    *,
    rolled: str,
    watchdog: RoundTripWatchdog | None = None,
) -> Iterator[None]:
    """``conn.transaction()``, turning server errors into :class:`AuthModeError`.

    With a ``watchdog``, the COMMIT at the end is bounded like each batch.
    """
    try:
        if watchdog is not None:
            watchdog.arm()  # BEGIN (or SAVEPOINT) is a round trip too
        with conn.transaction():
            if watchdog is not None:
                watchdog.disarm()
            yield
            if watchdog is not None:
                watchdog.arm()  # the COMMIT is sent as this block ends
    except RdsIamError:
        raise
    except psycopg.Error as err:
        message = printable(err.diag.message_primary or str(err).strip())
        if watchdog is not None and watchdog.fired:
            raise AuthModeError(
                f"{what} failed: no answer from the server within {watchdog.deadline:g} s, so the "
                f"connection was closed; {rolled} was not committed (the server rolls it back). "
                "If the COMMIT itself was what went unanswered, check the roles with "
                "auth_status() before trying again"
            ) from err
        raise AuthModeError(f"{what} failed; {rolled} was rolled back: {message}") from err
    finally:
        if watchdog is not None:
            watchdog.disarm()


def _switch_statement(target: AuthMode, users: Sequence[str]) -> sql.Composed:
    """``GRANT rds_iam TO ...`` to switch ``users`` to IAM, ``REVOKE ... FROM`` to PASSWORD."""
    roles = sql.SQL(", ").join(sql.Identifier(u) for u in users)
    template = "GRANT {iam} TO {roles}" if target is AuthMode.IAM else "REVOKE {iam} FROM {roles}"
    return sql.SQL(template).format(iam=sql.Identifier(IAM_ROLE), roles=roles)


def _password_statement(user: str, verifier: sql.Composable) -> sql.Composed:
    return sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), verifier)


def _describe(
    conn: psycopg.Connection[_R],
    state: RoleState,
    target: AuthMode,
    decision: _Decision,
    new_password: Secret | None,
    *,
    dry_run: bool,
) -> AuthModeChange:
    before = AuthMode.IAM if state.is_iam else AuthMode.PASSWORD
    statements = []
    if decision.switch:
        statements.append(f"{_verb(target)} {_ident(IAM_ROLE)} {_to(target)} {_ident(state.name)}")
    if new_password is not None:
        statements.append(f"ALTER ROLE {_ident(state.name)} PASSWORD {_REDACTED.as_string(None)}")
    changed = decision.switch
    if changed:
        verb = "would switch" if dry_run else "switched"
        message = f"{printable(state.name)}: {verb} {before} -> {target} ({_verb(target)} rds_iam)"
    else:
        message = f"{printable(state.name)}: already {target}, nothing to switch"
    if new_password is not None:
        message += "; new password " + ("would be set" if dry_run else "set")
    return AuthModeChange(
        user=state.name,
        before=before,
        after=target,
        changed=changed,
        verified=False,
        password_set=new_password is not None,
        dry_run=dry_run,
        statements=tuple(statements),
        message=message,
    )


def _execute_switch(
    conn: psycopg.Connection[_R],
    state: RoleState,
    target: AuthMode,
    decision: _Decision,
    new_password: Secret | None,
    *,
    decide: Callable[[RoleState], _Decision],
) -> None:
    """Re-check, send the statements and read the result back, in one round trip.

    The re-check runs in the statement right before the change, so a role that
    became an admin (or whatever the rules refuse) since the first read is
    caught; any difference rolls everything back.
    """
    literal = names_literal([state.name])
    parts: list[sql.Composable] = [_ISOLATION, state_query(literal)]
    if decision.switch:
        parts.append(_switch_statement(target, [state.name]))
    if new_password is not None:
        verifier = conn.pgconn.encrypt_password(
            new_password.reveal().encode(), state.name.encode(), b"scram-sha-256"
        )
        parts.append(_password_statement(state.name, sql.Literal(verifier.decode("ascii"))))
    parts.append(modes_query(literal))
    results = round_trip(conn, parts)
    _check_isolation(results[0])
    (fresh,) = parse_states(results[1])
    recheck = decide(fresh)
    _raise_refusal(recheck)
    if fresh.oid != state.oid or recheck.switch != decision.switch:
        raise AuthModeError(
            f"{printable(state.name)} changed while it was being switched, so nothing was "
            "changed; try again"
        )
    (mode,) = parse_modes(results[-1])
    if mode.is_iam != (target is AuthMode.IAM):
        raise AuthModeError(_not_switched(state, target, conn.info.server_version))


# Each write round trip starts with this: its re-check must see the catalogs as they are.
_ISOLATION = sql.SQL("SELECT current_setting('transaction_isolation')")


def _check_isolation(rows: Sequence[tuple[Any, ...]]) -> None:
    ((level,),) = rows
    if level != "read committed":
        raise ConfigurationError(
            f"conn's transaction is {str(level).upper()}: its snapshot can hide role changes "
            "made since it began, so the re-check before each GRANT / REVOKE could pass on old "
            "catalogs; switch auth modes at READ COMMITTED (the default), in autocommit mode "
            "or a new transaction"
        )


def _not_switched(state: RoleState, target: AuthMode, server_version: int) -> str:
    """Why a role is not in ``target`` mode right after the statement that should do it."""
    if target is AuthMode.IAM:
        return (
            f"{printable(state.name)} still logs in with its password after GRANT rds_iam; "
            "rolled back"
        )
    if server_version < 160000 or not state.direct_grantors:
        return (
            f"{printable(state.name)} still needs IAM after REVOKE rds_iam, so it was rolled "
            "back: a role it belongs to reaches rds_iam now (granted since the re-check); look at "
            "auth_status() and switch again"
        )
    grantors = ", ".join(map(printable, state.direct_grantors))
    return (
        f"{printable(state.name)} still needs IAM after REVOKE rds_iam, so it was rolled back: on "
        "PostgreSQL 16+ REVOKE only removes grants made by the current role, and this one was "
        f"granted by {grantors}; revoke it as that role (or with GRANTED BY), then switch again"
    )


def _apply_batch(
    conn: psycopg.Connection[_R],
    batch: Sequence[PlannedSwitch],
    number: int,
    count: int,
    *,
    expected: Mapping[str, AuthMode] | None = None,
    watchdog: RoundTripWatchdog | None = None,
) -> None:
    """One round trip: re-check ``batch``, GRANT and REVOKE, read the modes back.

    The read-back covers ``expected`` (default: the batch), so the last batch
    of a plan in one transaction can check every role of the plan at no cost.
    """
    if expected is None:
        expected = {c.user: c.after for c in batch}
    parts: list[sql.Composable] = [_ISOLATION, state_query(names_literal([c.user for c in batch]))]
    if watchdog is not None and watchdog.timeout is not None and watchdog.own_transaction:
        # Server side: a statement (a GRANT waiting on a lock) may take at most the timeout.
        # Only in a transaction of our own: SET LOCAL would outlive a savepoint in the caller's.
        milliseconds = max(1, round(watchdog.timeout * 1000))
        parts.insert(0, sql.SQL("SET LOCAL statement_timeout = {}").format(milliseconds))
    grants = [c.user for c in batch if c.after is AuthMode.IAM]
    revokes = [c.user for c in batch if c.after is AuthMode.PASSWORD]
    if grants:
        parts.append(_switch_statement(AuthMode.IAM, grants))
    if revokes:
        parts.append(_switch_statement(AuthMode.PASSWORD, revokes))
    parts.append(modes_query(names_literal(list(expected))))
    try:
        with watchdog.armed() if watchdog is not None else contextlib.nullcontext():
            results = round_trip(conn, parts)
    except psycopg.errors.UndefinedObject as err:
        raise StalePlanError(
            f"batch {number}/{count}: a planned role no longer exists "
            f"({printable(err.diag.message_primary or 'undefined object')}); nothing was "
            "applied from this plan's open transaction, plan again"
        ) from err
    _check_isolation(results[0])
    before, after = parse_states(results[1]), parse_modes(results[-1])
    stale = [
        f"{printable(c.user)} ({_staleness(state, c)})"
        for state, c in zip(before, batch, strict=True)
        if _staleness(state, c)
    ]
    if stale:
        raise StalePlanError(
            f"batch {number}/{count}: {len(stale)} role(s) changed since the plan was made, so "
            f"nothing was applied; plan again. {_first(stale)}"
        )
    states = {s.name: s for s in before}
    version = conn.info.server_version
    wrong = [
        _not_switched(states[mode.name], want, version)
        if mode.name in states
        else f"{printable(mode.name)} is not {want} at the end of the plan (changed meanwhile)"
        for mode, want in zip(after, expected.values(), strict=True)
        if mode.is_iam != (want is AuthMode.IAM)
    ]
    if wrong:
        raise AuthModeError(f"batch {number}/{count}: {len(wrong)} role(s): {_first(wrong)}")
    log.debug(
        "auth mode batch %d/%d: %d granted, %d revoked", number, count, len(grants), len(revokes)
    )


def _staleness(state: RoleState, change: PlannedSwitch) -> str:
    """Empty if ``change`` still follows from ``state``; else what changed."""
    if state.oid != change.oid:
        return "dropped" if state.oid is None else "dropped and re-created"
    if change.also_through and state.is_iam:
        # Switched by an earlier batch's GRANT to a group of the plan, as planned:
        # its own GRANT still stands if the rules would still allow it.
        state = attrs.evolve(state, is_iam=False)
    decision = _decide(state, change.after, verify=False)
    if decision.reason is not None:
        return f"now refused: {decision.detail}"
    if not decision.switch:
        return f"already {change.after}"
    return ""


def _first(items: Sequence[str], shown: int = 5) -> str:
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


# --- verifying ------------------------------------------------------------------------------


def _password_problem(password: object, target: AuthMode) -> str | None:
    """What is wrong with ``new_password``, if anything; returns instead of raising, so
    that no traceback holds this frame (and the plain text in it)."""
    if not isinstance(password, str) or not password:
        return "new_password must be a non-empty str"
    if "\x00" in password:
        return "new_password must not contain a NUL character"
    if target is AuthMode.IAM:
        return (
            "new_password only applies when switching to PASSWORD: an IAM user's password "
            "is never used"
        )
    return None


def _check_can_verify(conn: psycopg.Connection[_R]) -> None:
    """Refuse ``verify=True`` before changing anything when it could not work."""
    status = conn.info.transaction_status
    if status != psycopg.pq.TransactionStatus.IDLE:
        raise ConfigurationError(
            f"verify=True must commit the grant before testing a login, but conn is in a "
            f"transaction ({status.name}); commit or roll back first, or use autocommit"
        )
    host = conn.info.host
    if not host or host.startswith("/"):
        raise ConfigurationError(
            f"verify=True logs in over TCP with TLS to conn's endpoint, but conn uses the Unix "
            f"socket {host!r}; connect by endpoint name"
        )


def _iam_login_params(conn: psycopg.Connection[_R], user: str) -> dict[str, Any]:
    """Endpoint and TLS settings of ``conn``, for a login as ``user``.

    sslmode is always ``verify-full`` for a token (the connect function's
    default): ``conn``'s own is passed on only when it is that.
    """
    params = conn.info.get_parameters()
    options: dict[str, Any] = {
        "host": conn.info.host,
        "port": conn.info.port,
        "dbname": conn.info.dbname,
        "user": user,
    }
    for key in ("hostaddr", "sslrootcert"):
        if params.get(key):
            options[key] = params[key]
    # A verification that hangs holds a committed GRANT: the admin cannot log in with its
    # password until it ends.  Bound it (psycopg alone would wait 130 s per attempt).
    text = (params.get("connect_timeout") or "").strip()
    own = int(text) if text.isdigit() else 0  # 0, negative or unset: no limit of its own
    options["connect_timeout"] = str(
        min(own, VERIFY_CONNECT_TIMEOUT) if own > 0 else VERIFY_CONNECT_TIMEOUT
    )
    if params.get("sslmode") == "verify-full":
        options["sslmode"] = "verify-full"
    return options


def _verify_or_undo(
    conn: psycopg.Connection[_R],
    change: AuthModeChange,
    *,
    session: boto3.Session | None,
    region: str | None,
    token_provider: TokenProvider | None,
    token_host: str | None,
    token_port: int | None,
) -> None:
    """Log in as the user with a token; if that fails, revoke what was just granted."""
    from rdsiamkit.connection import connect  # noqa: PLC0415  (keeps boto3 out of import)

    user = change.user
    options = _iam_login_params(conn, user)
    where = f"{options['host']}:{options['port']}"
    try:
        with connect(
            session=session,
            region=region,
            token_provider=token_provider,
            token_host=token_host,
            token_port=token_port,
            autocommit=True,
            **options,
        ) as iam_conn:
            row = iam_conn.execute("SELECT current_user").fetchone()
        if row is None or row[0] != user:
            raise VerificationFailedError(
                f"the IAM login to {where} reached the server as {row!r}, not as {user!r}"
            )
    except Exception as err:
        shown = printable(user)
        if not change.changed:
            raise VerificationFailedError(
                f"{shown} already needed IAM, so nothing was changed, but an IAM login as "
                f"{shown} to {where} failed: {err}"
            ) from err
        _undo_grant(conn, user, reason=str(err))
        raise VerificationFailedError(
            f"switching {shown} to IAM was rolled back (REVOKE rds_iam): an IAM login as "
            f"{shown} to {where} failed, so {shown} logs in with its password as before. "
            f"Login error: {err}"
        ) from err
    except BaseException:
        # Interrupted (Ctrl-C, cancellation): undo only what this call granted, and let
        # the interruption, not a failed undo, be what the caller sees.
        if change.changed:
            try:
                _undo_grant(conn, user, reason="interrupted")
            except VerificationFailedError as undo_err:
                log.error("%s", undo_err)
        raise


def _undo_grant(conn: psycopg.Connection[_R], user: str, *, reason: str) -> None:
    log.warning(
        "verification of %s did not succeed (%s); revoking the rds_iam grant just made",
        printable(user),
        reason,
    )
    try:
        with conn.transaction():
            rows = round_trip(
                conn,
                [_switch_statement(AuthMode.PASSWORD, [user]), modes_query(names_literal([user]))],
            )
        (mode,) = parse_modes(rows[-1])
        if mode.is_iam:
            raise AuthModeError(f"{printable(user)} still reaches rds_iam after REVOKE")
    except (psycopg.Error, RdsIamError) as err:
        raise VerificationFailedError(
            f"an IAM login as {printable(user)} failed ({reason}) and revoking the grant failed "
            f"too ({err}): {printable(user)} may now need IAM. Run REVOKE rds_iam FROM "
            f"{_ident(user)} as an admin"
        ) from err


# --- formatting -----------------------------------------------------------------------------


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier for messages and shown statements.

    A name with a character that is not printable (a newline, a terminal escape) is
    written with PostgreSQL's Unicode escapes, ``U&"ev\\000Ail"``: the text stays
    printable, yet still names the real role when pasted into psql.
    """
    if name.isprintable():
        return sql.Identifier(name).as_string(None)
    escaped = "".join(_unicode_escape(char) for char in name)
    return f'U&"{escaped}"'


def _unicode_escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char == '"':
        return '""'
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\{code:04X}" if code <= 0xFFFF else f"\\+{code:06X}"


def _to(target: AuthMode) -> str:
    return "TO" if target is AuthMode.IAM else "FROM"


def _verb(target: AuthMode) -> str:
    return "GRANT" if target is AuthMode.IAM else "REVOKE"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
