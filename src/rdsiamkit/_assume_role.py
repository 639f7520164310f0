"""A boto3 session whose credentials come from an assumed role, refreshed by botocore."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3


def assume_role_session(
    base: boto3.Session,
    *,
    role_arn: str,
    external_id: str | None,
    session_name: str,
    duration: int = 3600,
) -> boto3.Session:
    """Assume ``role_arn`` with ``base``'s credentials; botocore refreshes it before expiry.

    Uses botocore's own fetcher and deferred refreshable credentials, registered
    as the first credential provider of a fresh botocore session, so clients
    built from the returned session always sign with the current role credentials.
    """
    import boto3  # noqa: PLC0415
    import botocore.credentials  # noqa: PLC0415
    import botocore.session  # noqa: PLC0415

    extra: dict[str, object] = {"RoleSessionName": session_name, "DurationSeconds": duration}
    if external_id is not None:
        extra["ExternalId"] = external_id
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=base.client,
        source_credentials=base.get_credentials(),
        role_arn=role_arn,
        extra_args=extra,
    )
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )

    class _AssumedRole(botocore.credentials.CredentialProvider):
        METHOD = "assume-role"

        def load(self) -> botocore.credentials.Credentials:
            return credentials

    core = botocore.session.get_session()
    core.get_component("credential_provider").insert_before("env", _AssumedRole())
    return boto3.Session(botocore_session=core, region_name=base.region_name)
