"""IAM auth tokens: minted by botocore, cached per signing identity, single-flight.

A token is a SigV4 presigned URL valid for 15 minutes.  Minting one is local
(no network) but not free, and every physical connection needs one, so
:class:`TokenProvider` caches tokens keyed by *who signed them* (the access
key id), endpoint, port, user and region, and reuses each one for
``reuse_window`` seconds, measured on a monotonic clock.  When many threads
need the same missing token at once, exactly one mints it.

The cache never outlives the credentials either: a token signed with temporary
credentials stops working when they expire, so an entry is reused at most until
shortly before its credentials' expiry.

boto3 is imported on first use, not when :mod:`rdsiamkit` is imported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from rdsiamkit._redact import protect_botocore_logs
from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import ConfigurationError, CredentialsError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_rds import RDSClient

__all__ = ["AsyncTokenProvider", "IssuedToken", "TokenCache", "TokenProvider"]

log = logging.getLogger("rdsiamkit.tokens")
protect_botocore_logs()

#: What botocore's ``generate_db_auth_token`` signs for (``X-Amz-Expires``).
TOKEN_LIFETIME = 900.0
DEFAULT_REUSE_WINDOW = 600.0
# Stop reusing a token this long before the signing credentials expire.
_CREDENTIALS_MARGIN = 60.0
# How stale our view of "who signs now" may get before the hot path re-reads it.
_IDENTITY_RECHECK = 1.0


class TokenKey(NamedTuple):
    """What a token is valid for, and who signed it."""

    identity: str
    host: str
    port: int
    user: str
    region: str


@attrs.frozen
class _Entry:
    token: str = attrs.field(repr=False)
    fresh_until: float


@attrs.frozen
class IssuedToken:
    """A token and what the kit knows about it; ``repr`` never shows the token."""

    token: str = attrs.field(repr=False)
    key: TokenKey
    from_cache: bool


class TokenCache:
    """Thread-safe token store keyed by :class:`TokenKey`.

    Share one between providers to let them reuse each other's tokens safely:
    the signing identity is part of the key.
    """

    def __init__(self) -> None:
        self._entries: dict[TokenKey, _Entry] = {}
        self._locks: dict[tuple[str, int, str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: TokenKey, now: float) -> str | None:
        """The cached token for ``key`` if it may still be reused at ``now``."""
        entry = self._entries.get(key)
        if entry is not None and now < entry.fresh_until:
            return entry.token
        return None

    def put(self, key: TokenKey, token: str, fresh_until: float, now: float | None = None) -> None:
        """Store ``token`` for reuse until ``fresh_until``; forget tokens stale at ``now``.

        Rotating credentials (instance roles, SSO, assumed roles) sign with a new
        access key id every hour or so; without pruning, each rotation would leave
        a dead token per target behind for the life of the process.
        """
        if now is None:
            now = time.monotonic()
        with self._guard:
            stale = [k for k, e in self._entries.items() if e.fresh_until <= now]
            for old in stale:
                del self._entries[old]
            self._entries[key] = _Entry(token, fresh_until)

    def discard(self, key: TokenKey, token: str | None = None) -> bool:
        """Forget ``key``'s token (only if it is ``token``, when given); True if removed."""
        with self._guard:
            entry = self._entries.get(key)
            if entry is None or (token is not None and entry.token != token):
                return False
            del self._entries[key]
            return True

    def clear(self) -> None:
        """Forget every token."""
        with self._guard:
            self._entries.clear()

    def mint_lock(self, host: str, port: int, user: str, region: str) -> threading.Lock:
        """The lock that makes minting for one target single-flight."""
        target = (host, port, user, region)
        lock = self._locks.get(target)
        if lock is None:
            with self._guard:
                lock = self._locks.setdefault(target, threading.Lock())
        return lock


def _signer(token: str) -> str | None:
    """The access key id in a token's ``X-Amz-Credential``."""
    start = token.find("X-Amz-Credential=")
    if start < 0:
        return None
    start += len("X-Amz-Credential=")
    end = token.find("%2F", start)
    return token[start:end] if end > start else None


def _seconds_left(credentials: object) -> float | None:
    """Seconds until refreshable credentials expire; None for long-term keys."""
    # botocore keeps the expiry privately; read it defensively.
    expiry = getattr(credentials, "_expiry_time", None)
    if not isinstance(expiry, dt.datetime):
        return None
    return (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds()


class TokenProvider:
    """Mints and caches IAM auth tokens for one source of AWS credentials.

    Credentials come from ``session`` (a :class:`boto3.Session`), else the named
    ``profile``, else boto3's default chain.  With ``role_arn`` the provider
    assumes that role (``external_id`` optional) on top of those credentials and
    refreshes it before it expires.

    ``reuse_window`` bounds how long one token is reused (seconds, below the
    15-minute token lifetime).  ``clock`` is a monotonic clock, injectable for
    tests.
    """

    def __init__(
        self,
        *,
        session: boto3.Session | None = None,
        profile: str | None = None,
        region: str | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        role_session_name: str = "rdsiamkit",
        reuse_window: float = DEFAULT_REUSE_WINDOW,
        cache: TokenCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= reuse_window < TOKEN_LIFETIME:
            raise ConfigurationError(
                f"reuse_window must be at least 0 and below {TOKEN_LIFETIME:.0f} seconds "
                f"(the token lifetime), got {reuse_window!r}"
            )
        if session is not None and profile is not None:
            raise ConfigurationError("pass either session= or profile=, not both")
        if external_id is not None and role_arn is None:
            raise ConfigurationError("external_id= needs role_arn=")
        self._base_session = session
        self._session: boto3.Session | None = None
        self._profile = profile
        self._region = region
        self._role = (role_arn, external_id, role_session_name) if role_arn else None
        self.reuse_window = reuse_window
        self.cache = cache if cache is not None else TokenCache()
        self._clock = clock
        self._setup_lock = threading.Lock()
        self._clients: dict[str, tuple[str, RDSClient]] = {}
        self._regions: dict[str, str] = {}
        self._identity: str | None = None
        self._identity_checked = float("-inf")
        self._mints = 0

    def __repr__(self) -> str:
        source = "session" if self._base_session else f"profile={self._profile!r}"
        return (
            f"<{type(self).__name__} {source} identity={self._identity!r} "
            f"reuse_window={self.reuse_window} cached={len(self.cache)}>"
        )

    @property
    def mint_count(self) -> int:
        """How many tokens this provider has signed (cache misses)."""
        return self._mints

    @property
    def identity(self) -> str | None:
        """The access key id that signed last, once known; never a secret."""
        return self._identity

    # -- the hot path ------------------------------------------------------

    def get_token(self, host: str, port: int, user: str, *, region: str | None = None) -> str:
        """A valid token for ``user`` at ``host:port``: cached when possible."""
        return self.issue(host, port, user, region=region).token

    def issue(self, host: str, port: int, user: str, *, region: str | None = None) -> IssuedToken:
        """Like :meth:`get_token`, and say whether the token came from the cache."""
        hit = self.peek(host, port, user, region=region)
        if hit is not None:
            return hit
        return self._mint(host, port, user, self._resolve_region(host, region))

    def peek(
        self, host: str, port: int, user: str, *, region: str | None = None
    ) -> IssuedToken | None:
        """A cached token, without resolving credentials or signing; else None."""
        now = self._clock()
        identity = self._identity
        if identity is None or now - self._identity_checked > _IDENTITY_RECHECK:
            return None
        region = region or self._regions.get(host)
        if region is None:
            return None
        key = TokenKey(identity, host, port, user, region)
        token = self.cache.get(key, now)
        return None if token is None else IssuedToken(token, key, from_cache=True)

    def invalidate(self, issued: IssuedToken) -> None:
        """Stop reusing a token the server refused (no-op if already replaced)."""
        if self.cache.discard(issued.key, issued.token):
            log.debug(
                "discarded refused token for %s@%s:%s",
                issued.key.user,
                issued.key.host,
                issued.key.port,
            )

    # -- the slow path -----------------------------------------------------

    def _resolve_region(self, host: str, region: str | None) -> str:
        if region:
            return region
        known = self._regions.get(host)
        if known is not None:
            return known
        endpoint = Endpoint.try_parse(host)
        resolved = self._region or (endpoint.region if endpoint else None)
        if resolved is None:
            resolved = self.session().region_name
        if not resolved:
            raise ConfigurationError(
                f"cannot tell the AWS region of {host!r}: it is not an RDS endpoint name; "
                "pass region="
            )
        self._regions[host] = resolved
        return resolved

    def session(self) -> boto3.Session:
        """The boto3 session that signs (created on first use)."""
        if self._session is None:
            with self._setup_lock:
                if self._session is None:
                    try:
                        self._session = self._build_session()
                    except Exception as err:  # botocore: ProfileNotFound, config errors
                        raise CredentialsError(f"cannot set up AWS credentials: {err}") from err
        return self._session

    def _build_session(self) -> boto3.Session:
        import boto3  # noqa: PLC0415 (kept off `import rdsiamkit`)

        base = self._base_session or boto3.Session(
            profile_name=self._profile, region_name=self._region
        )
        if self._role is None:
            return base
        from rdsiamkit._assume_role import assume_role_session  # noqa: PLC0415

        role_arn, external_id, session_name = self._role
        return assume_role_session(
            base, role_arn=role_arn, external_id=external_id, session_name=session_name
        )

    def _credentials(self) -> tuple[Any, str]:
        session = self.session()  # its own CredentialsError says what is wrong
        try:
            credentials = session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
        except Exception as err:
            raise CredentialsError(f"could not resolve AWS credentials: {err}") from err
        if frozen is None or not frozen.access_key:
            raise CredentialsError(
                "no AWS credentials found (environment, shared config/credentials files, "
                "container or instance role); pass session= or profile="
            )
        return credentials, frozen.access_key

    def _client(self, region: str, identity: str) -> RDSClient:
        # Keyed by the identity that signs: a client keeps the credentials it was built with.
        known = self._clients.get(region)
        if known is not None and known[0] == identity:
            return known[1]
        with self._setup_lock:
            known = self._clients.get(region)
            if known is None or known[0] != identity:
                client = self.session().client("rds", region_name=region)
                known = self._clients[region] = (identity, client)
        return known[1]

    def _mint(self, host: str, port: int, user: str, region: str) -> IssuedToken:
        with self.cache.mint_lock(host, port, user, region):
            credentials, identity = self._credentials()
            now = self._clock()
            self._identity, self._identity_checked = identity, now
            key = TokenKey(identity, host, port, user, region)
            cached = self.cache.get(key, now)
            if cached is not None:
                return IssuedToken(cached, key, from_cache=True)
            try:
                token = self._client(region, identity).generate_db_auth_token(
                    DBHostname=host, Port=port, DBUsername=user, Region=region
                )
            except Exception as err:
                raise CredentialsError(
                    f"could not sign an IAM token for {user}@{host}:{port} ({region}) "
                    f"with {identity}: {err}"
                ) from err
            self._mints += 1
            signer = _signer(token) or identity
            key = key._replace(identity=signer)
            reuse = self.reuse_window
            left = _seconds_left(credentials)
            if left is not None:
                reuse = max(0.0, min(reuse, left - _CREDENTIALS_MARGIN))
            self.cache.put(key, token, now + reuse, now)
            log.debug(
                "minted IAM token for %s@%s:%s (%s) signed by %s, reused for %.0fs",
                user,
                host,
                port,
                region,
                signer,
                reuse,
            )
            return IssuedToken(token, key, from_cache=False)


class AsyncTokenProvider:
    """The asyncio face of a :class:`TokenProvider`, sharing its cache.

    Cache hits are answered on the event loop; credential resolution and signing
    run in a worker thread, one per missing token however many tasks wait for it.
    """

    def __init__(self, provider: TokenProvider | None = None) -> None:
        self.sync = provider if provider is not None else TokenProvider()
        # Per loop and target: the lock and how many tasks hold or wait for it.  Entries
        # are dropped when the last task leaves, so a finished loop is never kept alive.
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, int, str, str | None], list[Any]]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.sync!r}>"

    @property
    def mint_count(self) -> int:
        """How many tokens the underlying provider has signed."""
        return self.sync.mint_count

    async def get_token(self, host: str, port: int, user: str, *, region: str | None = None) -> str:
        """A valid token for ``user`` at ``host:port``: cached when possible."""
        return (await self.issue(host, port, user, region=region)).token

    async def issue(
        self, host: str, port: int, user: str, *, region: str | None = None
    ) -> IssuedToken:
        """Like :meth:`get_token`, and say whether the token came from the cache."""
        hit = self.sync.peek(host, port, user, region=region)
        if hit is not None:
            return hit
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        target = (host, port, user, region)
        entry = locks.setdefault(target, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                hit = self.sync.peek(host, port, user, region=region)
                if hit is not None:
                    return hit
                return await asyncio.to_thread(self.sync.issue, host, port, user, region=region)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del locks[target]

    def invalidate(self, issued: IssuedToken) -> None:
        """Stop reusing a token the server refused."""
        self.sync.invalidate(issued)
