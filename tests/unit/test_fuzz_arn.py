"""Fuzzing the ARN builder and parser with hostile parts and near-miss ARNs.

``test_arn.py`` covers valid parts round-tripping and arbitrary text in
``parse``; here every *part* is fuzzed, including non-strings, and the builder
is checked against the parser and against IAM-style matching of what it built.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, example, given
from hypothesis import strategies as st

from rdsiamkit.arn import DbUserArn, db_user_arn
from rdsiamkit.errors import InvalidArnError
from rdsiamkit.policy import connect_policy, evaluate_policy

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_HOSTILE = st.sampled_from(
    ["", " ", "*", "?", "/", ":", "arn", "db-", "cluster-", "\x00", "é", "x" * 70, "-1"]
)
anything = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    _HOSTILE,
    st.lists(st.text(max_size=3), max_size=2),
)
resource_ids = st.text(_UPPER, min_size=26, max_size=26).map(lambda s: "cluster-" + s)
db_users = st.text(
    st.characters(codec="utf-8", exclude_characters="/", exclude_categories=("C",)),
    min_size=1,
    max_size=20,
).filter(lambda u: u.isprintable() and u == u.strip() and len(u.encode()) <= 63)


# Each part is valid or hostile on its own, so every validator is reached with hostile input.
regions_or_not = st.one_of(st.sampled_from(["us-east-1", "cn-north-1", "us-gov-west-1"]), anything)
accounts_or_not = st.one_of(st.just("123456789012"), anything)
resources_or_not = st.one_of(resource_ids, st.just("prx-0123456789abcdef0"), anything)
users_or_not = st.one_of(db_users, anything)


@given(
    region=regions_or_not,
    account_id=accounts_or_not,
    resource_id=resources_or_not,
    db_user=users_or_not,
)
@example(region="us-east-1", account_id="123456789012", resource_id="*", db_user="app")
@example(region="*", account_id="*", resource_id="cluster-*", db_user="a?")
def test_any_parts_build_an_arn_or_raise_invalid_arn(
    region: Any, account_id: Any, resource_id: Any, db_user: Any
) -> None:
    """Whatever the parts (wrong types included), the builder raises only InvalidArnError."""
    try:
        text = db_user_arn(
            region=region, account_id=account_id, resource_id=resource_id, db_user=db_user
        )
    except InvalidArnError as err:
        message = str(err)
        assert "rds-db ARN" in message or "partition" in message
        return
    parsed = DbUserArn.parse(text)
    assert (parsed.region, parsed.account_id, parsed.resource_id, parsed.db_user) == (
        region,
        account_id,
        resource_id,
        db_user,
    )


@given(
    region=st.sampled_from(["us-east-1", "cn-north-1", "us-gov-west-1"]),
    resource_id=resource_ids,
    db_user=db_users,
)
def test_builder_function_and_class_agree(region: str, resource_id: str, db_user: str) -> None:
    """db_user_arn() is str(DbUserArn(...)), with the partition derived from the region."""
    arn = DbUserArn(
        region=region, account_id="000000000000", resource_id=resource_id, db_user=db_user
    )
    text = db_user_arn(
        region=region, account_id="000000000000", resource_id=resource_id, db_user=db_user
    )
    assert text == str(arn)
    assert db_user_arn(
        region=region,
        account_id="000000000000",
        resource_id=resource_id,
        db_user=db_user,
        partition=arn.partition,
    ) == str(arn)


@given(
    resource_id=resource_ids,
    granted=st.lists(db_users, min_size=1, max_size=4, unique=True),
    probe=db_users,
)
def test_connect_policy_allows_exactly_the_users_it_lists(
    resource_id: str, granted: list[str], probe: str
) -> None:
    """A policy written for some users allows each of them and no other user of the cluster."""
    assume("*" not in probe and "?" not in probe)
    assume(not any(c in "*?" for user in granted for c in user))

    def arn(user: str) -> str:
        return db_user_arn(
            region="eu-west-1", account_id="123456789012", resource_id=resource_id, db_user=user
        )

    policy = connect_policy([arn(u) for u in granted])
    for user in granted:
        assert evaluate_policy(policy, arn(user)).allowed
    assert evaluate_policy(policy, arn(probe)).allowed is (probe in granted)


@given(
    prefix=st.text("abc_", min_size=1, max_size=4),
    rest=st.text("abc_", max_size=4),
    other=st.text("abcd_", min_size=1, max_size=8),
)
def test_user_wildcard_arn_allows_what_its_pattern_matches(
    prefix: str, rest: str, other: str
) -> None:
    """A ``prefix*`` user pattern built by the kit allows users with that prefix, only them."""
    base = "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-" + "A" * 26
    pattern = DbUserArn.parse(f"{base}/{prefix}*")
    assert pattern.is_pattern
    policy = connect_policy(pattern)
    assert evaluate_policy(policy, f"{base}/{prefix}{rest}").allowed
    assert evaluate_policy(policy, f"{base}/{other}").allowed is other.startswith(prefix)
