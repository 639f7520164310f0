"""Who can log in as whom: IAM principals against database users, and where they disagree.

An IAM login needs two systems to agree: the database must require IAM for the
user (it reaches ``rds_iam``) and an IAM policy must allow ``rds-db:connect`` on
that user's ARN.  Each side alone looks fine when they disagree; logins just
fail.  :func:`access_map` reads both sides of a whole account at once:

* the database side from an admin connection (every role and its auth mode,
  in one catalog round trip, as :func:`~rdsiamkit.list_users` reads it);
* the IAM side from a ``GetAccountAuthorizationDetails`` document (the output
  of ``aws iam get-account-authorization-details``, so it can run offline from
  a saved file), or fetched with boto3 in one paginated call.

It evaluates every user and role with the kit's own policy evaluator (Deny,
NotResource, NotAction, wildcards, policy variables such as
``${aws:username}``, conditions, permissions boundaries), indexed by resource
pattern rather than pair by pair, and reports the disagreements:
:attr:`AccessMap.dangling`, :attr:`AccessMap.unreachable` and
:attr:`AccessMap.wildcards`.  What it cannot see (SCPs, session policies...)
is listed in :attr:`AccessMap.unknowns`.  It changes nothing, anywhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from rdsiamkit.access._document import (
    AccountAuthorization,
    fetch_authorization,
    read_authorization,
)
from rdsiamkit.access._engine import RoleFacts, build_access_map
from rdsiamkit.access._model import (
    AccessMap,
    Dangling,
    DanglingReason,
    DatabaseTarget,
    Grant,
    Principal,
    PrincipalKind,
    StatementSource,
    Unknown,
    UnknownKind,
    UserAccess,
)
from rdsiamkit.arn import DbUserArn
from rdsiamkit.endpoints import Endpoint, partition_for_region
from rdsiamkit.errors import ConfigurationError, InvalidEndpointError, RdsIamError
from rdsiamkit.explore import list_users

if TYPE_CHECKING:
    import boto3

__all__ = [
    "AccessMap",
    "AccountAuthorization",
    "Dangling",
    "DanglingReason",
    "DatabaseTarget",
    "Grant",
    "Principal",
    "PrincipalKind",
    "RoleFacts",
    "StatementSource",
    "Unknown",
    "UnknownKind",
    "UserAccess",
    "access_map",
    "build_access_map",
    "fetch_authorization",
    "read_authorization",
]

log = logging.getLogger("rdsiamkit.access")

_R = TypeVar("_R")


def access_map(
    conn: psycopg.Connection[_R],
    *,
    account_authorization: str | Mapping[str, Any] | None = None,
    session: boto3.Session | None = None,
    region: str | None = None,
    account_id: str | None = None,
    resource_id: str | None = None,
) -> AccessMap:
    """Which IAM principals may log in as which database users of ``conn``'s database.

    ``conn`` is an admin connection (it reads ``pg_roles``).
    ``account_authorization`` is what ``aws iam get-account-authorization-details``
    prints (a dict or its JSON text); without it, it is fetched with
    ``session`` (needs ``iam:GetAccountAuthorizationDetails``).  ``region``
    defaults to the endpoint's; ``resource_id`` and ``account_id`` to what
    :func:`~rdsiamkit.discover` finds for the endpoint (``account_id`` to the
    document's account when ``resource_id`` is given).  Read-only.

    :raises ConfigurationError: the document is malformed, or the database's
        region / account / resource id cannot be found (pass them).
    :raises AuthModeError: reading the roles failed.
    :raises AwsApiError: fetching the document or discovery failed (with ``.code``).
    """
    users = list_users(conn, include_nologin=True)
    roles = [RoleFacts(name=u.name, mode=u.mode, can_login=u.can_login) for u in users]
    if account_authorization is None:
        account_authorization = fetch_authorization(session)
    authorization = read_authorization(account_authorization)
    database = _database(
        conn.info.host,
        session=session,
        region=region,
        account_id=account_id or None,
        resource_id=resource_id or None,
        document_account=authorization.account_id,
    )
    result = build_access_map(roles, authorization, database)
    log.debug("access_map: %s", result.headline())
    return result


def _database(
    host: str,
    *,
    session: boto3.Session | None,
    region: str | None,
    account_id: str | None,
    resource_id: str | None,
    document_account: str | None,
) -> DatabaseTarget:
    """The rds-db ARN prefix of the database: given parts, the endpoint, then discovery."""
    with contextlib.suppress(InvalidEndpointError):  # a tunnel's address: no region in it
        region = region or Endpoint.parse(host).region
    if resource_id is None or (account_id is None and document_account is None):
        from rdsiamkit.discovery import discover  # noqa: PLC0415 - boto3 only when needed

        try:
            found = discover(host, session=session, region=region)
        except RdsIamError as err:
            raise ConfigurationError(
                f"cannot find the resource id and account of {host!r} for its rds-db ARNs "
                f"({err}); pass resource_id= and account_id= (and region=)"
            ) from err
        resource_id = resource_id or found.iam_resource_id
        account_id = account_id or found.account_id
        region = region or found.region
    account_id = account_id or document_account
    if region is None or account_id is None:
        raise ConfigurationError(
            f"cannot tell the region of {host!r}: pass region= (its rds-db ARNs name it)"
        )
    # Checks every part as a policy's ARN would need it.
    DbUserArn(region=region, account_id=account_id, resource_id=resource_id, db_user="x")
    return DatabaseTarget(
        partition=partition_for_region(region),
        region=region,
        account_id=account_id,
        resource_id=resource_id,
    )
