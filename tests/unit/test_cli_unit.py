"""The command line in-process: parsing, plan files, exit codes, output, no secrets."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import psycopg
import pytest

from rdsiamkit.cli import ExitCode, _Progress, build_parser, exit_code_for, main, read_plan_file
from rdsiamkit.errors import (
    AuthModeError,
    ConfigurationError,
    ConnectError,
    CredentialsError,
    InheritedMembershipError,
    LockoutRefusedError,
    SwitchRefusedError,
    UserNotFoundError,
    VerificationFailedError,
)
from rdsiamkit.policy import connect_policy

ENDPOINT = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
ARN_FOR_APP = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app"
RESOURCE_ID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ARN = f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{RESOURCE_ID}/app"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("PGHOST", "PGUSER", "PGPORT", "RDSIAMKIT_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_every_command_is_registered() -> None:
    """The documented subcommands exist, demo included."""
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(choices) >= {
        "token",
        "connect",
        "status",
        "switch",
        "plan",
        "arn",
        "policy",
        "doctor",
        "ca",
        "demo",
    }


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse errors exit 2; a mode other than iam/password is a usage error."""
    with pytest.raises(SystemExit) as info:
        main(["switch", "app", "kerberos", "--host", ENDPOINT, "--user", "admin"])
    assert info.value.code == ExitCode.USAGE
    assert "invalid choice" in capsys.readouterr().err


def test_missing_host_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Options the kit rejects (no --host) exit 2 with the reason on stderr."""
    assert main(["token", "--user", "app"]) == ExitCode.USAGE
    assert "--host is required" in capsys.readouterr().err


def test_token_prints_only_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    """`token` signs locally and prints the token alone (JSON adds where it is valid)."""
    assert main(["token", "--host", ENDPOINT, "--user", "app"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{ENDPOINT}:5432/?Action=connect")
    assert SECRET not in out
    assert main(["token", "--json", "--host", ENDPOINT, "--user", "app", "--port", "6000"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["port"], data["region"], data["expires_in"]) == (6000, "us-east-1", 900)


def test_connect_dry_run_never_shows_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    """`connect --dry-run` prints the psql command with the token as a command substitution."""
    args = ["connect", "--dry-run", "--host", ENDPOINT, "--user", "app", "--", "-c", "select 1"]
    assert main(args) == ExitCode.OK
    out = capsys.readouterr().out
    assert (
        "X-Amz" not in out
        and "sslmode=verify-full" in out
        and out.rstrip().endswith("-c 'select 1'")
    )
    assert main(["connect", "--dry-run", "--json", "--host", ENDPOINT, "--user", "app"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["env"]["PGPASSWORD"] == "<IAM token>" and data["argv"][0] == "psql"
    assert data["env"]["PGSSLMODE"] == "verify-full"
    assert data["argv"][1].startswith("--dbname=") and "sslmode=verify-full" in data["argv"][1]
    assert main(["connect", "--json", "--host", ENDPOINT, "--user", "app"]) == ExitCode.USAGE


@pytest.mark.parametrize(
    "psql_args",
    [
        ["-d", "postgres"],
        ["--dbname=postgres"],
        ["--db=postgres"],
        ["--ho", "evil.example.com"],
        ["--user=other"],
        ["-c", "select 1", "-Xd", "postgres"],
        ["--host", "evil.example.com"],
        ["-hevil.example.com"],
        ["-p5433"],
        ["--username", "other"],
        ["-U", "other"],
    ],
)
def test_connect_refuses_psql_arguments_that_go_elsewhere(
    psql_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """psql -d/-h/-p/-U would send the token (PGPASSWORD) elsewhere: refused with exit 2."""
    args = ["connect", "--dry-run", "--host", ENDPOINT, "--user", "app", "--", *psql_args]
    assert main(args) == ExitCode.USAGE
    assert "connect elsewhere" in capsys.readouterr().err


@pytest.mark.parametrize(
    "psql_args",
    [
        ["-c", "-d"],
        ["--command", "-h"],
        ["-v", "ON_ERROR_STOP=1", "-tAX", "-c", "select 1"],
        ["-Pformat=unaligned", "-f", "-"],
        ["--", "-d"],
    ],
)
def test_connect_keeps_psql_arguments_that_stay(psql_args: list[str]) -> None:
    """Option values that look like -d, and options that take values, are not refused."""
    args = ["connect", "--dry-run", "--host", ENDPOINT, "--user", "app", "--", *psql_args]
    assert main(args) == ExitCode.OK


def test_connect_without_psql_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing psql binary exits 2 before any token is minted."""
    args = ["connect", "--psql", "no-such-psql-binary", "--host", ENDPOINT, "--user", "app"]
    assert main(args) == ExitCode.USAGE
    assert "no-such-psql-binary" in capsys.readouterr().err


def test_arn_build_and_parse(capsys: pytest.CaptureFixture[str]) -> None:
    """`arn build` prints the ARN; `arn parse` splits it, invalid input exits 2."""
    build = ["arn", "build", "--region", "us-east-1", "--account-id", "123456789012"]
    assert main([*build, "--resource-id", RESOURCE_ID, "--user", "app"]) == 0
    assert capsys.readouterr().out.strip() == ARN
    assert main(["arn", "parse", ARN]) == 0
    text = capsys.readouterr().out
    assert "resource_kind  cluster" in text and "db_user        app" in text
    assert main(["arn", "parse", "arn:aws:rds-db:us-east-1:1:dbuser:x/app"]) == ExitCode.USAGE


def test_policy_build_and_check_exit_codes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`policy check` exits 0 when allowed, 1 when denied, 2 for invalid JSON."""
    assert main(["policy", "build", ARN, "--sid", "App"]) == 0
    document = capsys.readouterr().out
    assert json.loads(document)["Statement"][0]["Sid"] == "App"
    path = tmp_path / "p.json"
    path.write_text(document)
    assert main(["policy", "check", "--policy", str(path), ARN]) == ExitCode.OK
    assert main(["policy", "check", "--policy", str(path), ARN[:-3] + "bob"]) == ExitCode.FAILED
    assert "IMPLICIT DENY" in capsys.readouterr().out
    path.write_text("{not json")
    assert main(["policy", "check", "--policy", str(path), ARN]) == ExitCode.USAGE


def test_ca_show(capsys: pytest.CaptureFixture[str]) -> None:
    """`ca show --json` describes the vendored bundle."""
    assert main(["ca", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["certificates"] == 118 and data["path"].endswith("rds-global-bundle.pem")


def test_ca_update_refuses_unknown_partition(capsys: pytest.CaptureFixture[str]) -> None:
    """`ca update` for a partition without a truststore URL exits 2 (no download tried)."""
    assert main(["ca", "update", "--partition", "aws-iso"]) == ExitCode.USAGE
    assert "no known truststore URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user,mode\napp,IAM\nreport, password\n", {"app": "iam", "report": "password"}),
        ("# comment\napp iam\n\nreport password\n", {"app": "iam", "report": "password"}),
        ('{"app": "iam", "x": "password"}', {"app": "iam", "x": "password"}),
        ('[{"user": "app", "mode": "iam"}]', {"app": "iam"}),
        ('"odd name",iam\n', {"odd name": "iam"}),
    ],
)
def test_plan_file_forms(text: str, expected: dict[str, str]) -> None:
    """CSV (with or without header), text lines and both JSON shapes read the same."""
    assert read_plan_file(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app,iam,extra\n", "expected 'user,mode'"),
        ("app,kerberos\n", "unknown auth mode"),
        ("app,iam\napp,password\n", "two different modes"),
        ('{"app": ', "invalid JSON"),
        ('[["app", "iam"]]', "JSON must be"),
    ],
)
def test_plan_file_errors(text: str, message: str) -> None:
    """Malformed plan files are configuration errors naming the line or shape."""
    with pytest.raises(ConfigurationError, match=message):
        read_plan_file(text, name="modes.csv")


def test_plan_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable plan file is a usage error, before any connection."""
    assert main(["plan", "/nonexistent/modes.csv", "--host", ENDPOINT, "--user", "a"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_progress_bar_lines_when_not_a_tty() -> None:
    """Off a terminal the progress bar writes one line per batch."""
    stream = io.StringIO()
    progress = _Progress(stream, width=10)
    progress(5, 10)
    progress(10, 10)
    assert stream.getvalue() == "applying [#####.....] 5/10\napplying [##########] 10/10\n"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (LockoutRefusedError("x"), ExitCode.REFUSED),
        (InheritedMembershipError("x"), ExitCode.REFUSED),
        (SwitchRefusedError("x"), ExitCode.REFUSED),
        (UserNotFoundError("x"), ExitCode.FAILED),
        (VerificationFailedError("x"), ExitCode.FAILED),
        (ConfigurationError("x"), ExitCode.USAGE),
        (ConnectError("x"), ExitCode.CONNECT),
        (CredentialsError("x"), ExitCode.CONNECT),
        (AuthModeError("x"), ExitCode.FAILED),
        (psycopg.OperationalError("x"), ExitCode.CONNECT),
        (psycopg.errors.InsufficientPrivilege("x"), ExitCode.FAILED),
        (RuntimeError("x"), ExitCode.FAILED),
    ],
)
def test_exit_codes(error: BaseException, code: ExitCode) -> None:
    """Each error class maps to its documented exit code."""
    assert exit_code_for(error) is code


def test_failed_ca_download_is_a_connect_failure() -> None:
    """A CA bundle that cannot be downloaded exits 4; one that cannot be read exits 2."""
    import urllib.error

    from rdsiamkit.errors import CABundleError

    def caused(cause: BaseException) -> CABundleError:
        try:
            raise CABundleError("x") from cause
        except CABundleError as err:
            return err

    assert exit_code_for(caused(urllib.error.URLError("no route"))) is ExitCode.CONNECT
    assert exit_code_for(caused(TimeoutError())) is ExitCode.CONNECT
    assert exit_code_for(caused(FileNotFoundError())) is ExitCode.USAGE


def test_plan_and_policy_files_not_utf8_or_with_a_bom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """UTF-16 input is a clean usage error; a UTF-8 byte-order mark is ignored."""
    utf16 = tmp_path / "plan.csv"
    utf16.write_text("user,mode\napp,iam\n", encoding="utf-16")
    assert main(["plan", str(utf16), "--host", ENDPOINT, "--user", "admin"]) == ExitCode.USAGE
    assert "not UTF-8" in capsys.readouterr().err
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(connect_policy(ARN_FOR_APP)), encoding="utf-8-sig")
    assert main(["policy", "check", "--policy", str(policy), ARN_FOR_APP]) == ExitCode.OK


def test_plan_from_stdin_must_be_utf8(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes that are not UTF-8 on stdin are a usage error, before any connection."""
    # As for a real stdin in the C locale: undecodable bytes arrive as surrogates.
    stdin = io.TextIOWrapper(io.BytesIO(b"al\xffice,iam\n"), errors="surrogateescape")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["plan", "-", "--host", ENDPOINT, "--user", "admin"]) == ExitCode.USAGE
    assert "not UTF-8" in capsys.readouterr().err


def test_broken_pipe_without_a_file_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed pipe on a stdout without a descriptor (embedding, capture) still ends quietly."""

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    args = ["arn", "build", "--region", "us-east-1", "--account-id", "123456789012"]
    args += ["--resource-id", "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "--user", "app"]
    assert main(args) == ExitCode.OK


def test_status_refuses_flags_it_cannot_honour_for_named_users(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status USER --aws` / `--all-roles` would ignore the flag: a usage error instead."""
    for flag in ("--aws", "--all-roles"):
        assert main(["status", "app", flag, "--host", ENDPOINT, "--user", "admin"]) == 2
        assert "give no USER" in capsys.readouterr().err


def test_broken_pipe_ends_quietly() -> None:
    """`rdsiamkit policy build ... | head -1` (the console script) exits 0 without a traceback."""
    import subprocess
    import sys
    from pathlib import Path

    arns = [f"{ARN_FOR_APP[:-3]}user{i}" for i in range(3000)]
    script = Path(sys.executable).parent / "rdsiamkit"
    proc = subprocess.Popen(
        [str(script), "policy", "build", *arns],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == ExitCode.OK
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_doctor_exits_1_on_a_failed_check(capsys: pytest.CaptureFixture[str]) -> None:
    """`doctor --offline` against a closed local port exits 1 and names reachability."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["doctor", "--json", "--offline", "--host", ENDPOINT, "--hostaddr", "127.0.0.1"]
    assert main([*args, "--port", str(port), "--user", "app", "--timeout", "1"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["failed_check"], data["finding"]) == ("reachability", "unreachable")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"victim ",iam\n', {"victim ": "iam"}),
        ('"#ops",iam\n', {"#ops": "iam"}),
        ('"   ",password\n', {"   ": "password"}),
        ('"a ""b""",iam\n', {'a "b"': "iam"}),
        ('"multi\nline",iam\n', {"multi\nline": "iam"}),
        ("  # indented comment\r\napp,iam\r\n", {"app": "iam"}),
    ],
)
def test_plan_file_names_are_exact(text: str, expected: dict[str, str]) -> None:
    """Quoted names keep their spaces, leading '#', inner quotes and newlines exactly."""
    assert read_plan_file(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("victim ,iam\n", r"modes.csv:1: user name 'victim ' has leading or trailing white"),
        ("ok,iam\n  victim,iam\n", r"modes.csv:2: user name '  victim' has leading"),
        ("   ,iam\n", r"modes.csv:1: the user name is empty or only white space"),
        ('"",iam\n', r"modes.csv:1: the user name is empty"),
        ('"open,iam\n', r"modes.csv:1: unterminated quoted field"),
        ('"a"b,iam\n', r"modes.csv:1: unexpected text after a quoted field"),
        ('a"b,iam\n', r"modes.csv:1: a quote inside an unquoted field"),
    ],
)
def test_plan_file_refuses_ambiguous_names(text: str, message: str) -> None:
    """A name that could mean two roles, or a broken quote, is refused with its line number."""
    with pytest.raises(ConfigurationError, match=message):
        read_plan_file(text, name="modes.csv")


def test_plan_file_hash_name_is_not_a_comment_when_quoted() -> None:
    """Only whole unquoted lines starting with '#' are comments; the line after still counts."""
    assert read_plan_file('#ops,iam\n"#ops",password\n') == {"#ops": "password"}
