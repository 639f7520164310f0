"""examples/asyncpg_pool.py and examples/psycopg2_pool.py run against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rdsiamkit.testing import RdsIamEmulator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["asyncpg_pool.py", "psycopg2_pool.py"])
def test_driver_example_serves_queries(
    rds_emulator: RdsIamEmulator, tmp_path: Path, script: str
) -> None:
    """Each driver example runs its workers on an IAM pool and reports zero failures."""
    creds = rds_emulator.add_credentials()
    user = f"ex_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(user, iam=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
    env |= {
        "PGHOST": rds_emulator.endpoint,
        "PGPORT": str(rds_emulator.port),
        "PGHOSTADDR": rds_emulator.hostaddr,
        "PGSSLROOTCERT": str(rds_emulator.ca_file),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / script), "--user", user, "--duration", "1.5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        rds_emulator.drop_user(user)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed, as " + user in done.stdout
