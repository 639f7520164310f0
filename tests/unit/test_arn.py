"""rds-db ARNs: golden strings per partition and resource kind, validation, parse round trip."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rdsiamkit.arn import DbUserArn, ResourceKind, db_user_arn
from rdsiamkit.errors import ConfigurationError, InvalidArnError

CLUSTER_ID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
INSTANCE_ID = "db-12ABC34DEFG5HIJ6KLMNOP78QR"
PROXY_ID = "prx-0123456789abcdef0"


@pytest.mark.parametrize(
    ("region", "resource_id", "expected"),
    [
        (
            "us-east-1",
            CLUSTER_ID,
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2/app",
        ),
        (
            "us-east-1",
            INSTANCE_ID,
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-12ABC34DEFG5HIJ6KLMNOP78QR/app",
        ),
        (
            "us-east-1",
            PROXY_ID,
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0123456789abcdef0/app",
        ),
        (
            "cn-north-1",
            CLUSTER_ID,
            "arn:aws-cn:rds-db:cn-north-1:123456789012:dbuser:"
            "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2/app",
        ),
        (
            "cn-northwest-1",
            INSTANCE_ID,
            "arn:aws-cn:rds-db:cn-northwest-1:123456789012:dbuser:db-12ABC34DEFG5HIJ6KLMNOP78QR/app",
        ),
        (
            "cn-north-1",
            PROXY_ID,
            "arn:aws-cn:rds-db:cn-north-1:123456789012:dbuser:prx-0123456789abcdef0/app",
        ),
        (
            "us-gov-west-1",
            CLUSTER_ID,
            "arn:aws-us-gov:rds-db:us-gov-west-1:123456789012:dbuser:"
            "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2/app",
        ),
        (
            "us-gov-east-1",
            INSTANCE_ID,
            "arn:aws-us-gov:rds-db:us-gov-east-1:123456789012:dbuser:"
            "db-12ABC34DEFG5HIJ6KLMNOP78QR/app",
        ),
        (
            "us-gov-west-1",
            PROXY_ID,
            "arn:aws-us-gov:rds-db:us-gov-west-1:123456789012:dbuser:prx-0123456789abcdef0/app",
        ),
    ],
)
def test_golden_arns(region: str, resource_id: str, expected: str) -> None:
    """The builder writes the exact ARN AWS documents, partition derived from the region."""
    assert (
        db_user_arn(
            region=region, account_id="123456789012", resource_id=resource_id, db_user="app"
        )
        == expected
    )
    parsed = DbUserArn.parse(expected)
    assert str(parsed) == expected
    assert parsed.region == region
    assert parsed.resource_id == resource_id


@pytest.mark.parametrize(
    ("resource_id", "kind"),
    [
        (CLUSTER_ID, ResourceKind.CLUSTER),
        (INSTANCE_ID, ResourceKind.INSTANCE),
        (PROXY_ID, ResourceKind.PROXY),
        ("cluster-*", ResourceKind.CLUSTER),
        ("*", None),
    ],
)
def test_resource_kind(resource_id: str, kind: ResourceKind | None) -> None:
    """The resource id prefix tells the kind; a bare wildcard names no kind."""
    arn = DbUserArn(
        region="us-east-1", account_id="123456789012", resource_id=resource_id, db_user="app"
    )
    assert arn.resource_kind is kind


def test_explicit_partition_is_kept() -> None:
    """An explicit partition matching the region is used verbatim."""
    text = db_user_arn(
        region="us-gov-west-1",
        account_id="123456789012",
        resource_id=INSTANCE_ID,
        db_user="postgres",
        partition="aws-us-gov",
    )
    assert text.startswith("arn:aws-us-gov:rds-db:us-gov-west-1:")


@pytest.mark.parametrize(
    ("parts", "is_pattern"),
    [
        ({"resource_id": "*", "db_user": "*"}, True),
        ({"resource_id": "cluster-*", "db_user": "app"}, True),
        ({"resource_id": INSTANCE_ID, "db_user": "app_?"}, True),
        ({"region": "*", "partition": "aws", "resource_id": INSTANCE_ID, "db_user": "app"}, True),
        ({"account_id": "*", "resource_id": INSTANCE_ID, "db_user": "app"}, True),
        ({"resource_id": INSTANCE_ID, "db_user": "app"}, False),
    ],
)
def test_wildcards_where_iam_allows_them(parts: dict[str, str], is_pattern: bool) -> None:
    """'*' and '?' are accepted in the places IAM policies allow them, and flagged as patterns."""
    values = {"region": "us-east-1", "account_id": "123456789012", **parts}
    arn = DbUserArn(**values)
    assert arn.is_pattern is is_pattern
    assert DbUserArn.parse(str(arn)) == arn


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"region": "us_east_1"}, "invalid region 'us_east_1'"),
        ({"region": ""}, "invalid region ''"),
        ({"account_id": "12345678901"}, "invalid account_id '12345678901'"),
        ({"account_id": "1234567890123"}, "invalid account_id '1234567890123'"),
        ({"account_id": "12345678901a"}, "invalid account_id '12345678901a'"),
        ({"resource_id": ""}, "invalid resource_id ''"),
        ({"resource_id": "mydb"}, "looks like a cluster/instance/proxy name"),
        ({"resource_id": "db-ABCDEFGHIJKL01234"}, "invalid resource_id 'db-ABCDEFGHIJKL01234'"),
        ({"resource_id": "cluster-abcdefghijklmnopqrstuvwxyz"}, "invalid resource_id"),
        ({"resource_id": "prx-0123"}, "invalid resource_id 'prx-0123'"),
        ({"resource_id": "db-*/x"}, "a pattern may use only"),
        ({"db_user": ""}, "invalid db_user ''"),
        ({"db_user": "app/admin"}, "invalid db_user 'app/admin'"),
        ({"db_user": "app\n"}, "control characters"),
        ({"db_user": " app"}, "whitespace"),
        ({"db_user": "u" * 64}, "longer than 63 bytes"),
        ({"partition": "aws"}, "partition 'aws' does not match region 'cn-north-1'"),
        ({"partition": "aws-mars"}, "invalid partition 'aws-mars'"),
        ({"region": "*"}, "partition is required when region is '*'"),
    ],
)
def test_invalid_parts_name_the_part_and_value(parts: dict[str, str], message: str) -> None:
    """Each bad part raises InvalidArnError (a ConfigurationError) naming the part and value."""
    values = {
        "region": "cn-north-1",
        "account_id": "123456789012",
        "resource_id": INSTANCE_ID,
        "db_user": "app",
        **parts,
    }
    with pytest.raises(InvalidArnError) as info:
        db_user_arn(**values)
    assert message in str(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ValueError)


def test_account_id_must_be_a_string() -> None:
    """An int account id is refused: it would lose leading zeros."""
    with pytest.raises(InvalidArnError, match="invalid account_id 12345678901"):
        db_user_arn(
            region="us-east-1",
            account_id=12345678901,  # type: ignore[arg-type]
            resource_id=INSTANCE_ID,
            db_user="app",
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not an ARN of the form"),
        ("arn:aws:rds-db:us-east-1:123456789012:dbuser", "is not an ARN of the form"),
        ("urn:aws:rds-db:us-east-1:123456789012:dbuser:x/y", "is not an ARN of the form"),
        (f"arn:aws:rds:us-east-1:123456789012:dbuser:{INSTANCE_ID}/app", "(not 'rds')"),
        (f"arn:aws:rds-db:us-east-1:123456789012:db:{INSTANCE_ID}/app", "resource type 'db'"),
        (f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{INSTANCE_ID}", "lacks the '/DB_USER'"),
        (f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{INSTANCE_ID}/a/b", "'a/b'"),
        (f"arn:aws-cn:rds-db:us-east-1:123456789012:dbuser:{INSTANCE_ID}/a", "does not match"),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    """Text that is not a valid rds-db dbuser ARN is refused with the reason."""
    with pytest.raises(InvalidArnError) as info:
        DbUserArn.parse(text)
    assert message in str(info.value)


def test_parse_rejects_non_string() -> None:
    """A non-str ARN raises InvalidArnError rather than AttributeError."""
    with pytest.raises(InvalidArnError, match="must be a str"):
        DbUserArn.parse(None)  # type: ignore[arg-type]


def test_arn_is_frozen_and_hashable() -> None:
    """DbUserArn is an immutable value usable in sets."""
    arn = DbUserArn.parse(f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{INSTANCE_ID}/app")
    assert len({arn, DbUserArn.parse(str(arn))}) == 1
    with pytest.raises(AttributeError):
        arn.db_user = "other"  # type: ignore[misc]


# -- properties ---------------------------------------------------------------

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
resource_ids = st.one_of(
    st.text(_UPPER, min_size=26, max_size=26).map(lambda s: "cluster-" + s),
    st.text(_UPPER, min_size=26, max_size=26).map(lambda s: "db-" + s),
    st.text(_LOWER, min_size=17, max_size=17).map(lambda s: "prx-" + s),
    st.just("*"),
)
db_users = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S"), exclude_characters="/"),
    min_size=1,
    max_size=15,  # 15 four-byte characters stay within PostgreSQL's 63 bytes
)
regions = st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "*"])
accounts = st.one_of(st.text("0123456789", min_size=12, max_size=12), st.just("*"))
partitions = st.sampled_from(["aws", "aws-cn", "aws-us-gov"])


@given(
    region=regions,
    account_id=accounts,
    resource_id=resource_ids,
    db_user=db_users,
    partition=partitions,
)
def test_round_trip(
    region: str, account_id: str, resource_id: str, db_user: str, partition: str
) -> None:
    """Any valid set of parts renders to an ARN that parses back to the same parts."""
    if region != "*":
        partition = {"cn": "aws-cn", "us-gov": "aws-us-gov"}.get(region.rsplit("-", 2)[0], "aws")
    arn = DbUserArn(
        region=region,
        account_id=account_id,
        resource_id=resource_id,
        db_user=db_user,
        partition=partition,
    )
    text = str(arn)
    assert text == (f"arn:{partition}:rds-db:{region}:{account_id}:dbuser:{resource_id}/{db_user}")
    assert DbUserArn.parse(text) == arn


_segments = st.one_of(
    st.sampled_from(["aws", "rds-db", "us-east-1", "123456789012", "dbuser", "*"]), st.text()
)
near_arns = st.lists(_segments, min_size=5, max_size=7).map(lambda ps: ":".join(["arn", *ps]))


@given(text=st.one_of(st.text(), near_arns))
@example(text="arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app")
def test_parse_only_raises_invalid_arn(text: str) -> None:
    """On arbitrary text parse returns a DbUserArn or raises InvalidArnError, nothing else."""
    try:
        arn = DbUserArn.parse(text)
    except InvalidArnError:
        return
    assert str(arn) == text
