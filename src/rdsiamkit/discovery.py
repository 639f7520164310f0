"""Find the cluster, instance or proxy behind a name, and what IAM needs to know about it.

A policy for IAM database authentication must name the database's *resource
id* (``cluster-…``, ``db-…``, ``prx-…``) and account, which appear nowhere in
the endpoint hostname.  :func:`discover` looks them up from an endpoint or an
identifier; :meth:`DatabaseResource.db_user_arn` then writes the exact ARN to
allow.  For an Aurora instance that ARN names the *cluster's* resource id,
which is the usual trap this module keeps people out of.

Every AWS error is translated into the kit's exception tree (keeping AWS's
``code`` and the ``operation``).  boto3 is imported only when a function here
is called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from rdsiamkit._aws import aws_errors, default_session
from rdsiamkit.arn import ResourceKind, db_user_arn
from rdsiamkit.endpoints import Endpoint, EndpointKind, validate_region
from rdsiamkit.errors import (
    AwsApiError,
    ConfigurationError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import (
        DBClusterTypeDef,
        DBInstanceTypeDef,
        DBProxyTypeDef,
        PaginatorConfigTypeDef,
    )

__all__ = [
    "DatabaseResource",
    "ResourceEndpoint",
    "aws_errors",
    "default_session",
    "discover",
    "enable_iam_auth",
    "list_databases",
]

log = logging.getLogger("rdsiamkit.discovery")

# Ask for the most records per page RDS allows (100): fewest round trips.
_PAGES: PaginatorConfigTypeDef = {"PageSize": 100}
# RDS Proxy listens on the engine's usual port; DescribeDBProxies does not say.
_PROXY_PORTS = {"POSTGRESQL": 5432, "MYSQL": 3306, "SQLSERVER": 1433}


# The order a bare identifier is tried in.
_LOOKUP_ORDER = (ResourceKind.CLUSTER, ResourceKind.INSTANCE, ResourceKind.PROXY)
_T = TypeVar("_T")


@attrs.frozen
class ResourceEndpoint:
    """One hostname a resource answers on, and what it points at."""

    kind: EndpointKind
    host: str
    port: int | None = None


@attrs.frozen(kw_only=True)
class DatabaseResource:
    """What IAM database authentication needs to know about a cluster, instance or proxy."""

    kind: ResourceKind
    #: The name given to the cluster / instance / proxy.
    identifier: str
    #: The resource's own ARN (``arn:aws:rds:…:cluster:demo``).
    arn: str
    #: ``DbClusterResourceId``, ``DbiResourceId`` or the proxy's ``prx-…`` id.
    resource_id: str
    #: The resource id rds-db ARNs must name: the cluster's for an Aurora instance.
    iam_resource_id: str
    account_id: str
    region: str
    partition: str
    port: int | None
    iam_auth_enabled: bool
    endpoints: tuple[ResourceEndpoint, ...]
    engine: str | None
    engine_version: str | None
    status: str | None
    #: For an instance that is an Aurora cluster member, the cluster's identifier.
    cluster_identifier: str | None = None
    #: Settings modified but not applied yet (``IAMDatabaseAuthenticationEnabled``...).
    pending_modifications: tuple[str, ...] = ()

    def db_user_arn(self, db_user: str) -> str:
        """The ARN a policy must allow ``rds-db:connect`` on for ``db_user`` to log in here."""
        return db_user_arn(
            partition=self.partition,
            region=self.region,
            account_id=self.account_id,
            resource_id=self.iam_resource_id,
            db_user=db_user,
        )


def discover(
    target: str, *, session: boto3.Session | None = None, region: str | None = None
) -> DatabaseResource:
    """Describe the cluster, instance or proxy that ``target`` names.

    ``target`` is an endpoint hostname (its region and kind come from the name)
    or an identifier, tried as a cluster, then an instance, then a proxy.

    :raises InvalidEndpointError: ``target`` looks like a hostname but is not an RDS endpoint.
    :raises ResourceNotFoundError: nothing by that name in the account and region.
    :raises AccessDeniedError: the caller may not describe it.
    """
    session = session or default_session()
    if "." in target:
        endpoint = Endpoint.parse(target)
        if region is not None and region != endpoint.region:
            raise ConfigurationError(
                f"region={region!r} contradicts endpoint {endpoint.host!r}, which is in "
                f"{endpoint.region!r}"
            )
        return _discover_endpoint(_rds(session, endpoint.region), endpoint)
    client = _rds(session, region)
    last: ResourceNotFoundError | None = None
    for kind in _LOOKUP_ORDER:
        try:
            return _describe(client, kind, target)
        except ResourceNotFoundError as err:
            last = err
    raise ResourceNotFoundError(
        f"no DB cluster, DB instance or RDS Proxy named {target!r} in {client.meta.region_name}",
        operation="DescribeDBClusters, DescribeDBInstances, DescribeDBProxies",
    ) from last


def list_databases(
    *, session: boto3.Session | None = None, region: str | None = None
) -> list[DatabaseResource]:
    """Every cluster, instance and proxy in the region (all pages), clusters first."""
    client = _rds(session or default_session(), region)
    clusters: list[DatabaseResource] = []
    with aws_errors("DescribeDBClusters", "*"):
        for cluster_page in client.get_paginator("describe_db_clusters").paginate(
            PaginationConfig=_PAGES
        ):
            clusters.extend(_from_cluster(c) for c in cluster_page["DBClusters"])
    cluster_ids = {c.identifier: c.resource_id for c in clusters}
    instances: list[DatabaseResource] = []
    with aws_errors("DescribeDBInstances", "*"):
        for instance_page in client.get_paginator("describe_db_instances").paginate(
            PaginationConfig=_PAGES
        ):
            for instance in instance_page["DBInstances"]:
                member_of = instance.get("DBClusterIdentifier")
                cluster_resource_id = cluster_ids.get(member_of) if member_of else None
                if member_of and cluster_resource_id is None:
                    # A cluster created between the two listings.
                    cluster_resource_id = _describe(
                        client, ResourceKind.CLUSTER, member_of
                    ).resource_id
                instances.append(_from_instance(instance, cluster_resource_id))
    proxies: list[DatabaseResource] = []
    with aws_errors("DescribeDBProxies", "*"):
        for proxy_page in client.get_paginator("describe_db_proxies").paginate(
            PaginationConfig=_PAGES
        ):
            proxies.extend(_from_proxy(p) for p in proxy_page["DBProxies"])
    log.debug(
        "found %d clusters, %d instances, %d proxies in %s",
        len(clusters),
        len(instances),
        len(proxies),
        client.meta.region_name,
    )
    return clusters + instances + proxies


def enable_iam_auth(
    target: str,
    *,
    apply_immediately: bool,
    session: boto3.Session | None = None,
    region: str | None = None,
) -> DatabaseResource:
    """Turn on IAM database authentication for a cluster or instance.

    ``apply_immediately`` must be chosen explicitly: ``True`` applies the change
    now, ``False`` leaves it pending until the next maintenance window (see
    :attr:`DatabaseResource.pending_modifications`).  Enabling IAM does not stop
    password logins.  For an Aurora instance the cluster is modified, since IAM
    auth is a cluster setting there.  Already enabled: nothing is changed.

    RDS Proxies are refused: their IAM setting is per auth entry, and making it
    ``REQUIRED`` locks out password clients, so that change is left to the caller.

    :raises ConfigurationError: ``target`` is a proxy.
    """
    session = session or default_session()
    resource = discover(target, session=session, region=region)
    if resource.kind is ResourceKind.PROXY:
        raise ConfigurationError(
            f"{resource.identifier!r} is an RDS Proxy: set IAMAuth to 'REQUIRED' in its "
            "auth configuration (modify_db_proxy), knowing that this refuses password clients"
        )
    if resource.cluster_identifier is not None:
        log.info(
            "%s is a member of Aurora cluster %s: enabling IAM auth on the cluster",
            resource.identifier,
            resource.cluster_identifier,
        )
        resource = discover(resource.cluster_identifier, session=session, region=resource.region)
    if resource.iam_auth_enabled:
        log.info("IAM database authentication is already enabled on %s", resource.identifier)
        return resource
    client = _rds(session, resource.region)
    log.info(
        "enabling IAM database authentication on %s %s (apply_immediately=%s)",
        resource.kind.value,
        resource.identifier,
        apply_immediately,
    )
    if resource.kind is ResourceKind.CLUSTER:
        with aws_errors("ModifyDBCluster", resource.identifier):
            cluster = client.modify_db_cluster(
                DBClusterIdentifier=resource.identifier,
                EnableIAMDatabaseAuthentication=True,
                ApplyImmediately=apply_immediately,
            )["DBCluster"]
        return _from_cluster(cluster)
    with aws_errors("ModifyDBInstance", resource.identifier):
        instance = client.modify_db_instance(
            DBInstanceIdentifier=resource.identifier,
            EnableIAMDatabaseAuthentication=True,
            ApplyImmediately=apply_immediately,
        )["DBInstance"]
    return _from_instance(instance, None)


# -- helpers ------------------------------------------------------------------


def _rds(session: boto3.Session, region: str | None) -> RDSClient:
    if region is not None:
        validate_region(region)
    region = region or session.region_name
    if not region:
        raise ConfigurationError(
            "no AWS region: pass region=, use an endpoint hostname, or configure a default region"
        )
    return session.client("rds", region_name=region)


def _discover_endpoint(client: RDSClient, endpoint: Endpoint) -> DatabaseResource:
    kind = endpoint.kind
    if kind in (EndpointKind.CLUSTER_WRITER, EndpointKind.CLUSTER_READER):
        return _describe(client, ResourceKind.CLUSTER, endpoint.identifier)
    if kind is EndpointKind.INSTANCE:
        return _describe(client, ResourceKind.INSTANCE, endpoint.identifier)
    if kind is EndpointKind.PROXY:
        return _describe(client, ResourceKind.PROXY, endpoint.identifier)
    if kind is EndpointKind.CLUSTER_CUSTOM:
        owner = _endpoint_owner(
            "DescribeDBClusterEndpoints",
            lambda: client.describe_db_cluster_endpoints(
                DBClusterEndpointIdentifier=endpoint.identifier
            )["DBClusterEndpoints"],
            owner_key="DBClusterIdentifier",
            identifier=endpoint.identifier,
            what="custom cluster endpoint",
            code="DBClusterEndpointNotFoundFault",
        )
        return _describe(client, ResourceKind.CLUSTER, owner)
    proxy_name = _endpoint_owner(
        "DescribeDBProxyEndpoints",
        lambda: client.describe_db_proxy_endpoints(DBProxyEndpointName=endpoint.identifier)[
            "DBProxyEndpoints"
        ],
        owner_key="DBProxyName",
        identifier=endpoint.identifier,
        what="RDS Proxy endpoint",
        code="DBProxyEndpointNotFoundFault",
    )
    proxy = _describe(client, ResourceKind.PROXY, proxy_name)
    extra = ResourceEndpoint(EndpointKind.PROXY_ENDPOINT, endpoint.host, proxy.port)
    return attrs.evolve(proxy, endpoints=(*proxy.endpoints, extra))


def _endpoint_owner(
    operation: str,
    call: Callable[[], Sequence[Mapping[str, Any]]],
    *,
    owner_key: str,
    identifier: str,
    what: str,
    code: str,
) -> str:
    """The resource an endpoint belongs to (its cluster or proxy), or ResourceNotFoundError."""
    with aws_errors(operation, identifier):
        found = call()
    owner = found[0].get(owner_key) if found else None
    if not owner:
        raise ResourceNotFoundError(
            f"no {what} named {identifier!r}", code=code, operation=operation
        )
    return str(owner)


def _describe(client: RDSClient, kind: ResourceKind, identifier: str) -> DatabaseResource:
    """Describe one resource by identifier; not found raises ResourceNotFoundError."""
    if kind is ResourceKind.CLUSTER:
        with aws_errors("DescribeDBClusters", identifier):
            clusters = client.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
        return _from_cluster(_only(clusters, "DB cluster", identifier, "DescribeDBClusters"))
    if kind is ResourceKind.INSTANCE:
        with aws_errors("DescribeDBInstances", identifier):
            instances = client.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        instance = _only(instances, "DB instance", identifier, "DescribeDBInstances")
        member_of = instance.get("DBClusterIdentifier")
        cluster_resource_id = None
        if member_of:
            cluster_resource_id = _describe(client, ResourceKind.CLUSTER, member_of).resource_id
        return _from_instance(instance, cluster_resource_id)
    with aws_errors("DescribeDBProxies", identifier):
        proxies = client.describe_db_proxies(DBProxyName=identifier)["DBProxies"]
    return _from_proxy(_only(proxies, "RDS Proxy", identifier, "DescribeDBProxies"))


def _only(items: list[_T], what: str, identifier: str, operation: str) -> _T:
    if not items:
        raise ResourceNotFoundError(f"no {what} named {identifier!r}", operation=operation)
    return items[0]


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """``(partition, region, account_id)`` of an ``arn:PARTITION:rds:REGION:ACCOUNT:…`` ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise AwsApiError(f"RDS returned an unexpected ARN {arn!r}", code="UnexpectedResponse")
    return parts[1], parts[3], parts[4]


def _from_cluster(cluster: DBClusterTypeDef) -> DatabaseResource:
    arn = cluster.get("DBClusterArn", "")
    partition, region, account_id = _arn_parts(arn)
    port = cluster.get("Port")
    endpoints = []
    if "Endpoint" in cluster:
        endpoints.append(ResourceEndpoint(EndpointKind.CLUSTER_WRITER, cluster["Endpoint"], port))
    if "ReaderEndpoint" in cluster:
        endpoints.append(
            ResourceEndpoint(EndpointKind.CLUSTER_READER, cluster["ReaderEndpoint"], port)
        )
    endpoints.extend(
        ResourceEndpoint(EndpointKind.CLUSTER_CUSTOM, host, port)
        for host in cluster.get("CustomEndpoints", [])
    )
    pending = cluster.get("PendingModifiedValues", {})
    resource_id = cluster.get("DbClusterResourceId", "")
    return DatabaseResource(
        kind=ResourceKind.CLUSTER,
        identifier=cluster.get("DBClusterIdentifier", ""),
        arn=arn,
        resource_id=resource_id,
        iam_resource_id=resource_id,
        account_id=account_id,
        region=region,
        partition=partition,
        port=port,
        iam_auth_enabled=bool(cluster.get("IAMDatabaseAuthenticationEnabled", False)),
        endpoints=tuple(endpoints),
        engine=cluster.get("Engine"),
        engine_version=cluster.get("EngineVersion"),
        status=cluster.get("Status"),
        pending_modifications=tuple(sorted(pending)),
    )


def _from_instance(
    instance: DBInstanceTypeDef, cluster_resource_id: str | None
) -> DatabaseResource:
    arn = instance.get("DBInstanceArn", "")
    partition, region, account_id = _arn_parts(arn)
    address = instance.get("Endpoint", {})
    port = address.get("Port") or instance.get("DbInstancePort") or None
    endpoints: tuple[ResourceEndpoint, ...] = ()
    if "Address" in address:
        endpoints = (ResourceEndpoint(EndpointKind.INSTANCE, address["Address"], port),)
    resource_id = instance.get("DbiResourceId", "")
    return DatabaseResource(
        kind=ResourceKind.INSTANCE,
        identifier=instance.get("DBInstanceIdentifier", ""),
        arn=arn,
        resource_id=resource_id,
        iam_resource_id=cluster_resource_id or resource_id,
        account_id=account_id,
        region=region,
        partition=partition,
        port=port,
        iam_auth_enabled=bool(instance.get("IAMDatabaseAuthenticationEnabled", False)),
        endpoints=endpoints,
        engine=instance.get("Engine"),
        engine_version=instance.get("EngineVersion"),
        status=instance.get("DBInstanceStatus"),
        cluster_identifier=instance.get("DBClusterIdentifier"),
        pending_modifications=tuple(sorted(instance.get("PendingModifiedValues", {}))),
    )


def _from_proxy(proxy: DBProxyTypeDef) -> DatabaseResource:
    arn = proxy.get("DBProxyArn", "")
    partition, region, account_id = _arn_parts(arn)
    engine = proxy.get("EngineFamily")
    port = _PROXY_PORTS.get(engine or "")
    endpoints: tuple[ResourceEndpoint, ...] = ()
    if "Endpoint" in proxy:
        endpoints = (ResourceEndpoint(EndpointKind.PROXY, proxy["Endpoint"], port),)
    iam_auth = proxy.get("DefaultAuthScheme") == "IAM_AUTH" or any(
        auth.get("IAMAuth") in ("ENABLED", "REQUIRED") for auth in proxy.get("Auth", [])
    )
    # The proxy's resource id is the last part of its ARN: …:db-proxy:prx-0123456789abcdef0.
    resource_id = arn.rsplit(":", 1)[-1]
    return DatabaseResource(
        kind=ResourceKind.PROXY,
        identifier=proxy.get("DBProxyName", ""),
        arn=arn,
        resource_id=resource_id,
        iam_resource_id=resource_id,
        account_id=account_id,
        region=region,
        partition=partition,
        port=port,
        iam_auth_enabled=iam_auth,
        endpoints=endpoints,
        engine=engine,
        engine_version=None,
        status=proxy.get("Status"),
    )
