"""Issue 13 (diagnosis and errors): region checks, the doctor hint, damaged tokens, wording."""

from __future__ import annotations

import shlex
from pathlib import Path

import psycopg
import pytest

from rdsiamkit.connection import ConnectSpec
from rdsiamkit.errors import ConfigurationError
from rdsiamkit.tokens import IssuedToken, TokenKey

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
TOKEN = f"{HOST}:5432/?Action=connect&DBUser=app&X-Amz-Signature=deadbeefcafef00d"


def _issued(spec: ConnectSpec) -> IssuedToken:
    key = TokenKey("AKIAEXAMPLE", spec.token_host, spec.token_port, spec.user, "eu-west-1")
    return IssuedToken(TOKEN, key, from_cache=False)


def test_region_contradicting_the_endpoint_is_refused_up_front() -> None:
    """An explicit region other than the endpoint name's is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="contradicts the endpoint"):
        ConnectSpec.build("", {"host": HOST, "user": "app"}, region="eu-west-1")


def test_region_matching_or_overridden_by_token_host_is_accepted() -> None:
    """The endpoint's own region passes; a token host override makes the name irrelevant."""
    assert ConnectSpec.build("", {"host": HOST, "user": "app"}, region="us-east-1").region
    spec = ConnectSpec.build(
        "", {"host": HOST, "user": "app"}, region="eu-west-1", token_host="db.example.com"
    )
    assert spec.region == "eu-west-1"


def test_doctor_hint_reproduces_the_whole_attempt(tmp_path: Path) -> None:
    """The hint names hostaddr, sslrootcert, token host/port, region and dbname, quoted."""
    ca = tmp_path / "my ca.pem"
    ca.write_text("x")
    spec = ConnectSpec.build(
        "",
        {
            "host": "db.example.com",
            "hostaddr": "127.0.0.1",
            "port": 15432,
            "user": "app",
            "dbname": "my db",
            "sslrootcert": str(ca),
        },
        region="eu-west-1",
        token_host=HOST,
        token_port=5432,
    )
    err = spec.explain(
        psycopg.OperationalError('FATAL:  PAM authentication failed for user "app"'),
        _issued(spec),
    )
    hint = next(c for c in err.causes if "rdsiamkit doctor" in c)
    command = hint.split("`")[1]
    args = shlex.split(command)
    assert args[:2] == ["rdsiamkit", "doctor"]
    pairs = dict(zip(args[2::2], args[3::2], strict=True))
    assert pairs == {
        "--host": "db.example.com",
        "--port": "15432",
        "--user": "app",
        "--hostaddr": "127.0.0.1",
        "--dbname": "my db",
        "--sslrootcert": str(ca),
        "--token-host": HOST,
        "--token-port": "5432",
        "--region": "eu-west-1",
    }


def test_login_errors_speak_python() -> None:
    """The membership and CA hints name library calls, which the CLI translates."""
    spec = ConnectSpec.build("", {"host": HOST, "user": "app"})
    key = TokenKey("AKIAEXAMPLE", HOST, 5432, "app", "us-east-1")
    issued = IssuedToken(TOKEN, key, from_cache=False)
    password = spec.explain(
        psycopg.OperationalError('FATAL:  password authentication failed for user "app"'),
        issued,
    )
    assert "rdsiamkit.set_auth_mode(conn, 'app', 'iam')" in str(password)
    assert "rdsiamkit switch" not in str(password)
    assert "does not exist" in str(password)  # a missing role is refused the same way
    tls = spec.explain(psycopg.OperationalError("certificate verify failed"), issued)
    assert "rdsiamkit.refresh_ca_bundle()" in str(tls) and "ca update" not in str(tls)
