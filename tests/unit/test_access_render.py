"""AccessMap as a mapping, text, HTML (escaped names) and JSON."""

from __future__ import annotations

import json

from rdsiamkit.access import (
    AccessMap,
    DatabaseTarget,
    RoleFacts,
    build_access_map,
    read_authorization,
)
from rdsiamkit.authmode import AuthMode

ACCOUNT = "123456789012"
RID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
DB = DatabaseTarget(partition="aws", region="us-east-1", account_id=ACCOUNT, resource_id=RID)
HOSTILE = "<b>&'x"


def sample() -> AccessMap:
    statements = [
        {"Effect": "Allow", "Action": "rds-db:connect", "Resource": DB.arn_prefix + HOSTILE},
        {"Effect": "Allow", "Action": "rds-db:connect", "Resource": DB.arn_prefix + "gh\nost"},
    ]
    wide = {"Effect": "Allow", "Action": "rds-db:*", "Resource": "*"}
    doc = {
        "UserDetailList": [
            {
                "UserName": "u<script>",
                "Arn": f"arn:aws:iam::{ACCOUNT}:user/u<script>",
                "UserPolicyList": [
                    {"PolicyName": "p", "PolicyDocument": {"Statement": statements}}
                ],
            }
        ],
        "RoleDetailList": [
            {
                "RoleName": "admin",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/admin",
                "RolePolicyList": [{"PolicyName": "all", "PolicyDocument": {"Statement": [wide]}}],
            }
        ],
    }
    roles = [
        RoleFacts(HOSTILE, AuthMode.IAM, True),
        RoleFacts("pw", AuthMode.PASSWORD, True),
        RoleFacts("lonely", AuthMode.IAM, True),
    ]
    return build_access_map(roles, read_authorization(doc), DB)


def test_mapping_and_repr() -> None:
    """Keys are the login roles, sorted; the repr is one short line of counts."""
    amap = sample()
    assert list(amap) == sorted([HOSTILE, "lonely", "pw"]) and len(amap) == 3
    assert amap["pw"].grants == () and amap["lonely"].principals[0].name == "admin"
    assert repr(amap) == (
        f"<AccessMap {RID}: 3 login roles (2 IAM), 2 principals: "
        "1 wildcard grant(s), 1 dangling, 0 unreachable>"
    )
    assert "\n" not in repr(amap) and not amap.clean


def test_html_escapes_every_name() -> None:
    """Role, principal and policy names are escaped in the notebook view."""
    page = sample()._repr_html_()
    assert "<script>" not in page and "<b>&" not in page
    assert "u&lt;script&gt;" in page and "&lt;b&gt;&amp;&#x27;x" in page


def test_text_shows_unprintable_names_escaped() -> None:
    """A newline in a role name cannot forge a line of the text report."""
    text = str(sample())
    assert "'gh\\nost'" in text and "gh\nost" not in text
    assert (
        text.index("\nwildcard grants:") < text.index("\ndangling:") < text.index("\nlogin roles:")
    )


def test_to_dict_is_json_with_statement_keys() -> None:
    """to_dict() round-trips through JSON; grants point at the statements table."""
    data = json.loads(sample().to_json())
    assert data["clean"] is False and data["dangling"][0]["db_user"] == "gh\nost"
    lonely = next(u for u in data["users"] if u["name"] == "lonely")
    [grant] = lonely["grants"]
    assert data["statements"][grant["statement"]]["policy"] == "all"
    assert grant["principal"] == f"arn:aws:iam::{ACCOUNT}:role/admin"
