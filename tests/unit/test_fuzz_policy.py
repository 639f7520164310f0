"""Fuzzing the offline policy evaluator against IAM's rules, and the emulator's matcher.

``test_policy.py`` fuzzes malformed documents and the wildcard matcher; here
valid policies are generated and the evaluator must obey IAM's algebra: an
unconditional Deny always wins, statement order and how statements are spread
over policies do not matter, JSON text and mappings agree, and the resource
matching agrees with the emulator's (which stands in for IAM in every test).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rdsiamkit.policy import Outcome, evaluate_policy
from rdsiamkit.testing.credentials import arn_matches

CLUSTER = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
APP = f"{CLUSTER}/app"
RESOURCE_PATTERNS = [
    "*",
    APP,
    f"{CLUSTER}/*",
    f"{CLUSTER}/a??",
    f"{CLUSTER}/admin",
    "arn:aws:rds-db:*:123456789012:dbuser:*/app",
    "arn:aws:rds-db:eu-west-1:123456789012:dbuser:*/*",
    "arn:aws:rds-db:us-east-1:123456789012:dbuser:${aws:username}/*",
]
ACTIONS = ["rds-db:connect", "rds-db:*", "*", "RDS-DB:Connect", "rds-db:conn?ct", "s3:GetObject"]
probes = st.sampled_from([APP, f"{CLUSTER}/admin", f"{CLUSTER}/APP", f"{CLUSTER}/ab"])


def one_or_many(options: list[str]) -> st.SearchStrategy[str | list[str]]:
    return st.one_of(
        st.sampled_from(options), st.lists(st.sampled_from(options), min_size=1, max_size=3)
    )


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    """A valid IAM statement about rds-db:connect-ish actions and rds-db ARNs."""
    statement: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Deny"]))}
    action_key = draw(st.sampled_from(["Action", "NotAction"]))
    statement[action_key] = draw(one_or_many(ACTIONS))
    resource_key = draw(st.sampled_from(["Resource", "Resource", "NotResource"]))
    statement[resource_key] = draw(one_or_many(RESOURCE_PATTERNS))
    if draw(st.booleans()) and draw(st.booleans()):
        statement["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    if draw(st.booleans()):
        statement["Sid"] = draw(st.from_regex(r"\A[A-Za-z0-9]{1,8}\Z"))
    return statement


statement_lists = st.lists(statements(), min_size=1, max_size=6)


def policy(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": items}


@given(items=statement_lists, arn=probes)
def test_an_unconditional_deny_always_wins(items: list[dict[str, Any]], arn: str) -> None:
    """Adding ``Deny rds-db:* on *`` makes any policy an explicit deny, wherever it is added."""
    deny = {"Effect": "Deny", "Action": "rds-db:*", "Resource": "*"}
    for position in (0, len(items)):
        decision = evaluate_policy(policy([*items[:position], deny, *items[position:]]), arn)
        assert decision.outcome is Outcome.EXPLICIT_DENY
        assert not decision.allowed


@given(items=statement_lists, arn=probes, order=st.randoms(use_true_random=False))
def test_statement_order_and_policy_split_do_not_matter(
    items: list[dict[str, Any]], arn: str, order: Any
) -> None:
    """Shuffled statements, or one statement per policy, give the same outcome."""
    expected = evaluate_policy(policy(items), arn).outcome
    shuffled = list(items)
    order.shuffle(shuffled)
    assert evaluate_policy(policy(shuffled), arn).outcome is expected
    assert evaluate_policy([policy([s]) for s in items], arn).outcome is expected


@given(items=statement_lists, arn=probes)
def test_json_text_and_mapping_agree(items: list[dict[str, Any]], arn: str) -> None:
    """A policy given as JSON text is decided exactly like the same mapping."""
    as_mapping = evaluate_policy(policy(items), arn)
    as_text = evaluate_policy(json.dumps(policy(items)), arn)
    assert as_text == as_mapping


@given(items=statement_lists, arn=probes)
def test_an_unconditional_allow_never_hurts(items: list[dict[str, Any]], arn: str) -> None:
    """Adding ``Allow rds-db:connect on *`` allows the login unless some Deny applies."""
    before = evaluate_policy(policy(items), arn)
    after = evaluate_policy(
        policy([*items, {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]), arn
    )
    if before.allowed:
        assert after.allowed
    if not any(s["Effect"] == "Deny" for s in items):
        assert after.outcome is Outcome.ALLOWED


@given(
    pattern=st.text(alphabet="ab*?:/-", max_size=10),
    user=st.text(alphabet="ab:/-", max_size=8),
)
def test_evaluator_and_emulator_match_resources_alike(pattern: str, user: str) -> None:
    """The kit's evaluator and the emulator's IAM stand-in agree on every resource pattern."""
    resource = f"{CLUSTER}/{user}"
    full = f"{CLUSTER}/{pattern}"
    allow = {"Effect": "Allow", "Action": "rds-db:connect", "Resource": full}
    assert evaluate_policy(policy([allow]), resource).allowed is arn_matches(resource, [full])
