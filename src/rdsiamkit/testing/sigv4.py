"""Verify RDS IAM auth tokens, written from the AWS SigV4 presigning spec.

An RDS IAM auth token is a SigV4 *presigned URL* without its scheme::

    HOST:PORT/?Action=connect&DBUser=U&X-Amz-Algorithm=AWS4-HMAC-SHA256
        &X-Amz-Credential=KEY/YYYYMMDD/REGION/rds-db/aws4_request&X-Amz-Date=...
        &X-Amz-Expires=900&X-Amz-SignedHeaders=host[&X-Amz-Security-Token=...]
        &X-Amz-Signature=HEX

The verifier recomputes the signature itself (botocore is only used by the
tests, to *make* tokens), so a token botocore accepts but AWS would refuse is
caught here too.  Every refusal carries an :class:`AuthFailureReason`, which
the emulator logs but never shows the client, exactly like RDS.
"""

from __future__ import annotations

import calendar
import enum
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Collection, Mapping
from urllib.parse import quote, unquote

import attrs

__all__ = [
    "ALGORITHM",
    "MAX_EXPIRES",
    "PAYLOAD_HASH",
    "SERVICE",
    "AuthFailureReason",
    "ParsedToken",
    "SigningSecret",
    "TokenFormatError",
    "Verdict",
    "canonical_request",
    "parse_token",
    "signing_key",
    "string_to_sign",
    "verify_token",
]

SERVICE = "rds-db"
ALGORITHM = "AWS4-HMAC-SHA256"
#: botocore presigns RDS tokens for 900 s; RDS accepts no longer lifetime.
MAX_EXPIRES = 900
#: botocore signs the (empty) payload of the presigned ``GET`` over https:
#: ``payload_signing_enabled`` is on and the body was moved into the query,
#: so the canonical request ends with SHA-256 of the empty string, not
#: ``UNSIGNED-PAYLOAD`` as S3 presigned URLs do.
PAYLOAD_HASH = hashlib.sha256(b"").hexdigest()
#: PostgreSQL caps an authentication packet at 65535 bytes; nothing longer can arrive.
MAX_TOKEN_LENGTH = 65535

_HTTPS_PORT = 443
_REQUIRED = (
    "Action",
    "DBUser",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
_KNOWN_KEYS = frozenset({*_REQUIRED, "X-Amz-Security-Token"})
_COMPONENT_RE = re.compile(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-Fa-f]{2})*")
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_CREDENTIAL_RE = re.compile(r"[A-Z0-9]{16,128}/[0-9]{8}/[a-z0-9-]+/[a-z0-9-]+/[a-z0-9_]+")
_EXPIRES_RE = re.compile(r"[0-9]{1,6}")


class AuthFailureReason(str, enum.Enum):
    """Why the emulator refused an IAM login; logged, never sent to the client."""

    INVALID_SIGNATURE = "invalid_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    USER_MISMATCH = "user_mismatch"
    ENDPOINT_MISMATCH = "endpoint_mismatch"
    NOT_AUTHORIZED = "not_authorized"
    UNKNOWN_KEY = "unknown_key"
    INVALID_SESSION_TOKEN = "invalid_session_token"  # noqa: S105 - a reason, not a secret
    MALFORMED = "malformed"
    WRONG_REGION = "wrong_region"
    WRONG_SERVICE = "wrong_service"
    RATE_LIMITED = "rate_limited"
    #: Accepted too late, or the answer could not be delivered: the client was refused.
    TIMEOUT = "timeout"


class TokenFormatError(ValueError):
    """The text is not a presigned ``connect`` URL; the message says what is off, not the text."""


@attrs.frozen
class SigningSecret:
    """What the verifier must know about an access key: its secret and session token."""

    secret_access_key: str = attrs.field(repr=False)
    session_token: str | None = attrs.field(repr=False, default=None)


@attrs.frozen
class ParsedToken:
    """The parts of a token; :attr:`params` holds the decoded query, signature included."""

    host: str
    port: int
    params: Mapping[str, str] = attrs.field(repr=False)

    @property
    def access_key_id(self) -> str:
        """The signing key id from the credential scope."""
        return self.params["X-Amz-Credential"].split("/", 1)[0]

    @property
    def scope(self) -> tuple[str, str, str, str]:
        """``(date, region, service, terminator)`` of the credential scope."""
        _, date, region, service, terminator = self.params["X-Amz-Credential"].split("/")
        return date, region, service, terminator

    @property
    def signed_at(self) -> float:
        """``X-Amz-Date`` as a POSIX timestamp."""
        return float(calendar.timegm(time.strptime(self.params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")))

    @property
    def expires(self) -> int:
        """``X-Amz-Expires`` in seconds."""
        return int(self.params["X-Amz-Expires"])

    @property
    def host_header(self) -> str:
        """The canonical ``host`` header, as botocore derives it from the URL.

        Lower-case, and without the port when it is https's default (443).
        """
        return self.host if self.port == _HTTPS_PORT else f"{self.host}:{self.port}"


@attrs.frozen
class Verdict:
    """The outcome of checking one token; :attr:`detail` is safe to log (no secrets)."""

    outcome: AuthFailureReason | None
    detail: str
    access_key_id: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def ok(self) -> bool:
        """True when the token is valid for the login."""
        return self.outcome is None


def _decode(component: str, what: str) -> str:
    if not _COMPONENT_RE.fullmatch(component):
        raise TokenFormatError(f"{what} is not RFC 3986 percent-encoded")
    try:
        return unquote(component, errors="strict")
    except UnicodeDecodeError as err:
        raise TokenFormatError(f"{what} is not UTF-8 once decoded") from err


def _encode(text: str) -> str:
    """RFC 3986 encoding as SigV4 wants it: everything but ``A-Za-z0-9-_.~``."""
    return quote(text, safe="-_.~")


def _split_authority(authority: str) -> tuple[str, int]:
    host, colon, port_text = authority.rpartition(":")
    if not colon:
        host, port_text = authority, str(_HTTPS_PORT)
    if not _HOST_RE.fullmatch(host) or len(host) > 253:
        raise TokenFormatError("host part is not a DNS name")
    if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
        raise TokenFormatError("port part is not a TCP port")
    return host.lower(), int(port_text)


def _split_query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in query.split("&"):
        raw_key, eq, raw_value = pair.partition("=")
        if not eq or not raw_key:
            raise TokenFormatError("query has an element that is not key=value")
        key = _decode(raw_key, "a query key")
        # Only SigV4's own names are shown: a password sent instead of a token could
        # look like a query, and the audit log must not echo pieces of it.
        shown = key if key in _KNOWN_KEYS else "a query key"
        if key in params:
            raise TokenFormatError(f"query repeats {shown}")
        params[key] = _decode(raw_value, f"the value of {shown}")
    missing = [name for name in _REQUIRED if name not in params]
    if missing:
        raise TokenFormatError(f"query lacks {', '.join(missing)}")
    return params


_FIELD_SHAPES = (
    ("X-Amz-Signature", _SIGNATURE_RE, "64 lower-case hex digits"),
    ("X-Amz-Date", _DATE_RE, "YYYYMMDDTHHMMSSZ"),
    ("X-Amz-Expires", _EXPIRES_RE, "a number of seconds"),
    ("X-Amz-Credential", _CREDENTIAL_RE, "KEY/DATE/REGION/SERVICE/TERMINATOR"),
)


def parse_token(token: str) -> ParsedToken:
    """Split ``token`` into host, port and decoded query, checking its shape.

    :raises TokenFormatError: the token is not a well-formed presigned ``connect`` URL.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenFormatError(f"token longer than {MAX_TOKEN_LENGTH} characters")
    authority, sep, query = token.partition("/?")
    if not sep:
        raise TokenFormatError("no '/?' after HOST:PORT")
    host, port = _split_authority(authority)
    params = _split_query(query)
    for name, shape, meaning in _FIELD_SHAPES:
        if not shape.fullmatch(params[name]):
            raise TokenFormatError(f"{name} is not {meaning}")
    parsed = ParsedToken(host=host, port=port, params=params)
    try:
        parsed.signed_at  # noqa: B018 - validates the calendar date (e.g. no 31 February)
    except ValueError as err:
        raise TokenFormatError("X-Amz-Date is not a calendar date") from err
    return parsed


def canonical_request(parsed: ParsedToken) -> str:
    """The SigV4 canonical request botocore signed for ``parsed``."""
    pairs = sorted(
        (_encode(key), _encode(value))
        for key, value in parsed.params.items()
        if key != "X-Amz-Signature"
    )
    query = "&".join(f"{key}={value}" for key, value in pairs)
    signed_headers = parsed.params["X-Amz-SignedHeaders"]
    return "\n".join(
        ["GET", "/", query, f"host:{parsed.host_header}", "", signed_headers, PAYLOAD_HASH]
    )


def string_to_sign(parsed: ParsedToken) -> str:
    """The SigV4 string to sign: algorithm, date, scope and the canonical request's hash."""
    date, region, service, terminator = parsed.scope
    digest = hashlib.sha256(canonical_request(parsed).encode()).hexdigest()
    scope = f"{date}/{region}/{service}/{terminator}"
    return "\n".join([ALGORITHM, parsed.params["X-Amz-Date"], scope, digest])


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key (HMAC chain over date, region, service)."""
    key = ("AWS4" + secret_access_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _same(left: str | None, right: str | None) -> bool:
    if left is None or right is None:
        return left is right
    return hmac.compare_digest(left.encode(), right.encode())


_Problem = tuple[AuthFailureReason, str]


def _claim_problem(
    parsed: ParsedToken,
    *,
    user: str,
    region: str,
    hosts: Collection[str],
    port: int,
    regions: Mapping[str, str] | None = None,
) -> _Problem | None:
    """What is wrong with what the token claims (no secret needed to tell)."""
    params = parsed.params
    if regions:
        region = regions.get(parsed.host, region)
    date, token_region, service, terminator = parsed.scope
    malformed = AuthFailureReason.MALFORMED
    checks = (
        (params["Action"] == "connect", malformed, "Action is not connect"),
        (params["X-Amz-Algorithm"] == ALGORITHM, malformed, f"X-Amz-Algorithm is not {ALGORITHM}"),
        (params["X-Amz-SignedHeaders"] == "host", malformed, "X-Amz-SignedHeaders is not host"),
        (
            terminator == "aws4_request" and date == params["X-Amz-Date"][:8],
            malformed,
            "credential scope does not match X-Amz-Date",
        ),
        (0 < parsed.expires <= MAX_EXPIRES, malformed, f"X-Amz-Expires not in 1..{MAX_EXPIRES}"),
        (
            service == SERVICE,
            AuthFailureReason.WRONG_SERVICE,
            f"signed for service {service!r}",
        ),
        (
            token_region == region,
            AuthFailureReason.WRONG_REGION,
            f"signed for region {token_region!r}",
        ),
        (
            params["DBUser"] == user,
            AuthFailureReason.USER_MISMATCH,
            f"signed for DBUser {params['DBUser']!r}",
        ),
        (
            parsed.port == port and parsed.host in {h.lower() for h in hosts},
            AuthFailureReason.ENDPOINT_MISMATCH,
            f"signed for {parsed.host}:{parsed.port}, not an endpoint of this server",
        ),
    )
    return next(((reason, detail) for ok, reason, detail in checks if not ok), None)


def _credential_problem(
    parsed: ParsedToken, lookup: Callable[[str], SigningSecret | None]
) -> _Problem | None:
    """Is the key known, its session token right, and the signature its own?"""
    secret = lookup(parsed.access_key_id)
    if secret is None:
        return AuthFailureReason.UNKNOWN_KEY, "access key id is not registered"
    if not _same(parsed.params.get("X-Amz-Security-Token"), secret.session_token):
        return (
            AuthFailureReason.INVALID_SESSION_TOKEN,
            "X-Amz-Security-Token does not match the key's session token",
        )
    date, region, service, _ = parsed.scope
    expected = hmac.new(
        signing_key(secret.secret_access_key, date, region, service),
        string_to_sign(parsed).encode(),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, parsed.params["X-Amz-Signature"]):
        return AuthFailureReason.INVALID_SIGNATURE, "signature does not match"
    return None


def _clock_problem(
    parsed: ParsedToken, *, now: float, max_token_age: float, max_clock_skew: float
) -> _Problem | None:
    """Is ``now`` inside the token's validity window?"""
    if parsed.signed_at > now + max_clock_skew:
        return AuthFailureReason.NOT_YET_VALID, "X-Amz-Date is in the future"
    lifetime = min(float(parsed.expires), max_token_age)
    if now > parsed.signed_at + lifetime:
        return AuthFailureReason.EXPIRED, f"older than {lifetime:g} s"
    return None


def verify_token(
    token: str,
    *,
    user: str,
    region: str,
    hosts: Collection[str],
    port: int,
    lookup: Callable[[str], SigningSecret | None],
    now: float | None = None,
    max_token_age: float = float(MAX_EXPIRES),
    max_clock_skew: float = 300.0,
    regions: Mapping[str, str] | None = None,
) -> Verdict:
    """Decide whether ``token`` lets ``user`` log in to ``hosts`` on ``port`` in ``region``.

    ``regions`` maps a (lower-case) host to the region its tokens must be signed
    for instead of ``region``: a global writer's is its current primary's.

    ``lookup`` maps an access key id to its secret (``None``: unknown key).
    A token is valid from ``X-Amz-Date - max_clock_skew`` until
    ``X-Amz-Date + min(X-Amz-Expires, max_token_age)``.  Checks run from the
    token's claims to its signature, then the clock, so each refusal names
    the first thing wrong.
    """
    try:
        parsed = parse_token(token)
    except TokenFormatError as err:
        return Verdict(AuthFailureReason.MALFORMED, str(err))
    problem = (
        _claim_problem(parsed, user=user, region=region, hosts=hosts, port=port, regions=regions)
        or _credential_problem(parsed, lookup)
        or _clock_problem(
            parsed,
            now=time.time() if now is None else now,
            max_token_age=max_token_age,
            max_clock_skew=max_clock_skew,
        )
    )
    reason, detail = problem or (None, "valid")
    return Verdict(reason, detail, parsed.access_key_id, parsed.host, parsed.port)
