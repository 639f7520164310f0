"""Fuzzing the endpoint parser: canonical results, invariants, and one-character mutants.

``test_endpoints.py`` already checks that arbitrary text only ever raises
``InvalidEndpointError`` and that generated hosts round-trip; these properties
add what a caller relies on next: whatever parses is self-consistent and
canonical, and a near miss of a real endpoint never parses into something else.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from rdsiamkit.endpoints import (
    Endpoint,
    EndpointKind,
    dns_suffix_for_partition,
    partition_for_region,
)
from rdsiamkit.errors import InvalidEndpointError

_FORMATS = {
    EndpointKind.CLUSTER_WRITER: "{i}.cluster-{h}",
    EndpointKind.CLUSTER_READER: "{i}.cluster-ro-{h}",
    EndpointKind.CLUSTER_CUSTOM: "{i}.cluster-custom-{h}",
    EndpointKind.INSTANCE: "{i}.{h}",
    EndpointKind.PROXY: "{i}.proxy-{h}",
    EndpointKind.PROXY_ENDPOINT: "{i}.endpoint.proxy-{h}",
    EndpointKind.SHARD_GROUP: "{i}.shardgrp-{h}",
    EndpointKind.GLOBAL_WRITER: "{i}.global-{h}",
}
_REGIONS = [
    "us-east-1",
    "eu-central-2",
    "ap-southeast-4",
    "us-gov-east-1",
    "cn-northwest-1",
    "us-iso-east-1",
    "us-isob-east-1",
]
# Partitions whose endpoints may also read NAME.HASH.rds.REGION.SUFFIX.
_REGION_AFTER_RDS = {"aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"}
_MUTATION_ALPHABET = "a1-._ \x00\t/:@é%*Z"


@st.composite
def valid_hosts(draw: st.DrawFn) -> str:
    """A real-looking endpoint name of any kind, region and partition."""
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from(list(EndpointKind)))
    identifier = draw(st.from_regex(r"\A[a-z](?:-?[a-z0-9]){0,20}\Z"))
    dns_hash = draw(st.from_regex(r"\A[a-z0-9]{12}\Z"))
    partition = partition_for_region(region)
    suffix = dns_suffix_for_partition(partition)
    head = _FORMATS[kind].format(i=identifier, h=dns_hash)
    if kind is EndpointKind.GLOBAL_WRITER:
        return f"{head}.global.rds.{draw(st.sampled_from(['amazonaws.com', 'amazonaws.com.cn']))}"
    if partition in _REGION_AFTER_RDS and draw(st.booleans()):
        return f"{head}.rds.{region}.{suffix}"
    return f"{head}.{region}.rds.{suffix}"


def assert_consistent(endpoint: Endpoint) -> None:
    """What every parsed endpoint must satisfy, whatever text it came from."""
    assert endpoint.host == endpoint.host.lower() and not endpoint.host.endswith(".")
    suffix = dns_suffix_for_partition(endpoint.partition)
    if endpoint.region is None:
        assert endpoint.is_global and endpoint.kind is EndpointKind.GLOBAL_WRITER
        assert endpoint.host.endswith(f".global-{endpoint.dns_hash}.global.rds.{suffix}")
    else:
        assert not endpoint.is_global
        assert endpoint.partition == partition_for_region(endpoint.region)
        assert endpoint.host.endswith(f".{endpoint.region}.rds.{suffix}") or (
            endpoint.partition in _REGION_AFTER_RDS
            and endpoint.host.endswith(f".rds.{endpoint.region}.{suffix}")
        )
    assert endpoint.host.startswith(endpoint.identifier + ".")
    assert endpoint.dns_hash in endpoint.host
    assert Endpoint.parse(str(endpoint)) == endpoint
    assert Endpoint.parse(endpoint.host.upper() + ".") == endpoint


@given(host=valid_hosts())
def test_parsed_endpoints_are_canonical_and_consistent(host: str) -> None:
    """A parsed endpoint re-parses to itself, in any case, and its parts agree with its host."""
    assert_consistent(Endpoint.parse(host))


@given(
    host=valid_hosts(),
    position=st.integers(min_value=0, max_value=200),
    operation=st.sampled_from(["insert", "delete", "replace"]),
    char=st.sampled_from(_MUTATION_ALPHABET),
)
@example(
    host="demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
    position=4,
    operation="replace",
    char="@",
)
@example(
    host="demo.global-c1a2b3c4d5e6.global.rds.amazonaws.com",
    position=5,
    operation="delete",
    char="a",
)
@example(
    host="db.shardgrp-c1a2b3c4d5e6.rds.us-gov-east-1.amazonaws.com",
    position=31,
    operation="replace",
    char="1",
)
def test_one_character_mutants_parse_consistently_or_not_at_all(
    host: str, position: int, operation: str, char: str
) -> None:
    """A near miss of a valid endpoint raises InvalidEndpointError or parses consistently."""
    at = position % (len(host) + 1)
    if operation == "insert":
        mutant = host[:at] + char + host[at:]
    elif operation == "delete":
        mutant = host[:at] + host[at + 1 :]
    else:
        mutant = host[:at] + char + host[at + 1 :]
    try:
        endpoint = Endpoint.parse(mutant)
    except InvalidEndpointError as err:
        message = str(err)
    else:
        assert endpoint.host == mutant.lower().removesuffix(".")
        assert_consistent(endpoint)
        return
    assert repr(mutant) in message or "empty endpoint host" in message


@given(value=st.one_of(st.none(), st.integers(), st.binary(max_size=20), st.text(max_size=80)))
def test_try_parse_never_raises(value: object) -> None:
    """try_parse answers None for anything that is not an endpoint name, even non-strings."""
    result = Endpoint.try_parse(value)  # type: ignore[arg-type]
    assert result is None or (isinstance(value, str) and result.host in value.lower())


_HOSTLIKE = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "rds",
                "global",
                "amazonaws",
                "com",
                "cn",
                "c2s",
                "ic",
                "gov",
                "sc2s",
                "sgov",
                "endpoint",
                "us-east-1",
                "us-gov-east-1",
                "cn-north-1",
                "us-iso-east-1",
                "us-isob-east-1",
                "global-c1a2b3c4d5e6",
                "shardgrp-c1a2b3c4d5e6",
                "cluster-c1a2b3c4d5e6",
                "proxy-c1a2b3c4d5e6",
                "c1a2b3c4d5e6",
                "",
            ]
        ),
        st.from_regex(r"\A[a-z0-9-]{0,70}\Z"),
        st.text(max_size=8),
    ),
    min_size=1,
    max_size=9,
).map(".".join)


@given(host=_HOSTLIKE)
@example(host="global.rds.amazonaws.com")
@example(host=".global.rds.amazonaws.com")
@example(host="rds.amazonaws.com")
@example(host="x.rds.rds.amazonaws.com")
def test_no_hostname_crashes_the_parser(host: str) -> None:
    """Names built from RDS labels parse consistently or raise InvalidEndpointError naming them."""
    try:
        endpoint = Endpoint.parse(host)
    except InvalidEndpointError as err:
        message = str(err)
    else:
        assert_consistent(endpoint)
        return
    assert repr(host) in message or "empty endpoint host" in message
