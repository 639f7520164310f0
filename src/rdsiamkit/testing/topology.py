"""The emulator's endpoint names beyond one cluster: a global database, a shard group.

One PostgreSQL server plays every endpoint; what differs per name is what a token
must be signed for, as on AWS:

* the primary cluster's endpoints (writer, reader, instance) in ``region``;
* the secondary cluster's writer endpoint in ``secondary_region``;
* an Aurora Limitless shard group endpoint in ``region``;
* the Aurora Global Database writer endpoint, which names no region: a CNAME to the
  current primary's writer endpoint, and tokens for it are accepted only when signed
  for the current primary's region.  :meth:`RdsIamEmulator.switch_primary` moves it.

Each member cluster has its own resource id, so the ``rds-db`` ARN a login needs
depends on the region its token was signed for, as with a real global database.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import attrs

from rdsiamkit.endpoints import Endpoint, Partition, dns_suffix_for_partition, partition_for_region
from rdsiamkit.errors import ConfigurationError

__all__ = ["Topology", "default_resource_id", "secondary_region_for"]


def default_resource_id(account_id: str, region: str, cluster_id: str) -> str:
    """A stable, realistic ``DbClusterResourceId``: ``cluster-`` + 26 upper-case alphanumerics."""
    digest = hashlib.sha256(f"{account_id}:{region}:{cluster_id}".encode()).digest()
    return "cluster-" + base64.b32encode(digest).decode()[:26]


def secondary_region_for(region: str) -> str:
    """A second region of the same partition for the emulated global database."""
    pairs = {"us-east-1": "us-west-2", "cn-north-1": "cn-northwest-1"}
    pairs.update({v: k for k, v in pairs.items()})
    pairs.update({"us-gov-west-1": "us-gov-east-1", "us-gov-east-1": "us-gov-west-1"})
    return pairs.get(region, "us-east-1" if partition_for_region(region) == "aws" else region)


def _suffix(region: str) -> str:
    return dns_suffix_for_partition(partition_for_region(region))


@attrs.frozen
class Topology:
    """Names, regions and resource ids of the emulated global database and shard group."""

    account_id: str
    cluster_id: str
    region: str
    secondary_region: str
    dns_hash: str
    global_cluster_id: str
    resource_id: str

    @property
    def partition(self) -> str:
        """The partition of both regions."""
        return partition_for_region(self.region)

    @property
    def secondary_cluster_id(self) -> str:
        """The secondary cluster's identifier (``<cluster_id>-secondary``)."""
        return f"{self.cluster_id}-secondary"

    @property
    def secondary_hash(self) -> str:
        """The secondary region's DNS hash (AWS derives one per account and region)."""
        return self.dns_hash[::-1]

    @property
    def global_endpoint(self) -> str:
        """``<global id>.global-HASH.global.rds.amazonaws.com`` (``.com.cn`` in China)."""
        suffix = _suffix(self.region)
        if Partition(self.partition) is not Partition.AWS_CN:
            suffix = dns_suffix_for_partition(Partition.AWS.value)
        return f"{self.global_cluster_id}.global-{self.dns_hash}.global.rds.{suffix}"

    @property
    def secondary_endpoint(self) -> str:
        """The secondary cluster's writer endpoint, in ``secondary_region``."""
        region = self.secondary_region
        return (
            f"{self.secondary_cluster_id}.cluster-{self.secondary_hash}.{region}.rds."
            f"{_suffix(region)}"
        )

    @property
    def shard_group_endpoint(self) -> str:
        """An Aurora Limitless shard group endpoint in ``region``."""
        return (
            f"{self.cluster_id}-limitless.shardgrp-{self.dns_hash}.{self.region}.rds."
            f"{_suffix(self.region)}"
        )

    def cluster_endpoint(self, region: str) -> str:
        """The writer endpoint of the member cluster in ``region``."""
        if region == self.region:
            return f"{self.cluster_id}.cluster-{self.dns_hash}.{region}.rds.{_suffix(region)}"
        self.check_region(region)
        return self.secondary_endpoint

    def check_region(self, region: str) -> str:
        """``region`` if a member cluster is there, else raise ConfigurationError naming both."""
        if region not in (self.region, self.secondary_region):
            raise ConfigurationError(
                f"the emulated global database has clusters in {self.region} and "
                f"{self.secondary_region}, not {region}"
            )
        return region

    def member_resource_id(self, region: str) -> str:
        """The resource id of the member cluster in ``region``."""
        if self.check_region(region) == self.region:
            return self.resource_id
        return default_resource_id(self.account_id, region, self.secondary_cluster_id)

    def cluster_arn(self, region: str) -> str:
        """``arn:aws:rds:REGION:ACCOUNT:cluster:ID`` of the member in ``region``."""
        primary = self.check_region(region) == self.region
        name = self.cluster_id if primary else self.secondary_cluster_id
        return f"arn:{self.partition}:rds:{region}:{self.account_id}:cluster:{name}"

    def host_regions(self, primary_region: str) -> dict[str, str]:
        """What each non-primary-region name's tokens must be signed for, right now."""
        return {
            self.secondary_endpoint: self.secondary_region,
            self.global_endpoint: self.check_region(primary_region),
        }

    def extra_endpoints(self) -> tuple[str, ...]:
        """The names beyond the primary cluster's own: global, secondary, shard group."""
        names = (self.global_endpoint, self.secondary_endpoint, self.shard_group_endpoint)
        for name in names:
            Endpoint.parse(name)  # ids and hash must make real endpoint names
        return names

    def describe_global_clusters(self, primary_region: str) -> dict[str, Any]:
        """A ``DescribeGlobalClusters`` response (for botocore's Stubber) as AWS would give it."""
        members = [
            {
                "DBClusterArn": self.cluster_arn(region),
                "IsWriter": region == primary_region,
                "Readers": [],
            }
            for region in (self.region, self.secondary_region)
        ]
        return {
            "GlobalClusters": [
                {
                    "GlobalClusterIdentifier": self.global_cluster_id,
                    "GlobalClusterResourceId": default_resource_id(
                        self.account_id, "global", self.global_cluster_id
                    ),
                    "GlobalClusterArn": (
                        f"arn:{self.partition}:rds::{self.account_id}:global-cluster:"
                        f"{self.global_cluster_id}"
                    ),
                    "Status": "available",
                    "Engine": "aurora-postgresql",
                    "GlobalClusterMembers": members,
                }
            ]
        }
