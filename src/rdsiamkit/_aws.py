"""The kit's AWS plumbing: sessions, assumed roles, IAM token signing, error mapping.

Private.  Importing this module imports neither boto3 nor botocore; each
function imports what it needs when called, and only the functions that hand
a :class:`boto3.Session` to the caller import boto3.  Minting an IAM token
needs botocore alone: credentials come from a botocore session's resolver
chain (environment, shared files and profiles, SSO, assumed roles, credential
processes, container and instance metadata) and the token is signed by
botocore's SigV4 query signer, exactly as ``generate_db_auth_token`` does,
without building an RDS client (which loads the RDS service model).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rdsiamkit.errors import (
    AccessDeniedError,
    AwsApiError,
    ConfigurationError,
    CredentialsError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    import boto3
    from botocore.credentials import Credentials, ReadOnlyCredentials
    from botocore.session import Session as CoreSession

__all__ = [
    "TOKEN_LIFETIME",
    "assume_role",
    "aws_errors",
    "boto3_session",
    "core_session",
    "db_auth_token",
    "default_session",
    "seconds_left",
]

#: What botocore's ``generate_db_auth_token`` signs for (``X-Amz-Expires``).
TOKEN_LIFETIME = 900

_NOT_FOUND_CODES = frozenset(
    {
        "DBClusterNotFoundFault",
        "DBClusterEndpointNotFoundFault",
        "DBInstanceNotFound",
        "DBInstanceNotFoundFault",
        "DBProxyNotFoundFault",
        "DBProxyEndpointNotFoundFault",
        "NoSuchEntity",
    }
)
_ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
# RDS wants the token without a scheme; botocore signs an https URL and strips it.
_SCHEME = "https://"


# -- sessions ----------------------------------------------------------------------------


def default_session() -> boto3.Session:
    """A boto3 session from the usual environment / profile / instance-role chain."""
    import boto3  # noqa: PLC0415 - lazy: importing rdsiamkit must not import boto3

    return boto3.Session()


def core_session(*, profile: str | None = None, region: str | None = None) -> CoreSession:
    """A botocore session for ``profile`` (else the default chain), its region set if given.

    Cheap: nothing is read from disk or the network until credentials or
    configuration are asked for.
    """
    import botocore.session  # noqa: PLC0415 - lazy, see the module docstring

    core = botocore.session.Session(profile=profile)
    if region:
        core.set_config_variable("region", region)
    return core


def boto3_session(core: CoreSession) -> boto3.Session:
    """A boto3 session over ``core``: same credentials and configuration (imports boto3)."""
    import boto3  # noqa: PLC0415

    return boto3.Session(botocore_session=core)


def assume_role(
    base: CoreSession,
    *,
    role_arn: str,
    external_id: str | None,
    session_name: str,
    duration: int = 3600,
) -> CoreSession:
    """A botocore session whose credentials are ``role_arn`` assumed with ``base``'s.

    Uses botocore's own fetcher and deferred refreshable credentials, registered
    as the first credential provider of a fresh session, so whatever signs with
    the returned session signs with the current role credentials: botocore
    refreshes them shortly before they expire.  STS is called on first use.
    """
    import botocore.credentials  # noqa: PLC0415
    import botocore.session  # noqa: PLC0415

    extra: dict[str, object] = {"RoleSessionName": session_name, "DurationSeconds": duration}
    if external_id is not None:
        extra["ExternalId"] = external_id
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=base.create_client,
        source_credentials=base.get_credentials(),
        role_arn=role_arn,
        extra_args=extra,
    )
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )

    class _AssumedRole(botocore.credentials.CredentialProvider):
        METHOD = "assume-role"

        def load(self) -> Credentials:
            return credentials

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _AssumedRole())
    region = base.get_config_variable("region")
    if region:
        core.set_config_variable("region", region)
    return core


def seconds_left(credentials: object) -> float | None:
    """Seconds until refreshable credentials expire; None for long-term keys."""
    # botocore keeps the expiry privately; read it defensively.
    expiry = getattr(credentials, "_expiry_time", None)
    if not isinstance(expiry, dt.datetime):
        return None
    return (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds()


# -- signing -----------------------------------------------------------------------------


def db_auth_token(
    credentials: ReadOnlyCredentials, *, host: str, port: int, user: str, region: str
) -> str:
    """An IAM database auth token for ``user`` at ``host:port``, signed with ``credentials``.

    Byte for byte what botocore's ``generate_db_auth_token`` returns for the
    same credentials and clock: the same request dict, prepared by the same
    botocore functions, presigned by botocore's SigV4 query signer for the
    ``rds-db`` service, valid for 900 seconds, with the scheme stripped.
    ``credentials`` are frozen (key, secret and session token read together).
    """
    from botocore.auth import SigV4QueryAuth  # noqa: PLC0415
    from botocore.awsrequest import (  # noqa: PLC0415
        create_request_object,
        prepare_request_dict,
    )

    request_dict: dict[str, object] = {
        "url_path": "/",
        "query_string": "",
        "headers": {},
        "body": {"Action": "connect", "DBUser": user},
        "method": "GET",
    }
    prepare_request_dict(request_dict, f"{_SCHEME}{host}:{port}")
    request = create_request_object(request_dict)
    SigV4QueryAuth(credentials, "rds-db", region, expires=TOKEN_LIFETIME).add_auth(request)
    url: str = request.url
    return url[len(_SCHEME) :]


# -- errors ------------------------------------------------------------------------------


@contextlib.contextmanager
def aws_errors(operation: str, target: str) -> Iterator[None]:
    """Translate botocore errors raised inside into the kit's exception tree.

    ``ClientError`` becomes :class:`ResourceNotFoundError`,
    :class:`AccessDeniedError` or :class:`AwsApiError` (keeping ``.code`` and
    ``.operation``); missing credentials become :class:`CredentialsError`.
    """
    from botocore.exceptions import (  # noqa: PLC0415 - lazy, as above
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        code = error.get("Code") or "Unknown"
        message = f"{operation} for {target!r} failed: {code}: {error.get('Message', '')}"
        cls: type[AwsApiError] = AwsApiError
        if code in _NOT_FOUND_CODES:
            cls = ResourceNotFoundError
        elif code in _ACCESS_DENIED_CODES:
            cls = AccessDeniedError
        raise cls(message.rstrip(": "), code=code, operation=operation) from err
    except (NoCredentialsError, PartialCredentialsError) as err:
        raise CredentialsError(f"{operation} for {target!r} needs AWS credentials: {err}") from err
    except NoRegionError as err:
        raise ConfigurationError(
            f"{operation} for {target!r}: no AWS region configured; pass region="
        ) from err
    except BotoCoreError as err:
        raise AwsApiError(f"{operation} for {target!r} failed: {err}", operation=operation) from err
