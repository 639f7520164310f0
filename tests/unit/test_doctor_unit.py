"""diagnose() check logic without a database server: sockets, fakes and botocore Stubber."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import boto3
import botocore.credentials
import pytest
from botocore.stub import Stubber

from rdsiamkit.doctor import (
    CheckName,
    CheckStatus,
    Diagnosis,
    Finding,
    TokenFacts,
    diagnose,
)
from rdsiamkit.doctor.checks.aws import _simulation_principal
from rdsiamkit.policy import connect_policy

ENDPOINT = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
ACCOUNT = "123456789012"
RESOURCE_ID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class StubSession(boto3.Session):
    """A session with fixed keys whose STS client answers from a prepared Stubber."""

    def __init__(self, *, error: str | None = None, region: str = "us-east-1") -> None:
        super().__init__(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name=region)
        self.error = error

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        client = super().client(service_name, *args, **kwargs)  # type: ignore[call-overload]
        if service_name != "sts":
            raise AssertionError(f"unexpected AWS call to {service_name}")
        stubber = Stubber(client)
        if self.error:
            stubber.add_client_error("get_caller_identity", service_error_code=self.error)
        else:
            stubber.add_response(
                "get_caller_identity",
                {"UserId": "AIDA", "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/app"},
            )
        stubber.activate()
        return client


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def _serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A local TCP server calling ``handle`` on each connection; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture
def no_tls_server() -> Iterator[int]:
    """A server that answers PostgreSQL's SSLRequest with 'N' (TLS refused)."""

    def refuse_tls(conn: socket.socket) -> None:
        if conn.recv(8):
            conn.sendall(b"N")

    with _serving(refuse_tls) as port:
        yield port


def token_for(host: str = ENDPOINT, port: int = 5432, user: str = "app", **kw: str) -> str:
    """A real SigV4 token, signed locally by botocore."""
    session = boto3.Session(
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name=kw.get("region", "us-east-1"),
    )
    token: str = session.client("rds").generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=kw.get("region", "us-east-1")
    )
    return token


def run(port: int, **kw: Any) -> Diagnosis:
    """Diagnose a login to ENDPOINT dialled at 127.0.0.1:port, without AWS unless asked."""
    options: dict[str, Any] = {
        "host": ENDPOINT,
        "hostaddr": "127.0.0.1",
        "port": port,
        "user": "app",
        "session": StubSession(),
        "aws": False,
        "timeout": 2.0,
    }
    options.update(kw)
    return diagnose(**options)


def test_token_facts_read_a_botocore_token() -> None:
    """TokenFacts reads host, port, user, key, region, date and expiry, not the signature."""
    facts = TokenFacts.parse(token_for(port=6543, user="u1"))
    assert facts is not None
    assert (facts.host, facts.port, facts.user) == (ENDPOINT, 6543, "u1")
    assert (facts.access_key_id, facts.region, facts.service) == (KEY, "us-east-1", "rds-db")
    assert facts.expires == 900 and facts.signature_ok
    cut = TokenFacts.parse(token_for(port=6543, user="u1")[:-10])
    assert cut is not None and not cut.signature_ok
    assert abs((dt.datetime.now(dt.timezone.utc) - facts.signed_at).total_seconds()) < 60
    assert "Signature" not in repr(facts)


@pytest.mark.parametrize("text", ["hunter2", "", "host:5432/?Action=connect", "a b&c=d"])
def test_token_facts_refuse_non_tokens(text: str) -> None:
    """Passwords and truncated tokens are not mistaken for tokens."""
    assert TokenFacts.parse(text) is None


def test_bad_options_fail_configuration_and_skip_the_rest() -> None:
    """sslmode=disable is refused up front; nothing else can run."""
    diagnosis = run(5432, sslmode="disable")
    assert diagnosis.finding is Finding.INVALID_OPTIONS
    assert "verify-full" in diagnosis.failed.reason  # type: ignore[union-attr]
    assert {c.status for c in diagnosis.checks[1:] if c.name is not CheckName.CREDENTIALS} == {
        CheckStatus.SKIPPED
    }


def test_dns_failure_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint that does not resolve fails the dns check (hostaddr not given)."""

    def fail(*_: object, **__: object) -> list[Any]:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    diagnosis = run(5432, hostaddr=None)
    assert diagnosis.failed.name is CheckName.DNS  # type: ignore[union-attr]
    assert diagnosis.finding is Finding.DNS_FAILURE
    assert diagnosis.check("reachability").status is CheckStatus.SKIPPED


def test_closed_port_is_unreachable(closed_port: int) -> None:
    """Nothing listening: reachability fails, TLS and login are skipped."""
    diagnosis = run(closed_port)
    assert diagnosis.check("dns").status is CheckStatus.PASS
    assert diagnosis.finding is Finding.UNREACHABLE
    assert diagnosis.check("tls").status is CheckStatus.SKIPPED
    assert diagnosis.check("login").status is CheckStatus.SKIPPED


def test_server_refusing_tls_is_named(no_tls_server: int) -> None:
    """An 'N' answer to SSLRequest means TLS is off: named tls_off."""
    diagnosis = run(no_tls_server)
    assert diagnosis.failed.name is CheckName.TLS  # type: ignore[union-attr]
    assert diagnosis.finding is Finding.TLS_OFF


def test_sts_unknown_key_fails_credentials(closed_port: int) -> None:
    """STS InvalidClientTokenId names the unknown access key."""
    diagnosis = run(closed_port, session=StubSession(error="InvalidClientTokenId"), aws=True)
    check = diagnosis.check("credentials")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.UNKNOWN_ACCESS_KEY)
    assert KEY in check.reason and SECRET not in diagnosis.to_json()


def test_sts_bad_secret_and_success(closed_port: int) -> None:
    """SignatureDoesNotMatch is a bad secret; a good answer shows the principal."""
    bad = run(closed_port, session=StubSession(error="SignatureDoesNotMatch"), aws=True)
    assert bad.check("credentials").finding is Finding.BAD_SECRET_KEY
    good = run(closed_port, session=StubSession(), aws=True)
    check = good.check("credentials")
    assert check.status is CheckStatus.PASS and f"arn:aws:iam::{ACCOUNT}:user/app" in check.reason


def test_no_credentials_fail(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any AWS credentials the credentials check fails with the fix."""
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    diagnosis = run(closed_port, session=boto3.Session(region_name="us-east-1"))
    check = diagnosis.check("credentials")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.NO_CREDENTIALS)


def test_region_mismatch(closed_port: int) -> None:
    """A region other than the endpoint's is refused up front, named wrong_region."""
    diagnosis = run(closed_port, region="eu-west-1")
    check = diagnosis.check("configuration")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.WRONG_REGION)
    assert "us-east-1" in check.reason and diagnosis.finding is Finding.WRONG_REGION
    assert run(closed_port).check("region").status is CheckStatus.PASS


def test_token_for_another_port_or_user(closed_port: int) -> None:
    """A given token must name the endpoint, port and user of the login."""
    other_port = run(closed_port, token=token_for(port=5432)).check("token_target")
    assert other_port.finding is Finding.TOKEN_TARGET_MISMATCH
    other_user = run(closed_port, token=token_for(port=closed_port, user="x")).check("token_target")
    assert other_user.finding is Finding.TOKEN_FOR_OTHER_USER
    fine = run(closed_port, token=token_for(port=closed_port)).check("token_target")
    assert fine.status is CheckStatus.PASS


def test_tunnel_without_token_host(closed_port: int) -> None:
    """Dialling localhost with no token_host signs for localhost: named token_target."""
    diagnosis = run(closed_port, host="localhost", hostaddr=None, region="us-east-1")
    check = diagnosis.check("token_target")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.TOKEN_TARGET_MISMATCH)
    assert "token_host" in (check.fix or "")
    tunnelled = run(closed_port, host="localhost", hostaddr=None, token_host=ENDPOINT)
    assert tunnelled.check("token_target").status is CheckStatus.PASS


def test_token_age_and_future_date(closed_port: int) -> None:
    """A token past X-Amz-Expires is expired; one dated ahead shows clock skew."""
    token = token_for(port=closed_port)
    signed = TokenFacts.parse(token).signed_at.timestamp()  # type: ignore[union-attr]
    late = run(closed_port, token=token, clock=lambda: signed + 1000).check("token")
    assert (late.status, late.finding) == (CheckStatus.FAIL, Finding.TOKEN_EXPIRED)
    early = run(closed_port, token=token, clock=lambda: signed - 600).check("token")
    assert early.finding is Finding.CLOCK_SKEW
    fresh = run(closed_port, token=token, clock=lambda: signed + 10).check("token")
    assert fresh.status is CheckStatus.PASS and "10 s ago" in fresh.reason


def test_password_given_is_not_a_token(closed_port: int) -> None:
    """A non-token secret: token checks say so; without the user's mode it is a warning."""
    diagnosis = run(closed_port, token="hunter2-password")
    check = diagnosis.check("token")
    assert (check.status, check.finding) == (CheckStatus.WARN, Finding.PASSWORD_SENT)
    assert diagnosis.check("token_target").status is CheckStatus.SKIPPED
    assert "hunter2-password" not in diagnosis.to_json() + str(diagnosis)


def test_offline_policy_evaluation(closed_port: int) -> None:
    """Given documents are evaluated for the user's ARN built from account and resource id."""
    arn = f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:{RESOURCE_ID}/app"
    ids = {"account_id": ACCOUNT, "resource_id": RESOURCE_ID}
    allowed = run(closed_port, policies=connect_policy(arn), **ids).check("policy")
    assert allowed.status is CheckStatus.PASS
    denied = run(closed_port, policies=connect_policy(arn[:-3] + "bob"), **ids).check("policy")
    assert (denied.status, denied.finding) == (CheckStatus.FAIL, Finding.POLICY_DENIES)
    assert arn in denied.reason and "rdsiamkit policy build" in (denied.fix or "")
    conditional = connect_policy(arn, conditions={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    assert run(closed_port, policies=conditional, **ids).check("policy").status is CheckStatus.WARN
    broken = run(closed_port, policies='{"Statement": 1}', **ids).check("policy")
    assert broken.finding is Finding.INVALID_POLICY
    unknown = run(closed_port, policies=connect_policy(arn)).check("policy")
    assert unknown.status is CheckStatus.SKIPPED and "resource_id" in unknown.reason


def test_membership_and_login_need_their_inputs(closed_port: int) -> None:
    """Without admin_conn membership is skipped; without AWS the iam_enabled check too."""
    diagnosis = run(closed_port)
    assert diagnosis.check("rds_iam_membership").status is CheckStatus.SKIPPED
    assert diagnosis.check("iam_enabled").status is CheckStatus.SKIPPED
    assert "admin" in diagnosis.check("rds_iam_membership").reason


def test_renderings_name_the_failure(closed_port: int) -> None:
    """Text, JSON and HTML name the first failure and its fix, in check order."""
    diagnosis = run(closed_port)
    assert [c.name for c in diagnosis.checks] == list(CheckName)
    text = str(diagnosis)
    assert text.splitlines()[0] == f"rdsiamkit doctor: IAM login as app@{ENDPOINT}:{closed_port}"
    assert "Result: FAILED at reachability (unreachable)" in text
    data = json.loads(diagnosis.to_json())
    assert (data["ok"], data["failed_check"], data["finding"]) == (
        False,
        "reachability",
        "unreachable",
    )
    assert [c["name"] for c in data["checks"]][-1] == "login"
    assert "<td>FAIL</td><td>reachability</td>" in diagnosis._repr_html_()
    assert not diagnosis.ok


def test_assumed_role_is_simulated_as_its_role() -> None:
    """IAM's simulator gets the role ARN for an assumed-role session ARN."""
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/app-role/i-123"
    assert _simulation_principal(session_arn) == f"arn:aws:iam::{ACCOUNT}:role/app-role"
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/app"
    assert _simulation_principal(user_arn) == user_arn


def test_simulation_principal_keeps_a_roles_path() -> None:
    """An SSO role's session ARN is mapped to the role's real, pathed ARN via IAM (moto)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="AKIAEXAMPLE000000001",
            aws_secret_access_key="x" * 20,
            region_name="us-east-1",
        )
        role = session.client("iam").create_role(
            RoleName="AWSReservedSSO_Admin_0123",
            Path="/aws-reserved/sso.amazonaws.com/",
            AssumeRolePolicyDocument="{}",
        )["Role"]
        account = role["Arn"].split(":")[4]
        session_arn = f"arn:aws:sts::{account}:assumed-role/AWSReservedSSO_Admin_0123/someone"
        assert _simulation_principal(session_arn, session) == role["Arn"]
        assert "/aws-reserved/sso.amazonaws.com/" in role["Arn"]
        missing = f"arn:aws:sts::{account}:assumed-role/NoSuchRole/someone"
        assert _simulation_principal(missing, session) == f"arn:aws:iam::{account}:role/NoSuchRole"


def test_policy_is_not_simulated_for_someone_elses_token(closed_port: int) -> None:
    """A token signed by another key: IAM is not asked about the doctor's own principal."""
    other = boto3.Session(
        aws_access_key_id="AKIAOTHERSIGNER00001", aws_secret_access_key=SECRET
    ).client("rds", region_name="us-east-1")
    token = other.generate_db_auth_token(
        DBHostname=ENDPOINT, Port=closed_port, DBUsername="app", Region="us-east-1"
    )
    ids = {"account_id": ACCOUNT, "resource_id": RESOURCE_ID}
    diagnosis = run(closed_port, token=token, aws=True, **ids)
    assert diagnosis.check("credentials").status is CheckStatus.PASS
    check = diagnosis.check("policy")
    assert check.status is CheckStatus.SKIPPED
    assert "AKIAOTHERSIGNER00001" in check.reason and "principal_arn" in check.reason


def test_timeout_must_be_positive() -> None:
    """A zero or negative timeout is bad input, not a false 'unreachable'."""
    from rdsiamkit.errors import ConfigurationError

    for timeout in (0, -1.0):
        with pytest.raises(ConfigurationError, match="timeout must be a positive"):
            run(5432, timeout=timeout)


def test_a_crashing_check_fails_the_diagnosis(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that raises is a FAIL (check_error): the diagnosis cannot say all is well."""
    from rdsiamkit.doctor.checks import REGISTRY

    def boom(**facts: Any) -> Any:
        raise RuntimeError("boom")

    spec = attrs.evolve(REGISTRY.checks[CheckName.DNS], run=boom)
    monkeypatch.setitem(REGISTRY.checks, CheckName.DNS, spec)
    diagnosis = run(closed_port)
    check = diagnosis.check("dns")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.CHECK_ERROR)
    assert not diagnosis.ok and "boom" in check.reason


def test_offline_leaves_assumed_role_credentials_unresolved(
    closed_port: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aws=False with a role_arn profile makes no STS call: credentials and login are skipped."""
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\naws_access_key_id = AKIAEXAMPLE000000001\n"
        "aws_secret_access_key = secret\n"
        "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the doctor made a network call with aws=False")

    monkeypatch.setattr("botocore.endpoint.Endpoint.make_request", no_network)
    diagnosis = run(closed_port, session=boto3.Session(profile_name="role"), login=True)
    check = diagnosis.check("credentials")
    assert check.status is CheckStatus.SKIPPED and "assume-role" in check.reason
    assert diagnosis.check("login").status is CheckStatus.SKIPPED


class ExpiredSession(StubSession):
    """A session whose credentials expired a minute ago (as an unrefreshed role would be)."""

    def get_credentials(self) -> Any:
        frozen = botocore.credentials.ReadOnlyCredentials(KEY, SECRET, "session-token")

        class Expired:
            method = "assume-role"
            _expiry_time = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60)

            def get_frozen_credentials(self) -> Any:
                return frozen

        return Expired()


def test_expired_credentials_fail_unless_the_token_is_someone_elses(closed_port: int) -> None:
    """Expired local credentials are the cause (FAIL), or a side note for another key's token."""
    check = run(closed_port, session=ExpiredSession()).check("credentials")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.CREDENTIALS_EXPIRED)
    other = boto3.Session(
        aws_access_key_id="AKIAOTHERSIGNER00001", aws_secret_access_key=SECRET
    ).client("rds", region_name="us-east-1")
    token = other.generate_db_auth_token(
        DBHostname=ENDPOINT, Port=closed_port, DBUsername="app", Region="us-east-1"
    )
    side = run(closed_port, session=ExpiredSession(), token=token).check("credentials")
    assert (side.status, side.finding) == (CheckStatus.WARN, Finding.CREDENTIALS_EXPIRED)


@pytest.fixture
def closing_server() -> Iterator[int]:
    """A port forward whose far end is down: it accepts, then closes at once."""
    with _serving(lambda conn: None) as port:
        yield port


def test_a_forward_that_closes_is_not_called_tls_off(closing_server: int) -> None:
    """Accept-then-close (ssh -L with its far end down) is a TLS failure naming the tunnel."""
    check = run(closing_server).check("tls")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.TLS_FAILED)
    assert "closed" in check.reason and "tunnel" in (check.fix or "")


def test_a_hung_resolver_is_bounded_and_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS that never answers fails the dns check after timeout; reachability does not ask again."""
    calls: list[str] = []
    release = threading.Event()

    def hang(host: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        release.wait(10)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    try:
        diagnosis = run(5432, hostaddr=None, timeout=0.3)
    finally:
        release.set()
    check = diagnosis.check("dns")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.DNS_FAILURE)
    assert "no answer from DNS within 0.3 s" in check.reason
    assert diagnosis.check("reachability").status is CheckStatus.SKIPPED
    assert len(calls) <= 2


def _registry_of_three() -> Any:
    """A registry whose consumer is registered before its providers, with fixtures between."""
    from rdsiamkit.doctor.model import Check
    from rdsiamkit.doctor.runner import LAZY, Lazy, Outcome, Registry, check, fixture

    computed: list[str] = []

    @check(CheckName.LOGIN)
    def consumer(*, doubled: int, never: Lazy[int] = LAZY, note: str = "default") -> Check:
        return Check(CheckName.LOGIN, CheckStatus.PASS, f"{doubled} {note}")

    @check(CheckName.DNS, provides="note", missing="needs a note")
    def independent(*, inputs: object) -> Check:
        return Check(CheckName.DNS, CheckStatus.PASS, "independent (provides no note)")

    @check(CheckName.CONFIGURATION, provides="number", missing="needs a number (see config)")
    def provider(*, inputs: int) -> Check | Outcome[int]:
        if inputs < 0:
            return Check(CheckName.CONFIGURATION, CheckStatus.FAIL, "negative")
        return Outcome(Check(CheckName.CONFIGURATION, CheckStatus.PASS, "given"), inputs)

    @fixture("doubled")
    def double(*, number: int) -> int:
        computed.append("doubled")
        return number * 2

    @fixture("never")
    def never(*, inputs: int) -> int:
        computed.append("never")
        return 0

    registry = Registry.of(consumer, independent, provider, double, never)
    return registry, computed


def test_runner_orders_providers_first_and_keeps_registration_order_otherwise() -> None:
    """A consumer runs after the check providing its fact (through a fixture); ties keep order."""
    from rdsiamkit.doctor.runner import run_checks

    registry, computed = _registry_of_three()
    assert [s.name for s in registry.order()] == [
        CheckName.DNS,
        CheckName.CONFIGURATION,
        CheckName.LOGIN,
    ]
    result = run_checks(registry, {"inputs": 21, "secrets": None}, scrub=str)
    reasons = [c.reason for c in result.checks]
    assert reasons == ["independent (provides no note)", "given", "42 default"]
    assert computed == ["doubled"]  # the lazy fact no check asked for was never computed


def test_runner_skips_a_check_whose_fact_is_missing() -> None:
    """No fact from the provider: its consumer is skipped with the provider's reason."""
    from rdsiamkit.doctor.runner import run_checks

    registry, computed = _registry_of_three()
    result = run_checks(registry, {"inputs": -1, "secrets": None}, scrub=str)
    login = result.checks[-1]
    assert (login.status, login.reason) == (CheckStatus.SKIPPED, "needs a number (see config)")
    assert computed == []


def test_runner_refuses_unknown_facts_and_cycles() -> None:
    """A fact nobody provides, or two checks needing each other's, fail before anything runs."""
    from rdsiamkit.doctor.model import Check
    from rdsiamkit.doctor.runner import Registry, check

    @check(CheckName.TLS)
    def orphan(*, nobody: int) -> Check:
        return Check(CheckName.TLS, CheckStatus.PASS, "")

    with pytest.raises(RuntimeError, match="'nobody'"):
        Registry.of(orphan).order()

    @check(CheckName.DNS, provides="a", missing="needs a")
    def first(*, b: int) -> Check:
        return Check(CheckName.DNS, CheckStatus.PASS, "")

    @check(CheckName.TLS, provides="b", missing="needs b")
    def second(*, a: int) -> Check:
        return Check(CheckName.TLS, CheckStatus.PASS, "")

    with pytest.raises(RuntimeError, match="cycle: dns, tls"):
        Registry.of(first, second).order()


def test_text_report_escapes_unprintable_reasons() -> None:
    """A reason holding a terminal escape (a server message naming a role) is shown escaped."""
    from rdsiamkit.doctor import Check

    check = Check(CheckName.LOGIN, CheckStatus.FAIL, 'no role "evil\x1b[2J"', fix="fix\x1b]0;x")
    text = str(Diagnosis(target="app@host:5432", checks=(check,)))
    assert "\x1b" not in text and "\\x1b[2J" in text and "\\x1b]0;x" in text


def test_signer_reads_the_access_key_like_token_facts() -> None:
    """signer() names the key TokenFacts reads; a password or a look-alike key names none."""
    from rdsiamkit._tokeninfo import signer

    token = token_for(port=6543)
    assert signer(token) == TokenFacts.parse(token).access_key_id == KEY  # type: ignore[union-attr]
    assert signer("hunter2") is None
    assert signer("h:5432/?NotX-Amz-Credential=AKIA%2Fx") is None


def test_a_token_cut_short_is_damaged_not_a_password(closed_port: int) -> None:
    """The first 200 characters of a token (no X-Amz-Signature) are a damaged token."""
    token = token_for(port=closed_port)
    cut = token[:200]
    assert "X-Amz-Signature" not in cut
    diagnosis = run(closed_port, token=cut)
    check = diagnosis.check("token")
    assert (check.status, check.finding) == (CheckStatus.FAIL, Finding.TOKEN_DAMAGED)
    assert diagnosis.finding is not Finding.PASSWORD_SENT
    assert cut not in diagnosis.to_json() + str(diagnosis)
