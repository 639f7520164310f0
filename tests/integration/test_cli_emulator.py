"""The real ``rdsiamkit`` console script, run as a subprocess against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from rdsiamkit.authmode import AuthMode, get_auth_mode
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator

SCRIPT = Path(sys.executable).with_name("rdsiamkit")


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    return rds_emulator.add_credentials()


@pytest.fixture
def env(rds_emulator: RdsIamEmulator, creds: FakeCredentials) -> dict[str, str]:
    """Fake AWS credentials and the admin password, passed the way a shell would."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    return {
        **base,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_DEFAULT_REGION": rds_emulator.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PGPASSWORD": rds_emulator.master_password,
        "RDSIAMKIT_CA_BUNDLE": str(rds_emulator.ca_file),
    }


@pytest.fixture
def users(rds_emulator: RdsIamEmulator) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(*, iam: bool = False, password: str | None = None) -> str:
        name = f"cli_{uuid.uuid4().hex[:8]}"
        rds_emulator.create_user(name, iam=iam, password=password)
        made.append(name)
        return name

    yield make
    for name in made:
        rds_emulator.drop_user(name)


def where(emu: RdsIamEmulator, user: str | None = None) -> list[str]:
    """libpq-style options reaching the emulator by endpoint name at 127.0.0.1."""
    return [
        "--host",
        emu.endpoint,
        "--hostaddr",
        emu.hostaddr,
        "--port",
        str(emu.port),
        "--user",
        user or emu.master_user,
        "--dbname",
        "postgres",
    ]


def run(
    args: Sequence[str], env: dict[str, str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
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


def no_secrets(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """Neither stream shows a secret."""
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


def test_console_script_is_installed() -> None:
    """The venv has the rdsiamkit entry point that the tests drive."""
    assert SCRIPT.is_file()


def test_token_logs_in_with_psycopg(
    rds_emulator: RdsIamEmulator, env: dict[str, str], users: Callable[..., str]
) -> None:
    """`rdsiamkit token` prints exactly one token, which logs the IAM user in."""
    user = users(iam=True)
    result = run(["token", *where(rds_emulator, user)], env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert "\n" not in token and "X-Amz-Signature=" in token
    conninfo = make_conninfo(**rds_emulator.conninfo(user, password=token))
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)


def test_connect_runs_psql_with_a_fresh_token(
    rds_emulator: RdsIamEmulator, env: dict[str, str], users: Callable[..., str]
) -> None:
    """`rdsiamkit connect` execs psql over verify-full; the token travels in PGPASSWORD only."""
    user = users(iam=True)
    args = ["connect", *where(rds_emulator, user), "--", "-tAX", "-c", "SELECT current_user"]
    result = run(args, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == user
    dry = run([*args[:1], "--dry-run", *args[1:]], env)
    assert dry.returncode == 0
    assert "sslmode=verify-full" in dry.stdout and "X-Amz" not in dry.stdout
    assert dry.stdout.startswith('PGPASSWORD="$(rdsiamkit token --host')


def test_status_lists_users_and_modes(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],
    creds: FakeCredentials,
    users: Callable[..., str],
) -> None:
    """`status` shows IAM and password users as a table and as JSON, without secrets."""
    iam_user, password_user = users(iam=True), users(iam=False)
    text = run(["status", *where(rds_emulator)], env)
    assert text.returncode == 0, text.stderr
    assert "iam path" in text.stdout and iam_user in text.stdout
    as_json = run(["status", "--json", *where(rds_emulator)], env)
    rows = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert rows[iam_user]["mode"] == "iam" and rows[iam_user]["iam_path"] == "direct"
    assert rows[password_user]["mode"] == "password"
    assert rows[rds_emulator.master_user]["admin"] is True
    one = run(["status", "--json", *where(rds_emulator), iam_user], env)
    assert json.loads(one.stdout)[0]["mode"] == "iam"
    no_secrets(as_json, rds_emulator.master_password, creds.secret_access_key)


def test_status_with_iam_admin_login(
    rds_emulator: RdsIamEmulator, env: dict[str, str], users: Callable[..., str]
) -> None:
    """`status --iam` logs the admin in with a token instead of PGPASSWORD."""
    admin = users(iam=True)
    with rds_emulator.connect_admin() as conn:
        conn.execute(f'ALTER ROLE "{admin}" CREATEROLE')
    result = run(
        ["status", "--json", "--iam", *where(rds_emulator, admin)], {**env, "PGPASSWORD": ""}
    )
    assert result.returncode == 0, result.stderr
    assert admin in {r["name"] for r in json.loads(result.stdout)}


def test_switch_and_refusal_exit_code(
    rds_emulator: RdsIamEmulator, env: dict[str, str], users: Callable[..., str]
) -> None:
    """`switch` moves a user to IAM and back; the master user and a Kerberos user are refused, 3."""
    user = users(password="pw-" + uuid.uuid4().hex)
    dry = run(["switch", user, "iam", "--dry-run", "--json", *where(rds_emulator)], env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["statements"] == [f'GRANT "rds_iam" TO "{user}"']
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, user) is AuthMode.PASSWORD
    done = run(["switch", user, "iam", *where(rds_emulator)], env)
    assert done.returncode == 0, done.stderr
    assert "switched password -> iam" in done.stdout
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, user) is AuthMode.IAM
    verified = run(["switch", user, "iam", "--verify", *where(rds_emulator)], env)
    assert verified.returncode == 0, verified.stderr
    assert "IAM login verified" in verified.stdout
    refused = run(["switch", rds_emulator.master_user, "iam", *where(rds_emulator)], env)
    assert refused.returncode == 3
    assert "verify" in refused.stderr
    kerberos = users()
    with rds_emulator.connect_admin() as conn:
        conn.execute(f'GRANT rds_ad TO "{kerberos}"')
    conflict = run(["switch", kerberos, "iam", *where(rds_emulator)], env)
    assert conflict.returncode == 3, conflict.stderr
    assert "Kerberos" in conflict.stderr
    back = run(["switch", user, "password", *where(rds_emulator)], env)
    assert back.returncode == 0, back.stderr
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, user) is AuthMode.PASSWORD


def test_refusal_speaks_flags_not_keywords(
    rds_emulator: RdsIamEmulator, env: dict[str, str]
) -> None:
    """A real refusal printed by the console script says --verify, not the library's verify=True."""
    refused = run(["switch", rds_emulator.master_user, "iam", *where(rds_emulator)], env)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith("rdsiamkit switch: error: ")
    assert "--verify" in refused.stderr
    assert "verify=True" not in refused.stderr and "set_auth_mode" not in refused.stderr


def test_plan_dry_run_then_apply(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],
    users: Callable[..., str],
    tmp_path: Path,
) -> None:
    """`plan FILE` changes nothing; `--apply` switches every user and draws progress on stderr."""
    names = [users(password="pw-" + uuid.uuid4().hex) for _ in range(3)]
    plan_file = tmp_path / "modes.csv"
    plan_file.write_text("user,mode\n" + "".join(f"{n},iam\n" for n in names))
    dry = run(["plan", str(plan_file), *where(rds_emulator)], env)
    assert dry.returncode == 0, dry.stderr
    assert "3 to IAM" in dry.stdout and "dry run" in dry.stdout
    with rds_emulator.connect_admin() as conn:
        assert {get_auth_mode(conn, n) for n in names} == {AuthMode.PASSWORD}
    applied = run(
        ["plan", str(plan_file), "--apply", "--batch-size", "2", *where(rds_emulator)], env
    )
    assert applied.returncode == 0, applied.stderr
    assert "applying [" in applied.stderr and "3/3" in applied.stderr
    with rds_emulator.connect_admin() as conn:
        assert {get_auth_mode(conn, n) for n in names} == {AuthMode.IAM}
    as_json = run(
        ["plan", "--json", "-", *where(rds_emulator)],
        env,
        stdin=json.dumps({n: "password" for n in names}),
    )
    assert [c["action"] for c in json.loads(as_json.stdout)["changes"]] == ["revoke"] * 3


def test_plan_with_refused_admin_exits_3_and_applies_nothing(
    rds_emulator: RdsIamEmulator, env: dict[str, str], users: Callable[..., str], tmp_path: Path
) -> None:
    """A plan that refuses a user is not applied without --skip-refused (exit 3)."""
    user = users(password="pw-" + uuid.uuid4().hex)
    plan_file = tmp_path / "modes.txt"
    plan_file.write_text(f"{user} iam\n{rds_emulator.master_user} iam\n")
    result = run(["plan", str(plan_file), "--apply", *where(rds_emulator)], env)
    assert result.returncode == 3
    assert "REFUSED" in result.stdout and "not applied" in result.stdout
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, user) is AuthMode.PASSWORD
    skipped = run(["plan", str(plan_file), "--apply", "--skip-refused", *where(rds_emulator)], env)
    assert skipped.returncode == 0, skipped.stderr
    with rds_emulator.connect_admin() as conn:
        assert get_auth_mode(conn, user) is AuthMode.IAM


def test_doctor_json_healthy_and_failing(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],
    creds: FakeCredentials,
    users: Callable[..., str],
    tmp_path: Path,
) -> None:
    """`doctor --json` exits 0 when the login works and 1 naming the failing check."""
    user = users(iam=True)
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "rds-db:connect",
                        "Resource": rds_emulator.db_user_arn(user),
                    }
                ],
            }
        )
    )
    evidence = [
        "--offline",
        "--admin-user",
        rds_emulator.master_user,
        "--policy",
        str(policy),
        "--account-id",
        rds_emulator.account_id,
        "--resource-id",
        rds_emulator.resource_id,
    ]
    ok = run(["doctor", "--json", *where(rds_emulator, user), *evidence], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["login"] == statuses["policy"] == statuses["rds_iam_membership"] == "pass"
    bad = run(
        ["doctor", "--json", "--region", "eu-west-1", *where(rds_emulator, user), *evidence], env
    )
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert (report["failed_check"], report["finding"]) == ("configuration", "wrong_region")
    password = "pw-" + uuid.uuid4().hex
    sent = run(
        ["doctor", "--json", "--token-stdin", *where(rds_emulator, user), *evidence],
        env,
        stdin=password + "\n",
    )
    assert json.loads(sent.stdout)["finding"] == "password_sent"
    for result in (ok, bad, sent):
        no_secrets(result, password, creds.secret_access_key, rds_emulator.master_password)


def test_doctor_text_names_the_fix(
    rds_emulator: RdsIamEmulator, env: dict[str, str], users: Callable[..., str]
) -> None:
    """The human report ends with the failing check and its fix (a password user here)."""
    user = users(password="pw-" + uuid.uuid4().hex)
    args = [
        "doctor",
        *where(rds_emulator, user),
        "--offline",
        "--admin-user",
        rds_emulator.master_user,
    ]
    result = run(args, env)
    assert result.returncode == 1
    assert "Result: FAILED at rds_iam_membership (not_in_rds_iam)" in result.stdout
    assert f'Fix: GRANT rds_iam TO "{user}"' in result.stdout


def test_arn_policy_and_ca(
    rds_emulator: RdsIamEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    """`arn build/parse`, `policy build/check` (exit 0 / 1) and `ca show` work end to end."""
    arn_args = ["--region", rds_emulator.region, "--account-id", rds_emulator.account_id]
    arn_args += ["--resource-id", rds_emulator.resource_id, "--user", "app"]
    built = run(["arn", "build", *arn_args], env)
    assert built.returncode == 0, built.stderr
    arn = built.stdout.strip()
    assert arn == rds_emulator.db_user_arn("app")
    parsed = json.loads(run(["arn", "parse", "--json", arn], env).stdout)
    assert (parsed["db_user"], parsed["resource_kind"]) == ("app", "cluster")
    policy = run(["policy", "build", arn], env)
    assert json.loads(policy.stdout)["Statement"][0]["Resource"] == [arn]
    policy_file = tmp_path / "p.json"
    policy_file.write_text(policy.stdout)
    allowed = run(["policy", "check", "--policy", str(policy_file), arn], env)
    assert allowed.returncode == 0 and allowed.stdout.startswith("ALLOWED")
    other = rds_emulator.db_user_arn("other")
    denied = run(["policy", "check", "--json", "--policy", str(policy_file), other], env)
    assert denied.returncode == 1 and json.loads(denied.stdout)["outcome"] == "implicit-deny"
    ca = run(["ca", "show", "--json"], env)
    assert ca.returncode == 0, ca.stderr
    info = json.loads(ca.stdout)
    assert info["path"] == str(rds_emulator.ca_file) and info["certificates"] >= 1
    bad = run(["arn", "parse", "arn:aws:rds:us-east-1:123456789012:db:x"], env)
    assert bad.returncode == 2 and "rds-db" in bad.stderr
