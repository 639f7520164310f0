"""rdsiamkit: Amazon RDS / Aurora PostgreSQL IAM database authentication, made safe.

The public API is exactly what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from rdsiamkit.errors import (
    AccessDeniedError,
    AuthModeError,
    AwsApiError,
    CABundleError,
    ConfigurationError,
    ConnectError,
    CredentialsError,
    EmulatorError,
    IamAuthenticationError,
    InheritedMembershipError,
    InsecureTLSError,
    InvalidArnError,
    InvalidEndpointError,
    InvalidPolicyError,
    LockoutRefusedError,
    RdsIamError,
    RdsIamRoleMissingError,
    ResourceNotFoundError,
    TLSVerificationError,
    UserNotFoundError,
    VerificationFailedError,
)

__version__ = "0.1.0.dev0"

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
    "TLSVerificationError",
    "UserNotFoundError",
    "VerificationFailedError",
    "__version__",
]
