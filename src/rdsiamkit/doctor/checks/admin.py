"""Check 10, with an admin connection: the user is in ``rds_iam`` and can log in.

Every role name read from the catalog is passed through :func:`printable` before it
reaches a reason: a name holding a terminal escape must not act on the terminal.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.rows import tuple_row

from rdsiamkit._authmode_state import printable
from rdsiamkit._tokeninfo import TokenFacts, looks_like_token
from rdsiamkit.authmode import AuthMode, AuthStatus, auth_status
from rdsiamkit.connection import quote_ident as _q
from rdsiamkit.doctor.checks._shared import grant_fix
from rdsiamkit.doctor.facts import Inputs, Membership, ServerClock, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import NotCheckedError, Outcome, check, fixture
from rdsiamkit.errors import AuthModeError, RdsIamRoleMissingError, UserNotFoundError

log = logging.getLogger("rdsiamkit.doctor")


@check(
    CheckName.MEMBERSHIP,
    provides="membership",
    missing="needs the user's auth mode (see rds_iam_membership)",
)
def membership(  # noqa: PLR0911 - a return per outcome
    *, target: Target, inputs: Inputs, sent: TokenFacts | None
) -> Check | Outcome[Membership]:
    """The user exists, can log in, and is in ``rds_iam`` (read with ``admin_conn``)."""
    if inputs.admin_conn is None:
        return _no_admin(inputs)
    user = printable(target.user)
    try:
        status = auth_status(inputs.admin_conn, target.user)
    except UserNotFoundError:
        return Check(
            CheckName.MEMBERSHIP,
            CheckStatus.FAIL,
            f"there is no role {target.user!r} in this database cluster",
            fix=f"CREATE ROLE {_q(target.user)} LOGIN; GRANT rds_iam TO {_q(target.user)}",
            finding=Finding.USER_NOT_FOUND,
        )
    except RdsIamRoleMissingError as err:
        return Check(
            CheckName.MEMBERSHIP,
            CheckStatus.FAIL,
            str(err),
            fix="connect to an RDS / Aurora PostgreSQL endpoint",
            finding=Finding.NOT_RDS,
        )
    except AuthModeError as err:
        return Check(CheckName.MEMBERSHIP, CheckStatus.WARN, f"cannot read it: {err}")
    learnt = Membership(status.mode)
    if not status.can_login:
        nologin = Check(
            CheckName.MEMBERSHIP,
            CheckStatus.FAIL,
            f"{user} is NOLOGIN: it cannot log in at all",
            fix=f"ALTER ROLE {_q(target.user)} LOGIN",
            finding=Finding.CANNOT_LOGIN,
        )
        return Outcome(nologin, learnt)
    if status.mode is AuthMode.PASSWORD:
        return Outcome(_password_user(target, user, _sent_password(inputs, sent)), learnt)
    return Outcome(_iam_user(status, user), learnt)


def _no_admin(inputs: Inputs) -> Check:
    """Without an admin connection: a warning naming why the admin login failed, or a skip."""
    if inputs.admin_error is None:
        raise NotCheckedError("needs an admin connection (admin_conn=)")
    return Check(
        CheckName.MEMBERSHIP,
        CheckStatus.WARN,
        "the admin login failed, so membership and the server clock were not read: "
        f"{inputs.admin_error}",
        fix="fix the admin login (the cause is named above), or drop admin_conn=",
        finding=Finding.ADMIN_LOGIN_FAILED,
    )


def _sent_password(inputs: Inputs, sent: TokenFacts | None) -> bool:
    """The secret given is a password: neither a token nor a damaged one."""
    return inputs.token is not None and sent is None and not looks_like_token(inputs.token)


def _password_user(target: Target, user: str, sent_password: bool) -> Check:
    if sent_password:
        return Check(
            CheckName.MEMBERSHIP,
            CheckStatus.PASS,
            f"{user} is not in rds_iam and logs in with its password, which is "
            "what the secret given looks like",
        )
    return Check(
        CheckName.MEMBERSHIP,
        CheckStatus.FAIL,
        f"{user} is not a member of rds_iam, so the server checks its password "
        "and refuses any IAM token ('password authentication failed')",
        fix=grant_fix(target.user),
        finding=Finding.NOT_IN_RDS_IAM,
    )


def _iam_user(status: AuthStatus, user: str) -> Check:
    how = " and ".join(
        (["directly"] if status.direct else [])
        + [f"via {printable(p[1])}" for p in status.paths if len(p) > 2]
    )
    if status.conflicts:
        return Check(
            CheckName.MEMBERSHIP,
            CheckStatus.WARN,
            f"{user} is in rds_iam ({how}); {status.conflicts[0]}",
            finding=Finding.KERBEROS_CONFLICT,
        )
    return Check(
        CheckName.MEMBERSHIP,
        CheckStatus.PASS,
        f"{user} is a member of rds_iam ({how}), so it logs in with IAM tokens",
    )


@fixture("server_clock")
def server_clock(*, inputs: Inputs) -> ServerClock:
    """Server clock minus local clock (seconds), from the admin connection."""
    if inputs.admin_conn is None:
        return ServerClock(None)
    try:
        with inputs.admin_conn.cursor(row_factory=tuple_row) as cur:
            before = inputs.clock()
            row = cur.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
            after = inputs.clock()
    except psycopg.Error as err:
        log.info("cannot read the server clock: %s", err)
        return ServerClock(None)
    if row is None:
        return ServerClock(None)
    return ServerClock(float(row[0]) - (before + after) / 2)
