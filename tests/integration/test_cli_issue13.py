"""Issue 13 against the emulator, through the real ``rdsiamkit`` console script."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from test_cli_emulator import creds, env, run, users, where  # noqa: F401 - fixtures

from rdsiamkit.testing import RdsIamEmulator

__all__: list[str] = []


def _no_dbname(args: list[str]) -> list[str]:
    """``where()`` without ``--dbname``: libpq's default (the user's name) applies."""
    i = args.index("--dbname")
    return args[:i] + args[i + 2 :]


@pytest.fixture
def pam_admin(users: Callable[..., str]) -> tuple[str, str]:  # noqa: F811
    """An admin with a password who is in rds_iam: PAM refuses its password."""
    password = "pw-" + uuid.uuid4().hex
    return users(iam=True, password=password), password


def test_admin_password_refused_by_pam_says_rds_iam(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
    pam_admin: tuple[str, str],
) -> None:
    """`status` with a password refused by PAM says the admin is in rds_iam, and what to do."""
    admin, password = pam_admin
    result = run(["status", *where(rds_emulator, admin)], {**env, "PGPASSWORD": password})
    assert result.returncode == 4, result.stderr
    assert "PAM authentication failed" in result.stderr
    assert f"{admin} is in rds_iam" in result.stderr
    assert "--iam" in result.stderr and "REVOKE rds_iam FROM" in result.stderr
    assert "iam=True" not in result.stderr and password not in result.stderr


def test_doctor_admin_login_failure_is_a_warning_and_checks_run(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
    users: Callable[..., str],  # noqa: F811
    pam_admin: tuple[str, str],
) -> None:
    """`doctor --admin-user` whose login fails still prints JSON, the failure as a warning."""
    user = users(iam=True)
    admin, password = pam_admin
    args = ["doctor", "--json", "--offline", *where(rds_emulator, user), "--admin-user", admin]
    result = run(args, {**env, "PGPASSWORD": password})
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    membership = checks["rds_iam_membership"]
    assert (membership["status"], membership["finding"]) == ("warn", "admin_login_failed")
    assert "is in rds_iam" in membership["reason"]
    assert checks["tls"]["status"] == "pass"
    assert result.returncode in (0, 1) and password not in result.stdout + result.stderr


def test_admin_commands_default_dbname_to_postgres(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
    users: Callable[..., str],  # noqa: F811
) -> None:
    """Without --dbname or PGDATABASE, `status` logs in to postgres, and --help says so."""
    password = "pw-" + uuid.uuid4().hex
    admin = users(password=password)
    result = run(
        ["status", "--json", *_no_dbname(where(rds_emulator, admin))],
        {**env, "PGPASSWORD": password},
    )
    assert result.returncode == 0, result.stderr
    assert "default: PGDATABASE, else postgres" in " ".join(
        run(["status", "--help"], env).stdout.split()
    )


def test_doctor_names_a_missing_database_after_the_login_worked(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
    users: Callable[..., str],  # noqa: F811
) -> None:
    """A missing database: the IAM login itself worked, database_not_found is its finding."""
    user = users(iam=True)
    result = run(["doctor", "--json", "--offline", *_no_dbname(where(rds_emulator, user))], env)
    report = json.loads(result.stdout)
    assert report["finding"] == "database_not_found", result.stdout
    login = next(c for c in report["checks"] if c["name"] == "login")
    assert "IAM login itself worked" in login["reason"] and user in login["reason"]


def test_connect_maps_psql_failures_to_the_kits_exit_codes(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
    users: Callable[..., str],  # noqa: F811
) -> None:
    """psql's 2 (connection failed) exits 4 with the doctor command; a script error exits 1."""
    refused = users(password="pw-" + uuid.uuid4().hex)  # not in rds_iam: the token is refused
    result = run(["connect", *where(rds_emulator, refused), "--", "-c", "SELECT 1"], env)
    assert result.returncode == 4, result.stderr
    assert "could not connect" in result.stderr and "rdsiamkit doctor --host" in result.stderr
    assert "--hostaddr" in result.stderr
    user = users(iam=True)
    script = ["-v", "ON_ERROR_STOP=1", "-f", "-"]
    failed = run(
        ["connect", *where(rds_emulator, user), "--", *script], env, stdin="SELECT nope;\n"
    )
    assert failed.returncode == 1, failed.stderr
    assert "ON_ERROR_STOP" in failed.stderr


def test_a_missing_user_is_named_not_granted(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
) -> None:
    """`switch nobody iam --dry-run` and `plan` say the role may not exist."""
    nobody = "nobody_" + uuid.uuid4().hex[:6]
    dry = run(["switch", nobody, "iam", "--dry-run", *where(rds_emulator)], env)
    assert "does not exist" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    assert f'GRANT rds_iam TO "{nobody}"' not in dry.stdout
    plan = run(["plan", "-", *where(rds_emulator)], env, stdin=f"user,mode\n{nobody},iam\n")
    assert "does not exist" in plan.stdout + plan.stderr, plan.stdout + plan.stderr
    assert f'GRANT rds_iam TO "{nobody}"' not in plan.stdout
