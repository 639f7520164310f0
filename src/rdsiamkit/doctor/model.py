"""The doctor's report: what each check found, as plain values (no I/O, no formatting)."""

from __future__ import annotations

import enum

import attrs

__all__ = ["Check", "CheckName", "CheckStatus", "Diagnosis", "Finding"]


class CheckStatus(str, enum.Enum):
    """How one check came out."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    WARN = "warn"
    SKIPPED = "skipped"


class CheckName(str, enum.Enum):
    """The checks, in the order :func:`diagnose` runs them."""

    CONFIGURATION = "configuration"
    DNS = "dns"
    REACHABILITY = "reachability"
    TLS = "tls"
    CREDENTIALS = "credentials"
    REGION = "region"
    TOKEN_TARGET = "token_target"  # noqa: S105 - a check's name
    IAM_ENABLED = "iam_enabled"
    POLICY = "policy"
    MEMBERSHIP = "rds_iam_membership"
    TOKEN = "token"  # noqa: S105 - a check's name
    LOGIN = "login"


class Finding(str, enum.Enum):
    """What a failed (or warning) check found: the named cause, for scripts and tests."""

    INVALID_OPTIONS = "invalid_options"
    DNS_FAILURE = "dns_failure"
    UNREACHABLE = "unreachable"
    TLS_OFF = "tls_off"
    WRONG_CA = "wrong_ca"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    CERTIFICATE_EXPIRED = "certificate_expired"
    TLS_FAILED = "tls_failed"
    NO_CREDENTIALS = "no_credentials"
    CREDENTIALS_EXPIRED = "credentials_expired"
    UNKNOWN_ACCESS_KEY = "unknown_access_key"
    BAD_SECRET_KEY = "bad_secret_key"  # noqa: S105 - a finding's name
    STS_UNCONFIRMED = "sts_unconfirmed"
    NO_REGION = "no_region"
    WRONG_REGION = "wrong_region"
    TOKEN_TARGET_MISMATCH = "token_target_mismatch"  # noqa: S105
    TOKEN_FOR_OTHER_USER = "token_for_other_user"  # noqa: S105
    IAM_AUTH_DISABLED = "iam_auth_disabled"
    RESOURCE_NOT_FOUND = "resource_not_found"
    AWS_UNAVAILABLE = "aws_unavailable"
    POLICY_DENIES = "policy_denies"
    POLICY_CONDITIONAL = "policy_conditional"
    INVALID_POLICY = "invalid_policy"
    NOT_RDS = "not_rds"
    USER_NOT_FOUND = "user_not_found"
    CANNOT_LOGIN = "cannot_login"
    NOT_IN_RDS_IAM = "not_in_rds_iam"
    KERBEROS_CONFLICT = "kerberos_conflict"
    PASSWORD_SENT = "password_sent"  # noqa: S105
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    TOKEN_DAMAGED = "token_damaged"  # noqa: S105
    CLOCK_SKEW = "clock_skew"
    LOGIN_REFUSED = "login_refused"
    LOGIN_FAILED = "login_failed"
    #: The IAM login itself worked, then the database named does not exist.
    DATABASE_NOT_FOUND = "database_not_found"
    #: The admin connection given (``admin_error=``) could not be opened.
    ADMIN_LOGIN_FAILED = "admin_login_failed"
    #: The check itself broke (a bug, or input it could not handle): nothing is known.
    CHECK_ERROR = "check_error"


@attrs.frozen
class Check:
    """The outcome of one check: why, and what to do about it."""

    name: CheckName
    status: CheckStatus
    reason: str
    fix: str | None = None
    finding: Finding | None = None
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain values, for JSON."""
        from rdsiamkit.doctor.render import check_to_dict  # noqa: PLC0415 - render imports us

        return check_to_dict(self)


@attrs.frozen
class Diagnosis:
    """Every check :func:`diagnose` ran, in order; the first failure is the cause."""

    target: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No check failed."""
        return self.failed is None

    @property
    def failed(self) -> Check | None:
        """The first failing check: what to fix first."""
        return next((c for c in self.checks if c.status is CheckStatus.FAIL), None)

    @property
    def finding(self) -> Finding | None:
        """The named cause of the first failure, if any."""
        failed = self.failed
        return None if failed is None else failed.finding

    def check(self, name: CheckName | str) -> Check:
        """The result of one check by name."""
        wanted = CheckName(name)
        return next(c for c in self.checks if c.name is wanted)

    def to_dict(self) -> dict[str, object]:
        """Plain values, for JSON."""
        from rdsiamkit.doctor.render import diagnosis_to_dict  # noqa: PLC0415

        return diagnosis_to_dict(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The diagnosis as JSON."""
        from rdsiamkit.doctor.render import to_json  # noqa: PLC0415

        return to_json(self, indent=indent)

    def __str__(self) -> str:
        from rdsiamkit.doctor.render import to_text  # noqa: PLC0415

        return to_text(self)

    def _repr_html_(self) -> str:
        from rdsiamkit.doctor.render import to_html  # noqa: PLC0415

        return to_html(self)
