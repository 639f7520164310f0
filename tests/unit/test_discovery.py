"""Discovery against moto (in-process) and botocore's Stubber: nothing reaches AWS."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from rdsiamkit.arn import ResourceKind
from rdsiamkit.discovery import (
    DatabaseResource,
    ResourceEndpoint,
    discover,
    enable_iam_auth,
    list_databases,
)
from rdsiamkit.endpoints import EndpointKind
from rdsiamkit.errors import (
    AccessDeniedError,
    AwsApiError,
    ConfigurationError,
    CredentialsError,
    InvalidEndpointError,
    ResourceNotFoundError,
)

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and no config files or instance metadata: nothing can reach AWS."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def session() -> Iterator[boto3.Session]:
    """A boto3 session inside moto's in-process AWS."""
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _cluster(session: boto3.Session, name: str = "demo", *, iam: bool = True) -> dict[str, Any]:
    result = session.client("rds").create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="postgres",
        MasterUserPassword="not-a-real-secret",
        EnableIAMDatabaseAuthentication=iam,
    )
    return dict(result["DBCluster"])


def _instance(session: boto3.Session, name: str = "mydb", **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "Engine": "postgres",
        "MasterUsername": "postgres",
        "MasterUserPassword": "not-a-real-secret",
        "AllocatedStorage": 20,
    }
    options.update(extra)
    result = session.client("rds").create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", **options
    )
    return dict(result["DBInstance"])


def _proxy(session: boto3.Session, name: str = "myproxy") -> dict[str, Any]:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    result = session.client("rds").create_db_proxy(
        DBProxyName=name,
        EngineFamily="POSTGRESQL",
        Auth=[
            {
                "AuthScheme": "SECRETS",
                "SecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db",
                "IAMAuth": "REQUIRED",
            }
        ],
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/proxy",
        VpcSubnetIds=[subnet],
    )
    return dict(result["DBProxy"])


class _StubbedSession:
    """Stands in for boto3.Session, handing out one Stubber-controlled client."""

    def __init__(self, service: str, region: str = REGION) -> None:
        self.region_name = region
        self.client_obj = boto3.Session(region_name=region).client(service)
        self.stubber = Stubber(self.client_obj)
        self.regions: list[str | None] = []

    def client(self, service: str, region_name: str | None = None) -> Any:
        self.regions.append(region_name)
        return self.client_obj


# -- discovery on moto --------------------------------------------------------


def test_discover_cluster_by_identifier_and_endpoints(session: boto3.Session) -> None:
    """A cluster is found by name, writer and reader endpoint, with its resource id and ARN."""
    created = _cluster(session)
    by_name = discover("demo", session=session)
    assert by_name.kind is ResourceKind.CLUSTER
    assert by_name.identifier == "demo"
    assert by_name.resource_id == created["DbClusterResourceId"]
    assert by_name.iam_resource_id == by_name.resource_id
    assert (by_name.account_id, by_name.region, by_name.partition) == (ACCOUNT, REGION, "aws")
    assert by_name.arn == created["DBClusterArn"]
    assert by_name.port == 5432
    assert by_name.iam_auth_enabled is True
    assert by_name.engine == "aurora-postgresql"
    assert by_name.status == "available"
    assert by_name.endpoints == (
        ResourceEndpoint(EndpointKind.CLUSTER_WRITER, created["Endpoint"], 5432),
        ResourceEndpoint(EndpointKind.CLUSTER_READER, created["ReaderEndpoint"], 5432),
    )
    assert discover(created["Endpoint"], session=session) == by_name
    assert discover(created["ReaderEndpoint"].upper() + ".", session=session) == by_name
    assert by_name.db_user_arn("postgres") == (
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{created['DbClusterResourceId']}/postgres"
    )


def test_discover_instance_by_identifier_and_endpoint(session: boto3.Session) -> None:
    """An instance is found by name and by endpoint; its ARN uses the DbiResourceId."""
    created = _instance(session, EnableIAMDatabaseAuthentication=True)
    by_name = discover("mydb", session=session)
    assert by_name.kind is ResourceKind.INSTANCE
    assert by_name.resource_id == created["DbiResourceId"]
    assert by_name.iam_auth_enabled is True
    assert by_name.cluster_identifier is None
    assert by_name.endpoints == (
        ResourceEndpoint(EndpointKind.INSTANCE, created["Endpoint"]["Address"], 5432),
    )
    assert discover(created["Endpoint"]["Address"], session=session) == by_name
    assert by_name.db_user_arn("app").endswith(f":dbuser:{created['DbiResourceId']}/app")


def test_aurora_instance_arn_names_the_cluster(session: boto3.Session) -> None:
    """For an Aurora member instance the rds-db ARN uses the cluster's resource id."""
    cluster = _cluster(session)
    _instance(session, "demo-1", Engine="aurora-postgresql", DBClusterIdentifier="demo")
    member = discover("demo-1", session=session)
    assert member.kind is ResourceKind.INSTANCE
    assert member.cluster_identifier == "demo"
    assert member.iam_resource_id == cluster["DbClusterResourceId"] != member.resource_id
    assert f":dbuser:{cluster['DbClusterResourceId']}/app" in member.db_user_arn("app")


def test_discover_proxy_by_identifier(session: boto3.Session) -> None:
    """A proxy is found by name; its resource id is the prx- part of its ARN."""
    created = _proxy(session)
    proxy = discover("myproxy", session=session)
    assert proxy.kind is ResourceKind.PROXY
    assert proxy.arn == created["DBProxyArn"]
    assert proxy.resource_id == created["DBProxyArn"].rsplit(":", 1)[1]
    assert proxy.resource_id.startswith("prx-")
    assert proxy.iam_auth_enabled is True
    assert proxy.port == 5432
    assert proxy.engine == "POSTGRESQL"
    assert proxy.endpoints == (ResourceEndpoint(EndpointKind.PROXY, created["Endpoint"], 5432),)
    assert proxy.db_user_arn("app").endswith(f":dbuser:{proxy.resource_id}/app")


def test_identifier_not_found(session: boto3.Session) -> None:
    """An unknown identifier, after trying all three kinds, is ResourceNotFoundError."""
    with pytest.raises(
        ResourceNotFoundError, match="no DB cluster, DB instance or RDS Proxy"
    ) as info:
        discover("nope", session=session)
    assert isinstance(info.value.__cause__, ResourceNotFoundError)
    assert isinstance(info.value, LookupError)


def test_endpoint_not_found_keeps_code_and_operation(session: boto3.Session) -> None:
    """A cluster endpoint naming no cluster maps DBClusterNotFoundFault, keeping the ClientError."""
    with pytest.raises(ResourceNotFoundError) as info:
        discover("gone.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com", session=session)
    assert info.value.code == "DBClusterNotFoundFault"
    assert info.value.operation == "DescribeDBClusters"
    assert isinstance(info.value.__cause__, ClientError)


def test_non_endpoint_hostname_is_refused() -> None:
    """A hostname that is not an RDS endpoint is InvalidEndpointError, without an AWS call."""
    fake = _StubbedSession("rds")  # no responses queued: any call would fail differently
    with fake.stubber, pytest.raises(InvalidEndpointError):
        discover("db.example.com", session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()


def test_region_contradicting_the_endpoint_is_refused(session: boto3.Session) -> None:
    """region= that disagrees with the endpoint's own region is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="contradicts"):
        discover(
            "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
            session=session,
            region="eu-west-1",
        )


def test_list_databases_paginates(session: boto3.Session) -> None:
    """120 instances (two 100-record pages on moto), a cluster and a proxy are all listed."""
    for i in range(120):
        _instance(session, f"db{i:03d}")
    _cluster(session)
    _proxy(session)
    pages: list[str] = []
    session.events.register(
        "before-call.rds.DescribeDBInstances", lambda **kwargs: pages.append("page")
    )
    found = list_databases(session=session)
    assert len(pages) == 2
    kinds = [r.kind for r in found]
    assert kinds.count(ResourceKind.CLUSTER) == 1
    assert kinds.count(ResourceKind.INSTANCE) == 120
    assert kinds.count(ResourceKind.PROXY) == 1
    assert sorted(r.identifier for r in found if r.kind is ResourceKind.INSTANCE) == [
        f"db{i:03d}" for i in range(120)
    ]


def test_list_databases_follows_cluster_markers() -> None:
    """120 clusters over two DescribeDBClusters pages are all listed (moto does not page these)."""
    fake = _StubbedSession("rds")
    records = [
        _cluster_record(
            DBClusterIdentifier=f"c{i:03d}",
            DBClusterArn=f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:c{i:03d}",
        )
        for i in range(120)
    ]
    fake.stubber.add_response(
        "describe_db_clusters", {"DBClusters": records[:100], "Marker": "m1"}, {"MaxRecords": 100}
    )
    fake.stubber.add_response(
        "describe_db_clusters", {"DBClusters": records[100:]}, {"MaxRecords": 100, "Marker": "m1"}
    )
    fake.stubber.add_response("describe_db_instances", {"DBInstances": []}, {"MaxRecords": 100})
    fake.stubber.add_response("describe_db_proxies", {"DBProxies": []}, {"MaxRecords": 100})
    with fake.stubber:
        found = list_databases(session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
    assert [r.identifier for r in found] == [f"c{i:03d}" for i in range(120)]


def test_list_databases_maps_members_to_their_cluster(session: boto3.Session) -> None:
    """Listed Aurora instances carry their cluster's resource id for IAM."""
    cluster = _cluster(session)
    _instance(session, "demo-1", Engine="aurora-postgresql", DBClusterIdentifier="demo")
    member = next(r for r in list_databases(session=session) if r.identifier == "demo-1")
    assert member.iam_resource_id == cluster["DbClusterResourceId"]


def test_enable_iam_auth_on_instance(session: boto3.Session) -> None:
    """enable_iam_auth turns IAM on for an RDS instance and returns the updated resource."""
    _instance(session)
    assert discover("mydb", session=session).iam_auth_enabled is False
    updated = enable_iam_auth("mydb", apply_immediately=True, session=session)
    assert updated.iam_auth_enabled is True
    assert discover("mydb", session=session).iam_auth_enabled is True


def test_enable_iam_auth_refuses_proxies(session: boto3.Session) -> None:
    """Proxies are refused: REQUIRED would lock out password clients."""
    _proxy(session)
    with pytest.raises(ConfigurationError, match="RDS Proxy"):
        enable_iam_auth("myproxy", apply_immediately=True, session=session)


def test_apply_immediately_is_required() -> None:
    """apply_immediately has no default: the caller must choose."""
    with pytest.raises(TypeError, match="apply_immediately"):
        enable_iam_auth("mydb")  # type: ignore[call-arg]


# -- Stubber: what moto does not model ----------------------------------------

_CLUSTER_ARN = f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:demo"
_CLUSTER_RID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
_HOST = "c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"


def _cluster_record(**extra: Any) -> dict[str, Any]:
    record = {
        "DBClusterIdentifier": "demo",
        "DBClusterArn": _CLUSTER_ARN,
        "DbClusterResourceId": _CLUSTER_RID,
        "Port": 5432,
        "IAMDatabaseAuthenticationEnabled": False,
        "Endpoint": f"demo.cluster-{_HOST}",
        "ReaderEndpoint": f"demo.cluster-ro-{_HOST}",
        "CustomEndpoints": [f"analytics.cluster-custom-{_HOST}"],
        "Engine": "aurora-postgresql",
        "EngineVersion": "16.4",
        "Status": "available",
    }
    record.update(extra)
    return record


def test_enable_iam_auth_on_cluster_pending() -> None:
    """Without apply_immediately the cluster change is pending, and the result says so."""
    fake = _StubbedSession("rds")
    fake.stubber.add_response(
        "describe_db_clusters", {"DBClusters": [_cluster_record()]}, {"DBClusterIdentifier": "demo"}
    )
    pending = _cluster_record(PendingModifiedValues={"IAMDatabaseAuthenticationEnabled": True})
    fake.stubber.add_response(
        "modify_db_cluster",
        {"DBCluster": pending},
        {
            "DBClusterIdentifier": "demo",
            "EnableIAMDatabaseAuthentication": True,
            "ApplyImmediately": False,
        },
    )
    with fake.stubber:
        result = enable_iam_auth("demo", apply_immediately=False, session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
    assert result.iam_auth_enabled is False
    assert result.pending_modifications == ("IAMDatabaseAuthenticationEnabled",)
    assert [e.kind for e in result.endpoints] == [
        EndpointKind.CLUSTER_WRITER,
        EndpointKind.CLUSTER_READER,
        EndpointKind.CLUSTER_CUSTOM,
    ]


def test_enable_iam_auth_on_aurora_member_modifies_the_cluster() -> None:
    """For an Aurora instance the cluster is modified, since IAM is a cluster setting there."""
    fake = _StubbedSession("rds")
    member = {
        "DBInstanceIdentifier": "demo-1",
        "DBInstanceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:demo-1",
        "DbiResourceId": "db-12ABC34DEFG5HIJ6KLMNOP78QR",
        "DBClusterIdentifier": "demo",
        "Endpoint": {"Address": f"demo-1.{_HOST}", "Port": 5432},
    }
    fake.stubber.add_client_error(
        "describe_db_clusters",
        "DBClusterNotFoundFault",
        expected_params={"DBClusterIdentifier": "demo-1"},
    )
    fake.stubber.add_response(
        "describe_db_instances", {"DBInstances": [member]}, {"DBInstanceIdentifier": "demo-1"}
    )
    for _ in range(2):
        fake.stubber.add_response(
            "describe_db_clusters",
            {"DBClusters": [_cluster_record()]},
            {"DBClusterIdentifier": "demo"},
        )
    fake.stubber.add_response(
        "modify_db_cluster",
        {"DBCluster": _cluster_record(IAMDatabaseAuthenticationEnabled=True)},
        {
            "DBClusterIdentifier": "demo",
            "EnableIAMDatabaseAuthentication": True,
            "ApplyImmediately": True,
        },
    )
    with fake.stubber:
        result = enable_iam_auth("demo-1", apply_immediately=True, session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
    assert (result.kind, result.iam_auth_enabled) == (ResourceKind.CLUSTER, True)


def test_enable_iam_auth_already_enabled_changes_nothing() -> None:
    """When IAM is already on, no Modify call is made (the Stubber would refuse one)."""
    fake = _StubbedSession("rds")
    fake.stubber.add_response(
        "describe_db_clusters",
        {"DBClusters": [_cluster_record(IAMDatabaseAuthenticationEnabled=True)]},
        {"DBClusterIdentifier": "demo"},
    )
    with fake.stubber:
        result = enable_iam_auth("demo", apply_immediately=True, session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
    assert result.iam_auth_enabled is True


def test_discover_custom_endpoint() -> None:
    """A custom endpoint leads, through DescribeDBClusterEndpoints, to its cluster."""
    fake = _StubbedSession("rds", region="eu-west-1")
    fake.stubber.add_response(
        "describe_db_cluster_endpoints",
        {
            "DBClusterEndpoints": [
                {"DBClusterEndpointIdentifier": "analytics", "DBClusterIdentifier": "demo"}
            ]
        },
        {"DBClusterEndpointIdentifier": "analytics"},
    )
    fake.stubber.add_response(
        "describe_db_clusters", {"DBClusters": [_cluster_record()]}, {"DBClusterIdentifier": "demo"}
    )
    with fake.stubber:
        found = discover(f"analytics.cluster-custom-{_HOST}", session=fake)  # type: ignore[arg-type]
    assert found.identifier == "demo"
    assert fake.regions == ["us-east-1"]  # the endpoint's region, not the session default


def test_discover_proxy_endpoints() -> None:
    """Real proxy hostnames (name.proxy-HASH, ep.endpoint.proxy-HASH) lead to the proxy."""
    proxy = {
        "DBProxyName": "myproxy",
        "DBProxyArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db-proxy:prx-0123456789abcdef0",
        "EngineFamily": "POSTGRESQL",
        "DefaultAuthScheme": "IAM_AUTH",
        "Endpoint": f"myproxy.proxy-{_HOST}",
        "Status": "available",
    }
    fake = _StubbedSession("rds")
    fake.stubber.add_response(
        "describe_db_proxies", {"DBProxies": [proxy]}, {"DBProxyName": "myproxy"}
    )
    fake.stubber.add_response(
        "describe_db_proxy_endpoints",
        {"DBProxyEndpoints": [{"DBProxyEndpointName": "reads", "DBProxyName": "myproxy"}]},
        {"DBProxyEndpointName": "reads"},
    )
    fake.stubber.add_response(
        "describe_db_proxies", {"DBProxies": [proxy]}, {"DBProxyName": "myproxy"}
    )
    with fake.stubber:
        default = discover(f"myproxy.proxy-{_HOST}", session=fake)  # type: ignore[arg-type]
        extra = discover(f"reads.endpoint.proxy-{_HOST}", session=fake)  # type: ignore[arg-type]
    assert default.resource_id == "prx-0123456789abcdef0"
    assert default.iam_auth_enabled is True
    assert extra.endpoints[-1] == ResourceEndpoint(
        EndpointKind.PROXY_ENDPOINT, f"reads.endpoint.proxy-{_HOST}", 5432
    )


@pytest.mark.parametrize(
    ("code", "error", "mapped"),
    [
        ("AccessDenied", AccessDeniedError, "AccessDenied"),
        ("AccessDeniedException", AccessDeniedError, "AccessDeniedException"),
        ("DBInstanceNotFound", ResourceNotFoundError, "DBInstanceNotFound"),
        ("Throttling", AwsApiError, "Throttling"),
    ],
)
def test_client_errors_are_mapped(code: str, error: type[AwsApiError], mapped: str) -> None:
    """ClientError codes map to the kit's errors, keeping .code, .operation and the cause."""
    fake = _StubbedSession("rds")
    fake.stubber.add_client_error("describe_db_instances", code, "not for you", 400)
    with fake.stubber, pytest.raises(error) as info:
        discover(f"mydb.{_HOST}", session=fake)  # type: ignore[arg-type]
    assert type(info.value) is error
    assert info.value.code == mapped
    assert info.value.operation == "DescribeDBInstances"
    assert "not for you" in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)


def test_access_denied_is_not_masked_by_the_fallthrough() -> None:
    """AccessDenied on the cluster lookup surfaces instead of trying the next kind."""
    fake = _StubbedSession("rds")
    fake.stubber.add_client_error("describe_db_clusters", "AccessDenied", "no rds:Describe*", 403)
    with fake.stubber, pytest.raises(AccessDeniedError):
        discover("demo", session=fake)  # type: ignore[arg-type]


def test_missing_credentials_are_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere gives CredentialsError, not a botocore exception."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsError, match="needs AWS credentials"):
        discover("demo", session=boto3.Session(region_name=REGION))


def test_missing_region_is_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An identifier with no region anywhere asks for region=."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="no AWS region"):
        discover("demo", session=boto3.Session())


def test_invalid_region_is_configuration_error() -> None:
    """A malformed region= is refused before any client is made."""
    with pytest.raises(ConfigurationError, match="invalid AWS region"):
        list_databases(session=boto3.Session(), region="moon-1")


def test_resource_is_a_frozen_value() -> None:
    """DatabaseResource is immutable."""
    resource = DatabaseResource(
        kind=ResourceKind.INSTANCE,
        identifier="mydb",
        arn="arn:aws:rds:us-east-1:1:db:mydb",
        resource_id="db-12ABC34DEFG5HIJ6KLMNOP78QR",
        iam_resource_id="db-12ABC34DEFG5HIJ6KLMNOP78QR",
        account_id=ACCOUNT,
        region=REGION,
        partition="aws",
        port=5432,
        iam_auth_enabled=True,
        endpoints=(),
        engine="postgres",
        engine_version="16.4",
        status="available",
    )
    with pytest.raises(AttributeError):
        resource.port = 1  # type: ignore[misc]


def test_importing_discovery_and_policy_does_not_import_boto3() -> None:
    """The AWS-facing modules import boto3/botocore only when called."""
    code = (
        "import sys, rdsiamkit.discovery, rdsiamkit.policy;"
        "print(any(m.split('.')[0] in ('boto3', 'botocore') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
