"""Where an endpoint name leads: a global writer's current region, a custom domain's RDS name.

Two names the user may give do not say what to sign for:

* an Aurora Global Database writer endpoint (``mydb.global-HASH.global.rds.amazonaws.com``)
  names no region; it is a CNAME to the regional endpoint of the current primary
  cluster, and a token must be signed for that cluster's region, which changes on a
  switchover or failover.  :func:`primary_region` reads it from DNS first (the CNAME
  chain, from :func:`socket.gethostbyname_ex`, no new dependency), else from
  ``rds:DescribeGlobalClusters``, and remembers it briefly (:class:`TtlCache`).
  :func:`forget_region` drops a remembered region after a refused login, so the next
  attempt asks again (a switchover happened);
* a custom domain (``db.example.com``) that is a CNAME to an RDS endpoint:
  :func:`follow_cname` walks the chain and returns the RDS name to sign for and to
  verify TLS against, and the address to dial; a chain that reaches no RDS name is
  refused, naming where it ends.  The kit does this only when asked
  (``resolve_cname=True``): a spoofed CNAME could lead to another RDS endpoint whose
  certificate verifies just as well.

Name resolution goes through :func:`lookup`, which tests (and the emulator) redirect
with :func:`set_resolver` / :func:`using_resolver`.  Nothing here holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import attrs

from rdsiamkit._aws import aws_errors
from rdsiamkit.endpoints import Endpoint, validate_region
from rdsiamkit.errors import (
    AccessDeniedError,
    AwsApiError,
    ConfigurationError,
    InvalidEndpointError,
    RdsIamError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

__all__ = [
    "DEFAULT_TTL",
    "CnameTarget",
    "GlobalCluster",
    "GlobalMember",
    "Lookup",
    "PrimaryRegion",
    "Resolver",
    "TtlCache",
    "clear_caches",
    "describe_global_cluster",
    "follow_cname",
    "forget_region",
    "lookup",
    "primary_region",
    "primary_region_async",
    "set_resolver",
    "system_lookup",
    "using_resolver",
]

log = logging.getLogger("rdsiamkit.resolve")

#: Seconds a resolved region or CNAME target is remembered.  Short: a switchover
#: changes the answer, and a refused login re-resolves at once anyway.
DEFAULT_TTL = 30.0
_MAX_ENTRIES = 256
_DESCRIBE = "DescribeGlobalClusters"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


# -- name resolution -----------------------------------------------------------------------


@attrs.frozen
class Lookup:
    """What DNS said about a name: the CNAME chain from it and the addresses at its end.

    ``chain`` starts with the name asked about and ends with the canonical name
    (the same name when there is no CNAME); every name is lower-case, without a
    trailing dot.
    """

    chain: tuple[str, ...]
    addresses: tuple[str, ...]

    @property
    def canonical(self) -> str:
        """The last name of the chain: the one holding the addresses."""
        return self.chain[-1]


class Resolver(Protocol):
    """Resolves a host name; raises :class:`OSError` when it cannot."""

    def __call__(self, host: str) -> Lookup: ...


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def _chain(host: str, aliases: list[str], canonical: str) -> tuple[str, ...]:
    """``host``, the aliases in the order DNS answered them, then ``canonical``; no repeats."""
    chain: list[str] = []
    for name in map(_norm, (host, *aliases, canonical)):
        if name and name not in chain:
            chain.append(name)
    return tuple(chain)


def system_lookup(host: str) -> Lookup:
    """Ask the operating system's resolver.

    :func:`socket.gethostbyname_ex` reports every CNAME along the chain (the
    ``aliases``, in answer order); for a name with only IPv6 addresses, where it
    fails, :func:`socket.getaddrinfo` with ``AI_CANONNAME`` gives at least the
    canonical name.
    """
    try:
        canonical, aliases, addresses = socket.gethostbyname_ex(host)
    except OSError:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
        canonical = next((info[3] for info in infos if info[3]), host)
        found = dict.fromkeys(str(info[4][0]) for info in infos)
        return Lookup(_chain(host, [], canonical), tuple(found))
    return Lookup(_chain(host, aliases, canonical), tuple(addresses))


_resolver: Resolver | None = None
_resolver_lock = threading.Lock()


def set_resolver(resolver: Resolver | None) -> Resolver | None:
    """Resolve names with ``resolver`` from now on (``None``: the system's); returns the old one.

    Remembered answers are dropped, so the new resolver is asked next time.  For
    tests and the emulator; applications have no reason to call it.
    """
    global _resolver
    with _resolver_lock:
        previous, _resolver = _resolver, resolver
    clear_caches()
    return previous


@contextlib.contextmanager
def using_resolver(resolver: Resolver) -> Iterator[Resolver]:
    """Resolve names with ``resolver`` inside the block, then restore the previous one."""
    previous = set_resolver(resolver)
    try:
        yield resolver
    finally:
        set_resolver(previous)


def lookup(host: str) -> Lookup:
    """Resolve ``host`` with the current resolver; raises :class:`OSError` when it cannot."""
    resolver = _resolver or system_lookup
    return resolver(host)


# -- a small cache -------------------------------------------------------------------------


class TtlCache(Generic[K, V]):
    """Values remembered for ``ttl`` seconds on ``clock``, at most ``maxsize`` of them.

    Thread-safe; the clock is injectable so tests do not sleep.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        maxsize: int = _MAX_ENTRIES,
    ) -> None:
        if not ttl > 0 or maxsize < 1:
            raise ConfigurationError(
                f"a cache needs ttl > 0 and maxsize >= 1, got {ttl}, {maxsize}"
            )
        self.ttl = ttl
        self._clock = clock
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value for ``key`` if it is younger than the TTL, else ``None``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if self._clock() >= item[0]:
                del self._items[key]
                return None
            return item[1]

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``key`` (the oldest entry goes when full)."""
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (self._clock() + self.ttl, value)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def forget(self, key: K, *, only_if: Callable[[V], bool] | None = None) -> bool:
        """Drop ``key`` (only if its value satisfies ``only_if``); True if dropped."""
        with self._lock:
            item = self._items.get(key)
            if item is None or (only_if is not None and not only_if(item[1])):
                return False
            del self._items[key]
            return True

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# -- the global writer's region ------------------------------------------------------------


@attrs.frozen
class PrimaryRegion:
    """The region a global writer's tokens are signed for now, and how it was found."""

    region: str
    #: ``"dns"`` (the CNAME chain) or ``"api"`` (``rds:DescribeGlobalClusters``).
    via: str
    #: The primary's regional endpoint name (DNS) or cluster ARN (API).
    primary: str


@attrs.frozen
class GlobalMember:
    """One cluster of an Aurora Global Database."""

    cluster_arn: str
    region: str
    cluster_identifier: str
    is_writer: bool


@attrs.frozen
class GlobalCluster:
    """An Aurora Global Database: its members, the primary (writer) among them first."""

    identifier: str
    members: tuple[GlobalMember, ...]
    #: ``GlobalClusterResourceId`` (``cluster-...``), when AWS gave it.
    resource_id: str | None = None

    @property
    def primary(self) -> GlobalMember | None:
        """The writer cluster; ``None`` while a failover has none."""
        return next((member for member in self.members if member.is_writer), None)


_REGIONS: TtlCache[str, PrimaryRegion] = TtlCache()


def clear_caches() -> None:
    """Forget every remembered region and CNAME target."""
    _REGIONS.clear()
    _CNAMES.clear()


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 7 or parts[0] != "arn":
        raise AwsApiError(f"{_DESCRIBE} returned a member ARN the kit cannot read: {arn!r}")
    return validate_region(parts[3])


def describe_global_cluster(client: RDSClient, identifier: str) -> GlobalCluster:
    """``rds:DescribeGlobalClusters`` for ``identifier``: its members and which one writes.

    :raises ResourceNotFoundError: no global cluster by that name.
    :raises AccessDeniedError: the caller lacks ``rds:DescribeGlobalClusters``.
    """
    with aws_errors(_DESCRIBE, identifier):
        response = client.describe_global_clusters(GlobalClusterIdentifier=identifier)
    for cluster in response.get("GlobalClusters", []):
        if cluster.get("GlobalClusterIdentifier") != identifier:
            continue  # some emulators ignore the filter
        members = []
        for member in cluster.get("GlobalClusterMembers", []):
            arn = member.get("DBClusterArn", "")
            members.append(
                GlobalMember(
                    cluster_arn=arn,
                    region=_arn_region(arn),
                    cluster_identifier=arn.rsplit(":", 1)[-1],
                    is_writer=bool(member.get("IsWriter")),
                )
            )
        members.sort(key=lambda m: (not m.is_writer, m.region, m.cluster_identifier))
        return GlobalCluster(identifier, tuple(members), cluster.get("GlobalClusterResourceId"))
    raise ResourceNotFoundError(
        f"{_DESCRIBE}: no global database named {identifier!r}", operation=_DESCRIBE
    )


def _region_from_dns(endpoint: Endpoint) -> PrimaryRegion | None:
    """The first regional RDS name along the global writer's CNAME chain, if DNS answers."""
    try:
        answer = lookup(endpoint.host)
    except OSError as err:
        log.info("DNS gave no answer for global writer %s: %s", endpoint.host, err)
        return None
    for name in answer.chain[1:]:
        found = Endpoint.try_parse(name)
        if found is not None and found.region is not None:
            return PrimaryRegion(found.region, "dns", found.host)
    log.info(
        "the CNAME chain of global writer %s (%s) names no regional RDS endpoint",
        endpoint.host,
        " -> ".join(answer.chain),
    )
    return None


def _region_from_api(
    endpoint: Endpoint, client_factory: Callable[[], RDSClient] | None
) -> PrimaryRegion:
    fallback = (
        f"pass region= (the primary cluster's region) to connect to {endpoint.host} without "
        "asking AWS"
    )
    if client_factory is None:
        raise ConfigurationError(
            f"cannot find the primary region of global writer {endpoint.host}: DNS did not "
            f"lead to a regional endpoint and no AWS client is available; {fallback}"
        )
    try:
        cluster = describe_global_cluster(client_factory(), endpoint.identifier)
    except AccessDeniedError as err:
        raise AccessDeniedError(
            f"{err}; finding the primary region of global writer {endpoint.host} when DNS "
            f"does not tell needs rds:{_DESCRIBE} on arn:{endpoint.partition}:rds::<account>:"
            f"global-cluster:{endpoint.identifier}, or {fallback}",
            code=err.code,
            operation=err.operation,
        ) from err
    except AwsApiError:
        raise
    except RdsIamError as err:
        raise ConfigurationError(
            f"cannot find the primary region of global writer {endpoint.host}: {err}; {fallback}"
        ) from err
    primary = cluster.primary
    if primary is None:
        raise AwsApiError(
            f"global database {endpoint.identifier!r} has no writer cluster right now (a "
            f"failover in progress?); retry, or {fallback}",
            operation=_DESCRIBE,
        )
    return PrimaryRegion(primary.region, "api", primary.cluster_arn)


def primary_region(
    endpoint: Endpoint,
    *,
    client_factory: Callable[[], RDSClient] | None = None,
    cache: TtlCache[str, PrimaryRegion] | None = None,
) -> PrimaryRegion:
    """The region of ``endpoint``'s current primary cluster (a global writer endpoint).

    Remembered for the cache's TTL; DNS first, then ``rds:DescribeGlobalClusters``
    through a client from ``client_factory`` (called only when DNS does not tell).

    :raises ConfigurationError: ``endpoint`` is not a global writer, or neither
        way found the region.
    :raises AccessDeniedError: DNS did not tell and the caller lacks the permission.
    """
    if not endpoint.is_global:
        raise ConfigurationError(f"{endpoint.host} is not a global writer endpoint")
    cache = _REGIONS if cache is None else cache
    found = cache.get(endpoint.host)
    if found is not None:
        return found
    found = _region_from_dns(endpoint) or _region_from_api(endpoint, client_factory)
    cache.put(endpoint.host, found)
    log.info(
        "global writer %s: primary in %s (via %s: %s)",
        endpoint.host,
        found.region,
        found.via,
        found.primary,
    )
    return found


async def primary_region_async(
    endpoint: Endpoint,
    *,
    client_factory: Callable[[], RDSClient] | None = None,
    cache: TtlCache[str, PrimaryRegion] | None = None,
) -> PrimaryRegion:
    """:func:`primary_region` for the event loop: a remembered answer at once, else a thread."""
    found = (_REGIONS if cache is None else cache).get(endpoint.host)
    if found is not None:
        return found
    return await asyncio.to_thread(
        primary_region, endpoint, client_factory=client_factory, cache=cache
    )


def forget_region(
    host: str, region: str | None = None, *, cache: TtlCache[str, PrimaryRegion] | None = None
) -> bool:
    """Drop the remembered region of global writer ``host`` (only if it is ``region``).

    Called after a login signed for ``region`` was refused: if a switchover moved the
    primary, the next :func:`primary_region` finds the new one.  Giving ``region``
    keeps concurrent callers from dropping an answer another one just refreshed.
    """
    cache = _REGIONS if cache is None else cache
    return cache.forget(
        _norm(host), only_if=None if region is None else (lambda found: found.region == region)
    )


# -- custom domains ------------------------------------------------------------------------


@attrs.frozen
class CnameTarget:
    """Where a custom domain leads: the RDS name to sign and verify for, the address to dial."""

    #: The name the user gave.
    host: str
    #: The first RDS endpoint along the CNAME chain.
    endpoint: Endpoint
    #: An address the chain's end resolved to (for ``hostaddr``).
    address: str
    chain: tuple[str, ...]


_CNAMES: TtlCache[str, CnameTarget] = TtlCache()


def _not_rds(host: str, answer: Lookup) -> InvalidEndpointError:
    advice = (
        "pass the RDS endpoint name as host= (or keep this host and pass "
        "token_host=<RDS endpoint name> with hostaddr=)"
    )
    if len(answer.chain) == 1:
        return InvalidEndpointError(
            f"{host!r} is not a CNAME to an RDS endpoint: it resolves straight to "
            f"{', '.join(answer.addresses) or 'no address'}; {advice}"
        )
    return InvalidEndpointError(
        f"{host!r} is a CNAME to {answer.canonical!r}, which is not an RDS endpoint "
        f"(chain: {' -> '.join(answer.chain)}); refusing to sign a token for it: {advice}"
    )


def follow_cname(host: str, *, cache: TtlCache[str, CnameTarget] | None = None) -> CnameTarget:
    """Follow ``host``'s CNAME chain to the first RDS endpoint name on it.

    The RDS name is what the token is signed for and what TLS verifies; the
    address is what the connection dials.  Remembered for the cache's TTL.

    :raises InvalidEndpointError: the chain reaches no RDS endpoint (the message
        names where it ends).
    :raises ConfigurationError: ``host`` does not resolve.
    """
    name = _norm(host)
    cache = _CNAMES if cache is None else cache
    found = cache.get(name)
    if found is not None:
        return found
    try:
        answer = lookup(name)
    except OSError as err:
        raise ConfigurationError(f"cannot resolve {host!r} to follow its CNAME: {err}") from err
    endpoint = next(
        (ep for ep in map(Endpoint.try_parse, answer.chain[1:]) if ep is not None), None
    )
    if endpoint is None:
        raise _not_rds(host, answer)
    if not answer.addresses:
        raise ConfigurationError(f"{host!r} leads to {endpoint.host} but to no address")
    found = CnameTarget(name, endpoint, answer.addresses[0], answer.chain)
    cache.put(name, found)
    log.info("%s is a CNAME to RDS endpoint %s (%s)", name, endpoint.host, found.address)
    return found
