"""Reading GetAccountAuthorizationDetails: saved documents, and boto3's pages (moto)."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.iam.responses import IamResponse

from rdsiamkit.access import (
    DatabaseTarget,
    PrincipalKind,
    RoleFacts,
    UnknownKind,
    build_access_map,
    fetch_authorization,
    read_authorization,
)
from rdsiamkit.authmode import AuthMode
from rdsiamkit.errors import ConfigurationError

ACCOUNT = "123456789012"
RID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
PREFIX = f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:{RID}/"
LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")


def connect_doc(*users: str) -> str:
    resources = [PREFIX + u for u in users]
    statement = {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


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


def test_raw_api_text_with_url_encoded_policies() -> None:
    """JSON text whose policy documents are URL-encoded (the raw API's form) reads the same."""
    doc = {
        "UserDetailList": [
            {
                "UserName": "u",
                "Arn": f"arn:aws:iam::{ACCOUNT}:user/u",
                "UserPolicyList": [
                    {"PolicyName": "p", "PolicyDocument": urllib.parse.quote(connect_doc("app"))}
                ],
            }
        ]
    }
    authorization = read_authorization(json.dumps(doc))
    assert authorization.account_id == ACCOUNT
    [entry] = authorization.principals
    assert entry.principal.kind is PrincipalKind.USER
    assert entry.policies[0].document is not None and not entry.policies[0].has_variables


def test_malformed_documents_are_refused() -> None:
    """Not JSON, or JSON that is not an authorization document, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="not JSON"):
        read_authorization("{nope")
    with pytest.raises(ConfigurationError, match="UserDetailList"):
        read_authorization({"Version": "2012-10-17", "Statement": []})
    with pytest.raises(ConfigurationError, match="UserName"):
        read_authorization({"UserDetailList": [{"Arn": "x"}]})


def test_missing_attached_policy_is_an_unknown() -> None:
    """An attached managed policy absent from the document is named, never assumed."""
    doc = {
        "RoleDetailList": [
            {
                "RoleName": "r",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/r",
                "AttachedManagedPolicies": [
                    {
                        "PolicyName": "Admin",
                        "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
                    }
                ],
            }
        ]
    }
    [unknown] = read_authorization(doc).unknowns
    assert unknown.kind is UnknownKind.MISSING_POLICY and "AdministratorAccess" in unknown.detail


def paginating(page_size: int) -> Any:
    """moto's handler cut into IAM-style pages: MaxItems entries per page, Marker to go on."""
    original = IamResponse.get_account_authorization_details

    def handler(self: IamResponse) -> Any:
        result = original(self)
        full = result.result if hasattr(result, "result") else result
        entries = [(key, item) for key in LISTS for item in full[key]]
        start = int(self._get_param("Marker") or 0)
        size = int(self._get_param("MaxItems") or page_size)
        page = entries[start : start + size]
        for key in LISTS:
            full[key] = [item for k, item in page if k == key]
        full["IsTruncated"] = start + size < len(entries)
        if full["IsTruncated"]:
            full["Marker"] = str(start + size)
        handler.pages += 1  # type: ignore[attr-defined]
        return result

    handler.pages = 0  # type: ignore[attr-defined]
    return handler


def test_fetch_follows_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_authorization merges all pages of GetAccountAuthorizationDetails (moto, 7 per page)."""
    handler = paginating(7)
    monkeypatch.setattr(IamResponse, "get_account_authorization_details", handler)
    monkeypatch.setattr("rdsiamkit.access._document._PAGE_SIZE", 7)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        iam = session.client("iam")
        arn = iam.create_policy(PolicyName="db-app", PolicyDocument=connect_doc("app"))["Policy"][
            "Arn"
        ]
        iam.create_group(GroupName="devs")
        iam.attach_group_policy(GroupName="devs", PolicyArn=arn)
        for i in range(12):
            iam.create_user(UserName=f"u{i}")
            iam.put_user_policy(
                UserName=f"u{i}", PolicyName="own", PolicyDocument=connect_doc(f"user{i}")
            )
        iam.add_user_to_group(GroupName="devs", UserName="u0")
        iam.create_role(RoleName="svc", AssumeRolePolicyDocument="{}")
        iam.put_role_policy(RoleName="svc", PolicyName="p", PolicyDocument=connect_doc("app"))
        document = fetch_authorization(session)
    assert handler.pages > 2
    assert len(document["UserDetailList"]) == 12 and len(document["RoleDetailList"]) == 1
    roles = [RoleFacts(n, AuthMode.IAM, True) for n in ("app", "user3", "nobody")]
    database = DatabaseTarget("aws", "us-east-1", ACCOUNT, RID)
    amap = build_access_map(roles, read_authorization(document), database)
    assert {g.principal.name for g in amap["app"].grants} == {"u0", "svc"}
    assert [g.principal.name for g in amap["user3"].grants] == ["u3"]
    assert amap.unreachable == ("nobody",)
    assert {d.db_user for d in amap.dangling} == {f"user{i}" for i in range(12)} - {"user3"}
