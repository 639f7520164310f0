"""The real ``rdsiamkit`` console script on the emulator: ``access`` and ``plan --summary``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rdsiamkit.testing import RdsIamEmulator

SCRIPT = Path(sys.executable).with_name("rdsiamkit")


@pytest.fixture
def env(rds_emulator: RdsIamEmulator) -> dict[str, str]:
    """The admin password and the emulator's CA, as a shell would pass them; no AWS access."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    creds = rds_emulator.add_credentials()
    return {
        **base,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PGPASSWORD": rds_emulator.master_password,
        "RDSIAMKIT_CA_BUNDLE": str(rds_emulator.ca_file),
    }


@pytest.fixture
def iam_user(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """An IAM database user, dropped afterwards."""
    name = rds_emulator.create_user(f"acc_{uuid.uuid4().hex[:8]}", iam=True)
    yield name
    rds_emulator.drop_user(name)


def where(emu: RdsIamEmulator) -> list[str]:
    """The admin connection: endpoint name dialled at 127.0.0.1."""
    return [
        "--host",
        emu.endpoint,
        "--hostaddr",
        emu.hostaddr,
        "--port",
        str(emu.port),
        "--user",
        emu.master_user,
        "--dbname",
        "postgres",
    ]


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> Any:
    """Run the installed console script; never through a shell."""
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def authorization(emu: RdsIamEmulator, *resources: str) -> dict[str, Any]:
    """What get-account-authorization-details prints for one role allowed ``resources``."""
    statement = {
        "Sid": "Connect",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": list(resources),
    }
    role = {
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
    return {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [role], "Policies": []}


def test_access_exits_0_when_clean_and_1_on_a_dangling_grant(
    rds_emulator: RdsIamEmulator, env: dict[str, str], iam_user: str, tmp_path: Path
) -> None:
    """`access --authorization FILE` maps the grants; a grant to a missing user exits 1."""
    ids = ["--resource-id", rds_emulator.resource_id, "--account-id", rds_emulator.account_id]
    everyone = tmp_path / "auth.json"
    everyone.write_text(json.dumps(authorization(rds_emulator, rds_emulator.db_user_arn("*"))))
    clean = run(["access", "--authorization", str(everyone), *ids, *where(rds_emulator)], env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 dangling, 0 unreachable" in clean.stdout and iam_user in clean.stdout
    ghost = f"ghost_{uuid.uuid4().hex[:6]}"
    doc = authorization(
        rds_emulator, rds_emulator.db_user_arn(iam_user), rds_emulator.db_user_arn(ghost)
    )
    found = run(
        ["access", "--authorization", "-", "--json", *ids, *where(rds_emulator)],
        env,
        stdin=json.dumps(doc),
    )
    assert found.returncode == 1, found.stderr
    data = json.loads(found.stdout)
    assert data["clean"] is False and ghost in [d["db_user"] for d in data["dangling"]]
    mine = [u for u in data["users"] if u["name"] == iam_user]
    assert [g["principal"] for g in mine[0]["grants"]] == [
        f"arn:aws:iam::{rds_emulator.account_id}:role/app"
    ]
    text = run(["access", "--authorization", "-", *ids, *where(rds_emulator)], env, json.dumps(doc))
    assert text.returncode == 1 and "dangling" in text.stdout and ghost in text.stdout


def test_plan_summary_counts_instead_of_listing(
    rds_emulator: RdsIamEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    """`plan --summary` prints counts, refusals by reason and 10 rows, not one line per user."""
    names = [f"sum_{uuid.uuid4().hex[:6]}_{i:03d}" for i in range(40)]
    plan_file = tmp_path / "modes.csv"
    plan_file.write_text("".join(f"{n},iam\n" for n in names))  # none exists: all refused
    result = run(["plan", str(plan_file), "--summary", *where(rds_emulator)], env)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("0 unchanged, 40 refused")
    assert lines[1] == "refused by reason: 40 user_not_found"
    assert "... and 30 more roles" in result.stdout and len(lines) < 20
    as_json = json.loads(
        run(["plan", str(plan_file), "--summary", "--json", *where(rds_emulator)], env).stdout
    )
    assert as_json["counts"]["refused_by_reason"] == {"user_not_found": 40}
    assert len(as_json["first"]) == 10 and "changes" not in as_json
