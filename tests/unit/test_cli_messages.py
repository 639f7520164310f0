"""The CLI says the library's keyword phrases as flags: one test per entry of the table."""

from __future__ import annotations

import shlex
from contextlib import nullcontext

import pytest

from rdsiamkit.cli import ExitCode, main
from rdsiamkit.cli._messages import PHRASES, Phrase, to_cli
from rdsiamkit.errors import LockoutRefusedError

# Per entry of PHRASES: library sentences (as the library words them) and what the CLI prints.
CASES: dict[str, list[tuple[str, str]]] = {
    "new_password": [
        (
            "Switch it alone with set_auth_mode(..., new_password=...) to set one in the same "
            "transaction, or with has_password=True if it has a working password",
            "Switch it alone with --new-password-stdin to set one in the same "
            "transaction, or with --has-password if it has a working password",
        )
    ],
    "include_members": [
        (
            "switch it alone with set_auth_mode(..., include_members=True) once they have "
            "passwords",
            "switch it alone with rdsiamkit.set_auth_mode(..., include_members=True) in Python "
            "(rdsiamkit switch has no option for it) once they have passwords",
        )
    ],
    "set_auth_mode_call": [
        (
            "GRANT rds_iam TO \"app\" (rdsiamkit.set_auth_mode(conn, 'app', 'iam'))",
            'GRANT rds_iam TO "app" (rdsiamkit switch app iam)',
        ),
        (
            "switch the user back: rdsiamkit.set_auth_mode(conn, \"o'brien x\", 'password')",
            "switch the user back: rdsiamkit switch 'o'\"'\"'brien x' password",
        ),
    ],
    "verify": [
        (
            "verify=True tests an IAM login, so it applies to switches to IAM only",
            "--verify tests an IAM login, so it applies to switches to IAM only",
        ),
        (
            "Switch it alone with verify=True: that grants, tests an IAM login",
            "Switch it alone with --verify: that grants, tests an IAM login",
        ),
    ],
    "iam": [
        (
            "Log in with an IAM token instead (iam=True), or have another admin REVOKE",
            "Log in with an IAM token instead (--iam), or have another admin REVOKE",
        )
    ],
    "has_password": [
        ("or with has_password=True if it has one", "or with --has-password if it has one")
    ],
    "session_or_profile": [
        (
            "no AWS credentials found (environment, ...); pass session= or profile=",
            "no AWS credentials found (environment, ...); pass --profile",
        ),
        (
            "run `aws sso login`, or pass session=/profile=",
            "run `aws sso login`, or pass --profile",
        ),
    ],
    "token_host": [
        (
            "pass token_host=<endpoint> token_port=<its port>",
            "pass --token-host <endpoint> --token-port <its port>",
        ),
        (
            "(behind a tunnel pass token_host=/token_port=)",
            "(behind a tunnel pass --token-host/--token-port)",
        ),
    ],
    "token_port": [
        (
            "pass token_port=5433 (the port dialled may differ: a tunnel)",
            "pass --token-port 5433 (the port dialled may differ: a tunnel)",
        )
    ],
    "region": [
        (
            "it is an IP address, which does not name a region; pass region=",
            "it is an IP address, which does not name a region; pass --region",
        ),
        (
            "sign for eu-west-1: drop region= or pass region='eu-west-1'",
            "sign for eu-west-1: drop --region or pass --region eu-west-1",
        ),
        (
            "region='us-west-2' contradicts endpoint 'db.example', which is in 'us-east-1'",
            "--region us-west-2 contradicts endpoint 'db.example', which is in 'us-east-1'",
        ),
    ],
    "hostaddr": [
        (
            "hostaddr= must be a numeric IP address, got 'x' (put the endpoint name in host=)",
            "--hostaddr must be a numeric IP address, got 'x' (put the endpoint name in --host)",
        ),
        ("hostaddr=10.0.0.5 is dialled", "--hostaddr 10.0.0.5 is dialled"),
    ],
    "host": [
        (
            "keep host=<endpoint> and pass hostaddr=<ip>",
            "keep --host <endpoint> and pass --hostaddr <ip>",
        ),
        ("host= is required: the RDS endpoint name", "--host is required: the RDS endpoint name"),
    ],
    "user": [("user= is required: the database user", "--user is required: the database user")],
    "sslrootcert": [
        (
            "drop sslrootcert=, refresh it or point sslrootcert= at the right bundle",
            "drop --sslrootcert, refresh it or point --sslrootcert at the right bundle",
        ),
        (
            "a path with spaces: sslrootcert='/a b/ca.pem'",
            "a path with spaces: --sslrootcert '/a b/ca.pem'",
        ),
    ],
    "url": [
        (
            "no known truststore URL for partition 'aws-x'; pass url= (known: aws, aws-cn)",
            "no known truststore URL for partition 'aws-x'; pass --url (known: aws, aws-cn)",
        )
    ],
    "aws": [
        ("(STS, SSO), which aws=False rules out", "(STS, SSO), which --offline rules out"),
        (
            "allow HTTPS to sts.amazonaws.com, or pass aws=False",
            "allow HTTPS to sts.amazonaws.com, or pass --offline",
        ),
    ],
    "login": [("not attempted (login=False)", "not attempted (--no-login)")],
    "token": [
        (
            "compare with a fresh token: run the doctor without token= and with credentials",
            "compare with a fresh token: run the doctor without --token-stdin and with credentials",
        )
    ],
    "policies": [
        (
            "give the policy documents (policies=) or allow AWS calls",
            "give the policy documents (--policy FILE) or allow AWS calls",
        )
    ],
    "principal_arn": [
        (
            "pass principal_arn= for the token's signer, or policies= to evaluate offline",
            "pass --principal-arn for the token's signer, or --policy FILE to evaluate offline",
        )
    ],
    "account_id": [
        (
            "pass account_id= and resource_id= or let the doctor ask AWS",
            "pass --account-id and --resource-id or let the doctor ask AWS",
        )
    ],
    "resource_id": [("or resource_id= alone", "or --resource-id alone")],
    "admin_conn": [
        ("needs an admin connection (admin_conn=)", "needs an admin connection (--admin-user)"),
        ("an admin_conn= tells which", "an --admin-user tells which"),
    ],
    "refresh_ca_bundle": [
        (
            "drop sslrootcert=, refresh it (rdsiamkit.refresh_ca_bundle()) or",
            "drop --sslrootcert, refresh it (rdsiamkit ca update) or",
        ),
        (
            "run rdsiamkit.refresh_ca_bundle(partition='aws-cn') or pass sslrootcert=",
            "run rdsiamkit ca update --partition aws-cn or pass --sslrootcert",
        ),
    ],
    "fresh_token": [
        (
            "send a fresh IAM token as the password (rdsiamkit.connect), or",
            "send a fresh IAM token as the password (rdsiamkit token prints one; "
            "rdsiamkit.connect in Python), or",
        )
    ],
    "discover": [
        (
            "IAM needs the resource id (rdsiamkit.discovery.discover() finds it)",
            "IAM needs the resource id (rdsiamkit discover shows it)",
        )
    ],
    "discover_top": [
        (
            "the ARN names the resource id (rdsiamkit.discover() finds it)",
            "the ARN names the resource id (rdsiamkit discover shows it)",
        )
    ],
}


@pytest.mark.parametrize("phrase", PHRASES, ids=[p.name for p in PHRASES])
def test_phrase_is_said_as_a_flag(phrase: Phrase) -> None:
    """Each table entry matches its library sentences, which the CLI prints with flags."""
    for library, cli in CASES[phrase.name]:
        assert phrase.library.search(library), library
        assert to_cli(library) == cli


def test_every_case_names_an_entry() -> None:
    """The cases above and the table name the same entries (no entry without a test)."""
    assert set(CASES) == {p.name for p in PHRASES}
    assert len({p.name for p in PHRASES}) == len(PHRASES)


@pytest.mark.parametrize(
    "text",
    [
        "sslmode=verify-full, CA bundle /x/ca.pem",
        "X-Amz-Security-Token=abc&X-Amz-Credential=AKIA/us-east-1&DBUser=app",
        "https://example.com/?region=us-east-1&token=x",
        "pass --region, --verify or --token-host",
        "token_region=us-east-1 and my_user=x",
        'PAM authentication failed for user "app"',
        "verify=Truely",
    ],
)
def test_text_without_library_phrases_is_unchanged(text: str) -> None:
    """Libpq settings, URLs, token parts, flags and longer names are left as they are."""
    assert to_cli(text) == text


def test_doctor_fixes_for_odd_role_names_quote_for_a_shell() -> None:
    """The doctor's GRANT fix names the switch command with the role quoted for a shell."""
    from rdsiamkit.doctor.checks._shared import grant_fix

    for user in ("app", "o'brien", "a b", "x\\y", "ünï"):
        said = to_cli(grant_fix(user))
        command = said[said.index("(rdsiamkit switch ") + 1 : -1]
        assert shlex.split(command) == ["rdsiamkit", "switch", user, "iam"]


def test_translation_is_idempotent() -> None:
    """Translating twice changes nothing more (a message may pass two printers)."""
    for cases in CASES.values():
        for library, _ in cases:
            once = to_cli(library)
            assert to_cli(once) == once


def test_main_prints_a_refusal_with_flags(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rdsiamkit switch` prints the library's refusal with --verify, and exits 3."""
    import rdsiamkit.authmode
    import rdsiamkit.cli.admin

    def refuse(*_: object, **__: object) -> None:
        raise LockoutRefusedError(
            "cannot switch postgres to iam: postgres is a superuser: if its IAM login does not "
            "work it can no longer log in at all. Switch it alone with verify=True: that grants"
        )

    monkeypatch.setattr(rdsiamkit.cli.admin, "admin_connection", lambda _: nullcontext(None))
    monkeypatch.setattr(rdsiamkit.authmode, "set_auth_mode", refuse)
    code = main(["switch", "postgres", "iam", "--host", "db.example", "--user", "postgres"])
    err = capsys.readouterr().err
    assert code == ExitCode.REFUSED
    assert "Switch it alone with --verify: that grants" in err and "verify=True" not in err
