"""Build and parse ``rds-db:connect`` resource ARNs.

IAM lets a principal log in to a database as ``DB_USER`` only when a policy
allows ``rds-db:connect`` on exactly::

    arn:PARTITION:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/DB_USER

where ``RESOURCE_ID`` is the cluster's ``DbClusterResourceId``, the
instance's ``DbiResourceId`` or the proxy's resource id — never the name you
gave the cluster.  A typo anywhere in that string does not fail loudly: the
login is simply refused.  Building the ARN from checked parts catches the
usual mistakes (a cluster name where the resource id belongs, an 11-digit
account, a ``cn-`` region under the ``aws`` partition) when the policy is
written instead of when the login fails.

IAM wildcards are allowed where a policy may use them: ``*`` for the region
or the account, and ``*`` / ``?`` inside the resource id and the user name
(``cluster-*``, ``app_*``, ``*/*``).
"""

from __future__ import annotations

import enum
import re

import attrs

from rdsiamkit.endpoints import Partition, partition_for_region
from rdsiamkit.errors import InvalidArnError

__all__ = ["DbUserArn", "ResourceKind", "db_user_arn"]


class ResourceKind(enum.Enum):
    """What an ``rds-db`` resource id names."""

    #: ``cluster-…``: an Aurora DB cluster's ``DbClusterResourceId``.
    CLUSTER = "cluster"
    #: ``db-…``: a DB instance's ``DbiResourceId``.
    INSTANCE = "instance"
    #: ``prx-…``: an RDS Proxy's resource id (the last part of its ARN).
    PROXY = "proxy"


_RESOURCE_ID_PREFIXES: dict[str, ResourceKind] = {
    "cluster-": ResourceKind.CLUSTER,
    "db-": ResourceKind.INSTANCE,
    "prx-": ResourceKind.PROXY,
}
_CONCRETE_RESOURCE_ID_RES: dict[ResourceKind, re.Pattern[str]] = {
    ResourceKind.CLUSTER: re.compile(r"cluster-[A-Z0-9]{26}"),
    ResourceKind.INSTANCE: re.compile(r"db-[A-Z0-9]{26}"),
    ResourceKind.PROXY: re.compile(r"prx-[a-z0-9]{17}"),
}
_RESOURCE_ID_FORMS = (
    "'cluster-' + 26 upper-case letters/digits (DbClusterResourceId), "
    "'db-' + 26 (DbiResourceId) or 'prx-' + 17 lower-case letters/digits (proxy)"
)
_WILDCARD_RESOURCE_ID_RE = re.compile(r"[A-Za-z0-9*?-]+")
_REGION_RE = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}")
_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_WILDCARDS = frozenset("*?")
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes.
_MAX_DB_USER_BYTES = 63


def _has_wildcard(text: str) -> bool:
    return not _WILDCARDS.isdisjoint(text)


def _check_region(_: object, __: attrs.Attribute[str], region: str) -> None:
    if region == "*":
        return
    if not isinstance(region, str) or not _REGION_RE.fullmatch(region):
        raise InvalidArnError(
            f"invalid region {region!r} in rds-db ARN: expected a region such as "
            "'us-east-1', or '*'"
        )


def _check_account(_: object, __: attrs.Attribute[str], account_id: str) -> None:
    if account_id == "*":
        return
    if not isinstance(account_id, str) or not _ACCOUNT_RE.fullmatch(account_id):
        raise InvalidArnError(
            f"invalid account_id {account_id!r} in rds-db ARN: expected 12 digits "
            "(keep leading zeros; pass it as a str), or '*'"
        )


def _check_resource_id(_: object, __: attrs.Attribute[str], resource_id: str) -> None:
    if not isinstance(resource_id, str) or not resource_id:
        raise InvalidArnError(f"invalid resource_id {resource_id!r} in rds-db ARN: it is empty")
    if _has_wildcard(resource_id):
        if not _WILDCARD_RESOURCE_ID_RE.fullmatch(resource_id):
            raise InvalidArnError(
                f"invalid resource_id {resource_id!r} in rds-db ARN: a pattern may use only "
                "letters, digits, '-', '*' and '?'"
            )
        return
    kind = _kind_of(resource_id)
    if kind is not None and _CONCRETE_RESOURCE_ID_RES[kind].fullmatch(resource_id):
        return
    hint = ""
    if kind is None and resource_id == resource_id.lower():
        hint = (
            "; it looks like a cluster/instance/proxy name, but IAM needs the resource id "
            "(rdsiamkit.discovery.discover() finds it)"
        )
    raise InvalidArnError(
        f"invalid resource_id {resource_id!r} in rds-db ARN: expected {_RESOURCE_ID_FORMS}{hint}"
    )


def _check_db_user(_: object, __: attrs.Attribute[str], db_user: str) -> None:
    if not isinstance(db_user, str) or not db_user:
        raise InvalidArnError(f"invalid db_user {db_user!r} in rds-db ARN: it is empty")
    if "/" in db_user:
        raise InvalidArnError(
            f"invalid db_user {db_user!r} in rds-db ARN: '/' separates the resource id "
            "from the user and cannot appear in the user name"
        )
    if not db_user.isprintable() or db_user != db_user.strip():
        raise InvalidArnError(
            f"invalid db_user {db_user!r} in rds-db ARN: control characters or "
            "leading/trailing whitespace"
        )
    if len(db_user.encode()) > _MAX_DB_USER_BYTES:
        raise InvalidArnError(
            f"invalid db_user {db_user!r} in rds-db ARN: longer than "
            f"{_MAX_DB_USER_BYTES} bytes, so PostgreSQL would truncate it"
        )


def _kind_of(resource_id: str) -> ResourceKind | None:
    for prefix, kind in _RESOURCE_ID_PREFIXES.items():
        if resource_id.startswith(prefix):
            return kind
    return None


@attrs.frozen(kw_only=True)
class DbUserArn:
    """One ``arn:…:rds-db:…:dbuser:RESOURCE_ID/DB_USER`` ARN, validated part by part.

    ``str(arn)`` is the ARN text.  Building one with a bad part raises
    :class:`~rdsiamkit.errors.InvalidArnError` naming the part and its value.
    ``partition`` defaults to the region's.
    """

    region: str = attrs.field(validator=_check_region)
    account_id: str = attrs.field(validator=_check_account)
    resource_id: str = attrs.field(validator=_check_resource_id)
    db_user: str = attrs.field(validator=_check_db_user)
    partition: str = attrs.field()

    @partition.default
    def _partition_from_region(self) -> str:
        # Runs before the validators, so the region is checked here first.
        _check_region(self, attrs.fields(DbUserArn).region, self.region)
        if self.region == "*":
            raise InvalidArnError(
                "partition is required when region is '*': it cannot be derived from the region"
            )
        return partition_for_region(self.region)

    @partition.validator
    def _check_partition(self, _: attrs.Attribute[str], partition: str) -> None:
        known = {p.value for p in Partition}
        if partition not in known:
            raise InvalidArnError(
                f"invalid partition {partition!r} in rds-db ARN: expected one of "
                f"{', '.join(repr(p) for p in sorted(known))}"
            )
        if self.region != "*" and partition_for_region(self.region) != partition:
            raise InvalidArnError(
                f"partition {partition!r} does not match region {self.region!r}, "
                f"which is in partition {partition_for_region(self.region)!r}"
            )

    @property
    def resource_kind(self) -> ResourceKind | None:
        """What the resource id names, or ``None`` for a pattern such as ``*``."""
        return _kind_of(self.resource_id)

    @property
    def is_pattern(self) -> bool:
        """True when any part holds an IAM wildcard, so it matches more than one login."""
        parts = (self.region, self.account_id, self.resource_id, self.db_user)
        return any(_has_wildcard(part) for part in parts)

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:rds-db:{self.region}:{self.account_id}:"
            f"dbuser:{self.resource_id}/{self.db_user}"
        )

    @classmethod
    def parse(cls, text: str) -> DbUserArn:
        """Read an ARN such as ``arn:aws:rds-db:us-east-1:123456789012:dbuser:db-…/app``.

        :raises InvalidArnError: the text is not an ``rds-db`` ``dbuser`` ARN,
            or one of its parts is invalid.
        """
        if not isinstance(text, str):
            raise InvalidArnError(f"rds-db ARN must be a str, not {type(text).__name__}")
        parts = text.split(":", 6)
        if len(parts) != 7 or parts[0] != "arn":
            raise InvalidArnError(
                f"{text!r} is not an ARN of the form "
                "arn:PARTITION:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/DB_USER"
            )
        _, partition, service, region, account_id, resource_type, resource = parts
        if service != "rds-db":
            raise InvalidArnError(
                f"{text!r} has service {service!r}; IAM database authentication uses 'rds-db' "
                "(not 'rds')"
            )
        if resource_type != "dbuser":
            raise InvalidArnError(f"{text!r} has resource type {resource_type!r}, not 'dbuser'")
        resource_id, slash, db_user = resource.partition("/")
        if not slash:
            raise InvalidArnError(f"{text!r} lacks the '/DB_USER' after the resource id")
        return cls(
            partition=partition,
            region=region,
            account_id=account_id,
            resource_id=resource_id,
            db_user=db_user,
        )


def db_user_arn(
    *,
    region: str,
    account_id: str,
    resource_id: str,
    db_user: str,
    partition: str | None = None,
) -> str:
    """Return the ARN a policy must allow ``rds-db:connect`` on for ``db_user`` to log in.

    ``partition`` is derived from ``region`` when not given.

    :raises InvalidArnError: a part is invalid; the message names it and its value.
    """
    if partition is None:
        arn = DbUserArn(
            region=region, account_id=account_id, resource_id=resource_id, db_user=db_user
        )
    else:
        arn = DbUserArn(
            region=region,
            account_id=account_id,
            resource_id=resource_id,
            db_user=db_user,
            partition=partition,
        )
    return str(arn)
