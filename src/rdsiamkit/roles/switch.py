"""Switching auth modes: one user (:func:`set_auth_mode`) or many (plans, in batches).

Every write is one simple-protocol round trip that re-reads the roles, asks the
rule book (:mod:`rdsiamkit.roles.rules`) again, sends the GRANT / REVOKE and
reads the modes back, inside ``conn.transaction()`` (see :mod:`rdsiamkit.authmode`
for how the caller's transaction is used).  :meth:`AuthModePlan.apply` bounds
each round trip with a :class:`~rdsiamkit._watchdog.RoundTripWatchdog`;
``verify=True`` hands over to :mod:`rdsiamkit.roles.verify`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
import psycopg
from psycopg import sql

from rdsiamkit._options import OPTION_NAMES, ConnectOptions, with_options_signature
from rdsiamkit._secret import Secret
from rdsiamkit._watchdog import RoundTripWatchdog
from rdsiamkit.errors import (
    AuthModeError,
    ConfigurationError,
    RdsIamError,
    StalePlanError,
)
from rdsiamkit.roles._catalog import (
    IAM_ROLE,
    RoleState,
    check_name,
    grant_iam,
    modes_query,
    names_literal,
    parse_modes,
    parse_states,
    read_states,
    revoke_iam,
    round_trip,
    set_password,
    state_query,
)
from rdsiamkit.roles._text import first, ident, printable
from rdsiamkit.roles.models import (
    ApplyResult,
    AuthMode,
    AuthModeChange,
    AuthModePlan,
    PlannedSwitch,
    Refusal,
    UnchangedRole,
    mode_of,
    verb,
)
from rdsiamkit.roles.rules import (
    Decision,
    decide,
    granting,
    plan_conflicts,
    raise_refusal,
    staleness,
)
from rdsiamkit.roles.verify import check_can_verify, verify_or_undo

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from rdsiamkit._options import IamOptions

__all__ = ["apply_plan", "plan_auth_modes", "set_auth_mode"]

log = logging.getLogger("rdsiamkit.authmode")

_R = TypeVar("_R")

# What the returned statements show instead of a password verifier.  A comment,
# so that pasting the statement fails instead of setting a known password.
_REDACTED = sql.SQL("/* scram-sha-256 verifier, redacted */")
# Each write round trip starts with this: its re-check must see the catalogs as they are.
_ISOLATION = sql.SQL("SELECT current_setting('transaction_isolation')")


# --- one user -------------------------------------------------------------------------------


@with_options_signature()
def set_auth_mode(
    conn: psycopg.Connection[_R],
    user: str,
    mode: AuthMode | str,
    *,
    verify: bool = False,
    new_password: str | None = None,
    dry_run: bool = False,
    include_members: bool = False,
    has_password: bool = False,
    **options: Unpack[IamOptions],
) -> AuthModeChange:
    """Switch ``user`` to ``mode``; a no-op when it is already there (``changed=False``).

    To IAM: ``GRANT rds_iam``.  Admins and the session's own user are refused
    (:class:`~rdsiamkit.LockoutRefusedError`) unless ``verify=True``, which
    commits the grant, logs in as ``user`` with an IAM token over the same
    endpoint and TLS settings as ``conn``, and revokes the grant again if that
    login fails (:class:`~rdsiamkit.VerificationFailedError`).  That login takes
    the kit's connection options (:class:`~rdsiamkit._options.IamOptions`:
    ``session`` / ``profile`` / ``token_provider`` to sign, ``region``,
    ``token_host`` / ``token_port`` behind a tunnel, ...), checked before
    anything changes; without ``verify`` they are not used.

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
    anything.  See :mod:`rdsiamkit.authmode` for how ``conn``'s transaction is used.
    """
    check_name(user)
    target = AuthMode.parse(mode)
    # From here on the plain text lives only inside a Secret (see rdsiamkit._secret).
    problem = None if new_password is None else _password_problem(new_password, target)
    secret = None if new_password is None else Secret(new_password)
    new_password = None
    if problem is not None:
        raise ConfigurationError(problem)
    login = _verification(conn, target, options, verify=verify, dry_run=dry_run)
    password_ok = has_password or secret is not None

    def rules(state: RoleState) -> Decision:
        return decide(
            state, target, verify=verify, include_members=include_members, password_ok=password_ok
        )

    if dry_run:
        (state,) = read_states(conn, [user])
        decision = rules(state)
        raise_refusal(decision)
        return _describe(state, target, decision, secret, dry_run=True)
    change = _switch_one(conn, user, target, secret, rules)
    if change.changed:
        log.info("%s", change.message)
    if login is None:
        return change
    verify_or_undo(conn, change, options=login)
    return attrs.evolve(change, verified=True, message=change.message + "; IAM login verified")


def _verification(
    conn: psycopg.Connection[_R],
    target: AuthMode,
    options: Mapping[str, object],
    *,
    verify: bool,
    dry_run: bool,
) -> ConnectOptions | None:
    """The options of the verification login (``None``: no login), refused before any change."""
    unknown = sorted(set(options).difference(OPTION_NAMES))
    if unknown:
        raise TypeError(f"set_auth_mode() got an unexpected keyword argument {unknown[0]!r}")
    if verify and target is AuthMode.PASSWORD:
        raise ConfigurationError(
            "verify=True tests an IAM login, so it applies to switches to IAM only"
        )
    if not verify or dry_run:
        return None
    check_can_verify(conn)
    return ConnectOptions.of(**cast("IamOptions", options))


def _switch_one(
    conn: psycopg.Connection[_R],
    user: str,
    target: AuthMode,
    secret: Secret | None,
    rules: Callable[[RoleState], Decision],
) -> AuthModeChange:
    """Read, decide, and switch ``user`` (and set its password) in a transaction."""
    with _writing(conn, f"switching {user!r} to {target}", rolled="it"):
        (state,) = read_states(conn, [user])
        decision = rules(state)
        raise_refusal(decision)
        change = _describe(state, target, decision, secret, dry_run=False)
        if change.changed or change.password_set:
            _execute_switch(conn, state, target, decision, secret, rules=rules)
    return change


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


def _describe(
    state: RoleState,
    target: AuthMode,
    decision: Decision,
    new_password: Secret | None,
    *,
    dry_run: bool,
) -> AuthModeChange:
    """What the switch of ``state`` to ``target`` does (``dry_run``: would do), as a value."""
    before = mode_of(state.is_iam)
    statements = []
    if decision.switch:
        statements.append(f"{verb(target)} {ident(IAM_ROLE)} {_to(target)} {ident(state.name)}")
    if new_password is not None:
        statements.append(f"ALTER ROLE {ident(state.name)} PASSWORD {_REDACTED.as_string(None)}")
    changed = decision.switch
    if changed:
        did = "would switch" if dry_run else "switched"
        message = f"{printable(state.name)}: {did} {before} -> {target} ({verb(target)} rds_iam)"
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
    decision: Decision,
    new_password: Secret | None,
    *,
    rules: Callable[[RoleState], Decision],
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
    recheck = rules(fresh)
    raise_refusal(recheck)
    if fresh.oid != state.oid or recheck.switch != decision.switch:
        raise AuthModeError(
            f"{printable(state.name)} changed while it was being switched, so nothing was "
            "changed; try again"
        )
    (mode,) = parse_modes(results[-1])
    if mode.is_iam != (target is AuthMode.IAM):
        raise AuthModeError(_not_switched(state, target, conn.info.server_version))


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
        f"{printable(c.user)} ({staleness(state, c)})"
        for state, c in zip(before, batch, strict=True)
        if staleness(state, c)
    ]
    if stale:
        raise StalePlanError(
            f"batch {number}/{count}: {len(stale)} role(s) changed since the plan was made, so "
            f"nothing was applied; plan again. {first(stale)}"
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
        raise AuthModeError(f"batch {number}/{count}: {len(wrong)} role(s): {first(wrong)}")
    log.debug(
        "auth mode batch %d/%d: %d granted, %d revoked", number, count, len(grants), len(revokes)
    )


# --- many users -----------------------------------------------------------------------------


def apply_plan(
    plan: AuthModePlan,
    conn: psycopg.Connection[_R],
    *,
    batch_size: int,
    progress: Callable[[int, int], object] | None,
    single_transaction: bool,
    timeout: float | None,
) -> ApplyResult:
    """Apply ``plan`` on ``conn`` in batches: :meth:`AuthModePlan.apply` says how (and
    holds the defaults)."""
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, got {batch_size!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigurationError(f"timeout must be positive seconds or None, got {timeout!r}")
    watchdog = RoundTripWatchdog(cast("psycopg.Connection[Any]", conn), timeout)
    started = time.perf_counter()
    total = len(plan.changes)
    batches = [plan.changes[i : i + batch_size] for i in range(0, total, batch_size)]
    if plan.refused:
        log.warning(
            "applying an auth mode plan that leaves %d refused role(s) alone", len(plan.refused)
        )
    done = 0
    if single_transaction and batches:
        what = f"applying the auth mode plan ({total} roles)"
        with _writing(conn, what, rolled="all", watchdog=watchdog):
            for number, batch in enumerate(batches, 1):
                last = number == len(batches)
                expected = plan._expected() if last else None
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
        granted=plan.to_grant,
        revoked=plan.to_revoke,
        batches=len(batches),
        elapsed=time.perf_counter() - started,
    )
    log.info("auth mode plan applied: %s", result)
    return result


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
    decisions = {s.name: decide(s, wanted[s.name], verify=False) for s in states}
    decisions.update(plan_conflicts(states, wanted, decisions))
    grants = granting(states, wanted, decisions)
    changes: list[PlannedSwitch] = []
    unchanged: list[UnchangedRole] = []
    refused: list[Refusal] = []
    for state in states:
        target = wanted[state.name]
        decision = decisions[state.name]
        if decision.reason is not None:
            refused.append(Refusal(state.name, target, decision.reason, decision.detail))
        elif decision.switch and state.oid is not None:
            before = mode_of(state.is_iam)
            through = tuple(sorted(grants.intersection(state.member_of_requested)))
            changes.append(PlannedSwitch(state.name, before, target, state.oid, through))
        else:
            unchanged.append(UnchangedRole(state.name, target))
    return AuthModePlan(tuple(changes), tuple(unchanged), tuple(refused))


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
    return grant_iam(users) if target is AuthMode.IAM else revoke_iam(users)


def _password_statement(user: str, verifier: sql.Composable) -> sql.Composed:
    return set_password(user, verifier)


def _to(target: AuthMode) -> str:
    return "TO" if target is AuthMode.IAM else "FROM"
