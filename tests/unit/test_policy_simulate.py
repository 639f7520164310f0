"""simulate_connect against a Stubber-controlled IAM client (moto does not simulate policies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from rdsiamkit.arn import DbUserArn
from rdsiamkit.errors import AccessDeniedError, AwsApiError, InvalidArnError, ResourceNotFoundError
from rdsiamkit.policy import Outcome, StatementRef, simulate_connect

ROLE = "arn:aws:iam::123456789012:role/app"
RESOURCE = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
TESTUSER = f"{RESOURCE}/testuser"
POSTGRES = f"{RESOURCE}/postgres"


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and no config files or instance metadata: nothing can reach AWS."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class _StubbedSession:
    """Stands in for boto3.Session, handing out one Stubber-controlled IAM client."""

    def __init__(self) -> None:
        self.iam = boto3.Session(region_name="us-east-1").client("iam")
        self.stubber = Stubber(self.iam)

    def client(self, service: str, region_name: str | None = None) -> Any:
        assert service == "iam"
        return self.iam


def _result(resource: str, decision: str, **extra: Any) -> dict[str, Any]:
    return {
        "EvalActionName": "rds-db:connect",
        "EvalResourceName": resource,
        "EvalDecision": decision,
        **extra,
    }


def _params(resources: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "PolicySourceArn": ROLE,
        "ActionNames": ["rds-db:connect"],
        "ResourceArns": sorted(set(resources)),
        **extra,
    }


def test_seed_case_through_iam() -> None:
    """IAM's answers map to decisions in the caller's order, naming the matched policy."""
    fake = _StubbedSession()
    fake.stubber.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                _result(POSTGRES, "implicitDeny"),
                _result(
                    TESTUSER,
                    "allowed",
                    MatchedStatements=[
                        {"SourcePolicyId": "rds-connect", "SourcePolicyType": "IAM Policy"}
                    ],
                ),
            ],
            "IsTruncated": False,
        },
        _params([TESTUSER, POSTGRES]),
    )
    with fake.stubber:
        decisions = simulate_connect(ROLE, [TESTUSER, DbUserArn.parse(POSTGRES)], session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
    assert [d.resource for d in decisions] == [TESTUSER, POSTGRES]
    assert [d.outcome for d in decisions] == [Outcome.ALLOWED, Outcome.IMPLICIT_DENY]
    assert decisions[0].statement == StatementRef(policy="rds-connect")
    assert "policy 'rds-connect'" in str(decisions[0])
    assert decisions[1].statement is None
    assert "no attached policy allows it" in decisions[1].reason


def test_explicit_deny_and_missing_context() -> None:
    """explicitDeny stays explicit; missing context keys make an answer 'depends'."""
    fake = _StubbedSession()
    fake.stubber.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                _result(POSTGRES, "explicitDeny", MatchedStatements=[{"SourcePolicyId": "deny"}]),
                _result(TESTUSER, "implicitDeny", MissingContextValues=["aws:SourceIp"]),
            ],
            "IsTruncated": False,
        },
        _params([TESTUSER, POSTGRES]),
    )
    with fake.stubber:
        postgres, testuser = simulate_connect(ROLE, [POSTGRES, TESTUSER], session=fake)  # type: ignore[arg-type]
    assert postgres.outcome is Outcome.EXPLICIT_DENY
    assert testuser.outcome is Outcome.DEPENDS_ON_CONDITIONS
    assert "aws:SourceIp" in testuser.reason


def test_follows_pages() -> None:
    """Results spread over pages (IsTruncated/Marker) are all collected."""
    fake = _StubbedSession()
    fake.stubber.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [_result(POSTGRES, "allowed")], "IsTruncated": True, "Marker": "m1"},
        _params([TESTUSER, POSTGRES]),
    )
    fake.stubber.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [_result(TESTUSER, "allowed")], "IsTruncated": False},
        _params([TESTUSER, POSTGRES], Marker="m1"),
    )
    with fake.stubber:
        decisions = simulate_connect(ROLE, [TESTUSER, POSTGRES], session=fake)  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
    assert all(d.allowed for d in decisions)


def test_a_missing_result_is_an_error() -> None:
    """If IAM leaves a resource out, the call fails rather than guessing."""
    fake = _StubbedSession()
    fake.stubber.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [_result(TESTUSER, "allowed")], "IsTruncated": False},
        _params([TESTUSER, POSTGRES]),
    )
    with fake.stubber, pytest.raises(AwsApiError, match="no result for"):
        simulate_connect(ROLE, [TESTUSER, POSTGRES], session=fake)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AccessDenied", AccessDeniedError),
        ("NoSuchEntity", ResourceNotFoundError),
        ("InvalidInput", AwsApiError),
    ],
)
def test_iam_errors_are_mapped(code: str, error: type[AwsApiError]) -> None:
    """IAM error codes map to the kit's errors, keeping code, operation and cause."""
    fake = _StubbedSession()
    fake.stubber.add_client_error("simulate_principal_policy", code, "nope", 403)
    with fake.stubber, pytest.raises(error) as info:
        simulate_connect(ROLE, POSTGRES, session=fake)  # type: ignore[arg-type]
    assert type(info.value) is error
    assert (info.value.code, info.value.operation) == (code, "SimulatePrincipalPolicy")
    assert isinstance(info.value.__cause__, ClientError)


def test_resources_are_validated_before_calling_iam() -> None:
    """A bad ARN fails locally; no resources means no call at all."""
    fake = _StubbedSession()
    with fake.stubber:
        with pytest.raises(InvalidArnError):
            simulate_connect(ROLE, ["arn:aws:rds-db:us-east-1:1:dbuser:x/y"], session=fake)  # type: ignore[arg-type]
        assert simulate_connect(ROLE, [], session=fake) == []  # type: ignore[arg-type]
    fake.stubber.assert_no_pending_responses()
