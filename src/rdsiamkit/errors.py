"""The one exception hierarchy of rdsiamkit.

Everything the kit raises on purpose derives from :class:`RdsIamError`, so
``except rdsiamkit.RdsIamError`` catches all of it.  Errors about bad input are
also :class:`ValueError`; errors raised while connecting are also
:class:`psycopg.OperationalError`, so code written for plain psycopg keeps
working.  No exception ever carries a token or a password in its message,
its ``args`` or its attributes.

::

    RdsIamError
    ├── ConfigurationError (ValueError)        bad argument or option; names what was wrong
    │   ├── InvalidEndpointError               hostname is not an RDS endpoint we can parse
    │   ├── InvalidArnError                    malformed rds-db ARN or ARN part
    │   ├── InvalidPolicyError                 policy document that is not IAM JSON
    │   └── InsecureTLSError                   sslmode weaker than verify-full without opt-out
    ├── CABundleError                          CA bundle missing, unreadable or not refreshable
    ├── CredentialsError                       no AWS credentials, or they cannot sign
    ├── ConnectError (psycopg.OperationalError) connecting failed for a reason we identified
    │   ├── IamAuthenticationError             server refused the IAM token / password
    │   └── TLSVerificationError               wrong CA, hostname mismatch, TLS refused
    ├── AuthModeError                          reading or switching PASSWORD/IAM failed
    │   ├── RdsIamRoleMissingError             server has no rds_iam role (not RDS)
    │   ├── UserNotFoundError                  no such role
    │   ├── SwitchRefusedError                 a safety rule refused the switch (Kerberos user)
    │   │   ├── InheritedMembershipError       IAM comes through another role; cannot REVOKE here
    │   │   └── LockoutRefusedError            switch could lock out an admin or a group's members
    │   ├── StalePlanError                     roles changed since the plan; nothing applied
    │   └── VerificationFailedError            verified switch failed and was rolled back
    ├── AwsApiError                            AWS control-plane call failed (keeps .code)
    │   ├── ResourceNotFoundError              cluster / instance / proxy not found
    │   └── AccessDeniedError                  caller lacks the IAM permission
    └── EmulatorError                          the local RDS IAM emulator could not run
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

__all__ = [
    "AccessDeniedError",
    "AuthModeError",
    "AwsApiError",
    "CABundleError",
    "ConfigurationError",
    "ConnectError",
    "CredentialsError",
    "EmulatorError",
    "IamAuthenticationError",
    "InheritedMembershipError",
    "InsecureTLSError",
    "InvalidArnError",
    "InvalidEndpointError",
    "InvalidPolicyError",
    "LockoutRefusedError",
    "RdsIamError",
    "RdsIamRoleMissingError",
    "ResourceNotFoundError",
    "StalePlanError",
    "SwitchRefusedError",
    "TLSVerificationError",
    "UserNotFoundError",
    "VerificationFailedError",
]


class RdsIamError(Exception):
    """Root of every error rdsiamkit raises on purpose."""


class ConfigurationError(RdsIamError, ValueError):
    """An argument or option is invalid; the message names which and why."""


class InvalidEndpointError(ConfigurationError):
    """A hostname is not an RDS / Aurora / RDS Proxy endpoint the kit can parse."""


class InvalidArnError(ConfigurationError):
    """An ``arn:*:rds-db:...`` ARN, or one of its parts, is malformed."""


class InvalidPolicyError(ConfigurationError):
    """A policy document is not valid IAM policy JSON."""


class InsecureTLSError(ConfigurationError):
    """An sslmode weaker than ``verify-full`` was asked for without the explicit opt-out."""


class CABundleError(RdsIamError):
    """The RDS CA bundle is missing, unreadable, or could not be refreshed."""


class CredentialsError(RdsIamError):
    """No AWS credentials were found, or they could not sign a token."""


class ConnectError(RdsIamError, psycopg.OperationalError):
    """Connecting failed for a reason the kit identified.

    Carries where the kit tried to go, never what it authenticated with.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        region: str | None = None,
        identity: str | None = None,
        causes: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.user = user
        self.region = region
        #: The signing identity (access key id or principal ARN), never a secret.
        self.identity = identity
        #: Likely causes, most likely first, each a sentence with the fix.
        self.causes: tuple[str, ...] = tuple(causes)

    def __str__(self) -> str:
        text = super().__str__()
        if self.causes:
            text += "\nLikely causes:\n" + "\n".join(f"  - {c}" for c in self.causes)
        return text


class IamAuthenticationError(ConnectError):
    """The server refused the login (``PAM authentication failed``).

    RDS never says why; :attr:`causes` lists what usually explains it, and
    ``rdsiamkit doctor`` checks each one.
    """


class TLSVerificationError(ConnectError):
    """The TLS handshake failed: wrong CA, hostname mismatch, or TLS refused."""


class AuthModeError(RdsIamError):
    """Reading or switching a user's auth mode failed; nothing was left half-changed."""


class RdsIamRoleMissingError(AuthModeError):
    """The server has no ``rds_iam`` role: it is not RDS (or the emulator)."""


class UserNotFoundError(AuthModeError, LookupError):
    """The named database role does not exist."""


class SwitchRefusedError(AuthModeError):
    """A safety rule refused the switch before anything changed; the message says which."""


class InheritedMembershipError(SwitchRefusedError):
    """IAM is required through another role, so revoking from the user alone cannot help."""


class LockoutRefusedError(SwitchRefusedError):
    """A switch could lock someone out: an admin to IAM (use ``verify=True``), or a group
    with members to PASSWORD (use ``include_members=True``)."""


class StalePlanError(AuthModeError):
    """The catalogs changed since the plan was made; nothing was applied, plan again."""


class VerificationFailedError(AuthModeError):
    """A verified switch to IAM could not log in and was rolled back."""


class AwsApiError(RdsIamError):
    """An AWS control-plane call failed; :attr:`code` keeps AWS's error code."""

    def __init__(self, message: str, *, code: str | None = None, operation: str | None = None):
        super().__init__(message)
        self.code = code
        self.operation = operation


class ResourceNotFoundError(AwsApiError, LookupError):
    """The cluster, instance or proxy does not exist (in this account and region)."""


class AccessDeniedError(AwsApiError):
    """The calling identity lacks the IAM permission for the AWS call."""


class EmulatorError(RdsIamError):
    """The local RDS IAM emulator could not be set up, started or driven."""
