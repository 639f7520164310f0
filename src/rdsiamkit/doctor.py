"""Why does my IAM login fail?  Check each cause in turn and name the one that does.

RDS answers every refused IAM login with the same line,
``FATAL: PAM authentication failed for user "X"``, and logs the reason where
the client cannot see it.  :func:`diagnose` checks the causes one by one, in
the order a login meets them, from the outside in:

1. ``configuration``: the options make a valid target (verify-full TLS, CA bundle);
2. ``dns`` and ``reachability``: the endpoint resolves (or ``hostaddr`` is dialled) and
   accepts TCP;
3. ``tls``: PostgreSQL's ``SSLRequest``, then a handshake verifying the server
   certificate against the CA bundle for the endpoint name (wrong CA, hostname
   mismatch and TLS refused are told apart);
4. ``credentials``: AWS credentials exist, have not expired, and STS knows them;
5. ``region``: the token is signed for the endpoint's region;
6. ``token_target``: the token names the endpoint and port RDS listens on (not a tunnel);
7. ``iam_enabled``: IAM database authentication is on for the cluster (AWS API);
8. ``policy``: an IAM policy allows ``rds-db:connect`` on the user's ARN (the
   documents given, evaluated offline, or IAM's policy simulator);
9. ``rds_iam_membership``: the user is in ``rds_iam`` (with an admin connection);
10. ``token``: the token given is one, whole (not ``token_damaged``), and not
    expired; the clocks agree;
11. ``login``: finally, a real IAM login.

Each check passes, fails, warns or is skipped with a reason and a fix; the
first failure is the diagnosis.  Nothing returned, logged or raised contains a
token, a password or a secret key.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import enum
import ipaddress
import json
import logging
import re
import shlex
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import attrs
import psycopg
from psycopg.rows import tuple_row

from rdsiamkit._redact import redact
from rdsiamkit.authmode import AuthMode, auth_status
from rdsiamkit.connection import Target, is_auth_failure
from rdsiamkit.connection import quote_ident as _q
from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import (
    AccessDeniedError,
    AuthModeError,
    AwsApiError,
    CABundleError,
    ConfigurationError,
    CredentialsError,
    InvalidPolicyError,
    RdsIamError,
    RdsIamRoleMissingError,
    ResourceNotFoundError,
    UserNotFoundError,
)
from rdsiamkit.explore import html_table
from rdsiamkit.policy import Outcome, PolicyDecision, PolicyInput, evaluate_policy
from rdsiamkit.tokens import IssuedToken, TokenProvider, _seconds_left

if TYPE_CHECKING:
    import boto3

    from rdsiamkit.discovery import DatabaseResource

__all__ = ["Check", "CheckName", "CheckStatus", "Diagnosis", "Finding", "TokenFacts", "diagnose"]

log = logging.getLogger("rdsiamkit.doctor")

# PostgreSQL's SSLRequest: length 8, code 1234.5679.
_SSL_REQUEST = struct.pack("!II", 8, 80877103)
# OpenSSL verify codes (X509_V_ERR_*) that mean "not signed by a CA you trust".
_UNTRUSTED_CODES = frozenset({2, 18, 19, 20, 21})
# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH (host= is an address).
_HOSTNAME_MISMATCH = frozenset({62, 64})
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_CERT_EXPIRED = 10
#: SigV4 accepts a request signed this far in the future (seconds); so does RDS.
MAX_CLOCK_SKEW = 300.0
_SKEW_WARNING = 60.0
_STS_ERRORS: dict[str, tuple[str, str]] = {
    "InvalidClientTokenId": (
        "unknown_access_key",
        "AWS does not know access key {key}: it was deleted or deactivated, belongs to "
        "another partition, or is a typo",
    ),
    "SignatureDoesNotMatch": (
        "bad_secret_key",
        "the secret access key does not belong to access key {key}",
    ),
    "ExpiredToken": ("credentials_expired", "the session token of {key} has expired"),
    "ExpiredTokenException": ("credentials_expired", "the session token of {key} has expired"),
    "RequestExpired": ("clock_skew", "STS says the request expired: the local clock is off"),
}


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
        return {
            "name": self.name.value,
            "status": self.status.value,
            "finding": None if self.finding is None else self.finding.value,
            "reason": self.reason,
            "fix": self.fix,
            "elapsed": round(self.elapsed, 4),
        }


@attrs.frozen
class TokenFacts:
    """What a token says about itself; the signature and session token are not kept."""

    host: str
    port: int
    user: str
    access_key_id: str
    region: str
    service: str
    signed_at: dt.datetime
    expires: int
    #: ``X-Amz-Signature`` is 64 hex digits (not cut short or altered).
    signature_ok: bool = True

    @classmethod
    def parse(cls, text: str) -> TokenFacts | None:
        """Read a token (``host:port/?Action=connect&...``); ``None`` if it is not one."""
        raw = text.strip()
        if "://" not in raw:
            raw = "https://" + raw
        try:
            parts = urlsplit(raw)
            query = {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=True).items()}
            key, _, region, service, _ = query["X-Amz-Credential"].split("/")
            signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.timezone.utc
            )
            facts = cls(
                host=(parts.hostname or "").lower(),
                port=parts.port or 443,
                user=query["DBUser"],
                access_key_id=key,
                region=region,
                service=service,
                signed_at=signed_at,
                expires=int(query["X-Amz-Expires"]),
                signature_ok=bool(_SIGNATURE_RE.fullmatch(query.get("X-Amz-Signature", ""))),
            )
        except (KeyError, ValueError):
            return None
        return facts if facts.host else None


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
        failed = self.failed
        return {
            "target": self.target,
            "ok": self.ok,
            "failed_check": None if failed is None else failed.name.value,
            "finding": None if self.finding is None else self.finding.value,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The diagnosis as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        lines = [f"rdsiamkit doctor: IAM login as {self.target}"]
        width = max(len(c.name.value) for c in self.checks)
        for check in self.checks:
            lines.append(
                f"  {check.status.value.upper():<7}  {check.name.value:<{width}}  {check.reason}"
            )
            if check.fix and check.status in (CheckStatus.FAIL, CheckStatus.WARN):
                lines.append(f"  {'':<7}  {'':<{width}}  fix: {check.fix}")
        failed = self.failed
        if failed is None:
            lines.append("Result: no check failed")
        else:
            finding = f" ({failed.finding.value})" if failed.finding else ""
            lines.append(f"Result: FAILED at {failed.name.value}{finding}: {failed.reason}")
            if failed.fix:
                lines.append(f"Fix: {failed.fix}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [[c.status.value.upper(), c.name.value, c.reason, c.fix or ""] for c in self.checks]
        failed = self.failed
        caption = f"IAM login as {self.target}: " + (
            "no check failed" if failed is None else f"failed at {failed.name.value}"
        )
        return html_table(["status", "check", "reason", "fix"], rows, caption=caption)


class _NotCheckedError(Exception):
    """Raised inside a check: it cannot run; the message says why."""


@attrs.define
class _Facts:
    """What the checks learnt so far, for the checks after them."""

    target: Target | None = None
    endpoint: Endpoint | None = None
    address: tuple[str, int] | None = None
    tls_ok: bool = False
    #: Credentials to sign fresh tokens with were found (and have not expired).
    credentials_ok: bool = False
    #: How the credentials would be fetched, when only an AWS call (STS, SSO) can.
    unresolved: str | None = None
    access_key_id: str | None = None
    principal_arn: str | None = None
    account_id: str | None = None
    aws_reachable: bool = True
    resource: DatabaseResource | None = None
    resource_error: RdsIamError | str | None = None
    resource_looked_up: bool = False
    sent: TokenFacts | None = None
    mode: AuthMode | None = None
    server_offset: float | None = None


def diagnose(
    conninfo: str = "",
    *,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    admin_conn: psycopg.Connection[Any] | None = None,
    policies: PolicyInput | Sequence[PolicyInput] | None = None,
    principal_arn: str | None = None,
    account_id: str | None = None,
    resource_id: str | None = None,
    token: str | None = None,
    aws: bool = True,
    login: bool = True,
    timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
    **kwargs: Any,
) -> Diagnosis:
    """Check, in order, everything an IAM login as ``user`` to ``host`` needs.

    Takes the same connection options as :func:`rdsiamkit.connect` (libpq
    keywords such as ``host``, ``port``, ``user``, ``dbname``, ``hostaddr``,
    ``sslrootcert``; ``region``, ``session``/``profile``/``token_provider``,
    ``token_host``/``token_port``).  Optional evidence sharpens the answer:

    * ``admin_conn``: an admin connection, to read the user's ``rds_iam``
      membership and the server's clock;
    * ``policies``: the IAM policy documents of the signing identity, evaluated
      offline (else, with ``aws``, IAM's simulator is asked for ``principal_arn``
      or the identity STS reports, unless ``token`` was signed by another key);
    * ``account_id`` / ``resource_id``: to build the user's ARN without AWS;
    * ``token``: what the client sends as its password (a token, or not), to
      check that instead of a fresh one.

    ``aws=False`` makes no AWS API call (STS, RDS, IAM): credentials that only
    such a call resolves (an assumed role, SSO) are then not resolved, and the
    fresh login is skipped; boto3's chain may still read a container's or
    instance's metadata endpoint for their credentials.  ``login=False`` skips the final login.
    ``timeout`` (seconds, > 0) bounds each network step.
    """
    if not timeout > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    doctor = _Doctor(
        conninfo=conninfo,
        kwargs=kwargs,
        region=region,
        session=session,
        profile=profile,
        token_provider=token_provider,
        token_host=token_host,
        token_port=token_port,
        insecure=insecure_skip_tls_verify,
        admin_conn=admin_conn,
        policies=policies,
        principal_arn=principal_arn,
        account_id=account_id,
        resource_id=resource_id,
        token=token,
        aws=aws,
        login=login,
        timeout=timeout,
        clock=clock,
    )
    return doctor.run()


class _Doctor:
    """One diagnosis: the options, what was learnt, and one method per check."""

    def __init__(
        self,
        *,
        conninfo: str,
        kwargs: Mapping[str, Any],
        region: str | None,
        session: boto3.Session | None,
        profile: str | None,
        token_provider: TokenProvider | None,
        token_host: str | None,
        token_port: int | None,
        insecure: bool,
        admin_conn: psycopg.Connection[Any] | None,
        policies: PolicyInput | Sequence[PolicyInput] | None,
        principal_arn: str | None,
        account_id: str | None,
        resource_id: str | None,
        token: str | None,
        aws: bool,
        login: bool,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.region = region
        self.token_host = token_host
        self.token_port = token_port
        self.insecure = insecure
        self.admin_conn = admin_conn
        self.policies = policies
        self.principal_arn = principal_arn
        self.account_id = account_id
        self.resource_id = resource_id
        self.token = token
        self.aws = aws
        self.do_login = login
        self.timeout = timeout
        self.clock = clock
        if token_provider is not None and (session is not None or profile is not None):
            raise ConfigurationError("pass either token_provider= or session=/profile=, not both")
        # A provider of its own: a cached token must not hide what a fresh one would do.
        self.provider = token_provider or TokenProvider(session=session, profile=profile)
        self.facts = _Facts()
        self._secrets: list[str] = [token] if token else []
        self._resolved: list[str] | None = None

    # -- running -------------------------------------------------------------------------

    def run(self) -> Diagnosis:
        steps: list[tuple[CheckName, Callable[[], Check]]] = [
            (CheckName.CONFIGURATION, self.check_configuration),
            (CheckName.DNS, self.check_dns),
            (CheckName.REACHABILITY, self.check_reachability),
            (CheckName.TLS, self.check_tls),
            (CheckName.CREDENTIALS, self.check_credentials),
            (CheckName.REGION, self.check_region),
            (CheckName.TOKEN_TARGET, self.check_token_target),
            (CheckName.IAM_ENABLED, self.check_iam_enabled),
            (CheckName.POLICY, self.check_policy),
            (CheckName.MEMBERSHIP, self.check_membership),
            (CheckName.TOKEN, self.check_token),
            (CheckName.LOGIN, self.check_login),
        ]
        if self.token is not None:
            self.facts.sent = TokenFacts.parse(self.token)
        checks = []
        for name, step in steps:
            started = time.perf_counter()
            try:
                check = step()
            except _NotCheckedError as skip:
                check = Check(name, CheckStatus.SKIPPED, str(skip))
            except Exception as err:  # a diagnosis reports a broken check instead of dying
                log.debug("doctor: check %s raised", name.value, exc_info=True)
                check = Check(
                    name,
                    CheckStatus.FAIL,
                    f"the check itself failed: {type(err).__name__}: {err}",
                    finding=Finding.CHECK_ERROR,
                )
            check = attrs.evolve(
                check,
                reason=self._scrub(check.reason),
                fix=None if check.fix is None else self._scrub(check.fix),
                elapsed=time.perf_counter() - started,
            )
            log.debug("doctor: %s %s: %s", check.name.value, check.status.value, check.reason)
            checks.append(check)
        checks = _outranked_by_login(checks)
        target = self.facts.target
        where = target.describe() if target is not None else self._guess_where()
        return Diagnosis(target=where, checks=tuple(checks))

    def _scrub(self, text: str) -> str:
        """Defence in depth: no secret the doctor held may appear in what it returns."""
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return redact(text)

    def _guess_where(self) -> str:
        host = self.kwargs.get("host") or "?"
        return f"{self.kwargs.get('user') or '?'}@{host}:{self.kwargs.get('port') or 5432}"

    def _target(self) -> Target:
        if self.facts.target is None:
            raise _NotCheckedError("needs valid connection options (see configuration)")
        return self.facts.target

    # -- 1. configuration ----------------------------------------------------------------

    def check_configuration(self) -> Check:
        try:
            target = Target.build(
                self.conninfo,
                self.kwargs,
                region=self.region,
                token_host=self.token_host,
                token_port=self.token_port,
                insecure_skip_tls_verify=self.insecure,
            )
        except (ConfigurationError, CABundleError) as err:
            return Check(
                CheckName.CONFIGURATION,
                CheckStatus.FAIL,
                str(err),
                fix="correct the option named above",
                finding=Finding.INVALID_OPTIONS,
            )
        self.facts.target = target
        self.facts.endpoint = Endpoint.try_parse(target.token_host)
        return Check(
            CheckName.CONFIGURATION,
            CheckStatus.PASS,
            f"{target.describe()}, sslmode={target.params['sslmode']}, "
            f"CA bundle {target.params['sslrootcert']}",
        )

    # -- 2. dns and reachability ---------------------------------------------------------

    def _addresses(self, target: Target) -> list[str]:
        hostaddr = target.params.get("hostaddr")
        if hostaddr:
            return [hostaddr]
        if self._resolved is None:
            # A hung resolver must not hold the diagnosis: the worker is left behind.
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            future = pool.submit(
                socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM
            )
            pool.shutdown(wait=False)
            try:
                infos = future.result(timeout=self.timeout)
            except concurrent.futures.TimeoutError:
                raise OSError(f"no answer from DNS within {self.timeout:g} s") from None
            self._resolved = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return self._resolved

    def check_dns(self) -> Check:
        target = self._target()
        hostaddr = target.params.get("hostaddr")
        if hostaddr:
            return Check(
                CheckName.DNS,
                CheckStatus.PASS,
                f"hostaddr={hostaddr} is dialled; the name {target.host} is used for TLS "
                "verification and the token only (no DNS lookup)",
            )
        try:
            addresses = self._addresses(target)
        except OSError as err:
            return Check(
                CheckName.DNS,
                CheckStatus.FAIL,
                f"cannot resolve {target.host}: {err}",
                fix=(
                    "check the endpoint name (aws rds describe-db-clusters shows it); from "
                    "outside the VPC use a VPN or tunnel and pass hostaddr= with host= kept as "
                    "the endpoint name"
                ),
                finding=Finding.DNS_FAILURE,
            )
        return Check(
            CheckName.DNS, CheckStatus.PASS, f"{target.host} resolves to {', '.join(addresses)}"
        )

    def check_reachability(self) -> Check:
        target = self._target()
        try:
            addresses = self._addresses(target)
        except OSError as err:
            raise _NotCheckedError("needs the address (see dns)") from err
        errors = []
        for address in addresses:
            try:
                with socket.create_connection((address, target.port), timeout=self.timeout):
                    pass
            except OSError as err:
                errors.append(f"{address}: {err}")
                continue
            self.facts.address = (address, target.port)
            return Check(
                CheckName.REACHABILITY,
                CheckStatus.PASS,
                f"TCP connection to {address}:{target.port} opened",
            )
        private = any(_is_private(a) for a in addresses)
        fix = (
            f"allow inbound TCP {target.port} from this machine in the security group and "
            "network ACL; check the port"
        )
        if private:
            fix += "; the address is private: connect from inside the VPC, a VPN or a tunnel"
        return Check(
            CheckName.REACHABILITY,
            CheckStatus.FAIL,
            f"cannot open TCP to port {target.port}: {'; '.join(errors)}",
            fix=fix,
            finding=Finding.UNREACHABLE,
        )

    # -- 3. tls --------------------------------------------------------------------------

    def _ssl_context(self, target: Target) -> ssl.SSLContext:
        mode = target.params["sslmode"]
        rootcert = target.params["sslrootcert"]
        context = ssl.create_default_context(
            cafile=None if rootcert == "system" else rootcert,
        )
        if mode != "verify-full":
            # libpq verifies the CA for require too when a root certificate is given, and
            # the kit always gives one; only the host name goes unchecked.
            context.check_hostname = False
        return context

    def check_tls(self) -> Check:  # noqa: PLR0911 - a return per outcome
        target = self._target()
        if self.facts.address is None:
            raise _NotCheckedError("needs a TCP connection (see reachability)")
        rootcert = target.params["sslrootcert"]
        try:
            raw_socket = socket.create_connection(self.facts.address, timeout=self.timeout)
        except OSError as err:
            return Check(
                CheckName.TLS,
                CheckStatus.FAIL,
                f"cannot open TCP to {self.facts.address[0]}:{self.facts.address[1]} again: {err}",
                fix="the server stopped answering during the diagnosis: check it and retry",
                finding=Finding.UNREACHABLE,
            )
        with raw_socket as raw:
            try:
                raw.sendall(_SSL_REQUEST)
                answer = raw.recv(1)
            except ConnectionError:
                answer = b""  # reset before any answer: the same as closed, below
            except OSError as err:
                return Check(
                    CheckName.TLS,
                    CheckStatus.FAIL,
                    f"no answer to PostgreSQL's SSLRequest: {err}",
                    fix="check that the port is PostgreSQL's (RDS: the endpoint's port)",
                    finding=Finding.TLS_FAILED,
                )
            if not answer:
                return Check(
                    CheckName.TLS,
                    CheckStatus.FAIL,
                    "the connection was closed before any answer to PostgreSQL's SSLRequest",
                    fix="a tunnel or port forward whose far end cannot connect does this (check "
                    "it), or the port is not PostgreSQL's",
                    finding=Finding.TLS_FAILED,
                )
            if answer != b"S":
                what = "refused TLS" if answer == b"N" else f"answered {answer!r} to SSLRequest"
                return Check(
                    CheckName.TLS,
                    CheckStatus.FAIL,
                    f"the server {what}: IAM tokens must never travel without TLS",
                    fix="this is not an RDS endpoint, or a proxy in between terminates TLS",
                    finding=Finding.TLS_OFF,
                )
            try:
                context = self._ssl_context(target)
                with context.wrap_socket(raw, server_hostname=target.host) as tls:
                    version = tls.version()
                    cert = tls.getpeercert()
            except ssl.SSLCertVerificationError as err:
                return _tls_verify_failure(err, target.host, rootcert)
            except (ssl.SSLError, OSError) as err:
                return Check(
                    CheckName.TLS,
                    CheckStatus.FAIL,
                    f"TLS handshake with {target.host} failed: {err}",
                    fix="check that the port is PostgreSQL's and nothing in between breaks TLS",
                    finding=Finding.TLS_FAILED,
                )
        self.facts.tls_ok = True
        until = ""
        if cert and cert.get("notAfter"):
            until = f", certificate valid until {cert['notAfter']}"
        mode = target.params["sslmode"]
        if mode != "verify-full":
            return Check(
                CheckName.TLS,
                CheckStatus.WARN,
                f"{version} with sslmode={mode}: the server's identity is not fully verified",
                fix="use sslmode=verify-full (drop insecure_skip_tls_verify)",
            )
        return Check(
            CheckName.TLS,
            CheckStatus.PASS,
            f"{version}, certificate for {target.host} verified against {rootcert}{until}",
        )

    # -- 4. credentials ------------------------------------------------------------------

    def check_credentials(self) -> Check:
        sent_password = self.token is not None and self.facts.sent is None
        missing_status = CheckStatus.WARN if self.token is not None else CheckStatus.FAIL
        try:
            session = self.provider.session()
            credentials = session.get_credentials()
            if not self.aws and _needs_aws_call(credentials):
                self.facts.unresolved = getattr(credentials, "method", None) or "a provider"
                raise _NotCheckedError(
                    f"credentials from {self.facts.unresolved} come from an AWS call (STS, "
                    "SSO), which aws=False rules out"
                )
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except _NotCheckedError:
            raise
        except Exception as err:  # botocore raises many kinds here
            return Check(
                CheckName.CREDENTIALS,
                missing_status,
                f"cannot resolve AWS credentials: {err}",
                fix="fix the profile / environment named above",
                finding=Finding.NO_CREDENTIALS,
            )
        if frozen is None or not frozen.access_key:
            if sent_password:
                raise _NotCheckedError(
                    "no AWS credentials, and the secret given is not an IAM token"
                )
            return Check(
                CheckName.CREDENTIALS,
                missing_status,
                "no AWS credentials found (environment, shared config/credentials files, "
                "container or instance role)",
                fix="export AWS_PROFILE=..., run `aws sso login`, or pass session=/profile=",
                finding=Finding.NO_CREDENTIALS,
            )
        key = frozen.access_key
        self._secrets += [s for s in (frozen.secret_key, frozen.token) if s]
        self.facts.access_key_id = key
        source = getattr(credentials, "method", None) or "unknown source"
        left = _seconds_left(credentials)
        if left is None or left > 0:
            self.facts.credentials_ok = True
        if left is not None and left <= 0:
            # Only this machine's problem when the token being checked is not theirs.
            sent = self.facts.sent
            theirs = sent is None or sent.access_key_id == key
            return Check(
                CheckName.CREDENTIALS,
                CheckStatus.FAIL if theirs else CheckStatus.WARN,
                f"the credentials of {key} ({source}) expired {-left:.0f} s ago",
                fix="refresh them (aws sso login, re-assume the role)",
                finding=Finding.CREDENTIALS_EXPIRED,
            )
        if not self.aws:
            return Check(
                CheckName.CREDENTIALS,
                CheckStatus.PASS,
                f"access key {key} from {source}; not confirmed with STS (AWS calls disabled)",
            )
        return self._ask_sts(session, key, source)

    def _aws_config(self) -> Any:
        from botocore.config import Config  # noqa: PLC0415 - keep botocore off import

        return Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"max_attempts": 1, "mode": "standard"},
        )

    def _aws_session(self) -> Any:
        """The signing session, whose clients keep to the doctor's timeout and try once."""
        return _TimedSession(self.provider.session(), self._aws_config())

    def _ask_sts(self, session: boto3.Session, key: str, source: str) -> Check:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        region = self._signing_region() or "us-east-1"
        try:
            client = session.client("sts", region_name=region, config=self._aws_config())
            identity = client.get_caller_identity()
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "Unknown")
            message = err.response.get("Error", {}).get("Message", "")
            known = _STS_ERRORS.get(code)
            if known is None:
                return Check(
                    CheckName.CREDENTIALS,
                    CheckStatus.WARN,
                    f"STS GetCallerIdentity failed ({code}: {message}); {key} is not confirmed",
                    finding=Finding.STS_UNCONFIRMED,
                )
            finding, text = known
            return Check(
                CheckName.CREDENTIALS,
                CheckStatus.FAIL,
                f"{text.format(key=key)} (STS: {code})",
                fix="use current credentials: check AWS_PROFILE / AWS_ACCESS_KEY_ID, rotate or "
                "re-create the key, or sync the clock",
                finding=Finding(finding),
            )
        except BotoCoreError as err:
            self.facts.aws_reachable = False
            return Check(
                CheckName.CREDENTIALS,
                CheckStatus.WARN,
                f"access key {key} from {source}; STS not reachable ({err}), so not confirmed",
                fix="allow HTTPS to sts.amazonaws.com (or a VPC endpoint), or pass aws=False",
                finding=Finding.STS_UNCONFIRMED,
            )
        self.facts.principal_arn = identity["Arn"]
        self.facts.account_id = identity["Account"]
        return Check(
            CheckName.CREDENTIALS,
            CheckStatus.PASS,
            f"access key {key} ({source}) is {identity['Arn']}",
        )

    # -- 5. region -----------------------------------------------------------------------

    def _signing_region(self) -> str | None:
        target = self.facts.target
        if self.facts.sent is not None:
            return self.facts.sent.region
        if target is not None and target.region:
            return target.region
        try:
            return self.provider.session().region_name
        except Exception:  # no session: no default region
            return None

    def check_region(self) -> Check:
        target = self._target()
        signing = self._signing_region()
        endpoint = self.facts.endpoint
        whose = "the token given is" if self.facts.sent is not None else "tokens are"
        if signing is None:
            return Check(
                CheckName.REGION,
                CheckStatus.FAIL,
                f"no region to sign for: {target.token_host} is not an RDS endpoint name and "
                "no region is configured",
                fix="pass region= (CLI: --region)",
                finding=Finding.NO_REGION,
            )
        if endpoint is None:
            return Check(
                CheckName.REGION,
                CheckStatus.WARN,
                f"{whose} signed for {signing}; {target.token_host} is not an RDS endpoint name, "
                "so its region cannot be checked",
                fix="sign for the endpoint name (token_host=) so the region can be read from it",
            )
        if signing != endpoint.region:
            return Check(
                CheckName.REGION,
                CheckStatus.FAIL,
                f"{whose} signed for region {signing}, but {endpoint.host} is in "
                f"{endpoint.region}: RDS refuses the signature",
                fix=f"sign for {endpoint.region}: drop region= or pass region={endpoint.region!r}",
                finding=Finding.WRONG_REGION,
            )
        return Check(
            CheckName.REGION, CheckStatus.PASS, f"{whose} signed for {signing}, the endpoint's"
        )

    # -- 6. token target -----------------------------------------------------------------

    def check_token_target(self) -> Check:
        target = self._target()
        sent = self.facts.sent
        if sent is not None:
            if (sent.host, sent.port) != (target.token_host, target.token_port):
                return Check(
                    CheckName.TOKEN_TARGET,
                    CheckStatus.FAIL,
                    f"the token given was signed for {sent.host}:{sent.port}, but the login "
                    f"goes to {target.token_host}:{target.token_port}",
                    fix=f"sign the token for {target.token_host}:{target.token_port} (behind a "
                    "tunnel: the endpoint and its port, not the local ones)",
                    finding=Finding.TOKEN_TARGET_MISMATCH,
                )
            if sent.user != target.user:
                return Check(
                    CheckName.TOKEN_TARGET,
                    CheckStatus.FAIL,
                    f"the token given is for user {sent.user!r}, not {target.user!r}",
                    fix=f"sign the token for DBUser={target.user!r}",
                    finding=Finding.TOKEN_FOR_OTHER_USER,
                )
        elif self.token is not None:
            raise _NotCheckedError("the secret given is not an IAM token (see token)")
        where = f"{target.token_host}:{target.token_port}"
        if _is_local_name(target.token_host):
            return Check(
                CheckName.TOKEN_TARGET,
                CheckStatus.FAIL,
                f"tokens are signed for {where}, which is not the database's endpoint: "
                "RDS refuses them (a tunnel or port forward?)",
                fix="keep host= as the endpoint name and dial the tunnel with hostaddr=, or "
                "pass token_host=<endpoint> token_port=<its port> (CLI: --token-host/--token-port)",
                finding=Finding.TOKEN_TARGET_MISMATCH,
            )
        resource = self._resource()
        if resource is not None and resource.port and resource.port != target.token_port:
            return Check(
                CheckName.TOKEN_TARGET,
                CheckStatus.FAIL,
                f"tokens are signed for port {target.token_port}, but "
                f"{resource.identifier} listens on {resource.port}",
                fix=f"pass token_port={resource.port} (the port dialled may differ: a tunnel)",
                finding=Finding.TOKEN_TARGET_MISMATCH,
            )
        via = ""
        if (target.host.lower(), target.port) != (target.token_host, target.token_port):
            via = f" while dialling {target.host}:{target.port}"
        elif target.params.get("hostaddr"):
            via = f" (dialled at {target.params['hostaddr']})"
        return Check(CheckName.TOKEN_TARGET, CheckStatus.PASS, f"tokens name {where}{via}")

    # -- 7. iam enabled ------------------------------------------------------------------

    def _resource(self) -> DatabaseResource | None:
        """The cluster / instance / proxy behind the endpoint, asked of AWS once."""
        if self.facts.resource_looked_up:
            return self.facts.resource
        self.facts.resource_looked_up = True
        endpoint = self.facts.endpoint
        if not self.aws:
            self.facts.resource_error = "AWS calls are disabled"
        elif not self.facts.aws_reachable:
            self.facts.resource_error = "AWS is not reachable (see credentials)"
        elif endpoint is None:
            self.facts.resource_error = "the token host is not an RDS endpoint name"
        else:
            from rdsiamkit.discovery import discover  # noqa: PLC0415 - keeps boto3 off import

            try:
                self.facts.resource = discover(endpoint.host, session=self._aws_session())
            except RdsIamError as err:
                self.facts.resource_error = err
        return self.facts.resource

    def check_iam_enabled(self) -> Check:
        self._target()
        resource = self._resource()
        if resource is None:
            error = self.facts.resource_error
            if isinstance(error, ResourceNotFoundError):
                return Check(
                    CheckName.IAM_ENABLED,
                    CheckStatus.WARN,
                    f"AWS does not know the database: {error}",
                    fix="sign with credentials of the account and region that own the cluster",
                    finding=Finding.RESOURCE_NOT_FOUND,
                )
            if isinstance(error, (AccessDeniedError, AwsApiError, CredentialsError)):
                return Check(
                    CheckName.IAM_ENABLED,
                    CheckStatus.WARN,
                    f"cannot ask AWS: {error}",
                    fix="allow rds:DescribeDBClusters / rds:DescribeDBInstances to this identity",
                    finding=Finding.AWS_UNAVAILABLE,
                )
            raise _NotCheckedError(f"not checked: {self.facts.resource_error}")
        what = f"{resource.kind.value} {resource.identifier}"
        kind = "cluster" if resource.kind.value == "cluster" else "instance"
        if not resource.iam_auth_enabled:
            pending = "IAMDatabaseAuthenticationEnabled" in resource.pending_modifications
            return Check(
                CheckName.IAM_ENABLED,
                CheckStatus.FAIL,
                f"IAM database authentication is disabled on {what}"
                + (
                    " (enabling is pending: it applies in the maintenance window)"
                    if pending
                    else ""
                ),
                fix=f"rdsiamkit.enable_iam_auth({resource.identifier!r}, apply_immediately=True) "
                f"(aws rds modify-db-{kind} --enable-iam-database-authentication "
                "--apply-immediately)",
                finding=Finding.IAM_AUTH_DISABLED,
            )
        return Check(
            CheckName.IAM_ENABLED,
            CheckStatus.PASS,
            f"IAM database authentication is enabled on {what} ({resource.engine} "
            f"{resource.engine_version})",
        )

    # -- 8. policy -----------------------------------------------------------------------

    def _user_arn(self, target: Target) -> str:
        from rdsiamkit.arn import db_user_arn  # noqa: PLC0415 - only the doctor needs it here

        resource = (
            self._resource() if (self.account_id is None or self.resource_id is None) else None
        )
        account = self.account_id or (resource.account_id if resource else self.facts.account_id)
        resource_id = self.resource_id or (resource.iam_resource_id if resource else None)
        region = self.facts.endpoint.region if self.facts.endpoint else target.region
        if account is None or resource_id is None or region is None:
            raise _NotCheckedError(
                "the user's ARN needs the account and the cluster's resource id: pass "
                "account_id= and resource_id= (CLI: --account-id/--resource-id) or let the "
                "doctor ask AWS"
            )
        return db_user_arn(
            partition=target.partition,
            region=region,
            account_id=account,
            resource_id=resource_id,
            db_user=target.user,
        )

    def _own_principal_if_it_signed(self) -> str | None:
        """STS's answer names who signs, unless the token given was signed by another key."""
        sent, own = self.facts.sent, self.facts.access_key_id
        if sent is not None and own is not None and sent.access_key_id != own:
            raise _NotCheckedError(
                f"the token given was signed by {sent.access_key_id}, not by {own} that STS "
                "named; pass principal_arn= (CLI: --principal-arn) for the token's signer, or "
                "policies= (CLI: --policy) to evaluate offline"
            )
        return self.facts.principal_arn

    def check_policy(self) -> Check:
        target = self._target()
        if self.token is not None and self.facts.sent is None:
            raise _NotCheckedError("the secret given is not an IAM token (see token)")
        if self.policies is None and not self.aws:
            raise _NotCheckedError(
                "give the policy documents (policies=, CLI --policy) or allow AWS calls"
            )
        arn = self._user_arn(target)
        if self.policies is not None:
            try:
                decision = evaluate_policy(self.policies, arn)
            except InvalidPolicyError as err:
                return Check(
                    CheckName.POLICY,
                    CheckStatus.FAIL,
                    str(err),
                    fix="give valid IAM policy JSON",
                    finding=Finding.INVALID_POLICY,
                )
            return _policy_check(decision, arn, "the policies given")
        principal = self.principal_arn or self._own_principal_if_it_signed()
        if principal is None:
            raise _NotCheckedError("no principal to ask IAM about (STS did not say who signs)")
        from rdsiamkit.policy import simulate_connect  # noqa: PLC0415

        try:
            session = self._aws_session()
            (decision,) = simulate_connect(
                _simulation_principal(principal, session), arn, session=session
            )
        except RdsIamError as err:
            return Check(
                CheckName.POLICY,
                CheckStatus.WARN,
                f"cannot simulate {principal}'s policies: {err}",
                fix="give the policy documents (policies=, CLI --policy) to evaluate offline",
                finding=Finding.AWS_UNAVAILABLE,
            )
        return _policy_check(decision, arn, f"IAM's simulation for {principal}")

    # -- 9. membership -------------------------------------------------------------------

    def check_membership(self) -> Check:  # noqa: PLR0911 - a return per outcome
        target = self._target()
        if self.admin_conn is None:
            raise _NotCheckedError("needs an admin connection (admin_conn=, CLI --admin-user)")
        try:
            status = auth_status(self.admin_conn, target.user)
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
        self.facts.mode = status.mode
        if not status.can_login:
            return Check(
                CheckName.MEMBERSHIP,
                CheckStatus.FAIL,
                f"{target.user} is NOLOGIN: it cannot log in at all",
                fix=f"ALTER ROLE {_q(target.user)} LOGIN",
                finding=Finding.CANNOT_LOGIN,
            )
        sent_password = self.token is not None and self.facts.sent is None
        if status.mode is AuthMode.PASSWORD:
            if sent_password:
                return Check(
                    CheckName.MEMBERSHIP,
                    CheckStatus.PASS,
                    f"{target.user} is not in rds_iam and logs in with its password, which is "
                    "what the secret given looks like",
                )
            return Check(
                CheckName.MEMBERSHIP,
                CheckStatus.FAIL,
                f"{target.user} is not a member of rds_iam, so the server checks its password "
                "and refuses any IAM token ('password authentication failed')",
                fix=_grant_fix(target.user),
                finding=Finding.NOT_IN_RDS_IAM,
            )
        how = " and ".join(
            (["directly"] if status.direct else [])
            + [f"via {p[1]}" for p in status.paths if len(p) > 2]
        )
        if status.conflicts:
            return Check(
                CheckName.MEMBERSHIP,
                CheckStatus.WARN,
                f"{target.user} is in rds_iam ({how}); {status.conflicts[0]}",
                finding=Finding.KERBEROS_CONFLICT,
            )
        return Check(
            CheckName.MEMBERSHIP,
            CheckStatus.PASS,
            f"{target.user} is a member of rds_iam ({how}), so it logs in with IAM tokens",
        )

    # -- 10. token and clocks ------------------------------------------------------------

    def _server_offset(self) -> float | None:
        """Server clock minus local clock (seconds), from the admin connection."""
        if self.admin_conn is None:
            return None
        try:
            with self.admin_conn.cursor(row_factory=tuple_row) as cur:
                before = self.clock()
                row = cur.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
                after = self.clock()
        except psycopg.Error as err:
            log.info("cannot read the server clock: %s", err)
            return None
        if row is None:
            return None
        return float(row[0]) - (before + after) / 2

    def check_token(self) -> Check:  # noqa: PLR0911 - a return per outcome
        target = self._target()
        offset = self._server_offset()
        self.facts.server_offset = offset
        skew = None
        if offset is not None and abs(offset) > _SKEW_WARNING:
            status = CheckStatus.FAIL if abs(offset) > MAX_CLOCK_SKEW else CheckStatus.WARN
            skew = Check(
                CheckName.TOKEN,
                status,
                f"this machine's clock is {abs(offset):.0f} s "
                f"{'behind' if offset > 0 else 'ahead of'} the server's: tokens are signed "
                "with the local time, and AWS allows 5 minutes",
                fix="sync the clock (NTP / chrony)",
                finding=Finding.CLOCK_SKEW,
            )
        if self.token is None:
            if skew is not None:
                return skew
            if offset is None:
                raise _NotCheckedError(
                    "no token given (the doctor signs fresh ones), and no admin_conn "
                    "to read the server's clock"
                )
            return Check(
                CheckName.TOKEN,
                CheckStatus.PASS,
                f"no token given; the clocks agree ({offset:+.1f} s from the server's)",
            )
        sent = self.facts.sent
        if sent is None:
            if self.facts.mode is AuthMode.PASSWORD:
                return Check(
                    CheckName.TOKEN,
                    CheckStatus.PASS,
                    "the secret given is a password, as a password user needs",
                )
            mode = "is in rds_iam" if self.facts.mode is AuthMode.IAM else "logs in with IAM"
            status = CheckStatus.FAIL if self.facts.mode is AuthMode.IAM else CheckStatus.WARN
            return Check(
                CheckName.TOKEN,
                status,
                f"the secret given is not an IAM token (no SigV4 query), but {target.user} "
                f"{mode}: the server checks it as a token and refuses it as 'PAM "
                "authentication failed'",
                fix="send a fresh IAM token as the password (rdsiamkit.connect, `rdsiamkit "
                f"token`), or switch the user back: rdsiamkit switch {target.user} password",
                finding=Finding.PASSWORD_SENT,
            )
        if not sent.signature_ok:
            return _damaged(CheckName.TOKEN)
        now = self.clock() + (offset or 0.0)
        age = now - sent.signed_at.timestamp()
        if age > sent.expires:
            return Check(
                CheckName.TOKEN,
                CheckStatus.FAIL,
                f"the token given was signed {age:.0f} s ago and is valid for {sent.expires} s: "
                "it has expired",
                fix="mint a fresh token for every new connection (rdsiamkit.connect does)",
                finding=Finding.TOKEN_EXPIRED,
            )
        if age < -MAX_CLOCK_SKEW:
            return Check(
                CheckName.TOKEN,
                CheckStatus.FAIL,
                f"the token given is dated {-age:.0f} s in the future: the signing clock is off",
                fix="sync the clock of the machine that signs tokens (NTP / chrony)",
                finding=Finding.CLOCK_SKEW,
            )
        if skew is not None:
            return skew
        return Check(
            CheckName.TOKEN,
            CheckStatus.PASS,
            f"the token given was signed {max(age, 0):.0f} s ago by {sent.access_key_id}, "
            f"valid for {sent.expires} s",
        )

    # -- 11. login -----------------------------------------------------------------------

    @contextmanager
    def _open(self, target: Target, password: str) -> Iterator[str]:
        params = dict(target.params)
        params.setdefault("connect_timeout", str(max(1, int(self.timeout))))
        with (
            psycopg.connect(password=password, autocommit=True, **params) as conn,
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            row = cur.execute("SELECT current_user").fetchone()
            yield "?" if row is None else str(row[0])

    def _try(self, target: Target, password: str) -> tuple[str | None, psycopg.Error | None]:
        try:
            with self._open(target, password) as user:
                return user, None
        except psycopg.Error as err:
            return None, err

    def _fresh(self, target: Target) -> IssuedToken:
        issued = target.issue(self.provider)
        self._secrets.append(issued.token)
        return issued

    def check_login(self) -> Check:
        target = self._target()
        if not self.do_login:
            raise _NotCheckedError("not attempted (login=False)")
        if not self.facts.tls_ok:
            raise _NotCheckedError("not attempted: TLS did not pass (see tls)")
        if self.token is not None:
            return self._login_with_sent(target, self.token)
        if self.facts.unresolved is not None:
            raise _NotCheckedError(
                f"not attempted: signing needs the credentials from {self.facts.unresolved}, "
                "which only an AWS call resolves (aws=False)"
            )
        try:
            issued = self._fresh(target)
        except (CredentialsError, ConfigurationError) as err:
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"cannot sign a token: {err}",
                fix="see credentials and region",
                finding=Finding.NO_CREDENTIALS,
            )
        user, failure = self._try(target, issued.token)
        if failure is None:
            return Check(
                CheckName.LOGIN,
                CheckStatus.PASS,
                f"logged in as {user} with a token signed by {issued.key.identity}",
            )
        return self._refused(target, failure, issued)

    def _login_with_sent(self, target: Target, secret: str) -> Check:  # noqa: PLR0911 - a return per outcome
        user, err = self._try(target, secret)
        if err is None:
            return Check(
                CheckName.LOGIN, CheckStatus.PASS, f"logged in as {user} with the secret given"
            )
        message = _server_line(err)
        if self.facts.sent is None:
            if "PAM authentication failed" in message:
                return Check(
                    CheckName.LOGIN,
                    CheckStatus.FAIL,
                    f"refused: {message}. The server authenticated {target.user} with PAM, so "
                    "it is an IAM user, and the secret given is not an IAM token",
                    fix="send a fresh IAM token as the password (rdsiamkit.connect)",
                    finding=Finding.PASSWORD_SENT,
                )
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"refused: {message}",
                finding=Finding.LOGIN_REFUSED,
            )
        if "password authentication failed" in message:
            return _password_checked(target, message)
        if not isinstance(err, psycopg.OperationalError) or not is_auth_failure(err):
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"cannot log in: {message}",
                finding=Finding.LOGIN_FAILED,
            )
        if not self.facts.sent.signature_ok:
            return _damaged(CheckName.LOGIN)
        if not self.facts.credentials_ok:
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"the token given was refused: {message}",
                fix="compare with a fresh token: run the doctor without token= and with "
                "credentials",
                finding=Finding.LOGIN_REFUSED,
            )
        fresh = self._fresh(target)
        user, fresh_err = self._try(target, fresh.token)
        if fresh_err is not None:
            return self._refused(target, fresh_err, fresh, also="the token given and ")
        sent = self.facts.sent
        signed_for = (sent.host, sent.port, sent.user, sent.region)
        if signed_for != (fresh.key.host, fresh.key.port, fresh.key.user, fresh.key.region):
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"the token given was refused ({message}): it was signed for "
                f"{sent.user}@{sent.host}:{sent.port} in {sent.region}, while a fresh one for "
                f"{fresh.key.user}@{fresh.key.host}:{fresh.key.port} in {fresh.key.region} "
                "logs in",
                fix="sign the token for the endpoint, port, user and region of this login "
                "(see token_target and region)",
                finding=Finding.TOKEN_TARGET_MISMATCH,
            )
        if sent.access_key_id == fresh.key.identity:
            age = self.clock() + (self.facts.server_offset or 0.0) - sent.signed_at.timestamp()
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"the token given was refused ({message}) while a fresh one for the same "
                f"target, signed by the same key {sent.access_key_id}, logs in: the token given "
                f"is stale (signed {age:.0f} s ago) or was altered; the server no longer "
                "accepts it",
                fix="mint a fresh token for every new connection (rdsiamkit.connect does); "
                "never store tokens",
                finding=Finding.TOKEN_EXPIRED,
            )
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"the token given, signed by {sent.access_key_id}, was refused ({message}); a "
            f"fresh one signed by {fresh.key.identity} logs in: {sent.access_key_id} is unknown "
            "to AWS or revoked, or its policy does not allow this user",
            fix=f"sign with the credentials of {fresh.key.identity}, or fix {sent.access_key_id}",
            finding=Finding.LOGIN_REFUSED,
        )

    def _refused(
        self, target: Target, err: psycopg.Error, issued: IssuedToken, *, also: str = ""
    ) -> Check:
        message = _server_line(err)
        if "password authentication failed" in message:
            return _password_checked(target, message)
        if not isinstance(err, psycopg.OperationalError) or not is_auth_failure(err):
            return Check(
                CheckName.LOGIN,
                CheckStatus.FAIL,
                f"cannot log in: {message}",
                finding=Finding.LOGIN_FAILED,
            )
        explained = target.explain(err, issued)
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"{also}a fresh token signed by {issued.key.identity} was refused: {message}. "
            "The checks above that were skipped or warned are where the cause hides",
            fix="; ".join(explained.causes[:3]),
            finding=Finding.LOGIN_REFUSED,
        )


# -- helpers ---------------------------------------------------------------------------------


def _outranked_by_login(checks: list[Check]) -> list[Check]:
    """A login that worked outranks evidence saying it cannot: those failures become warnings.

    (An admin connection to another server, a policy that is not the effective one, a
    reader-endpoint token that this server takes: what they show did not stop the login.)
    """
    if not any(c.name is CheckName.LOGIN and c.status is CheckStatus.PASS for c in checks):
        return checks
    return [
        attrs.evolve(
            c,
            status=CheckStatus.WARN,
            reason=f"{c.reason} (yet the login works: this does not stop it here)",
        )
        if c.status is CheckStatus.FAIL
        else c
        for c in checks
    ]


class _TimedSession:
    """A boto3 session whose clients default to the given botocore config."""

    def __init__(self, session: boto3.Session, config: Any) -> None:
        self._session = session
        self._config = config

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("config", self._config)
        return self._session.client(service_name, *args, **kwargs)  # type: ignore[call-overload]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _needs_aws_call(credentials: object) -> bool:
    """Credentials botocore fetches on first use (assumed roles, SSO) and has not yet."""
    from botocore.credentials import DeferredRefreshableCredentials  # noqa: PLC0415

    return (
        isinstance(credentials, DeferredRefreshableCredentials)
        and getattr(credentials, "_frozen_credentials", None) is None
    )


def _damaged(name: CheckName) -> Check:
    return Check(
        name,
        CheckStatus.FAIL,
        "the token given is damaged: its X-Amz-Signature is not 64 hex digits, so it was cut "
        "short or altered on the way (clients and PAM stacks that cap passwords, e.g. at 511 "
        "bytes, truncate the 1.2-2 kB tokens of temporary credentials)",
        fix="pass the whole token; check the client's password length limit",
        finding=Finding.TOKEN_DAMAGED,
    )


def _tls_verify_failure(err: ssl.SSLCertVerificationError, host: str, rootcert: str) -> Check:
    code = err.verify_code
    detail = err.verify_message or str(err)
    if code in _HOSTNAME_MISMATCH:
        return Check(
            CheckName.TLS,
            CheckStatus.FAIL,
            f"the server certificate is not for {host}: {detail}",
            fix="host= must be the endpoint name in the certificate; to dial another address "
            "(tunnel, IP) keep host=<endpoint> and pass hostaddr=<ip>",
            finding=Finding.HOSTNAME_MISMATCH,
        )
    if code == _CERT_EXPIRED:
        return Check(
            CheckName.TLS,
            CheckStatus.FAIL,
            f"the server certificate has expired: {detail}",
            fix="rotate the server certificate (modify-db-instance --ca-certificate-identifier)",
            finding=Finding.CERTIFICATE_EXPIRED,
        )
    if code in _UNTRUSTED_CODES:
        return Check(
            CheckName.TLS,
            CheckStatus.FAIL,
            f"the server certificate is not signed by a CA in {rootcert}: {detail}",
            fix="use the RDS CA bundle: drop sslrootcert=, refresh it (rdsiamkit ca update) or "
            "point sslrootcert= at the right bundle (RDS Proxy: Amazon Root CA, in the OS store)",
            finding=Finding.WRONG_CA,
        )
    return Check(
        CheckName.TLS,
        CheckStatus.FAIL,
        f"the server certificate failed verification: {detail}",
        finding=Finding.TLS_FAILED,
    )


def _password_checked(target: Target, message: str) -> Check:
    return Check(
        CheckName.LOGIN,
        CheckStatus.FAIL,
        f"refused: {message}. The server checked a password, so {target.user} is not in "
        "rds_iam (or does not exist: PostgreSQL answers both alike) and no IAM token can work",
        fix=f"if the role exists: {_grant_fix(target.user)}; else create it first (CREATE "
        f"ROLE {_q(target.user)} LOGIN); an admin_conn= tells which",
        finding=Finding.NOT_IN_RDS_IAM,
    )


def _policy_check(decision: PolicyDecision, arn: str, source: str) -> Check:
    if decision.allowed:
        return Check(CheckName.POLICY, CheckStatus.PASS, f"{source} allow it: {decision.reason}")
    fix = f"attach a policy allowing rds-db:connect on {arn} (rdsiamkit policy build {arn})"
    if decision.outcome is Outcome.DEPENDS_ON_CONDITIONS:
        return Check(
            CheckName.POLICY,
            CheckStatus.WARN,
            f"{source}: {decision}",
            fix="make sure the request meets the statement's conditions",
            finding=Finding.POLICY_CONDITIONAL,
        )
    return Check(
        CheckName.POLICY,
        CheckStatus.FAIL,
        f"{source} do not allow rds-db:connect on {arn}: {decision.reason}",
        fix=fix,
        finding=Finding.POLICY_DENIES,
    )


def _simulation_principal(arn: str, session: Any = None) -> str:
    """IAM simulates users and roles: an assumed-role session ARN names its role.

    The session ARN drops the role's path (SSO roles live under
    ``aws-reserved/sso.amazonaws.com/``), so the role's real ARN is asked of IAM
    when ``session`` may; without that permission the path-less ARN is the guess.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "sts" or not parts[5].startswith("assumed-role/"):
        return arn
    role = parts[5].split("/")[1]
    if session is not None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            real: str = session.client("iam").get_role(RoleName=role)["Role"]["Arn"]
        except (BotoCoreError, ClientError):  # no iam:GetRole, no network: guess
            log.debug("cannot read role %s from IAM; simulating its path-less ARN", role)
        else:
            return real
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"


def _server_line(err: psycopg.Error) -> str:
    """The server's ``FATAL:`` line of a failed login, else libpq's whole message."""
    text = str(err).strip()
    _, found, fatal = text.rpartition("FATAL:")
    return ("FATAL: " + fatal.strip()) if found else text


def _is_private(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_private
    except ValueError:
        return False


def _is_local_name(host: str) -> bool:
    """localhost or a loopback / literal IP: never a name RDS signs for."""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _grant_fix(user: str) -> str:
    """The fix for a user that should log in with IAM but is not in rds_iam."""
    return f"GRANT rds_iam TO {_q(user)} (rdsiamkit switch {shlex.quote(user)} iam)"
