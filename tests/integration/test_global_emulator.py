"""The emulator's global writer, secondary cluster, shard group and custom domains, for real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from rdsiamkit import _resolve
from rdsiamkit.endpoints import Endpoint, EndpointKind
from rdsiamkit.errors import InvalidEndpointError
from rdsiamkit.testing.credentials import FakeCredentials
from rdsiamkit.testing.emulator import RdsIamEmulator
from rdsiamkit.testing.sigv4 import AuthFailureReason

PAM_FAILED = "PAM authentication failed for user"


def token_for(
    emu: RdsIamEmulator, creds: FakeCredentials, user: str, *, host: str, region: str
) -> str:
    """A token minted by botocore, as any AWS SDK would, for ``host`` in ``region``."""
    client = creds.boto3_session(region=region).client("rds")
    token: str = client.generate_db_auth_token(
        DBHostname=host, Port=emu.port, DBUsername=user, Region=region
    )
    return token


def login(emu: RdsIamEmulator, user: str, token: str, host: str, **extra: Any) -> str:
    """Log in with verify-full against ``host`` and return current_user."""
    info = emu.conninfo(user, password=token, host=host) | extra
    with psycopg.connect(**info) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def iam_user(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """A fresh rds_iam member, dropped afterwards."""
    name = rds_emulator.create_user(f"glob_{uuid.uuid4().hex[:8]}", iam=True)
    yield name
    rds_emulator.drop_user(name)


def test_global_writer_follows_the_primary_region(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """Tokens for the global name work for the primary's region only, before and after a switch."""
    emu = rds_emulator
    creds = emu.add_credentials()
    host = emu.global_endpoint
    assert Endpoint.parse(host).kind is EndpointKind.GLOBAL_WRITER
    old = emu.primary_region
    old_token = token_for(emu, creds, iam_user, host=host, region=old)
    assert login(emu, iam_user, old_token, host) == iam_user
    new = emu.switch_primary()
    assert new != old and emu.primary_region == new
    with pytest.raises(psycopg.OperationalError, match=PAM_FAILED):
        login(emu, iam_user, old_token, host)
    assert emu.auth_events()[-1].outcome is AuthFailureReason.WRONG_REGION
    new_token = token_for(emu, creds, iam_user, host=host, region=new)
    assert login(emu, iam_user, new_token, host) == iam_user


def test_member_arns_differ_so_a_primary_only_policy_breaks_at_switchover(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """A policy allowing only today's primary's ARN is refused once the other region is primary."""
    emu = rds_emulator
    east_arn = emu.db_user_arn(iam_user)
    west_arn = emu.db_user_arn(iam_user, region=emu.topology.secondary_region)
    assert east_arn != west_arn and emu.topology.secondary_region in west_arn
    creds = emu.add_credentials(allowed_arns=[east_arn])
    host = emu.global_endpoint
    token = token_for(emu, creds, iam_user, host=host, region=emu.primary_region)
    assert login(emu, iam_user, token, host) == iam_user
    new = emu.switch_primary()
    with pytest.raises(psycopg.OperationalError, match=PAM_FAILED):
        login(emu, iam_user, token_for(emu, creds, iam_user, host=host, region=new), host)
    event = emu.auth_events()[-1]
    assert event.outcome is AuthFailureReason.NOT_AUTHORIZED and west_arn in event.detail
    emu.set_policy(creds.access_key_id, [east_arn, west_arn])
    assert login(emu, iam_user, token_for(emu, creds, iam_user, host=host, region=new), host)


def test_secondary_and_shard_group_endpoints_log_in(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """The secondary cluster's and the shard group's names verify and take their region's tokens."""
    emu = rds_emulator
    creds = emu.add_credentials()
    secondary = emu.topology.secondary_region
    for host, region in (
        (emu.secondary_endpoint, secondary),
        (emu.shard_group_endpoint, emu.region),
    ):
        token = token_for(emu, creds, iam_user, host=host, region=region)
        assert login(emu, iam_user, token, host) == iam_user
    wrong = token_for(emu, creds, iam_user, host=emu.secondary_endpoint, region=emu.region)
    with pytest.raises(psycopg.OperationalError, match=PAM_FAILED):
        login(emu, iam_user, wrong, emu.secondary_endpoint)


def test_dns_points_the_global_writer_at_the_primary(rds_emulator: RdsIamEmulator) -> None:
    """The emulator's DNS, installed for the kit, resolves the global writer to the primary."""
    emu = rds_emulator
    with emu.resolving():
        found = _resolve.primary_region(Endpoint.parse(emu.global_endpoint))
        assert (found.region, found.via) == (emu.region, "dns")
        emu.switch_primary()
        assert _resolve.forget_region(emu.global_endpoint, emu.region)
        assert _resolve.primary_region(Endpoint.parse(emu.global_endpoint)).region == (
            emu.topology.secondary_region
        )
    assert _resolve._resolver is None


def test_custom_domain_is_not_in_the_certificate(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """verify-full against a custom domain fails as on RDS; its CNAME leads to the RDS name."""
    emu = rds_emulator
    domain = emu.add_custom_domain("db.example.test")
    creds = emu.add_credentials()
    token = token_for(emu, creds, iam_user, host=emu.endpoint, region=emu.region)
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        login(emu, iam_user, token, domain)
    with emu.resolving():
        target = _resolve.follow_cname(domain)
    assert (target.endpoint.host, target.address) == (emu.endpoint, emu.hostaddr)
    assert login(emu, iam_user, token, target.endpoint.host, hostaddr=target.address)


def test_custom_domain_to_a_non_rds_name_is_refused(rds_emulator: RdsIamEmulator) -> None:
    """A domain whose chain ends at an EC2 name is refused, naming that name."""
    emu = rds_emulator
    ec2 = "ec2-127-0-0-1.compute-1.amazonaws.com"
    emu.add_custom_domain("app.example.test", ec2)
    with emu.resolving(), pytest.raises(InvalidEndpointError, match=ec2):
        _resolve.follow_cname("app.example.test")


def test_reset_restores_primary_and_dns(rds_emulator: RdsIamEmulator) -> None:
    """reset() puts the primary back and forgets the test's DNS records."""
    emu = rds_emulator
    emu.switch_primary()
    emu.add_custom_domain("gone.example.test")
    emu.reset()
    assert emu.primary_region == emu.region
    assert emu.dns(emu.global_endpoint).chain[1] == emu.endpoint
    with pytest.raises(OSError, match="not known"):
        emu.dns("gone.example.test")
    response = emu.describe_global_clusters()
    members = response["GlobalClusters"][0]["GlobalClusterMembers"]
    assert [m["IsWriter"] for m in members] == [True, False]
