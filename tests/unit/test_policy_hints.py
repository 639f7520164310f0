"""Hints in policy decisions for the two mistakes users made (issue 13 item 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdsiamkit.cli import main
from rdsiamkit.policy import Outcome, evaluate_policy

ARN = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app"
PREFIX = "arn:aws:rds-db:us-east-1:123456789012:dbuser:"


def _policy(resource: str, **extra: object) -> dict[str, object]:
    statement = {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource, **extra}
    return {"Version": "2012-10-17", "Statement": [statement]}


@pytest.mark.parametrize("name", ["my-cluster", "prod-db-1", "cluster-prod"])
def test_cluster_identifier_instead_of_resource_id_is_named(name: str) -> None:
    """A dbuser ARN naming the cluster identifier gets a hint to use the resource id."""
    decision = evaluate_policy(_policy(f"{PREFIX}{name}/app"), ARN)
    assert decision.outcome is Outcome.IMPLICIT_DENY
    assert f"'{name}' in the dbuser ARN looks like a cluster or instance identifier" in (
        decision.reason
    )
    assert "DbClusterResourceId" in decision.reason


@pytest.mark.parametrize(
    "resource",
    [f"{PREFIX}cluster-ZZZZZZZZZZZZZZZZZZZZZZZZZZ/app", f"{PREFIX}cluster-*/app", f"{PREFIX}*/*x"],
)
def test_resource_ids_and_wildcards_get_no_identifier_hint(resource: str) -> None:
    """Another resource id, or a wildcard, is a plain near miss without the identifier hint."""
    decision = evaluate_policy(_policy(resource), ARN.replace("/app", "/other"))
    assert "identifier" not in decision.reason


def test_policy_variable_is_named_not_called_a_condition() -> None:
    """${aws:username} is explained as the signer's name, not as conditions that do not exist."""
    decision = evaluate_policy(
        _policy(f"{PREFIX}cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/${{aws:username}}"), ARN
    )
    assert decision.outcome is Outcome.DEPENDS_ON_CONDITIONS
    assert "conditions hold" not in decision.reason
    assert "${aws:username}" in decision.reason and "IAM user of that name" in decision.reason


def test_condition_block_with_a_variable_names_both() -> None:
    """A statement with a Condition and a variable says both."""
    condition = {"Bool": {"aws:SecureTransport": "true"}}
    policy = _policy(f"{PREFIX}*/${{aws:username}}", Condition=condition)
    decision = evaluate_policy(policy, ARN)
    assert "conditions hold and its policy variable ${aws:username}" in decision.reason


def test_condition_block_alone_keeps_its_wording() -> None:
    """A plain Condition block is still 'when its conditions hold'."""
    condition = {"Bool": {"aws:SecureTransport": "true"}}
    decision = evaluate_policy(_policy(ARN, Condition=condition), ARN)
    assert decision.reason.endswith("only when its conditions hold")


def test_policy_check_cli_prints_the_hint_with_its_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rdsiamkit policy check` shows the identifier hint and names `rdsiamkit discover`."""

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(_policy(f"{PREFIX}my-cluster/app")))
    assert main(["policy", "check", ARN, "--policy", str(policy)]) == 1
    printed = capsys.readouterr().out
    assert "'my-cluster' in the dbuser ARN" in printed and "rdsiamkit discover shows it" in printed
