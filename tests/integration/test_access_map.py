"""access_map on the emulator: the seed's outage replayed with a generated IAM document."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from rdsiamkit.access import AccessMap, DanglingReason, access_map
from rdsiamkit.testing import RdsIamEmulator


def authorization(emu: RdsIamEmulator, *users: str) -> dict[str, Any]:
    """What get-account-authorization-details prints for one role allowed ``users``."""
    statement = {
        "Sid": "Connect",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": [emu.db_user_arn(u) for u in users],
    }
    return {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": [
            {
                "RoleName": "app",
                "RoleId": "AROAEXAMPLEAPP",
                "Arn": f"arn:aws:iam::{emu.account_id}:role/app",
                "RolePolicyList": [
                    {
                        "PolicyName": "db-connect",
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]},
                    }
                ],
                "AttachedManagedPolicies": [],
            }
        ],
        "Policies": [],
    }


@pytest.fixture
def testuser(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """The seed's ``testuser``, an IAM user, dropped afterwards."""
    name = rds_emulator.create_user(f"testuser_{uuid.uuid4().hex[:6]}", iam=True)
    yield name
    rds_emulator.drop_user(name)


def mine(amap: AccessMap, *names: str) -> dict[str, object]:
    """The findings about ``names`` only (the shared emulator holds other roles)."""
    return {
        "unreachable": [u for u in amap.unreachable if u in names],
        "dangling": [(d.db_user, d.reason) for d in amap.dangling if d.db_user in names],
    }


def test_seed_replay_clean_unreachable_clean_dangling(
    rds_emulator: RdsIamEmulator, testuser: str
) -> None:
    """GRANT without the policy: unreachable; the policy without the GRANT: dangling."""
    master = rds_emulator.master_user
    old, fixed = (
        authorization(rds_emulator, testuser),
        authorization(rds_emulator, testuser, master),
    )
    role = sql.Identifier(master)
    # One admin session for the whole replay: once postgres is in rds_iam its password fails.
    with rds_emulator.connect_admin() as conn:

        def run(document: dict[str, Any]) -> AccessMap:
            return access_map(
                conn,
                account_authorization=json.dumps(document),
                resource_id=rds_emulator.resource_id,
            )

        clean = run(old)
        assert mine(clean, testuser, master) == {"unreachable": [], "dangling": []}
        [grant] = clean[testuser].grants
        assert grant.principal.name == "app" and grant.statement.sid == "Connect"
        assert not grant.conditional and clean[master].grants == ()
        assert clean.database.account_id == rds_emulator.account_id
        assert clean.database.region == rds_emulator.region
        try:
            conn.execute(sql.SQL("GRANT rds_iam TO {}").format(role))
            broken = run(old)
            assert mine(broken, testuser, master) == {"unreachable": [master], "dangling": []}
            assert not broken.clean
            fixed_map = run(fixed)
            assert mine(fixed_map, testuser, master) == {"unreachable": [], "dangling": []}
            assert [g.principal.name for g in fixed_map[master].grants] == ["app"]
        finally:
            conn.execute(sql.SQL("REVOKE rds_iam FROM {}").format(role))
        dangling = run(fixed)
        assert mine(dangling, testuser, master) == {
            "unreachable": [],
            "dangling": [(master, DanglingReason.NOT_IAM)],
        }
        assert "1 dangling" in repr(dangling) and "not-iam" in str(dangling)
    with rds_emulator.connect_admin() as conn:  # the password works again: nothing else changed
        assert conn.execute("SELECT current_user").fetchone() == (master,)
