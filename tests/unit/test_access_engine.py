"""The access map's index agrees with evaluate_policy pair by pair, and finds what disagrees."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rdsiamkit.access import (
    AccessMap,
    DanglingReason,
    DatabaseTarget,
    RoleFacts,
    UnknownKind,
    build_access_map,
    read_authorization,
)
from rdsiamkit.access._engine import PROBES, literal_head, pair_outcome
from rdsiamkit.authmode import AuthMode
from rdsiamkit.policy import Outcome, action_rules, resource_pattern

ACCOUNT = "123456789012"
RID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
OTHER = "cluster-ZZZZZZZZZZZZZZZZZZZZZZZZZZ"
PREFIX = f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:{RID}/"
DB = DatabaseTarget(partition="aws", region="us-east-1", account_id=ACCOUNT, resource_id=RID)


def policy(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def allow(*resources: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "rds-db:connect", "Resource": list(resources), **extra}


def user(name: str, *policies: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "UserName": name,
        "UserId": f"AIDA{name.upper()}",
        "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "UserPolicyList": [
            {"PolicyName": f"p{i}", "PolicyDocument": doc} for i, doc in enumerate(policies)
        ],
        **extra,
    }


def role(name: str, *policies: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "RoleName": name,
        "RoleId": f"AROA{name.upper()}",
        "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "RolePolicyList": [
            {"PolicyName": f"p{i}", "PolicyDocument": doc} for i, doc in enumerate(policies)
        ],
        **extra,
    }


def managed(name: str, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "PolicyName": name,
        "Arn": f"arn:aws:iam::{ACCOUNT}:policy/{name}",
        "DefaultVersionId": "v2",
        "PolicyVersionList": [
            {"VersionId": "v1", "IsDefaultVersion": False, "Document": policy(allow("*"))},
            {"VersionId": "v2", "IsDefaultVersion": True, "Document": document},
        ],
    }


def iam_roles(*names: str) -> list[RoleFacts]:
    return [RoleFacts(name=n, mode=AuthMode.IAM, can_login=True) for n in names]


def build(doc: dict[str, Any], roles: list[RoleFacts]) -> AccessMap:
    return build_access_map(roles, read_authorization(doc), DB)


def who(amap: AccessMap, name: str) -> dict[str, bool]:
    return {g.principal.name: g.conditional for g in amap[name].grants}


# -- agreement with the evaluator, pair by pair ---------------------------------------------

NAMES = ["app", "app_1", "apx", "b", "admin", "alice"]
PATTERNS = [
    *(PREFIX + n for n in NAMES),
    PREFIX + "app*",
    PREFIX + "a?p",
    PREFIX + "*",
    "*",
    "arn:aws:rds-db:*:*:dbuser:*/*",
    f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:{OTHER}/*",
    PREFIX + "${aws:username}",
    PREFIX + "${aws:PrincipalTag/db}",
    PREFIX + "${aws:userid}*",
    PREFIX + "${aws:username, 'b'}",
    PREFIX + "ghost",
]
statements = st.fixed_dictionaries(
    {
        "Effect": st.sampled_from(["Allow", "Allow", "Deny"]),
        "Action": st.sampled_from(["rds-db:connect", "rds-db:*", "*", "s3:GetObject"]),
        "Resource": st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3),
    },
    optional={"Condition": st.just({"Bool": {"aws:MultiFactorAuthPresent": "true"}})},
).map(
    lambda s: (
        {**{k: v for k, v in s.items() if k != "Resource"}, "NotResource": s["Resource"]}
        if s["Resource"][0] == PREFIX + "admin"
        else s
    )
)
documents = st.lists(statements, min_size=1, max_size=4).map(lambda s: policy(*s))


@st.composite
def accounts(draw: st.DrawFn) -> dict[str, Any]:
    """A few users (alice, b...) and roles with random policies and boundaries."""
    users, roles = [], []
    for i, name in enumerate(draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))):
        extra: dict[str, Any] = {"Tags": [{"Key": "db", "Value": draw(st.sampled_from(NAMES))}]}
        if draw(st.booleans()):
            extra["PermissionsBoundary"] = {
                "PermissionsBoundaryArn": f"arn:aws:iam::{ACCOUNT}:policy/b"
            }
        users.append(user(name, *draw(st.lists(documents, max_size=2)), **extra))
        roles.append(role(f"r{i}", *draw(st.lists(documents, min_size=1, max_size=2))))
    return {
        "UserDetailList": users,
        "RoleDetailList": roles,
        "Policies": [managed("b", draw(documents))],
    }


@settings(max_examples=150, deadline=None)
@given(accounts())
def test_index_agrees_with_evaluate_policy_for_every_pair(doc: dict[str, Any]) -> None:
    """Every (principal, user) outcome of the index is what evaluate_policy says for that pair."""
    amap = build(doc, iam_roles(*NAMES))
    authorization = read_authorization(doc)
    for entry in authorization.principals:
        for name in NAMES:
            expected = pair_outcome(entry, PREFIX + name, ACCOUNT)
            grants = [g for g in amap[name].grants if g.principal == entry.principal]
            assert len(grants) <= 1
            got = (
                Outcome.IMPLICIT_DENY
                if not grants
                else Outcome.DEPENDS_ON_CONDITIONS
                if grants[0].conditional
                else Outcome.ALLOWED
            )
            if expected is Outcome.EXPLICIT_DENY:
                expected = Outcome.IMPLICIT_DENY
            assert got is expected, (entry.principal.name, name)


# -- specific cases -------------------------------------------------------------------------


def test_seed_states_clean_unreachable_dangling() -> None:
    """The seed's outage: postgres in rds_iam but not in the policy, and the reverse."""
    old = policy(allow(PREFIX + "testuser"))
    fixed = policy(allow(PREFIX + "testuser", PREFIX + "postgres"))
    password_postgres = [*iam_roles("testuser"), RoleFacts("postgres", AuthMode.PASSWORD, True)]
    both_iam = iam_roles("testuser", "postgres")
    clean = build({"RoleDetailList": [role("app", old)]}, password_postgres)
    assert clean.clean and who(clean, "testuser") == {"app": False}
    unreachable = build({"RoleDetailList": [role("app", old)]}, both_iam)
    assert unreachable.unreachable == ("postgres",) and not unreachable.dangling
    assert build({"RoleDetailList": [role("app", fixed)]}, both_iam).clean
    dangling = build({"RoleDetailList": [role("app", fixed)]}, password_postgres)
    assert [(d.db_user, d.reason) for d in dangling.dangling] == [
        ("postgres", DanglingReason.NOT_IAM)
    ]
    assert dangling.dangling[0].statement.policy == "p0" and not dangling.unreachable


def test_dangling_names_missing_and_nologin_roles() -> None:
    """A policy naming a role that does not exist or cannot log in is dangling, with why."""
    doc = {"UserDetailList": [user("u", policy(allow(PREFIX + "ghost", PREFIX + "grp")))]}
    roles = [RoleFacts("grp", AuthMode.IAM, can_login=False)]
    amap = build(doc, roles)
    reasons = {d.db_user: d.reason for d in amap.dangling}
    assert reasons == {"ghost": DanglingReason.NO_SUCH_ROLE, "grp": DanglingReason.NO_LOGIN}
    assert "grp" not in amap and len(amap) == 0


def test_group_policies_and_default_managed_version() -> None:
    """Members inherit a group's policies; a managed policy counts by its default version."""
    doc = {
        "UserDetailList": [user("alice", GroupList=["devs"]), user("bob")],
        "GroupDetailList": [
            {
                "GroupName": "devs",
                "GroupPolicyList": [],
                "AttachedManagedPolicies": [
                    {"PolicyName": "m", "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/m"}
                ],
            }
        ],
        "Policies": [managed("m", policy(allow(PREFIX + "app")))],
    }
    amap = build(doc, iam_roles("app", "b"))
    assert who(amap, "app") == {"alice": False}
    assert amap["app"].grants[0].statement.attached_to == "group devs"
    assert amap.unreachable == ("b",) and not amap.wildcards  # v1's "*" is not the default


def test_wildcards_deny_and_notresource() -> None:
    """*/* and NotResource grants are wildcards; a Deny carves users out of them."""
    doc = {
        "UserDetailList": [
            user(
                "ops",
                policy(
                    allow(PREFIX + "*"),
                    {"Effect": "Deny", "Action": "rds-db:*", "Resource": PREFIX + "admin"},
                ),
            ),
            user("nr", policy({"Effect": "Allow", "Action": "*", "NotResource": PREFIX + "b"})),
            user("one", policy(allow(PREFIX + "app*"))),
        ]
    }
    amap = build(doc, iam_roles("app", "admin", "b"))
    assert sorted(g.principal.name for g in amap.wildcards) == ["nr", "ops"]
    assert who(amap, "admin") == {"nr": False}
    assert who(amap, "b") == {"ops": False}
    assert who(amap, "app") == {"ops": False, "nr": False, "one": False}


def test_variables_resolve_per_principal() -> None:
    """${aws:username} is the user's own name, absent for a role; unknown ones are conditional."""
    own = policy(allow(PREFIX + "${aws:username}"))
    tagged = policy(allow(PREFIX + "${aws:PrincipalTag/db}"))
    doc = {
        "UserDetailList": [
            user("alice", own),
            user("t", tagged, Tags=[{"Key": "db", "Value": "app*"}]),
        ],
        "RoleDetailList": [role("svc", own), role("tr", tagged)],
    }
    amap = build(doc, iam_roles("alice", "app", "app2", "svc"))
    assert who(amap, "alice") == {"alice": False, "tr": True}
    # A tag value matches literally: "app*" is not a pattern.
    assert who(amap, "app") == {"tr": True} and who(amap, "svc") == {"tr": True}
    assert not amap.dangling  # "app${*}" names nobody literally


def test_conditions_and_boundaries_intersect() -> None:
    """A Condition makes a grant conditional; a boundary must allow too; a lost one is unknown."""
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    boundary = {"PermissionsBoundaryArn": f"arn:aws:iam::{ACCOUNT}:policy/bound"}
    missing = {"PermissionsBoundaryArn": f"arn:aws:iam::{ACCOUNT}:policy/gone"}
    doc = {
        "UserDetailList": [
            user("c", policy(allow(PREFIX + "app", Condition=mfa))),
            user("bounded", policy(allow(PREFIX + "*")), PermissionsBoundary=boundary),
            user("lost", policy(allow(PREFIX + "app")), PermissionsBoundary=missing),
        ],
        "Policies": [managed("bound", policy(allow(PREFIX + "app")))],
    }
    amap = build(doc, iam_roles("app", "b"))
    assert who(amap, "app") == {"c": True, "bounded": False, "lost": True}
    assert who(amap, "b") == {} and amap.unreachable == ("b",)
    assert not amap.wildcards
    kinds = [u.kind for u in amap.unknowns]
    assert UnknownKind.MISSING_POLICY in kinds and UnknownKind.SERVICE_CONTROL_POLICIES in kinds


def test_unreadable_policy_is_named_not_fatal() -> None:
    """A statement the evaluator rejects is listed among the unknowns; the rest is mapped."""
    bad = policy({"Effect": "Maybe", "Action": "*", "Resource": "*"})
    doc = {"UserDetailList": [user("x", bad, policy(allow(PREFIX + "app")))]}
    amap = build(doc, iam_roles("app"))
    assert who(amap, "app") == {"x": False}
    assert any(u.kind is UnknownKind.UNREADABLE_POLICY for u in amap.unknowns)


def test_old_version_reads_variables_as_text() -> None:
    """Without Version 2012-10-17, ${aws:username} is literal text, as IAM reads it."""
    doc = {
        "UserDetailList": [
            user("alice", policy(allow(PREFIX + "${aws:username}"), version="2008-10-17"))
        ]
    }
    amap = build(doc, iam_roles("alice"))
    assert amap.unreachable == ("alice",)


def test_helpers_match_the_evaluator() -> None:
    """literal_head stops at wildcards and variables; action_rules drops other actions."""
    assert literal_head(PREFIX + "app_*", variables=True) == PREFIX + "app_"
    assert literal_head(PREFIX + "${aws:username}", variables=True) == PREFIX
    assert literal_head(PREFIX + "${x}", variables=False) == PREFIX + "${x}"
    rules = action_rules(policy(allow("*"), {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    assert len(rules) == 1 and rules[0].ref.statement == 0
    regex, variable = resource_pattern(PREFIX + "*", variables=True)
    assert regex.fullmatch(PREFIX + PROBES[1]) and not variable
