"""Global-writer region and custom-domain resolution: DNS chains, the API path, the cache."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from rdsiamkit import _resolve
from rdsiamkit._resolve import (
    Lookup,
    PrimaryRegion,
    TtlCache,
    describe_global_cluster,
    follow_cname,
    forget_region,
    primary_region,
    primary_region_async,
    set_resolver,
    system_lookup,
    using_resolver,
)
from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import (
    AccessDeniedError,
    AwsApiError,
    ConfigurationError,
    InvalidEndpointError,
    ResourceNotFoundError,
)

HASH = "c1a2b3c4d5e6"
GLOBAL = f"mydb.global-{HASH}.global.rds.amazonaws.com"
EAST = f"east.cluster-{HASH}.us-east-1.rds.amazonaws.com"
WEST = f"west.cluster-{HASH}.us-west-2.rds.amazonaws.com"
EAST_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:east"
WEST_ARN = "arn:aws:rds:us-west-2:123456789012:cluster:west"


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TableResolver:
    """A resolver answering from a dict of name -> Lookup, counting questions."""

    def __init__(self, table: dict[str, Lookup]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str) -> Lookup:
        self.asked.append(host)
        try:
            return self.table[host]
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """Every test starts with the system resolver and empty caches, and leaves them so."""
    set_resolver(None)
    yield
    set_resolver(None)


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and no config files: nothing can reach AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def chain_to(primary: str) -> TableResolver:
    """DNS where the global writer is a CNAME to ``primary``, itself a CNAME to an EC2 name."""
    return TableResolver(
        {GLOBAL: Lookup((GLOBAL, primary, "ec2-3-4-5-6.compute-1.amazonaws.com"), ("3.4.5.6",))}
    )


# -- system resolver ----------------------------------------------------------------------


def test_system_lookup_keeps_the_cname_chain_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """gethostbyname_ex's aliases become the chain, the asked name first, canonical last."""

    def fake(host: str) -> tuple[str, list[str], list[str]]:
        return ("ec2-1-2-3-4.compute-1.amazonaws.com", [host, EAST.upper() + "."], ["1.2.3.4"])

    monkeypatch.setattr(socket, "gethostbyname_ex", fake)
    answer = system_lookup(GLOBAL)
    assert answer.chain == (GLOBAL, EAST, "ec2-1-2-3-4.compute-1.amazonaws.com")
    assert (answer.canonical, answer.addresses) == (answer.chain[-1], ("1.2.3.4",))


def test_system_lookup_falls_back_to_getaddrinfo_canonname(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name gethostbyname_ex cannot answer (IPv6 only) still yields its canonical name."""

    def no_v4(host: str) -> Any:
        raise socket.gaierror(socket.EAI_NODATA, "No address associated with hostname")

    def v6(host: str, port: Any, **kwargs: Any) -> list[Any]:
        assert kwargs["flags"] & socket.AI_CANONNAME
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, WEST, ("2001:db8::1", 0, 0, 0))]

    monkeypatch.setattr(socket, "gethostbyname_ex", no_v4)
    monkeypatch.setattr(socket, "getaddrinfo", v6)
    assert system_lookup(GLOBAL) == Lookup((GLOBAL, WEST), ("2001:db8::1",))


def test_system_lookup_answers_localhost() -> None:
    """The real resolver answers localhost with no CNAME and a loopback address."""
    answer = system_lookup("localhost")
    assert answer.chain[0] == "localhost"
    assert any(address.startswith("127.") or address == "::1" for address in answer.addresses)


def test_using_resolver_restores_the_previous_one() -> None:
    """The override applies inside the block only, and clears remembered answers both ways."""
    resolver = chain_to(EAST)
    with using_resolver(resolver):
        assert _resolve.lookup(GLOBAL).chain[1] == EAST
        primary_region(Endpoint.parse(GLOBAL))
        assert len(_resolve._REGIONS) == 1
    assert len(_resolve._REGIONS) == 0
    assert _resolve._resolver is None


# -- the cache ------------------------------------------------------------------------------


def test_ttl_cache_expires_and_evicts_oldest() -> None:
    """Entries vanish after the TTL on the injected clock; the oldest goes when full."""
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(ttl=10, clock=clock, maxsize=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)
    clock.now += 9.9
    assert cache.get("b") == 2
    clock.now += 0.1
    assert cache.get("b") is None and len(cache) == 1


def test_ttl_cache_forget_only_if() -> None:
    """forget(only_if=...) drops an entry only when its value matches."""
    cache: TtlCache[str, int] = TtlCache(clock=FakeClock())
    cache.put("a", 1)
    assert not cache.forget("a", only_if=lambda v: v == 2)
    assert cache.forget("a", only_if=lambda v: v == 1)
    assert not cache.forget("a")


@pytest.mark.parametrize(("ttl", "maxsize"), [(0, 1), (-1, 1), (1, 0)])
def test_ttl_cache_refuses_nonsense(ttl: float, maxsize: int) -> None:
    """A cache that could hold nothing is a configuration error."""
    with pytest.raises(ConfigurationError, match="ttl > 0"):
        TtlCache(ttl=ttl, maxsize=maxsize)


# -- the global writer's region: DNS ----------------------------------------------------------


def test_primary_region_from_dns_chain() -> None:
    """The first regional RDS name along the chain gives the region; the EC2 tail is ignored."""
    set_resolver(chain_to(WEST))
    found = primary_region(Endpoint.parse(GLOBAL))
    assert found == PrimaryRegion("us-west-2", "dns", WEST)


def test_primary_region_is_cached_until_ttl_then_resolved_again() -> None:
    """Within the TTL DNS is asked once; after it a switchover shows."""
    clock = FakeClock()
    cache: TtlCache[str, PrimaryRegion] = TtlCache(ttl=30, clock=clock)
    resolver = chain_to(EAST)
    set_resolver(resolver)
    endpoint = Endpoint.parse(GLOBAL)
    for _ in range(5):
        assert primary_region(endpoint, cache=cache).region == "us-east-1"
    assert resolver.asked == [GLOBAL]
    resolver.table[GLOBAL] = chain_to(WEST).table[GLOBAL]
    assert primary_region(endpoint, cache=cache).region == "us-east-1"
    clock.now += 30
    assert primary_region(endpoint, cache=cache).region == "us-west-2"
    assert len(resolver.asked) == 2


def test_forget_region_drops_only_the_refused_region() -> None:
    """After a refusal for the cached region the next call re-resolves; a stale forget does not."""
    resolver = chain_to(EAST)
    set_resolver(resolver)
    endpoint = Endpoint.parse(GLOBAL)
    primary_region(endpoint)
    resolver.table[GLOBAL] = chain_to(WEST).table[GLOBAL]
    assert not forget_region(GLOBAL, "us-west-2")  # someone else's refusal, for another region
    assert primary_region(endpoint).region == "us-east-1"
    assert forget_region(GLOBAL.upper() + ".", "us-east-1")
    assert primary_region(endpoint).region == "us-west-2"
    assert len(resolver.asked) == 2


def test_primary_region_async_matches_sync() -> None:
    """The event-loop variant gives the same answer and shares the cache."""
    resolver = chain_to(WEST)
    set_resolver(resolver)
    endpoint = Endpoint.parse(GLOBAL)
    first = asyncio.run(primary_region_async(endpoint))
    assert first == primary_region(endpoint) == asyncio.run(primary_region_async(endpoint))
    assert resolver.asked == [GLOBAL]


def test_primary_region_refuses_a_regional_endpoint() -> None:
    """Only a global writer has a primary region to find."""
    with pytest.raises(ConfigurationError, match="not a global writer"):
        primary_region(Endpoint.parse(EAST))


def test_no_dns_and_no_client_says_pass_region() -> None:
    """Without a DNS answer or an AWS client the error names the host and region=."""
    set_resolver(TableResolver({}))
    with pytest.raises(ConfigurationError, match="pass region=") as info:
        primary_region(Endpoint.parse(GLOBAL))
    assert GLOBAL in str(info.value)


# -- the global writer's region: rds:DescribeGlobalClusters --------------------------------


def _moto_global(client: Any, west: Any) -> None:
    client.create_global_cluster(GlobalClusterIdentifier="mydb", Engine="aurora-postgresql")
    client.create_db_cluster(
        DBClusterIdentifier="east",
        Engine="aurora-postgresql",
        MasterUsername="postgres",
        MasterUserPassword="password123",
        GlobalClusterIdentifier="mydb",
    )
    west.create_db_cluster(
        DBClusterIdentifier="west", Engine="aurora-postgresql", GlobalClusterIdentifier="mydb"
    )


@pytest.mark.usefixtures("fake_aws_env")
def test_primary_region_from_api_when_dns_does_not_tell() -> None:
    """A chain naming no regional endpoint falls back to DescribeGlobalClusters (moto)."""
    set_resolver(TableResolver({GLOBAL: Lookup((GLOBAL, "10-0-0-1.internal"), ("10.0.0.1",))}))
    with mock_aws():
        east = boto3.client("rds", region_name="us-east-1")
        _moto_global(east, boto3.client("rds", region_name="us-west-2"))
        calls: list[int] = []

        def factory() -> Any:
            calls.append(1)
            return east

        found = primary_region(Endpoint.parse(GLOBAL), client_factory=factory)
        assert found == PrimaryRegion("us-east-1", "api", EAST_ARN)
        primary_region(Endpoint.parse(GLOBAL), client_factory=factory)
        assert calls == [1]
        cluster = describe_global_cluster(east, "mydb")
    assert [(m.region, m.is_writer) for m in cluster.members] == [
        ("us-east-1", True),
        ("us-west-2", False),
    ]
    assert cluster.primary is not None and cluster.primary.cluster_identifier == "east"
    assert cluster.resource_id is not None and cluster.resource_id.startswith("cluster-")


def _stubbed(response: dict[str, Any] | None = None, error: str | None = None) -> Any:
    client = boto3.client(
        "rds", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    params = {"GlobalClusterIdentifier": "mydb"}
    if error is not None:
        stubber.add_client_error(
            "describe_global_clusters", error, "not authorized", expected_params=params
        )
    else:
        stubber.add_response("describe_global_clusters", response or {}, params)
    stubber.activate()
    return client


def test_api_access_denied_names_the_permission() -> None:
    """Without rds:DescribeGlobalClusters the error names it, the global cluster, and region=."""
    set_resolver(TableResolver({}))
    client = _stubbed(error="AccessDenied")
    with pytest.raises(AccessDeniedError) as info:
        primary_region(Endpoint.parse(GLOBAL), client_factory=lambda: client)
    message = str(info.value)
    assert "rds:DescribeGlobalClusters" in message
    assert "global-cluster:mydb" in message and "pass region=" in message
    assert info.value.code == "AccessDenied"


def test_api_after_a_switchover_names_the_new_writer() -> None:
    """The member marked IsWriter decides the region, whatever the order AWS lists them."""
    response = {
        "GlobalClusters": [
            {"GlobalClusterIdentifier": "other", "GlobalClusterMembers": []},
            {
                "GlobalClusterIdentifier": "mydb",
                "GlobalClusterMembers": [
                    {"DBClusterArn": EAST_ARN, "IsWriter": False},
                    {"DBClusterArn": WEST_ARN, "IsWriter": True},
                ],
            },
        ]
    }
    set_resolver(TableResolver({}))
    client = _stubbed(response)
    found = primary_region(Endpoint.parse(GLOBAL), client_factory=lambda: client)
    assert found == PrimaryRegion("us-west-2", "api", WEST_ARN)


def test_api_without_a_writer_or_cluster_is_an_error() -> None:
    """Mid-failover (no writer) and an unknown global cluster are reported, not guessed."""
    set_resolver(TableResolver({}))
    no_writer = {
        "GlobalClusters": [
            {
                "GlobalClusterIdentifier": "mydb",
                "GlobalClusterMembers": [{"DBClusterArn": EAST_ARN, "IsWriter": False}],
            }
        ]
    }
    client = _stubbed(no_writer)
    with pytest.raises(AwsApiError, match="no writer cluster right now"):
        primary_region(Endpoint.parse(GLOBAL), client_factory=lambda: client)
    client = _stubbed({"GlobalClusters": []})
    with pytest.raises(ResourceNotFoundError, match="no global database named 'mydb'"):
        primary_region(Endpoint.parse(GLOBAL), client_factory=lambda: client)


# -- custom domains -----------------------------------------------------------------------


def test_follow_cname_to_an_rds_endpoint() -> None:
    """The first RDS name on the chain is the target; the address is what the chain's end has."""
    resolver = TableResolver(
        {
            "db.example.com": Lookup(
                (
                    "db.example.com",
                    "db.int.example.com",
                    EAST,
                    "ec2-3-4-5-6.compute-1.amazonaws.com",
                ),
                ("3.4.5.6", "3.4.5.7"),
            )
        }
    )
    set_resolver(resolver)
    target = follow_cname("DB.example.com.")
    assert (target.host, target.endpoint.host, target.address) == (
        "db.example.com",
        EAST,
        "3.4.5.6",
    )
    assert follow_cname("db.example.com") is target
    assert resolver.asked == ["db.example.com"]


def test_follow_cname_refuses_a_non_rds_target_naming_it() -> None:
    """A chain ending at an EC2 name is refused; the message names it and the way out."""
    set_resolver(
        TableResolver(
            {
                "db.example.com": Lookup(
                    ("db.example.com", "ec2-3-4-5-6.compute-1.amazonaws.com"), ("3.4.5.6",)
                )
            }
        )
    )
    with pytest.raises(InvalidEndpointError) as info:
        follow_cname("db.example.com")
    message = str(info.value)
    assert "'ec2-3-4-5-6.compute-1.amazonaws.com'" in message
    assert "token_host=" in message and "host=" in message


def test_follow_cname_refuses_a_plain_address_record() -> None:
    """A name with no CNAME at all is refused, saying it resolves straight to addresses."""
    set_resolver(TableResolver({"db.example.com": Lookup(("db.example.com",), ("10.1.2.3",))}))
    with pytest.raises(InvalidEndpointError, match="straight to 10.1.2.3"):
        follow_cname("db.example.com")


def test_follow_cname_unresolvable_is_a_configuration_error() -> None:
    """A name DNS does not know is reported with the resolver's reason."""
    set_resolver(TableResolver({}))
    with pytest.raises(ConfigurationError, match="cannot resolve 'nowhere.example.com'"):
        follow_cname("nowhere.example.com")


def test_follow_cname_through_a_global_writer() -> None:
    """A custom domain pointing at a global writer stops there: that is what is signed for."""
    set_resolver(
        TableResolver({"db.example.com": Lookup(("db.example.com", GLOBAL, EAST), ("3.4.5.6",))})
    )
    target = follow_cname("db.example.com")
    assert target.endpoint.is_global and target.chain == ("db.example.com", GLOBAL, EAST)
