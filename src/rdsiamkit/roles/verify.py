"""``verify=True``: test an IAM login as the switched user, and undo the grant if it fails.

A switch to IAM of an admin (or of the session's own user) commits its GRANT,
then logs in as that user with a token over ``conn``'s endpoint and TLS settings
(the kit's options, :class:`~rdsiamkit._options.ConnectOptions`, say how to sign
it).  If the login fails, or is interrupted, the grant is revoked again, so the
user logs in with its password as before.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import psycopg

from rdsiamkit._options import ConnectOptions
from rdsiamkit.errors import AuthModeError, ConfigurationError, RdsIamError, VerificationFailedError
from rdsiamkit.roles._catalog import modes_query, names_literal, parse_modes, revoke_iam, round_trip
from rdsiamkit.roles._text import ident, printable
from rdsiamkit.roles.models import AuthModeChange

__all__ = ["VERIFY_CONNECT_TIMEOUT", "check_can_verify", "iam_login_params", "verify_or_undo"]

log = logging.getLogger("rdsiamkit.authmode")

_R = TypeVar("_R")

#: Seconds the IAM login of ``verify=True`` may take at most (less if ``conn`` says so).
VERIFY_CONNECT_TIMEOUT = 10


def check_can_verify(conn: psycopg.Connection[_R]) -> None:
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


def iam_login_params(conn: psycopg.Connection[_R], user: str) -> dict[str, Any]:
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


def verify_or_undo(
    conn: psycopg.Connection[_R],
    change: AuthModeChange,
    *,
    options: ConnectOptions,
) -> None:
    """Log in as the user with a token (signed as ``options`` say); if that fails, revoke
    what was just granted."""
    from rdsiamkit.connection import connect  # noqa: PLC0415  (keeps boto3 out of import)

    user = change.user
    params = iam_login_params(conn, user)
    where = f"{params['host']}:{params['port']}"
    try:
        with connect(autocommit=True, **options.as_kwargs(), **params) as iam_conn:
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
        undo_grant(conn, user, reason=str(err))
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
                undo_grant(conn, user, reason="interrupted")
            except VerificationFailedError as undo_err:
                log.error("%s", undo_err)
        raise


def undo_grant(conn: psycopg.Connection[_R], user: str, *, reason: str) -> None:
    log.warning(
        "verification of %s did not succeed (%s); revoking the rds_iam grant just made",
        printable(user),
        reason,
    )
    try:
        with conn.transaction():
            rows = round_trip(
                conn,
                [revoke_iam([user]), modes_query(names_literal([user]))],
            )
        (mode,) = parse_modes(rows[-1])
        if mode.is_iam:
            raise AuthModeError(f"{printable(user)} still reaches rds_iam after REVOKE")
    except (psycopg.Error, RdsIamError) as err:
        raise VerificationFailedError(
            f"an IAM login as {printable(user)} failed ({reason}) and revoking the grant failed "
            f"too ({err}): {printable(user)} may now need IAM. Run REVOKE rds_iam FROM "
            f"{ident(user)} as an admin"
        ) from err
