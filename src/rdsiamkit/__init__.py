"""rdsiamkit: Amazon RDS / Aurora PostgreSQL IAM database authentication, made safe.

The public API is exactly what ``__all__`` lists; everything else is private.
Connections, tokens and TLS load with the package; the pools (and psycopg_pool)
and the administrative parts (auth modes, policies, discovery, exploration, the
doctor) load on first use, so an application that only connects does not pay
for them.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from rdsiamkit.connection import connect, connect_async
from rdsiamkit.endpoints import Endpoint, EndpointKind
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
    StalePlanError,
    SwitchRefusedError,
    TLSVerificationError,
    UserNotFoundError,
    VerificationFailedError,
)
from rdsiamkit.tls import CABundleInfo, ca_bundle_path, inspect_ca_bundle, refresh_ca_bundle
from rdsiamkit.tokens import AsyncTokenProvider, IssuedToken, TokenCache, TokenProvider

# A library does not configure logging: without this handler Python's last-resort
# handler would print the kit's warnings on stderr (the application decides).
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from rdsiamkit.access import AccessMap, access_map
    from rdsiamkit.arn import DbUserArn, db_user_arn
    from rdsiamkit.authmode import (
        ApplyResult,
        AuthMode,
        AuthModeChange,
        AuthModePlan,
        AuthStatus,
        RefusalReason,
        auth_status,
        get_auth_mode,
        plan_auth_modes,
        set_auth_mode,
    )
    from rdsiamkit.discovery import DatabaseResource, discover, enable_iam_auth, list_databases
    from rdsiamkit.doctor import Diagnosis, diagnose
    from rdsiamkit.explore import ClusterSummary, UserInfo, UserTable, list_users, summarize
    from rdsiamkit.policy import PolicyDecision, connect_policy, evaluate_policy, simulate_connect
    from rdsiamkit.pool import create_async_pool, create_pool

# Loaded on first attribute access (PEP 562).
_LAZY = {
    "AccessMap": "rdsiamkit.access",
    "ApplyResult": "rdsiamkit.authmode",
    "AuthMode": "rdsiamkit.authmode",
    "AuthModeChange": "rdsiamkit.authmode",
    "AuthModePlan": "rdsiamkit.authmode",
    "AuthStatus": "rdsiamkit.authmode",
    "ClusterSummary": "rdsiamkit.explore",
    "DatabaseResource": "rdsiamkit.discovery",
    "DbUserArn": "rdsiamkit.arn",
    "Diagnosis": "rdsiamkit.doctor",
    "PolicyDecision": "rdsiamkit.policy",
    "RefusalReason": "rdsiamkit.authmode",
    "UserInfo": "rdsiamkit.explore",
    "UserTable": "rdsiamkit.explore",
    "access_map": "rdsiamkit.access",
    "auth_status": "rdsiamkit.authmode",
    "connect_policy": "rdsiamkit.policy",
    "create_async_pool": "rdsiamkit.pool",
    "create_pool": "rdsiamkit.pool",
    "db_user_arn": "rdsiamkit.arn",
    "diagnose": "rdsiamkit.doctor",
    "discover": "rdsiamkit.discovery",
    "enable_iam_auth": "rdsiamkit.discovery",
    "evaluate_policy": "rdsiamkit.policy",
    "get_auth_mode": "rdsiamkit.authmode",
    "list_databases": "rdsiamkit.discovery",
    "list_users": "rdsiamkit.explore",
    "plan_auth_modes": "rdsiamkit.authmode",
    "set_auth_mode": "rdsiamkit.authmode",
    "simulate_connect": "rdsiamkit.policy",
    "summarize": "rdsiamkit.explore",
}

__version__ = "0.1.0.dev0"

__all__ = [
    "AccessDeniedError",
    "AccessMap",
    "ApplyResult",
    "AsyncTokenProvider",
    "AuthMode",
    "AuthModeChange",
    "AuthModeError",
    "AuthModePlan",
    "AuthStatus",
    "AwsApiError",
    "CABundleError",
    "CABundleInfo",
    "ClusterSummary",
    "ConfigurationError",
    "ConnectError",
    "CredentialsError",
    "DatabaseResource",
    "DbUserArn",
    "Diagnosis",
    "EmulatorError",
    "Endpoint",
    "EndpointKind",
    "IamAuthenticationError",
    "InheritedMembershipError",
    "InsecureTLSError",
    "InvalidArnError",
    "InvalidEndpointError",
    "InvalidPolicyError",
    "IssuedToken",
    "LockoutRefusedError",
    "PolicyDecision",
    "RdsIamError",
    "RdsIamRoleMissingError",
    "RefusalReason",
    "ResourceNotFoundError",
    "StalePlanError",
    "SwitchRefusedError",
    "TLSVerificationError",
    "TokenCache",
    "TokenProvider",
    "UserInfo",
    "UserNotFoundError",
    "UserTable",
    "VerificationFailedError",
    "__version__",
    "access_map",
    "auth_status",
    "ca_bundle_path",
    "connect",
    "connect_async",
    "connect_policy",
    "create_async_pool",
    "create_pool",
    "db_user_arn",
    "diagnose",
    "discover",
    "enable_iam_auth",
    "evaluate_policy",
    "get_auth_mode",
    "inspect_ca_bundle",
    "list_databases",
    "list_users",
    "plan_auth_modes",
    "refresh_ca_bundle",
    "set_auth_mode",
    "simulate_connect",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rdsiamkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
