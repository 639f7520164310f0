"""IAM auth tokens: signed by botocore, cached per signing identity, single-flight.

A token is a SigV4 presigned URL valid for 15 minutes.  Minting one is local
(no network) but not free, and every physical connection needs one, so
:class:`TokenProvider` caches tokens keyed by *who signed them* (the access
key id), endpoint, port, user and region, and reuses each one for
``reuse_window`` seconds, measured on a monotonic clock.  When many threads
need the same missing token at once, exactly one mints it.

The cache never outlives the credentials either: a token signed with temporary
credentials stops working when they expire, so an entry is reused at most until
shortly before its credentials' expiry.

Neither boto3 nor botocore is imported until the first token is minted, and a
token needs botocore alone: credentials come from botocore's resolver chain
and botocore's SigV4 query signer signs for ``rds-db`` directly, exactly as
``generate_db_auth_token`` would, without building an RDS client.  boto3 is
imported only for a caller that asks :meth:`TokenProvider.session` for a
:class:`boto3.Session` (or passed one in).

Nothing here grows with the number of targets ever used: expired tokens are
dropped on the next mint, mint locks live only while someone holds or waits
on them, and the host-to-region memo is bounded.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from rdsiamkit import _aws
from rdsiamkit._redact import protect_botocore_logs
from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import ConfigurationError, CredentialsError

if TYPE_CHECKING:
    import boto3
    from botocore.credentials import Credentials, ReadOnlyCredentials
    from botocore.session import Session as CoreSession

__all__ = ["AsyncTokenProvider", "IssuedToken", "TokenCache", "TokenProvider"]

log = logging.getLogger("rdsiamkit.tokens")
protect_botocore_logs()

#: What botocore's ``generate_db_auth_token`` signs for (``X-Amz-Expires``).
TOKEN_LIFETIME = float(_aws.TOKEN_LIFETIME)
DEFAULT_REUSE_WINDOW = 600.0
# Stop reusing a token this long before the signing credentials expire.
_CREDENTIALS_MARGIN = 60.0
# How stale our view of "who signs now" may get before the hot path re-reads it.
_IDENTITY_RECHECK = 1.0
# How many hosts' regions a provider remembers; the oldest is forgotten first (and
# re-derived from the host name on its next mint, which costs microseconds).
_REGIONS_KEPT = 256
# Kept importable for the doctor.
_seconds_left = _aws.seconds_left


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
        # (fresh_until, n, key) per put, earliest first: what to prune next.
        self._expiry: list[tuple[float, int, TokenKey]] = []
        self._order = itertools.count()
        self._most = 0  # the most entries since the dict was last rebuilt
        # Held weakly: a lock lives while a thread holds it or waits on it, no longer.
        self._locks: weakref.WeakValueDictionary[tuple[str, int, str, str], threading.Lock] = (
            weakref.WeakValueDictionary()
        )
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
        a dead token per target behind for the life of the process.  Pruning pops
        only what has expired, earliest first, so a put costs O(log n).
        """
        if now is None:
            now = time.monotonic()
        with self._guard:
            self._prune(now)
            self._entries[key] = _Entry(token, fresh_until)
            self._most = max(self._most, len(self._entries))
            heapq.heappush(self._expiry, (fresh_until, next(self._order), key))

    def _prune(self, now: float) -> None:
        expiry, entries = self._expiry, self._entries
        while expiry and expiry[0][0] <= now:
            _, _, key = heapq.heappop(expiry)
            entry = entries.get(key)
            if entry is not None and entry.fresh_until <= now:  # not re-put since
                del entries[key]
        if self._most > 64 and len(entries) * 4 < self._most:
            # A dict never gives back its table; a copy is sized for what is left.
            # Readers without the guard keep the old dict until their lookup ends.
            self._entries = dict(entries)
            self._most = len(entries)

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
            self._entries = {}
            self._expiry.clear()
            self._most = 0

    def mint_lock(self, host: str, port: int, user: str, region: str) -> threading.Lock:
        """The lock that makes minting for one target single-flight.

        Every caller asking while another holds or waits on the lock gets that
        same lock; once nobody does, it is freed (the cache keeps it weakly), so
        targets no longer used leave no lock behind.  Keep the returned lock
        referenced while using it (``with cache.mint_lock(...):`` does).
        """
        target = (host, port, user, region)
        lock = self._locks.get(target)
        if lock is None:
            with self._guard:
                lock = self._locks.get(target)
                if lock is None:
                    lock = self._locks[target] = threading.Lock()
        return lock


class TokenProvider:
    """Mints and caches IAM auth tokens for one source of AWS credentials.

    Credentials come from ``session`` (a :class:`boto3.Session`), else the named
    ``profile``, else botocore's default chain (the one boto3 uses).  With
    ``role_arn`` the provider assumes that role (``external_id`` optional) on top
    of those credentials and refreshes it before it expires.  Each token is
    signed with one frozen read of the credentials, so key id, secret and session
    token always belong together, and is cached under that key id.

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
        self._core: CoreSession | None = None
        self._session: boto3.Session | None = None
        self._profile = profile
        self._region = region
        self._role = (role_arn, external_id, role_session_name) if role_arn else None
        self.reuse_window = reuse_window
        self.cache = cache if cache is not None else TokenCache()
        self._clock = clock
        self._setup_lock = threading.Lock()
        self._regions: dict[str, str] = {}
        self._regions_lock = threading.Lock()
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
            resolved = self._configured_region()
        if not resolved:
            raise ConfigurationError(
                f"cannot tell the AWS region of {host!r}: it is not an RDS endpoint name; "
                "pass region="
            )
        with self._regions_lock:
            if len(self._regions) >= _REGIONS_KEPT:
                del self._regions[next(iter(self._regions))]
            self._regions[host] = resolved
        return resolved

    def _configured_region(self) -> str | None:
        core = self._signing_session()
        try:
            region: str | None = core.get_config_variable("region")
        except Exception as err:  # botocore: ProfileNotFound, unreadable config
            raise CredentialsError(f"cannot set up AWS credentials: {err}") from err
        return region

    def session(self) -> boto3.Session:
        """The boto3 session that signs (created on first use; imports boto3).

        The session passed in, or one over the botocore session that signs, so
        both resolve the same credentials.
        """
        if self._base_session is not None and self._role is None:
            return self._base_session
        if self._session is None:
            core = self._signing_session()
            with self._setup_lock:
                if self._session is None:
                    try:
                        self._session = _aws.boto3_session(core)
                    except Exception as err:  # boto3: config errors
                        raise CredentialsError(f"cannot set up AWS credentials: {err}") from err
        return self._session

    def _signing_session(self) -> CoreSession:
        """The botocore session whose credentials sign (created on first use)."""
        if self._core is None:
            with self._setup_lock:
                if self._core is None:
                    try:
                        self._core = self._build_core()
                    except Exception as err:  # botocore: ProfileNotFound, config errors
                        raise CredentialsError(f"cannot set up AWS credentials: {err}") from err
        return self._core

    def _build_core(self) -> CoreSession:
        if self._base_session is not None:
            base = self._base_session._session
        else:
            base = _aws.core_session(profile=self._profile, region=self._region)
        if self._role is None:
            return base
        role_arn, external_id, session_name = self._role
        return _aws.assume_role(
            base, role_arn=role_arn, external_id=external_id, session_name=session_name
        )

    def _credentials(self) -> tuple[Credentials, ReadOnlyCredentials, str]:
        """The live credentials, one frozen read of them, and its access key id.

        The frozen read is what signs: key id, secret and session token belong together
        even if botocore refreshes the credentials meanwhile.
        """
        core = self._signing_session()  # its own CredentialsError says what is wrong
        try:
            credentials = core.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
        except Exception as err:
            raise CredentialsError(f"could not resolve AWS credentials: {err}") from err
        if credentials is None or frozen is None or not frozen.access_key:
            raise CredentialsError(
                "no AWS credentials found (environment, shared config/credentials files, "
                "container or instance role); pass session= or profile="
            )
        return credentials, frozen, frozen.access_key

    def _mint(self, host: str, port: int, user: str, region: str) -> IssuedToken:
        with self.cache.mint_lock(host, port, user, region):
            credentials, frozen, identity = self._credentials()
            now = self._clock()
            self._identity, self._identity_checked = identity, now
            key = TokenKey(identity, host, port, user, region)
            cached = self.cache.get(key, now)
            if cached is not None:
                return IssuedToken(cached, key, from_cache=True)
            try:
                token = _aws.db_auth_token(frozen, host=host, port=port, user=user, region=region)
            except Exception as err:
                raise CredentialsError(
                    f"could not sign an IAM token for {user}@{host}:{port} ({region}) "
                    f"with {identity}: {err}"
                ) from err
            self._mints += 1
            reuse = self.reuse_window
            left = _aws.seconds_left(credentials)
            if left is not None:
                reuse = max(0.0, min(reuse, left - _CREDENTIALS_MARGIN))
            self.cache.put(key, token, now + reuse, now)
            log.debug(
                "minted IAM token for %s@%s:%s (%s) signed by %s, reused for %.0fs",
                user,
                host,
                port,
                region,
                identity,
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
