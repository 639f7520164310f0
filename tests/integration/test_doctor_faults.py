"""The doctor names each injected fault on the emulator (plus a healthy baseline and a tally)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from psycopg import sql

from rdsiamkit.doctor import CheckName, CheckStatus, Diagnosis, Finding, diagnose
from rdsiamkit.policy import connect_policy
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator


class StubbedStsSession(boto3.Session):
    """A boto3 session whose STS client answers GetCallerIdentity with a stubbed error."""

    def __init__(self, credentials: FakeCredentials, *, region: str, code: str) -> None:
        super().__init__(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=region,
        )
        self.code = code
        self.stubbers: list[Stubber] = []

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        client = super().client(service_name, *args, **kwargs)  # type: ignore[call-overload]
        if service_name == "sts":
            stubber = Stubber(client)
            stubber.add_client_error(
                "get_caller_identity",
                service_error_code=self.code,
                service_message="The security token included in the request is invalid.",
                http_status_code=403,
            )
            stubber.activate()
            self.stubbers.append(stubber)
        return client


def options(emu: RdsIamEmulator, user: str, **extra: Any) -> dict[str, Any]:
    """The libpq options that reach the emulator by endpoint name, dialling 127.0.0.1."""
    info: dict[str, Any] = dict(emu.conninfo(user))
    info.pop("sslmode")
    info.update(extra)
    return info


def sign(emu: RdsIamEmulator, creds: FakeCredentials, user: str, host: str | None = None) -> str:
    """A token signed like generate_db_auth_token does."""
    client = creds.boto3_session(region=emu.region).client("rds")
    token: str = client.generate_db_auth_token(
        DBHostname=host or emu.endpoint, Port=emu.port, DBUsername=user, Region=emu.region
    )
    return token


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    return rds_emulator.add_credentials()


@pytest.fixture
def user_factory(rds_emulator: RdsIamEmulator) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(*, iam: bool, password: str | None = None) -> str:
        name = f"doc_{uuid.uuid4().hex[:8]}"
        rds_emulator.create_user(name, iam=iam, password=password)
        made.append(name)
        return name

    yield make
    for name in made:
        rds_emulator.drop_user(name)


def offline(emu: RdsIamEmulator, creds: FakeCredentials, user: str, **kw: Any) -> Diagnosis:
    """diagnose() without AWS API calls, signing with the emulator's credentials."""
    return diagnose(
        **options(emu, user), session=creds.boto3_session(region=emu.region), aws=False, **kw
    )


# The score: fault name -> whether the doctor named it (filled by the fault tests).
SCORE: dict[str, bool] = {}


def named(fault: str, diagnosis: Diagnosis, check: CheckName, finding: Finding) -> None:
    """Record and assert that the first failing check is ``check`` with ``finding``."""
    failed = diagnosis.failed
    ok = failed is not None and failed.name is check and failed.finding is finding
    SCORE[fault] = ok
    assert ok, str(diagnosis)


def test_healthy_login_passes_every_check(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """With nothing wrong, every check passes or is skipped and the login works."""
    user = user_factory(iam=True)
    with rds_emulator.connect_admin() as admin:
        diagnosis = offline(
            rds_emulator,
            creds,
            user,
            admin_conn=admin,
            policies=connect_policy(rds_emulator.db_user_arn(user)),
            account_id=rds_emulator.account_id,
            resource_id=rds_emulator.resource_id,
        )
    assert diagnosis.ok, str(diagnosis)
    assert diagnosis.check(CheckName.LOGIN).status is CheckStatus.PASS
    assert diagnosis.check(CheckName.POLICY).status is CheckStatus.PASS
    assert diagnosis.check(CheckName.MEMBERSHIP).status is CheckStatus.PASS


def test_fault_user_not_in_rds_iam_but_token_sent(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """A password user sent a token: the membership check names it."""
    user = user_factory(iam=False, password="pw-" + uuid.uuid4().hex)
    with rds_emulator.connect_admin() as admin:
        diagnosis = offline(
            rds_emulator, creds, user, admin_conn=admin, token=sign(rds_emulator, creds, user)
        )
    named(
        "user not in rds_iam, token sent", diagnosis, CheckName.MEMBERSHIP, Finding.NOT_IN_RDS_IAM
    )
    assert diagnosis.check(CheckName.LOGIN).finding is Finding.NOT_IN_RDS_IAM


def test_fault_user_in_rds_iam_but_password_sent(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """An IAM user sent its old password: the token check names it, the login confirms."""
    password = "pw-" + uuid.uuid4().hex
    user = user_factory(iam=True, password=password)
    with rds_emulator.connect_admin() as admin:
        diagnosis = offline(rds_emulator, creds, user, admin_conn=admin, token=password)
    named("user in rds_iam, password sent", diagnosis, CheckName.TOKEN, Finding.PASSWORD_SENT)
    assert diagnosis.check(CheckName.LOGIN).finding is Finding.PASSWORD_SENT
    assert password not in diagnosis.to_json() and password not in str(diagnosis)


def test_fault_token_expired(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """A token older than the server accepts: refused while a fresh one works, named expired."""
    user = user_factory(iam=True)
    token = sign(rds_emulator, creds, user)
    # X-Amz-Date has whole seconds, so the doctor's fresh token can look 1 s old: allowing
    # 3 s leaves it 2 s for its checks even on a loaded machine.
    rds_emulator.max_token_age = 3.0
    time.sleep(3.2)
    diagnosis = offline(rds_emulator, creds, user, token=token)
    named("token expired", diagnosis, CheckName.LOGIN, Finding.TOKEN_EXPIRED)
    assert token not in diagnosis.to_json() and token not in str(diagnosis)


def test_fault_token_signed_for_another_host(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """A token signed for another endpoint: the token target check names it."""
    user = user_factory(iam=True)
    other = "other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
    diagnosis = offline(rds_emulator, creds, user, token=sign(rds_emulator, creds, user, other))
    named(
        "token for another host", diagnosis, CheckName.TOKEN_TARGET, Finding.TOKEN_TARGET_MISMATCH
    )
    login = diagnosis.check(CheckName.LOGIN)
    assert (login.status, login.finding) == (CheckStatus.FAIL, Finding.TOKEN_TARGET_MISMATCH)
    assert "stale" not in login.reason


def test_fault_wrong_region(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """Signing for us-west-2 against a us-east-1 endpoint: refused up front as wrong_region."""
    user = user_factory(iam=True)
    diagnosis = offline(rds_emulator, creds, user, region="us-west-2")
    named("wrong region", diagnosis, CheckName.CONFIGURATION, Finding.WRONG_REGION)
    assert diagnosis.check(CheckName.LOGIN).status is CheckStatus.SKIPPED


def test_fault_policy_lacks_user_arn(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """The key's policy allows another user only: the offline policy check names it."""
    user = user_factory(iam=True)
    allowed = [rds_emulator.db_user_arn("someone_else")]
    rds_emulator.set_policy(creds.access_key_id, allowed)
    diagnosis = offline(
        rds_emulator,
        creds,
        user,
        policies=connect_policy(allowed),
        account_id=rds_emulator.account_id,
        resource_id=rds_emulator.resource_id,
    )
    named("policy lacks the user's ARN", diagnosis, CheckName.POLICY, Finding.POLICY_DENIES)
    assert diagnosis.check(CheckName.LOGIN).finding is Finding.LOGIN_REFUSED


def test_fault_tls_wrong_ca(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """Verifying against an unrelated CA: the TLS check names it; no login is attempted."""
    user = user_factory(iam=True)
    diagnosis = diagnose(
        **options(rds_emulator, user, sslrootcert=str(rds_emulator.untrusted_ca_file)),
        session=creds.boto3_session(region=rds_emulator.region),
        aws=False,
    )
    named("TLS with the wrong CA", diagnosis, CheckName.TLS, Finding.WRONG_CA)
    assert diagnosis.check(CheckName.LOGIN).status is CheckStatus.SKIPPED


def test_fault_unknown_access_key(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """A key AWS no longer knows: STS says InvalidClientTokenId, the emulator unknown_key."""
    user = user_factory(iam=True)
    rds_emulator.revoke_credentials(creds.access_key_id)
    session = StubbedStsSession(creds, region=rds_emulator.region, code="InvalidClientTokenId")
    with mock_aws():  # RDS lookups go to moto, never to AWS
        diagnosis = diagnose(**options(rds_emulator, user), session=session)
    named("unknown access key", diagnosis, CheckName.CREDENTIALS, Finding.UNKNOWN_ACCESS_KEY)
    assert creds.access_key_id in diagnosis.failed.reason  # type: ignore[union-attr]
    assert rds_emulator.auth_events()[-1].outcome.value == "unknown_key"  # type: ignore[union-attr]
    assert creds.secret_access_key not in diagnosis.to_json()


def test_fault_iam_auth_disabled(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """moto's cluster behind the endpoint has IAM auth off: the iam_enabled check names it."""
    user = user_factory(iam=True)
    # As on RDS with IAM auth off, the server refuses every token (the emulator cannot see moto).
    rds_emulator.set_policy(creds.access_key_id, [])
    with mock_aws():
        session = creds.boto3_session(region=rds_emulator.region)
        session.client("rds").create_db_cluster(
            DBClusterIdentifier="demo",
            Engine="aurora-postgresql",
            Port=rds_emulator.port,
            MasterUsername="postgres",
            MasterUserPassword="not-used-1234",
            EnableIAMDatabaseAuthentication=False,
        )
        diagnosis = diagnose(**options(rds_emulator, user), session=session)
    named("IAM auth disabled", diagnosis, CheckName.IAM_ENABLED, Finding.IAM_AUTH_DISABLED)
    assert diagnosis.check(CheckName.CREDENTIALS).status is CheckStatus.PASS
    assert diagnosis.check(CheckName.LOGIN).status is CheckStatus.FAIL


def test_require_with_the_wrong_ca_is_named_at_tls(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """sslmode=require (opted out) still verifies the CA, as libpq does with a root cert."""
    user = user_factory(iam=True)
    diagnosis = diagnose(
        **options(rds_emulator, user, sslrootcert=str(rds_emulator.untrusted_ca_file)),
        sslmode="require",
        insecure_skip_tls_verify=True,
        session=creds.boto3_session(region=rds_emulator.region),
        aws=False,
    )
    assert diagnosis.check(CheckName.TLS).finding is Finding.WRONG_CA, str(diagnosis)


def test_a_working_login_outranks_evidence_from_another_server(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """admin_conn to another server says 'not in rds_iam', but the login works: a warning."""
    user = user_factory(iam=True)
    with RdsIamEmulator(cluster_id="other") as other, other.connect_admin() as wrong_admin:
        wrong_admin.execute(f'CREATE ROLE "{user}" LOGIN')
        diagnosis = offline(rds_emulator, creds, user, admin_conn=wrong_admin)
    assert diagnosis.ok, str(diagnosis)
    membership = diagnosis.check(CheckName.MEMBERSHIP)
    assert membership.status is CheckStatus.WARN and "yet the login works" in membership.reason
    assert diagnosis.check(CheckName.LOGIN).status is CheckStatus.PASS


def test_truncated_token_is_damaged_not_stale(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """A token cut short (password length caps) is named damaged, not expired."""
    user = user_factory(iam=True)
    diagnosis = offline(rds_emulator, creds, user, token=sign(rds_emulator, creds, user)[:-10])
    failed = diagnosis.failed
    assert failed is not None and (failed.name, failed.finding) == (
        CheckName.TOKEN,
        Finding.TOKEN_DAMAGED,
    ), str(diagnosis)
    assert diagnosis.check(CheckName.LOGIN).finding is Finding.TOKEN_DAMAGED


def test_accepted_token_with_a_missing_database_is_not_a_refusal(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """The server took the token but the database does not exist: its own finding."""
    user = user_factory(iam=True)
    token = sign(rds_emulator, creds, user)
    diagnosis = diagnose(
        **options(rds_emulator, user, dbname="no_such_db"),
        session=creds.boto3_session(region=rds_emulator.region),
        aws=False,
        token=token,
    )
    login = diagnosis.check(CheckName.LOGIN)
    assert (login.status, login.finding) == (CheckStatus.FAIL, Finding.DATABASE_NOT_FOUND)
    assert "no_such_db" in login.reason and "refused" not in login.reason
    assert "IAM login itself worked" in login.reason


def test_dialling_an_ip_address_is_a_hostname_mismatch(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """host=127.0.0.1 (a tunnel without hostaddr=): OpenSSL's IP mismatch is named as such."""
    user = user_factory(iam=True)
    info = options(rds_emulator, user, host="127.0.0.1")
    info.pop("hostaddr")
    diagnosis = diagnose(
        **info,
        token_host=rds_emulator.endpoint,
        session=creds.boto3_session(region=rds_emulator.region),
        aws=False,
    )
    assert diagnosis.check(CheckName.TLS).finding is Finding.HOSTNAME_MISMATCH, str(diagnosis)


def test_escape_in_a_group_name_is_not_printed_raw(
    rds_emulator: RdsIamEmulator, creds: FakeCredentials, user_factory: Callable[..., str]
) -> None:
    """A group on the way to rds_iam named with a terminal escape is shown escaped in the text."""
    user = user_factory(iam=False)
    group = f"evil\x1b[2J{uuid.uuid4().hex[:6]}"
    with rds_emulator.connect_admin() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
        try:
            admin.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(group)))
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(user))
            )
            diagnosis = offline(rds_emulator, creds, user, admin_conn=admin, login=False)
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(group)))
    membership = diagnosis.check(CheckName.MEMBERSHIP)
    assert membership.status is CheckStatus.PASS, str(diagnosis)
    text = str(diagnosis)
    assert "\x1b" not in text and group not in text
    assert f"via {group!r}" in text


FAULTS = 9


def test_zz_tally_score(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the doctor's score over the fault tests that ran (all nine in a full run), and
    that the module holds exactly nine of them."""
    faults = [name for name in globals() if name.startswith("test_fault_")]
    score = sum(SCORE.values())
    with capsys.disabled():
        print(f"\ndoctor score: {score}/{len(SCORE)} faults named correctly")
        for fault, ok in sorted(SCORE.items()):
            print(f"  {'named ' if ok else 'MISSED'}  {fault}")
    assert len(faults) == FAULTS, faults
    assert score == len(SCORE)
