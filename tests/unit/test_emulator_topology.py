"""The emulator's global database names, per-region ARNs, and its controllable DNS (no server)."""

from __future__ import annotations

import socket

import pytest

from rdsiamkit import _resolve
from rdsiamkit.endpoints import Endpoint, EndpointKind
from rdsiamkit.errors import ConfigurationError, EmulatorError
from rdsiamkit.testing.dns import FakeDns
from rdsiamkit.testing.emulator import RdsIamEmulator
from rdsiamkit.testing.topology import secondary_region_for


def test_extra_names_parse_as_their_kinds() -> None:
    """Global writer, secondary writer and shard group names are real endpoint names."""
    emu = RdsIamEmulator(cluster_id="shop", dns_hash="abcdef012345")
    kinds = [Endpoint.parse(h).kind for h in emu.all_endpoints[3:]]
    assert kinds == [
        EndpointKind.GLOBAL_WRITER,
        EndpointKind.CLUSTER_WRITER,
        EndpointKind.SHARD_GROUP,
    ]
    assert emu.global_endpoint == "shop-global.global-abcdef012345.global.rds.amazonaws.com"
    assert Endpoint.parse(emu.secondary_endpoint).region == "us-west-2"
    assert emu.all_endpoints[:3] == emu.endpoints


def test_china_emulator_has_a_china_global_name() -> None:
    """A China emulator's global writer ends in .com.cn and its secondary is in China too."""
    emu = RdsIamEmulator(region="cn-north-1")
    assert emu.global_endpoint.endswith(".global.rds.amazonaws.com.cn")
    assert Endpoint.parse(emu.secondary_endpoint).region == "cn-northwest-1"


def test_switch_primary_moves_region_dns_and_description() -> None:
    """switch_primary toggles the region, the global CNAME and DescribeGlobalClusters' writer."""
    emu = RdsIamEmulator()
    assert emu.dns(emu.global_endpoint).chain[1] == emu.endpoint
    assert emu.switch_primary() == "us-west-2"
    assert emu.dns(emu.global_endpoint).chain[1] == emu.secondary_endpoint
    members = emu.describe_global_clusters()["GlobalClusters"][0]["GlobalClusterMembers"]
    assert [(m["DBClusterArn"].split(":")[3], m["IsWriter"]) for m in members] == [
        ("us-east-1", False),
        ("us-west-2", True),
    ]
    assert emu.switch_primary() == "us-east-1"
    with pytest.raises(ConfigurationError, match="not eu-west-1"):
        emu.switch_primary("eu-west-1")
    assert emu.primary_region == "us-east-1"


def test_member_arns_have_their_own_resource_ids() -> None:
    """Each member cluster's ARN names its region and its own resource id."""
    emu = RdsIamEmulator()
    east, west = emu.db_user_arn("app"), emu.db_user_arn("app", region="us-west-2")
    assert east.split(":")[3] == "us-east-1" and west.split(":")[3] == "us-west-2"
    assert east.rsplit("/", 1)[0].rsplit(":", 1)[1] != west.rsplit("/", 1)[0].rsplit(":", 1)[1]


@pytest.mark.parametrize(
    ("region", "secondary"),
    [("us-east-1", "us-west-2"), ("us-west-2", "us-east-1"), ("eu-west-1", "us-east-1")],
)
def test_secondary_region_for(region: str, secondary: str) -> None:
    """Each primary region gets another region of its partition."""
    assert secondary_region_for(region) == secondary


def test_fake_dns_chains_loops_failures_and_unknown_names() -> None:
    """Chains resolve in order; loops, failures and unknown names raise OSError."""
    dns = FakeDns()
    dns.add_address("c.example", "10.0.0.3")
    dns.add_cname("a.example", "B.example.")
    dns.add_cname("b.example", "c.example")
    assert dns("A.EXAMPLE") == _resolve.Lookup(
        ("a.example", "b.example", "c.example"), ("10.0.0.3",)
    )
    dns.fail("b.example")
    with pytest.raises(socket.gaierror, match="failed"):
        dns("a.example")
    dns.fail("b.example", False)
    dns.add_cname("c.example", "a.example")
    with pytest.raises(socket.gaierror, match="loop"):
        dns("a.example")
    with pytest.raises(socket.gaierror, match="not known"):
        dns("nowhere.example")
    with pytest.raises(EmulatorError):
        dns.add_cname("x.example", "x.example")
    assert dns.asked[0] == "a.example"


def test_fake_dns_installed_is_what_the_kit_asks() -> None:
    """Inside installed() the kit's lookup answers from the table; outside it does not."""
    dns = FakeDns()
    dns.add_address("db.example.test", "10.9.9.9")
    with dns.installed():
        assert _resolve.lookup("db.example.test").addresses == ("10.9.9.9",)
    assert _resolve._resolver is None
