"""The programs in examples/ run against the RDS IAM emulator, so they cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from rdsiamkit.authmode import AuthMode, get_auth_mode
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    return rds_emulator.add_credentials()


@pytest.fixture
def example_env(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, tmp_path: Path
) -> dict[str, str]:
    """What a deployment would set: libpq variables for the admin login and AWS credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
    env |= {
        "PGHOST": rds_emulator.endpoint,
        "PGPORT": str(rds_emulator.port),
        "PGHOSTADDR": rds_emulator.hostaddr,
        "PGSSLROOTCERT": str(rds_emulator.ca_file),
        "PGDATABASE": "postgres",
        "PGUSER": rds_emulator.master_user,
        "PGPASSWORD": rds_emulator.master_password,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return env


@pytest.fixture
def users(rds_emulator: RdsIamEmulator) -> Iterator[list[str]]:
    """Three password users to migrate, dropped afterwards."""
    names = [f"mig_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in names:
        rds_emulator.create_user(name, password=uuid.uuid4().hex)
    yield names
    for name in names:
        rds_emulator.drop_user(name)


def run(script: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def modes(emu: RdsIamEmulator, names: list[str]) -> list[AuthMode]:
    with emu.connect_admin() as admin:
        return [get_auth_mode(admin, name) for name in names]


def test_app_pool_serves_queries_as_iam_user(
    rds_emulator: RdsIamEmulator, example_env: dict[str, str]
) -> None:
    """app_pool.py runs its workers on an IAM pool and reports zero failures."""
    user = f"app_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(user, iam=True)
    try:
        done = run(
            "app_pool.py",
            ["--user", user, "--workers", "3", "--duration", "1.5"],
            example_env,
        )
    finally:
        rds_emulator.drop_user(user)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed in " in done.stdout and f"as {user};" in done.stdout
    assert "1 token(s) minted" in done.stdout


def test_app_pool_exits_nonzero_when_logins_are_refused(
    rds_emulator: RdsIamEmulator, example_env: dict[str, str]
) -> None:
    """app_pool.py fails loudly for a user that is not an IAM user."""
    user = f"app_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(user, password=uuid.uuid4().hex)
    try:
        done = run("app_pool.py", ["--user", user, "--duration", "0.5"], example_env)
    finally:
        rds_emulator.drop_user(user)
    assert done.returncode != 0
    assert "not a member of rds_iam" in done.stderr


def test_migrate_users_dry_run_changes_nothing(
    rds_emulator: RdsIamEmulator, example_env: dict[str, str], users: list[str]
) -> None:
    """Without --apply the script prints the plan and every user keeps its password."""
    done = run("migrate_users.py", users, example_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 to IAM (GRANT rds_iam)" in done.stdout and "dry run" in done.stdout
    assert modes(rds_emulator, users) == [AuthMode.PASSWORD] * 3


def test_migrate_users_applies_and_verifies(
    rds_emulator: RdsIamEmulator, example_env: dict[str, str], users: list[str]
) -> None:
    """--apply switches every user and proves each can log in with a token."""
    done = run("migrate_users.py", [*users, "--apply"], example_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified an IAM login for each of 3 user(s)" in done.stdout
    assert modes(rds_emulator, users) == [AuthMode.IAM] * 3
    assert {e.user for e in rds_emulator.auth_events() if e.ok} >= set(users)


def test_migrate_users_rolls_back_when_a_login_fails(
    rds_emulator: RdsIamEmulator,
    example_env: dict[str, str],
    users: list[str],
    creds: FakeCredentials,
) -> None:
    """If the signing identity may not log in as one user, all users go back to PASSWORD."""
    allowed = [rds_emulator.db_user_arn(u) for u in users[:2]]
    rds_emulator.set_policy(creds.access_key_id, allowed)
    done = run("migrate_users.py", [*users, "--apply"], example_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"IAM login as {users[2]} failed" in done.stdout
    assert "rolled back" in done.stdout
    assert modes(rds_emulator, users) == [AuthMode.PASSWORD] * 3


def test_migrate_users_reports_refusals(
    rds_emulator: RdsIamEmulator, example_env: dict[str, str], users: list[str]
) -> None:
    """A missing role and the master user are refused and reported; the rest is switched."""
    missing = f"ghost_{uuid.uuid4().hex[:8]}"
    args = [users[0], missing, rds_emulator.master_user, "--apply"]
    done = run("migrate_users.py", args, example_env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "left alone (refused): " in done.stdout
    assert missing in done.stdout and "lockout_guard" in done.stdout
    assert modes(rds_emulator, users[:1]) == [AuthMode.IAM]
    assert modes(rds_emulator, [rds_emulator.master_user]) == [AuthMode.PASSWORD]


def test_explore_users_notebook_executes(
    rds_emulator: RdsIamEmulator,
    example_env: dict[str, str],
    creds: FakeCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notebook runs top to bottom on the emulator, and no secret reaches its outputs."""
    for key in [k for k in os.environ if k.startswith(("PG", "AWS_"))]:
        monkeypatch.delenv(key)
    for key, value in example_env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(EXAMPLES / "explore_users.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(EXAMPLES)}},
    ).execute()
    outputs = "\n".join(
        str(output.get("text", "")) + str(output.get("data", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert re.search(r"\d+ roles: \d+ IAM, \d+ PASSWORD", outputs)  # list_users' headline
    assert "switched password -> iam (GRANT rds_iam); IAM login verified" in outputs
    assert "password refused: PAM authentication failed" in outputs
    assert "cannot switch it to PASSWORD" in outputs
    assert "REFUSED" in outputs and "dropped" in outputs
    for secret in (rds_emulator.master_password, creds.secret_access_key, "X-Amz-Signature"):
        assert secret not in outputs
    with rds_emulator.connect_admin() as admin:
        left = admin.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'nb\\_%'")
        assert left.fetchone() == (0,)
