"""Endpoint hostnames: every AWS form parses into the right parts; anything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rdsiamkit.endpoints import (
    Endpoint,
    EndpointKind,
    Partition,
    dns_suffix_for_partition,
    partition_for_region,
    validate_region,
)
from rdsiamkit.errors import ConfigurationError, InvalidEndpointError

HASH = "c1a2b3c4d5e6"


@pytest.mark.parametrize(
    ("host", "region", "partition", "kind", "identifier"),
    [
        (
            f"demo.cluster-{HASH}.us-east-1.rds.amazonaws.com",
            "us-east-1",
            "aws",
            EndpointKind.CLUSTER_WRITER,
            "demo",
        ),
        (
            f"demo.cluster-ro-{HASH}.eu-west-2.rds.amazonaws.com",
            "eu-west-2",
            "aws",
            EndpointKind.CLUSTER_READER,
            "demo",
        ),
        (
            f"analytics.cluster-custom-{HASH}.ap-southeast-2.rds.amazonaws.com",
            "ap-southeast-2",
            "aws",
            EndpointKind.CLUSTER_CUSTOM,
            "analytics",
        ),
        (
            f"mydb.{HASH}.us-east-1.rds.amazonaws.com",
            "us-east-1",
            "aws",
            EndpointKind.INSTANCE,
            "mydb",
        ),
        (
            f"myproxy.proxy-{HASH}.us-west-2.rds.amazonaws.com",
            "us-west-2",
            "aws",
            EndpointKind.PROXY,
            "myproxy",
        ),
        (
            f"ep-ro.endpoint.proxy-{HASH}.us-east-1.rds.amazonaws.com",
            "us-east-1",
            "aws",
            EndpointKind.PROXY_ENDPOINT,
            "ep-ro",
        ),
        (
            f"x.{HASH}.rds.cn-north-1.amazonaws.com.cn",
            "cn-north-1",
            "aws-cn",
            EndpointKind.INSTANCE,
            "x",
        ),
        (
            f"x.{HASH}.cn-north-1.rds.amazonaws.com.cn",
            "cn-north-1",
            "aws-cn",
            EndpointKind.INSTANCE,
            "x",
        ),
        (
            f"demo.cluster-{HASH}.rds.cn-northwest-1.amazonaws.com.cn",
            "cn-northwest-1",
            "aws-cn",
            EndpointKind.CLUSTER_WRITER,
            "demo",
        ),
        (
            f"gov-db.{HASH}.us-gov-west-1.rds.amazonaws.com",
            "us-gov-west-1",
            "aws-us-gov",
            EndpointKind.INSTANCE,
            "gov-db",
        ),
        (
            f"demo.cluster-ro-{HASH}.us-gov-east-1.rds.amazonaws.com",
            "us-gov-east-1",
            "aws-us-gov",
            EndpointKind.CLUSTER_READER,
            "demo",
        ),
        (
            f"db1.{HASH}.us-iso-east-1.rds.c2s.ic.gov",
            "us-iso-east-1",
            "aws-iso",
            EndpointKind.INSTANCE,
            "db1",
        ),
        (
            f"db1.{HASH}.us-isob-east-1.rds.sc2s.sgov.gov",
            "us-isob-east-1",
            "aws-iso-b",
            EndpointKind.INSTANCE,
            "db1",
        ),
        # Aurora Global Database writer: no region in the name.
        (
            f"mydb.global-{HASH}.global.rds.amazonaws.com",
            None,
            "aws",
            EndpointKind.GLOBAL_WRITER,
            "mydb",
        ),
        (
            f"mydb.global-{HASH}.global.rds.amazonaws.com.cn",
            None,
            "aws-cn",
            EndpointKind.GLOBAL_WRITER,
            "mydb",
        ),
        # Aurora Limitless shard groups, commercial and both China forms.
        (
            f"db.shardgrp-{HASH}.us-east-2.rds.amazonaws.com",
            "us-east-2",
            "aws",
            EndpointKind.SHARD_GROUP,
            "db",
        ),
        (
            f"db.shardgrp-{HASH}.cn-north-1.rds.amazonaws.com.cn",
            "cn-north-1",
            "aws-cn",
            EndpointKind.SHARD_GROUP,
            "db",
        ),
        (
            f"db.shardgrp-{HASH}.rds.cn-northwest-1.amazonaws.com.cn",
            "cn-northwest-1",
            "aws-cn",
            EndpointKind.SHARD_GROUP,
            "db",
        ),
        # GovCloud's second form: the region after "rds".
        (
            f"db.cluster-{HASH}.rds.us-gov-east-1.amazonaws.com",
            "us-gov-east-1",
            "aws-us-gov",
            EndpointKind.CLUSTER_WRITER,
            "db",
        ),
        (
            f"db.{HASH}.rds.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
            "aws-us-gov",
            EndpointKind.INSTANCE,
            "db",
        ),
        # ISO partitions, in the form the AWS wrappers accept.
        (
            f"db.cluster-{HASH}.rds.us-iso-east-1.c2s.ic.gov",
            "us-iso-east-1",
            "aws-iso",
            EndpointKind.CLUSTER_WRITER,
            "db",
        ),
        (
            f"db.cluster-ro-{HASH}.rds.us-isob-east-1.sc2s.sgov.gov",
            "us-isob-east-1",
            "aws-iso-b",
            EndpointKind.CLUSTER_READER,
            "db",
        ),
    ],
)
def test_parse_known_forms(
    host: str, region: str | None, partition: str, kind: EndpointKind, identifier: str
) -> None:
    """Each documented endpoint form yields its region, partition, kind, identifier and hash."""
    endpoint = Endpoint.parse(host)
    assert endpoint.host == host
    assert endpoint.region == region
    assert endpoint.is_global is (region is None)
    assert endpoint.partition == partition
    assert endpoint.kind is kind
    assert endpoint.identifier == identifier
    assert endpoint.dns_hash == HASH
    assert str(endpoint) == host


def test_parse_accepts_other_hash_lengths() -> None:
    """Hashes of 8-16 characters parse (moto issues 10), so emulated endpoints work too."""
    endpoint = Endpoint.parse("mydb.aaaaaaaaaa.us-east-1.rds.amazonaws.com")
    assert (endpoint.kind, endpoint.dns_hash) == (EndpointKind.INSTANCE, "aaaaaaaaaa")


def test_parse_is_case_insensitive_and_tolerates_trailing_dot() -> None:
    """Upper case and a fully-qualified trailing dot normalise to the same endpoint."""
    plain = Endpoint.parse(f"demo.cluster-{HASH}.us-east-1.rds.amazonaws.com")
    shouted = Endpoint.parse(f"DEMO.Cluster-{HASH.upper()}.US-EAST-1.RDS.AMAZONAWS.COM.")
    assert shouted == plain


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("", "empty"),
        ("10.0.0.12", "IP address"),
        ("::1", "IP address"),
        ("[fe80::1]", "IP address"),
        ("localhost", "does not end in"),
        ("db.internal.example.com", "does not end in"),
        (f"demo.cluster-{HASH}.us-east-1.amazonaws.com", "does not end in"),
        (f"{HASH}.us-east-1.rds.amazonaws.com", "expected NAME.HASH"),
        (f"a.b.c.{HASH}.us-east-1.rds.amazonaws.com", "expected NAME.HASH"),
        (f"ep.other.proxy-{HASH}.us-east-1.rds.amazonaws.com", "expected NAME.HASH"),
        ("demo.cluster-short.us-east-1.rds.amazonaws.com", "is not an RDS DNS hash"),
        ("mydb.c1a2b3c4d5e6f7a8b.us-east-1.rds.amazonaws.com", "is not an RDS DNS hash"),
        ("mydb.c1a2-b3c4d5e6.us-east-1.rds.amazonaws.com", "is not an RDS DNS hash"),
        (f"1db.{HASH}.us-east-1.rds.amazonaws.com", "not an RDS identifier"),
        (f"my--db.{HASH}.us-east-1.rds.amazonaws.com", "not an RDS identifier"),
        (f"mydb-.{HASH}.us-east-1.rds.amazonaws.com", "not an RDS identifier"),
        (f"{'a' * 64}.{HASH}.us-east-1.rds.amazonaws.com", "not an RDS identifier"),
        (f"mydb.{HASH}.useast1.rds.amazonaws.com", "not an AWS region"),
        (f"mydb.{HASH}.cn-north-1.rds.amazonaws.com", "belongs to partition 'aws-cn'"),
        (f"mydb.{HASH}.us-east-1.rds.amazonaws.com.cn", "belongs to partition 'aws'"),
        (f"mydb..{HASH}.us-east-1.rds.amazonaws.com", "empty DNS label"),
        (f"mydb.{HASH}.us-east-1.rds.amazonaws.com..", "empty DNS label"),
        (f"mydb.{HASH}.rds.us-east-1.amazonaws.com", "only China, GovCloud and ISO"),
        (f"mydb.{HASH}.rds.eu-west-1.amazonaws.com", "only China, GovCloud and ISO"),
        (f"mydb.{HASH}.global.rds.amazonaws.com", "expected NAME.global-HASH"),
        (f"a.b.global-{HASH}.global.rds.amazonaws.com", "expected NAME.global-HASH"),
        (f"mydb.global-{HASH}.us-east-1.rds.amazonaws.com", "is a global writer's"),
        (f"mydb.global-{HASH}.rds.global.amazonaws.com", "'global' is not an AWS region"),
        ("mydb.global-short.global.rds.amazonaws.com", "is not an RDS DNS hash"),
        (f"1db.global-{HASH}.global.rds.amazonaws.com", "not an RDS identifier"),
        (f"db.shardgrp-{HASH}x1234.us-east-2.rds.amazonaws.com", "is not an RDS DNS hash"),
        (f"db.{HASH}.rds.us-iso-east-1.sc2s.sgov.gov", "belongs to partition 'aws-iso'"),
        (f"m\u00fcdb.{HASH}.us-east-1.rds.amazonaws.com", "non-ASCII"),
        ("a" * 254, "longer than 253"),
    ],
)
def test_parse_rejects_with_reason(host: str, why: str) -> None:
    """Non-endpoints raise InvalidEndpointError naming the host and the reason."""
    with pytest.raises(InvalidEndpointError) as info:
        Endpoint.parse(host)
    message = str(info.value)
    assert why in message
    if host:
        assert repr(host) in message


def test_parse_rejects_non_string() -> None:
    """A non-str host is an InvalidEndpointError, not an AttributeError."""
    with pytest.raises(InvalidEndpointError, match="must be a str"):
        Endpoint.parse(5432)  # type: ignore[arg-type]


def test_try_parse_returns_none_for_non_endpoints() -> None:
    """try_parse gives None where parse would raise, and the endpoint otherwise."""
    assert Endpoint.try_parse("127.0.0.1") is None
    host = f"mydb.{HASH}.us-east-1.rds.amazonaws.com"
    assert Endpoint.try_parse(host) == Endpoint.parse(host)


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-central-2", "aws"),
        ("mx-central-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("us-isof-south-1", "aws-iso-f"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
)
def test_partition_for_region(region: str, partition: str) -> None:
    """Region prefixes map to their partition; unknown commercial prefixes are 'aws'."""
    assert partition_for_region(region) == partition


@pytest.mark.parametrize("region", ["", "us", "us-east", "US-EAST-1", "us_east_1", "us-east-1\n"])
def test_partition_for_region_rejects_garbage(region: str) -> None:
    """Strings not shaped like a region raise ConfigurationError naming the value."""
    with pytest.raises(ConfigurationError, match="invalid AWS region"):
        partition_for_region(region)


def test_validate_region_returns_the_region() -> None:
    """A well-formed region passes through unchanged."""
    assert validate_region("ap-northeast-3") == "ap-northeast-3"


def test_dns_suffix_for_partition() -> None:
    """Each partition maps to its DNS suffix; an unknown partition is refused."""
    assert dns_suffix_for_partition("aws-cn") == "amazonaws.com.cn"
    assert dns_suffix_for_partition(Partition.AWS_US_GOV.value) == "amazonaws.com"
    with pytest.raises(ConfigurationError, match="unknown AWS partition 'aws-mars'"):
        dns_suffix_for_partition("aws-mars")


# -- properties ---------------------------------------------------------------

identifiers = st.from_regex(r"\A[a-z](?:-?[a-z0-9]){0,30}\Z")
hashes = st.from_regex(r"\A[a-z0-9]{8,16}\Z")
regions = st.sampled_from(
    ["us-east-1", "eu-west-3", "ap-south-2", "us-gov-west-1", "cn-north-1", "us-iso-west-1"]
)
_FORMATS = {
    EndpointKind.CLUSTER_WRITER: "{i}.cluster-{h}",
    EndpointKind.CLUSTER_READER: "{i}.cluster-ro-{h}",
    EndpointKind.CLUSTER_CUSTOM: "{i}.cluster-custom-{h}",
    EndpointKind.INSTANCE: "{i}.{h}",
    EndpointKind.PROXY: "{i}.proxy-{h}",
    EndpointKind.PROXY_ENDPOINT: "{i}.endpoint.proxy-{h}",
    EndpointKind.SHARD_GROUP: "{i}.shardgrp-{h}",
}
kinds = st.sampled_from(list(_FORMATS))


@given(text=st.text())
@example(text="a.b.c.d.us-east-1.rds.amazonaws.com")
@example(text="x.cluster-.us-east-1.rds.amazonaws.com")
@example(text="\u0130.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
@example(text="Demo.Cluster-C1A2B3C4D5E6.us-east-1.rds.amazonaws.com.")
@example(text="x.global-.global.rds.amazonaws.com")
@example(text="global.rds.amazonaws.com")
@example(text="x.c1a2b3c4d5e6.rds.global.amazonaws.com.cn")
def test_parse_only_ever_raises_invalid_endpoint(text: str) -> None:
    """On arbitrary text parse returns an Endpoint or raises InvalidEndpointError, nothing else."""
    try:
        endpoint = Endpoint.parse(text)
    except InvalidEndpointError:
        return
    assert endpoint.host == text.lower().removesuffix(".")


@given(identifier=identifiers, dns_hash=hashes, region=regions, kind=kinds, upper=st.booleans())
def test_generated_hosts_round_trip(
    identifier: str, dns_hash: str, region: str, kind: EndpointKind, upper: bool
) -> None:
    """A host assembled from valid parts parses back into exactly those parts."""
    partition = partition_for_region(region)
    head = _FORMATS[kind].format(i=identifier, h=dns_hash)
    host = f"{head}.{region}.rds.{dns_suffix_for_partition(partition)}"
    endpoint = Endpoint.parse(host.upper() if upper else host)
    assert (endpoint.host, endpoint.region, endpoint.partition) == (host, region, partition)
    assert (endpoint.kind, endpoint.identifier, endpoint.dns_hash) == (kind, identifier, dns_hash)


@given(identifier=identifiers, dns_hash=hashes, suffix=st.sampled_from(["com", "com.cn"]))
def test_generated_global_writers_round_trip(identifier: str, dns_hash: str, suffix: str) -> None:
    """A global writer name parses with no region, its suffix's partition, and its parts."""
    host = f"{identifier}.global-{dns_hash}.global.rds.amazonaws.{suffix}"
    endpoint = Endpoint.parse(host)
    assert (endpoint.region, endpoint.kind) == (None, EndpointKind.GLOBAL_WRITER)
    assert endpoint.partition == ("aws" if suffix == "com" else "aws-cn")
    assert (endpoint.identifier, endpoint.dns_hash) == (identifier, dns_hash)


@given(
    identifier=identifiers,
    dns_hash=hashes,
    region=st.sampled_from(["cn-north-1", "us-gov-east-1", "us-iso-east-1", "us-isob-east-1"]),
    kind=kinds,
)
def test_region_after_rds_round_trips(
    identifier: str, dns_hash: str, region: str, kind: EndpointKind
) -> None:
    """China, GovCloud and ISO names with the region after "rds" parse like the usual form."""
    partition = partition_for_region(region)
    head = _FORMATS[kind].format(i=identifier, h=dns_hash)
    usual = Endpoint.parse(f"{head}.{region}.rds.{dns_suffix_for_partition(partition)}")
    other = Endpoint.parse(f"{head}.rds.{region}.{dns_suffix_for_partition(partition)}")
    assert (other.region, other.partition, other.kind) == (region, partition, kind)
    assert (other.identifier, other.dns_hash) == (usual.identifier, usual.dns_hash)
