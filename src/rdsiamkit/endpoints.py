"""Parse RDS, Aurora and RDS Proxy endpoint hostnames into their parts.

An IAM auth token is signed for one region, and the ``rds-db`` ARN that a
policy must allow names a partition; both are written into the endpoint name
that AWS hands out.  Reading them from the hostname lets callers connect with
nothing but ``host=`` and ``user=``.  Anything that is not an AWS-issued
endpoint name (an IP address, ``localhost``, a private DNS alias) is refused
with :class:`~rdsiamkit.errors.InvalidEndpointError`, so the caller knows to
pass the region explicitly instead of having one guessed.

The forms recognised (``HASH`` is the name AWS derives from the account and
region: 12 lower-case letters and digits in current endpoints; 8 to 16 are
accepted, so older names and emulators such as moto parse too)::

    demo.cluster-HASH.REGION.rds.SUFFIX            Aurora cluster writer
    demo.cluster-ro-HASH.REGION.rds.SUFFIX         Aurora cluster reader
    name.cluster-custom-HASH.REGION.rds.SUFFIX     Aurora custom endpoint
    mydb.HASH.REGION.rds.SUFFIX                    DB instance
    myproxy.proxy-HASH.REGION.rds.SUFFIX           RDS Proxy (default endpoint)
    ep.endpoint.proxy-HASH.REGION.rds.SUFFIX       RDS Proxy additional endpoint
    db.shardgrp-HASH.REGION.rds.SUFFIX             Aurora Limitless shard group
    mydb.global-HASH.global.rds.SUFFIX             Aurora Global Database writer
    mydb.HASH.rds.cn-north-1.amazonaws.com.cn      older China form (region after "rds")
    db.cluster-HASH.rds.us-gov-east-1.amazonaws.com   GovCloud's second form
    db.HASH.rds.us-iso-east-1.c2s.ic.gov           ISO forms (also REGION.rds.c2s.ic.gov)

The global writer endpoint names no region: it is a CNAME to the regional
endpoint of whichever cluster is primary now, which changes on a switchover or
failover, so its :attr:`Endpoint.region` is ``None`` (``rdsiamkit._resolve``
finds the current one).
"""

from __future__ import annotations

import enum
import ipaddress
import re

import attrs

from rdsiamkit.errors import ConfigurationError, InvalidEndpointError

__all__ = [
    "Endpoint",
    "EndpointKind",
    "Partition",
    "dns_suffix_for_partition",
    "partition_for_region",
    "validate_region",
]


class Partition(enum.Enum):
    """The AWS partitions: separate clouds whose ARNs and DNS names differ."""

    AWS = "aws"
    AWS_CN = "aws-cn"
    AWS_US_GOV = "aws-us-gov"
    AWS_ISO = "aws-iso"
    AWS_ISO_B = "aws-iso-b"
    AWS_ISO_E = "aws-iso-e"
    AWS_ISO_F = "aws-iso-f"
    AWS_EUSC = "aws-eusc"


# Region name prefixes of the non-commercial partitions, longest first so that
# "us-isob-" is tried before "us-iso-".  Any other well-formed region is "aws"
# (new commercial regions appear every year; their prefixes are not listed).
_REGION_PREFIXES: tuple[tuple[str, Partition], ...] = (
    ("us-isob-", Partition.AWS_ISO_B),
    ("us-isof-", Partition.AWS_ISO_F),
    ("eu-isoe-", Partition.AWS_ISO_E),
    ("us-iso-", Partition.AWS_ISO),
    ("us-gov-", Partition.AWS_US_GOV),
    ("eusc-", Partition.AWS_EUSC),
    ("cn-", Partition.AWS_CN),
)

# DNS suffix of each partition, as published in botocore's endpoints.json.
_DNS_SUFFIXES: dict[Partition, str] = {
    Partition.AWS: "amazonaws.com",
    Partition.AWS_CN: "amazonaws.com.cn",
    Partition.AWS_US_GOV: "amazonaws.com",
    Partition.AWS_ISO: "c2s.ic.gov",
    Partition.AWS_ISO_B: "sc2s.sgov.gov",
    Partition.AWS_ISO_E: "cloud.adc-e.uk",
    Partition.AWS_ISO_F: "csp.hci.ic.gov",
    Partition.AWS_EUSC: "amazonaws.eu",
}

_REGION_RE = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}")
# RDS identifiers (cluster, instance, proxy, custom / proxy endpoint names):
# a letter first, then letters, digits and single hyphens, no trailing hyphen.
_IDENTIFIER_RE = re.compile(r"[a-z](?:-?[a-z0-9])*")
_HASH_RE = re.compile(r"[a-z0-9]{8,16}")
_MAX_HOST_LENGTH = 253
_MAX_LABEL_LENGTH = 63


def validate_region(region: str) -> str:
    """Return ``region`` if it is shaped like an AWS region name, else raise.

    Only the syntax is checked (``us-east-1``, ``us-gov-west-1``,
    ``cn-northwest-1``); a region launched after this release still passes.
    """
    if not isinstance(region, str) or not _REGION_RE.fullmatch(region):
        raise ConfigurationError(
            f"invalid AWS region {region!r}: expected a region name such as 'us-east-1'"
        )
    return region


def partition_for_region(region: str) -> str:
    """Return the partition (``"aws"``, ``"aws-cn"``, ``"aws-us-gov"``...) of ``region``.

    :raises ConfigurationError: ``region`` is not shaped like a region name.
    """
    validate_region(region)
    for prefix, partition in _REGION_PREFIXES:
        if region.startswith(prefix):
            return partition.value
    return Partition.AWS.value


def dns_suffix_for_partition(partition: str) -> str:
    """Return the DNS suffix RDS endpoints use in ``partition`` (``amazonaws.com``...).

    :raises ConfigurationError: ``partition`` is not a known AWS partition.
    """
    try:
        return _DNS_SUFFIXES[Partition(partition)]
    except ValueError as err:
        known = ", ".join(repr(p.value) for p in Partition)
        raise ConfigurationError(
            f"unknown AWS partition {partition!r}: expected one of {known}"
        ) from err


class EndpointKind(enum.Enum):
    """What an endpoint hostname points at."""

    #: ``name.cluster-HASH...``: the Aurora cluster's writer.
    CLUSTER_WRITER = "cluster-writer"
    #: ``name.cluster-ro-HASH...``: load-balanced Aurora readers.
    CLUSTER_READER = "cluster-reader"
    #: ``name.cluster-custom-HASH...``: an Aurora custom endpoint.
    CLUSTER_CUSTOM = "cluster-custom"
    #: ``name.HASH...``: one DB instance (RDS, or one Aurora cluster member).
    INSTANCE = "instance"
    #: ``name.proxy-HASH...``: an RDS Proxy's default endpoint.
    PROXY = "proxy"
    #: ``name.endpoint.proxy-HASH...``: an additional RDS Proxy endpoint.
    PROXY_ENDPOINT = "proxy-endpoint"
    #: ``name.shardgrp-HASH...``: an Aurora Limitless Database shard group.
    SHARD_GROUP = "shard-group"
    #: ``name.global-HASH.global.rds...``: an Aurora Global Database's writer, whose
    #: region is that of the current primary cluster (not in the name).
    GLOBAL_WRITER = "global-writer"


# Prefix of the label that carries the hash, and the kind it denotes.  The
# instance form has no prefix at all.  Longest first: "cluster-ro-" before "cluster-".
_HASH_LABEL_PREFIXES: tuple[tuple[str, EndpointKind], ...] = (
    ("cluster-custom-", EndpointKind.CLUSTER_CUSTOM),
    ("cluster-ro-", EndpointKind.CLUSTER_READER),
    ("cluster-", EndpointKind.CLUSTER_WRITER),
    ("proxy-", EndpointKind.PROXY),
    ("shardgrp-", EndpointKind.SHARD_GROUP),
)
_GLOBAL_PREFIX = "global-"
# Where the region stands in the name: "REGION.rds.SUFFIX" everywhere; China, GovCloud
# and the ISO partitions also issue (or, per the AWS wrappers, accept) "rds.REGION.SUFFIX".
_REGION_AFTER_RDS = frozenset(
    {Partition.AWS_CN, Partition.AWS_US_GOV, Partition.AWS_ISO, Partition.AWS_ISO_B}
)
_GLOBAL_LABEL = "global"
# Each DNS suffix once, to its partition; GovCloud shares amazonaws.com with the
# commercial partition, and its region names tell them apart.
_SUFFIXES: dict[str, Partition] = {
    suffix: partition
    for partition, suffix in _DNS_SUFFIXES.items()
    if partition is not Partition.AWS_US_GOV
}


@attrs.frozen
class Endpoint:
    """An AWS-issued RDS / Aurora / RDS Proxy endpoint name, split into its parts.

    Build it with :meth:`parse` (or :meth:`try_parse`); ``str(endpoint)`` is
    the normalised hostname.
    """

    #: The hostname, lower-case, without a trailing dot.
    host: str
    #: The region in the name; ``None`` for a global writer (:attr:`is_global`), whose
    #: region is the current primary cluster's, found by resolution, not parsing.
    region: str | None
    #: ``"aws"``, ``"aws-cn"``, ``"aws-us-gov"``...: decides the ARN prefix and CA bundle
    #: (for a global writer, the partition of its DNS suffix: ``amazonaws.com`` is ``"aws"``).
    partition: str
    kind: EndpointKind
    #: Cluster id, custom endpoint name, instance id, proxy name or proxy endpoint name.
    identifier: str
    #: The name AWS derives from the account and region (``c1a2b3c4d5e6``).
    dns_hash: str

    def __str__(self) -> str:
        return self.host

    @property
    def is_global(self) -> bool:
        """True for an Aurora Global Database writer endpoint (no region in the name)."""
        return self.kind is EndpointKind.GLOBAL_WRITER

    @classmethod
    def parse(cls, host: str) -> Endpoint:
        """Split an endpoint hostname into region, partition, kind and identifier.

        Case does not matter and one trailing dot is tolerated.

        :raises InvalidEndpointError: ``host`` is not an RDS endpoint name; the
            message names the host and what did not fit.
        """
        if not isinstance(host, str):
            raise InvalidEndpointError(f"endpoint host must be a str, not {type(host).__name__}")
        name = host.lower()
        name = name.removesuffix(".")
        if not name:
            raise InvalidEndpointError("empty endpoint host: expected an RDS endpoint name")
        if not name.isascii():
            raise _invalid(host, "it contains non-ASCII characters")
        if len(name) > _MAX_HOST_LENGTH:
            raise _invalid(host, f"it is longer than {_MAX_HOST_LENGTH} characters")
        if _is_ip_address(name):
            raise _invalid(host, "it is an IP address, which does not name a region; pass region=")
        labels = name.split(".")
        if any(not label for label in labels):
            raise _invalid(host, "it has an empty DNS label")
        region, partition, rest = _split_suffix(host, labels)
        kind, identifier, dns_hash = _split_resource(host, rest, is_global=region is None)
        return cls(
            host=name,
            region=region,
            partition=partition.value,
            kind=kind,
            identifier=identifier,
            dns_hash=dns_hash,
        )

    @classmethod
    def try_parse(cls, host: str) -> Endpoint | None:
        """Like :meth:`parse`, but return ``None`` for a host that is not an RDS endpoint."""
        try:
            return cls.parse(host)
        except InvalidEndpointError:
            return None


def _invalid(host: str, why: str) -> InvalidEndpointError:
    return InvalidEndpointError(f"{host!r} is not an RDS endpoint name: {why}")


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _split_suffix(host: str, labels: list[str]) -> tuple[str | None, Partition, list[str]]:
    """Strip ``REGION.rds.SUFFIX`` (``rds.REGION.SUFFIX``, ``global.rds.SUFFIX``) off ``labels``.

    The region is ``None`` for the global form.
    """
    name = ".".join(labels)
    for suffix, suffix_partition in _SUFFIXES.items():
        if not name.endswith("." + suffix):
            continue
        head = labels[: -len(suffix.split("."))]
        if len(head) >= 2 and head[-1] == "rds":
            region, rest = head[-2], head[:-2]
            if region == _GLOBAL_LABEL:
                return None, suffix_partition, rest
            region_after_rds = False
        elif len(head) >= 2 and head[-2] == "rds":
            region, rest = head[-1], head[:-2]
            region_after_rds = True
        else:
            continue
        if not _REGION_RE.fullmatch(region):
            raise _invalid(host, f"{region!r} is not an AWS region name")
        expected = Partition(partition_for_region(region))
        if expected is not suffix_partition and _DNS_SUFFIXES[expected] != suffix:
            raise _invalid(
                host,
                f"region {region!r} belongs to partition {expected.value!r}, "
                f"whose endpoints do not end in {suffix!r}",
            )
        if region_after_rds and expected not in _REGION_AFTER_RDS:
            raise _invalid(
                host,
                f"endpoints in {region!r} read NAME.HASH.{region}.rds.{suffix}; only China, "
                "GovCloud and ISO endpoints put the region after 'rds'",
            )
        return region, expected, rest
    raise _invalid(
        host,
        "it does not end in REGION.rds.amazonaws.com (or another AWS partition's suffix); "
        "for a proxy, tunnel or alias pass region= explicitly",
    )


def _split_resource(
    host: str, rest: list[str], *, is_global: bool
) -> tuple[EndpointKind, str, str]:
    """Read kind, identifier and DNS hash from the labels left of the region."""
    if is_global:
        if len(rest) != 2 or not rest[1].startswith(_GLOBAL_PREFIX):
            raise _invalid(host, "expected NAME.global-HASH before global.rds")
        identifier, dns_hash = rest[0], rest[1].removeprefix(_GLOBAL_PREFIX)
        kind = EndpointKind.GLOBAL_WRITER
    elif len(rest) == 2:
        identifier, hash_label = rest
        kind = EndpointKind.INSTANCE
        dns_hash = hash_label
        for prefix, prefixed_kind in _HASH_LABEL_PREFIXES:
            if hash_label.startswith(prefix):
                kind, dns_hash = prefixed_kind, hash_label.removeprefix(prefix)
                break
        if hash_label.startswith(_GLOBAL_PREFIX):
            raise _invalid(
                host, f"{hash_label!r} is a global writer's, whose name ends in global.rds.SUFFIX"
            )
    elif len(rest) == 3 and rest[1] == "endpoint" and rest[2].startswith("proxy-"):
        identifier = rest[0]
        kind = EndpointKind.PROXY_ENDPOINT
        dns_hash = rest[2].removeprefix("proxy-")
    else:
        raise _invalid(
            host,
            "expected NAME.HASH, NAME.cluster[-ro|-custom]-HASH, NAME.proxy-HASH, "
            "NAME.shardgrp-HASH or NAME.endpoint.proxy-HASH before the region",
        )
    if not _HASH_RE.fullmatch(dns_hash):
        raise _invalid(host, f"{dns_hash!r} is not an RDS DNS hash (8-16 letters and digits)")
    if len(identifier) > _MAX_LABEL_LENGTH or not _IDENTIFIER_RE.fullmatch(identifier):
        raise _invalid(
            host,
            f"{identifier!r} is not an RDS identifier (a letter, then letters, digits "
            "and single hyphens, not ending in a hyphen)",
        )
    return kind, identifier, dns_hash
