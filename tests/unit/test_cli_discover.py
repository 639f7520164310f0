"""`rdsiamkit discover` against moto (in-process AWS): nothing reaches AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from rdsiamkit.cli import main

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[boto3.Session]:
    """Fake credentials, no config files or instance metadata, and moto's in-process AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _cluster(session: boto3.Session, name: str, *, iam: bool) -> dict[str, str]:
    created = session.client("rds").create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="postgres",
        MasterUserPassword="not-a-real-secret",
        EnableIAMDatabaseAuthentication=iam,
    )["DBCluster"]
    return {"id": created["DbClusterResourceId"], "endpoint": created["Endpoint"]}


def test_discover_one_cluster_as_text_and_json(
    fake_aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    """`discover demo` prints IAM auth, the resource id and the rds-db ARN; --json the same."""
    made = _cluster(fake_aws, "demo", iam=True)
    assert main(["discover", "demo"]) == 0
    text = capsys.readouterr().out
    assert "IAM database auth            enabled" in text
    assert made["id"] in text and f"dbuser:{made['id']}/<db user>" in text
    assert made["endpoint"] in text
    assert main(["discover", made["endpoint"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["identifier"], data["iam_auth_enabled"]) == ("cluster", "demo", True)
    assert data["iam_resource_id"] == made["id"] and data["region"] == REGION


def test_discover_lists_every_database_and_names_missing_ones(
    fake_aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without TARGET it lists the region's resources; an unknown name exits non-zero."""
    _cluster(fake_aws, "one", iam=True)
    _cluster(fake_aws, "two", iam=False)
    assert main(["discover"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 database resource(s)"
    assert any(line.startswith("cluster  one") and " enabled " in line for line in lines)
    assert any(line.startswith("cluster  two") and " DISABLED " in line for line in lines)
    assert main(["discover", "--json"]) == 0
    assert [r["identifier"] for r in json.loads(capsys.readouterr().out)] == ["one", "two"]
    assert main(["discover", "nothere"]) == 1
    assert "nothere" in capsys.readouterr().err
