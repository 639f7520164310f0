"""Policies: writing least-privilege connect policies and evaluating them like IAM does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdsiamkit.arn import DbUserArn
from rdsiamkit.errors import ConfigurationError, InvalidArnError, InvalidPolicyError
from rdsiamkit.policy import (
    Outcome,
    PolicyDecision,
    StatementRef,
    connect_policy,
    evaluate_policy,
)

RESOURCE = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
TESTUSER = f"{RESOURCE}/testuser"
POSTGRES = f"{RESOURCE}/postgres"


def _statement(effect: str = "Allow", **fields: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": effect, "Action": "rds-db:connect"}
    statement.update(fields)
    return statement


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# -- the seed case ------------------------------------------------------------


def test_seed_policy_denies_the_user_it_does_not_list() -> None:
    """A policy listing only .../testuser implicitly denies .../postgres and says what it allows."""
    policy = connect_policy([TESTUSER])
    decision = evaluate_policy(policy, POSTGRES)
    assert decision.outcome is Outcome.IMPLICIT_DENY
    assert not decision.allowed
    assert decision.statement is None
    assert TESTUSER in decision.reason
    assert evaluate_policy(policy, TESTUSER).allowed


def test_fixed_policy_allows_both_users() -> None:
    """The fixed policy (both ARNs) allows testuser and postgres, decided by its one statement."""
    policy = connect_policy([POSTGRES, TESTUSER], sid="AllowAppLogins")
    for arn in (TESTUSER, POSTGRES):
        decision = evaluate_policy(policy, arn)
        assert decision.outcome is Outcome.ALLOWED
        assert decision.statement == StatementRef(policy=0, statement=0, sid="AllowAppLogins")


# -- evaluation rules ---------------------------------------------------------


def test_explicit_deny_overrides_wildcard_allow() -> None:
    """A Deny on one user beats an Allow on rds-db:* everywhere, across policies."""
    allow_all = _policy(_statement(Action="rds-db:*", Resource="*"))
    deny_postgres = _policy(_statement("Deny", Sid="NoSuperuser", Resource=POSTGRES))
    decision = evaluate_policy([allow_all, deny_postgres], POSTGRES)
    assert decision.outcome is Outcome.EXPLICIT_DENY
    assert decision.statement == StatementRef(policy=1, statement=0, sid="NoSuperuser")
    assert evaluate_policy([allow_all, deny_postgres], TESTUSER).outcome is Outcome.ALLOWED


def test_not_resource_excludes_the_listed_resource() -> None:
    """Allow with NotResource allows everything except the listed ARN."""
    policy = _policy(_statement(NotResource=[POSTGRES]))
    assert evaluate_policy(policy, POSTGRES).outcome is Outcome.IMPLICIT_DENY
    assert evaluate_policy(policy, TESTUSER).outcome is Outcome.ALLOWED


def test_not_action_allow_and_deny() -> None:
    """NotAction applies to every action except those listed, for Allow and for Deny."""
    allow_but_rds = {"Effect": "Allow", "NotAction": "rds:*", "Resource": "*"}
    assert evaluate_policy(_policy(allow_but_rds), POSTGRES).outcome is Outcome.ALLOWED
    allow_but_connect = {"Effect": "Allow", "NotAction": ["rds-db:connect"], "Resource": "*"}
    assert evaluate_policy(_policy(allow_but_connect), POSTGRES).outcome is Outcome.IMPLICIT_DENY
    deny_but_connect = {"Effect": "Deny", "NotAction": "rds-db:connect", "Resource": "*"}
    both = _policy(_statement(Resource="*"), deny_but_connect)
    assert evaluate_policy(both, POSTGRES).outcome is Outcome.ALLOWED


def test_question_mark_matches_exactly_one_character() -> None:
    """'?' stands for one character: app? matches app1, not app or app12."""
    policy = _policy(_statement(Resource=f"{RESOURCE}/app?"))
    assert evaluate_policy(policy, f"{RESOURCE}/app1").allowed
    assert not evaluate_policy(policy, f"{RESOURCE}/app").allowed
    assert not evaluate_policy(policy, f"{RESOURCE}/app12").allowed


def test_actions_ignore_case_resources_do_not() -> None:
    """Action names match case-insensitively; resource ARNs (and user names) do not."""
    policy = _policy(_statement(Action="RDS-DB:Connect", Resource=f"{RESOURCE}/Postgres"))
    assert evaluate_policy(policy, f"{RESOURCE}/Postgres").allowed
    decision = evaluate_policy(policy, POSTGRES)
    assert decision.outcome is Outcome.IMPLICIT_DENY
    assert "case-sensitive" in decision.reason


def test_other_actions_are_not_connect() -> None:
    """An Allow for rds:* (the control plane) does not allow rds-db:connect."""
    policy = _policy(_statement(Action=["rds:*", "rds:Describe*"], Resource="*"))
    decision = evaluate_policy(policy, POSTGRES)
    assert decision.outcome is Outcome.IMPLICIT_DENY
    assert decision.reason == "no statement allows this action"


def test_conditional_allow_depends() -> None:
    """An Allow that matches only under a Condition makes the outcome depend on it."""
    policy = _policy(
        _statement(Resource=POSTGRES, Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    )
    decision = evaluate_policy(policy, POSTGRES)
    assert decision.outcome is Outcome.DEPENDS_ON_CONDITIONS
    assert not decision.allowed
    assert decision.statement == StatementRef(policy=0, statement=0)


def test_unconditional_allow_with_conditional_deny_depends() -> None:
    """A matching conditional Deny turns an unconditional Allow into 'depends', naming the Deny."""
    deny = _statement(
        "Deny",
        Sid="NoMfaNoLogin",
        Resource="*",
        Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    )
    decision = evaluate_policy(_policy(_statement(Resource=POSTGRES), deny), POSTGRES)
    assert decision.outcome is Outcome.DEPENDS_ON_CONDITIONS
    assert decision.statement == StatementRef(policy=0, statement=1, sid="NoMfaNoLogin")
    assert "otherwise policy #0 statement #0 allows it" in decision.reason


def test_conditional_deny_without_allow_is_still_denied() -> None:
    """With nothing allowing, a conditional Deny cannot matter: the answer is a plain deny."""
    deny = _statement("Deny", Resource="*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    assert evaluate_policy(_policy(deny), POSTGRES).outcome is Outcome.IMPLICIT_DENY


def test_unconditional_deny_beats_conditional_allow() -> None:
    """A firm Deny decides even when a conditional Allow also matches."""
    allow = _statement(Resource="*", Condition={"StringEquals": {"aws:PrincipalTag/team": "a"}})
    decision = evaluate_policy(_policy(allow, _statement("Deny", Resource=POSTGRES)), POSTGRES)
    assert decision.outcome is Outcome.EXPLICIT_DENY


def test_policy_variable_in_resource_depends() -> None:
    """${aws:username} in a resource depends on the request, so the answer depends too."""
    policy = _policy(_statement(Resource=f"{RESOURCE}/${{aws:username}}"))
    assert evaluate_policy(policy, POSTGRES).outcome is Outcome.DEPENDS_ON_CONDITIONS


def test_not_resource_with_a_variable_depends_instead_of_vanishing() -> None:
    """A Deny on NotResource .../${aws:username} denies everyone else: not a plain ALLOWED."""
    allow_all = _statement(Resource="*")
    deny_others = _statement("Deny", NotResource="arn:aws:rds-db:*:*:dbuser:*/${aws:username}")
    decision = evaluate_policy(_policy(allow_all, deny_others), POSTGRES)
    assert decision.outcome is Outcome.DEPENDS_ON_CONDITIONS
    allow_own = _statement(NotResource=f"{RESOURCE}/${{aws:username}}")
    assert evaluate_policy(_policy(allow_own), POSTGRES).outcome is Outcome.DEPENDS_ON_CONDITIONS
    deny_listed = _statement("Deny", NotResource=[POSTGRES, f"{RESOURCE}/${{aws:username}}"])
    assert evaluate_policy(_policy(allow_all, deny_listed), POSTGRES).allowed


def test_policy_variables_need_version_2012_and_escapes_are_literal() -> None:
    """Without Version 2012-10-17 ${...} is literal text; ${*} ${?} ${$} are literal characters."""
    variable = _statement(Resource=f"{RESOURCE}/${{aws:username}}")
    assert evaluate_policy({"Statement": [variable]}, POSTGRES).outcome is Outcome.IMPLICIT_DENY
    old = {"Version": "2008-10-17", "Statement": [variable]}
    assert evaluate_policy(old, POSTGRES).outcome is Outcome.IMPLICIT_DENY
    escaped = _policy(_statement(Resource=f"{RESOURCE}/a${{*}}b${{?}}${{$}}"))
    assert evaluate_policy(escaped, f"{RESOURCE}/a*b?$").allowed
    assert evaluate_policy(escaped, f"{RESOURCE}/axxbyz").outcome is Outcome.IMPLICIT_DENY


def test_a_literal_resource_decides_beside_a_variable_one() -> None:
    """Resource [exact ARN, .../${aws:username}] allows the exact ARN outright."""
    policy = _policy(_statement(Resource=[POSTGRES, f"{RESOURCE}/${{aws:username}}"]))
    assert evaluate_policy(policy, POSTGRES).allowed


def test_star_crosses_colons_only_at_the_end_of_a_segment() -> None:
    """IAM: a * inside an ARN segment stays in it; a segment-final * may run past colons."""
    inside = _policy(_statement(Resource="arn:aws:rds-db:us-east-1:*2:*/postgres"))
    assert evaluate_policy(inside, POSTGRES).outcome is Outcome.IMPLICIT_DENY
    final = _policy(_statement(Resource="arn:aws:rds-db:us-east-1:*/postgres"))
    assert evaluate_policy(final, POSTGRES).outcome is Outcome.IMPLICIT_DENY
    assert evaluate_policy(_policy(_statement(Resource="arn:aws:rds-db:*")), POSTGRES).allowed
    segments = _policy(_statement(Resource="arn:aws:rds-db:*:*:dbuser:*/post?res"))
    assert evaluate_policy(segments, POSTGRES).allowed


def test_condition_keys_may_hold_spaces() -> None:
    """Tag keys such as aws:PrincipalTag/cost center are valid condition keys."""
    conditions = {"StringEquals": {"aws:PrincipalTag/cost center": "db"}}
    policy = connect_policy(POSTGRES, conditions=conditions)
    assert evaluate_policy(policy, POSTGRES).outcome is Outcome.DEPENDS_ON_CONDITIONS


def test_accepts_json_text_single_statement_and_string_values() -> None:
    """JSON text, a lone Statement object and string-valued Action/Resource all evaluate."""
    text = json.dumps({"Statement": {"Effect": "Allow", "Action": "*", "Resource": POSTGRES}})
    assert evaluate_policy(text, POSTGRES).allowed
    assert evaluate_policy([text], DbUserArn.parse(POSTGRES)).allowed


def test_str_of_a_decision_is_readable() -> None:
    """str(decision) says the verdict, the action, the resource and the deciding statement."""
    policy = _policy(_statement("Deny", Sid="NoSuperuser", Resource=POSTGRES))
    text = str(evaluate_policy(policy, POSTGRES))
    assert text.startswith("EXPLICIT DENY: rds-db:connect on " + POSTGRES)
    assert "policy #0 statement #0 (Sid 'NoSuperuser') denies it" in text


def test_implicit_deny_reason_caps_the_list() -> None:
    """A long allow-list is summarised: five resources, then a count of the rest."""
    users = [f"{RESOURCE}/user{i}" for i in range(8)]
    decision = evaluate_policy(connect_policy(users), POSTGRES)
    assert "and 3 more" in decision.reason


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{not json", "policy #0 is not valid JSON"),
        ("[]", "must be a JSON object, not list"),
        ({"Version": "2012-10-17"}, "has no Statement"),
        ({"Statement": []}, "non-empty list"),
        ({"Version": "2020-01-01", "Statement": [_statement(Resource="*")]}, "Version"),
        ({"Statement": [_statement(Resource="*")], "Extra": 1}, "unknown top-level key(s): Extra"),
        (_policy("Allow"), "statement #0 must be an object"),
        (_policy(_statement("allow", Resource="*")), "Effect must be 'Allow' or 'Deny'"),
        (_policy(_statement(Resource="*", NotResource="*")), "exactly one of Resource"),
        (_policy({"Effect": "Allow", "Resource": "*"}), "exactly one of Action or NotAction"),
        (_policy(_statement()), "exactly one of Resource or NotResource"),
        (_policy(_statement(Resource=[])), "Resource must be a non-empty string"),
        (_policy(_statement(Resource=[5])), "Resource must be a non-empty string"),
        (_policy(_statement(Resource="*", Principal="*")), "has a Principal"),
        (_policy(_statement(Resource="*", Effects="Allow")), "unknown key(s): Effects"),
        (_policy(_statement(Resource="*", Sid=3)), "Sid must be a string"),
        (
            _policy(_statement(Resource="*", Condition={"StringEqual": {"aws:a": "b"}})),
            "unknown Condition operator 'StringEqual'",
        ),
        (_policy(_statement(Resource="*", Condition={"Bool": {}})), "non-empty object"),
        (_policy(_statement(Resource="*", Condition=[])), "Condition must be a non-empty"),
        (
            _policy(_statement(Resource="*", Condition={"Bool": {"SourceIp": "x"}})),
            "invalid condition key 'SourceIp'",
        ),
        (
            _policy(_statement(Resource="*", Condition={"Bool": {"aws:x": {"y": 1}}})),
            "value of type dict",
        ),
    ],
)
def test_invalid_documents_are_rejected_with_location(policy: object, message: str) -> None:
    """Malformed policies raise InvalidPolicyError saying which policy/statement and what."""
    with pytest.raises(InvalidPolicyError) as info:
        evaluate_policy(policy, POSTGRES)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "policy #0" in str(info.value)


def test_invalid_policies_argument() -> None:
    """Something that is neither a document nor a list of them is refused."""
    with pytest.raises(InvalidPolicyError, match="not int"):
        evaluate_policy(42, POSTGRES)  # type: ignore[arg-type]


def test_statement_location_names_the_sid() -> None:
    """When a bad statement has a Sid, the error names it."""
    bad = _policy(_statement(Resource="*"), _statement("Maybe", Sid="Second", Resource="*"))
    with pytest.raises(InvalidPolicyError, match=r"policy #0 statement #1 \(Sid 'Second'\)"):
        evaluate_policy(bad, POSTGRES)


# -- writing ------------------------------------------------------------------


def test_connect_policy_is_deterministic_and_least_privilege() -> None:
    """Same resources in any order and with duplicates give the same sorted, minimal document."""
    arn = DbUserArn.parse(TESTUSER)
    first = connect_policy([TESTUSER, POSTGRES, arn])
    second = connect_policy([POSTGRES, TESTUSER])
    assert first == second
    assert first == {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["rds-db:connect"], "Resource": [POSTGRES, TESTUSER]}
        ],
    }
    assert json.loads(json.dumps(first)) == first


def test_connect_policy_single_resource_and_sid() -> None:
    """A lone ARN (str or DbUserArn) is accepted; the Sid comes first in the statement."""
    policy = connect_policy(DbUserArn.parse(POSTGRES), sid="Db1")
    statement = policy["Statement"][0]
    assert next(iter(statement)) == "Sid"
    assert statement["Resource"] == [POSTGRES]


def test_connect_policy_conditions_are_validated_and_normalised() -> None:
    """Conditions come out sorted with string values, and evaluate as 'depends'."""
    policy = connect_policy(
        [POSTGRES],
        conditions={
            "IpAddress": {"aws:SourceIp": ["10.1.0.0/16", "10.0.0.0/16", "10.1.0.0/16"]},
            "Bool": {"aws:SecureTransport": True},
            "StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"},
        },
    )
    condition = policy["Statement"][0]["Condition"]
    assert list(condition) == ["Bool", "IpAddress", "StringEquals"]
    assert condition["Bool"] == {"aws:SecureTransport": "true"}
    assert condition["IpAddress"] == {"aws:SourceIp": ["10.0.0.0/16", "10.1.0.0/16"]}
    assert evaluate_policy(policy, POSTGRES).outcome is Outcome.DEPENDS_ON_CONDITIONS


@pytest.mark.parametrize(
    "conditions",
    [
        {"StringEqual": {"aws:SourceVpce": "vpce-1"}},
        {"IpAddress": {"SourceIp": "10.0.0.0/8"}},
        {"IpAddress": {"aws:SourceIp": []}},
        {"IpAddress": {}},
    ],
)
def test_connect_policy_rejects_bad_conditions(conditions: dict[str, Any]) -> None:
    """Typos in operators or keys, and empty values, are caught before IAM sees them."""
    with pytest.raises(InvalidPolicyError, match="conditions"):
        connect_policy([POSTGRES], conditions=conditions)


def test_connect_policy_set_qualified_and_if_exists_operators() -> None:
    """ForAnyValue:/ForAllValues: prefixes, IfExists suffixes and Null are valid operators."""
    policy = connect_policy(
        [POSTGRES],
        conditions={
            "ForAnyValue:StringLike": {"aws:TagKeys": ["team*"]},
            "StringEqualsIfExists": {"aws:RequestedRegion": "us-east-1"},
            "Null": {"aws:TokenIssueTime": "false"},
        },
    )
    assert set(policy["Statement"][0]["Condition"]) == {
        "ForAnyValue:StringLike",
        "Null",
        "StringEqualsIfExists",
    }


def test_connect_policy_rejects_bad_input() -> None:
    """No resources, an invalid ARN and an invalid Sid each raise the matching error."""
    with pytest.raises(ConfigurationError, match="at least one"):
        connect_policy([])
    with pytest.raises(InvalidArnError):
        connect_policy(["arn:aws:rds:us-east-1:123456789012:db:mydb"])
    with pytest.raises(InvalidPolicyError, match="invalid Sid 'bad sid'"):
        connect_policy([POSTGRES], sid="bad sid")


# -- properties ---------------------------------------------------------------


def _reference_match(pattern: str, text: str, *, arn: bool = True) -> bool:
    """Dynamic-programming wildcard match, for ARNs as IAM documents it.

    '*' is any run within a segment (no ':'), or any run at all when it ends its
    segment; '?' is one character other than ':'.  With ``arn=False`` (actions)
    colons are plain characters.
    """
    table = [[False] * (len(text) + 1) for _ in range(len(pattern) + 1)]
    table[0][0] = True
    for i, p in enumerate(pattern, 1):
        table[i][0] = table[i - 1][0] and p == "*"
        ends_segment = not arn or i == len(pattern) or pattern[i] == ":"
        for j, t in enumerate(text, 1):
            if p == "*":
                table[i][j] = table[i - 1][j] or (table[i][j - 1] and (ends_segment or t != ":"))
            elif p == "?":
                table[i][j] = table[i - 1][j - 1] and (t != ":" or not arn)
            else:
                table[i][j] = table[i - 1][j - 1] and p == t
    return table[-1][-1]


@given(
    pattern=st.text(alphabet="ab*?.:/", max_size=8),
    text=st.text(alphabet="ab.:/", max_size=8),
)
def test_resource_wildcards_agree_with_reference(pattern: str, text: str) -> None:
    """The evaluator's resource matching agrees with a reference ARN wildcard matcher."""
    if not pattern:
        pattern = "*"
    policy = _policy(_statement(Resource=pattern))
    assert evaluate_policy(policy, text).allowed is _reference_match(pattern, text)


@given(pattern=st.text(alphabet="aBr*?-:", min_size=1, max_size=8))
def test_action_wildcards_agree_with_reference_ignoring_case(pattern: str) -> None:
    """Action matching is a plain wildcard match (no ARN segments) on lower-cased text."""
    action = "rds-db:Bar"
    policy = _policy(_statement(Action=pattern, Resource="*"))
    expected = _reference_match(pattern.lower(), action.lower(), arn=False)
    assert evaluate_policy(policy, POSTGRES, action=action).allowed is expected


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
junk = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
string_or_list = st.one_of(
    st.sampled_from(["*", "rds-db:*", "rds-db:connect", POSTGRES, f"{RESOURCE}/*", "a?"]),
    st.lists(st.sampled_from(["*", "rds-db:connect", POSTGRES, TESTUSER]), max_size=3),
    junk,
)
statements = st.fixed_dictionaries(
    {},
    optional={
        "Sid": st.one_of(st.text(max_size=4), junk),
        "Effect": st.one_of(st.sampled_from(["Allow", "Deny"]), junk),
        "Action": string_or_list,
        "NotAction": string_or_list,
        "Resource": string_or_list,
        "NotResource": string_or_list,
        "Condition": st.one_of(
            st.just({"Bool": {"aws:SecureTransport": "true"}}),
            junk,
        ),
        "Principal": junk,
    },
)
documents = st.one_of(
    st.fixed_dictionaries(
        {"Statement": st.one_of(statements, st.lists(statements, max_size=3), junk)},
        optional={"Version": st.one_of(st.sampled_from(["2012-10-17", "2008-10-17"]), junk)},
    ),
    junk,
    st.text(max_size=10),
)


@given(policies=st.one_of(documents, st.lists(documents, max_size=3)))
def test_evaluator_never_crashes(policies: Any) -> None:
    """Any generated input gives a PolicyDecision or InvalidPolicyError, never another error."""
    try:
        decision = evaluate_policy(policies, POSTGRES)
    except InvalidPolicyError:
        return
    assert isinstance(decision, PolicyDecision)
    assert decision.allowed is (decision.outcome is Outcome.ALLOWED)


def test_case_hint_follows_segment_bound_wildcards() -> None:
    """The upper/lower-case hint appears only when a case-insensitive match really exists."""
    segment = _policy(_statement(Resource="arn:aws:rds-db:us-east-1:*/postgres"))
    reason = evaluate_policy(segment, POSTGRES).reason
    assert "upper/lower case" not in reason
    upper = _policy(
        _statement(Resource=POSTGRES.upper().replace("ARN:AWS:RDS-DB", "arn:aws:rds-db"))
    )
    assert "upper/lower case" in evaluate_policy(upper, POSTGRES).reason
