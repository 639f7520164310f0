"""IRSA and SSO credential flows, completed against a fake STS/SSO, log no secret."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import botocore.credentials
import botocore.tokens
import pytest

import secret_scan
from rdsiamkit._redact import REDACTED
from rdsiamkit.tokens import TokenProvider

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
ROLE_ARN = "arn:aws:iam::123456789012:role/eks-app"
SUBJECT = "system:serviceaccount:default:app"
# A web-identity token as EKS writes it: header.payload.signature, base64url.
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InJkc2lhbWtpdC10ZXN0In0"
    ".eyJpc3MiOiJodHRwczovL29pZGMuZWtzLmV4YW1wbGUiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ"
    ".ZmFrZS1zaWduYXR1cmUtb2YtYS1yZHNpYW1raXQtdGVzdC1qd3QtMDEyMzQ1Njc4OWFiY2RlZg"
)
# SSO tokens in the formats of the SSO token cache (aoa... access, aor... refresh).
OLD_ACCESS = "aoaAAAAAGZmFrZS1zc28tYWNjZXNzLXRva2VuLXN0YWxlLXJkc2lhbWtpdC0wMTIzNDU2Nzg5"
NEW_ACCESS = "aoaAAAAAGZmFrZS1zc28tYWNjZXNzLXRva2VuLWZyZXNoLXJkc2lhbWtpdC05ODc2NTQzMjEw"
OLD_REFRESH = "aorAAAAAGZmFrZS1zc28tcmVmcmVzaC10b2tlbi1zdGFsZS1yZHNpYW1raXQtMDEyMzQ1"
NEW_REFRESH = "aorAAAAAGZmFrZS1zc28tcmVmcmVzaC10b2tlbi1mcmVzaC1yZHNpYW1raXQtOTg3NjU0"
CLIENT_SECRET = "fake-sso-oidc-client-secret-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_KEY = "fakeSecretAccessKey/0123456789abcdefEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzFAKESESSIONTOKEN+0123456789abcdef/EXAMPLE=="
SECRETS = (JWT, OLD_ACCESS, NEW_ACCESS, OLD_REFRESH, NEW_REFRESH, CLIENT_SECRET, SECRET_KEY)
# The session token also travels URL-encoded (in the minted IAM token).
SESSION_TOKEN_FORMS = (SESSION_TOKEN, quote(SESSION_TOKEN, safe=""))
SSO_SESSION = "corp"
START_URL = "https://rdsiamkit-test.awsapps.com/start"

# Let the suite-wide scan look for them in every record and report of the session as well.
secret_scan.register(*SECRETS, SESSION_TOKEN, label="fake IRSA/SSO credential")


class FakeAws(BaseHTTPRequestHandler):
    """STS AssumeRoleWithWebIdentity, SSO OIDC CreateToken and SSO GetRoleCredentials."""

    calls: list[dict[str, Any]]

    def do_POST(self) -> None:
        """STS (form body at /) or SSO OIDC CreateToken (JSON at /token)."""
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        if self.path == "/token":
            request = json.loads(body)
            self.calls.append({"op": "CreateToken", **request})
            self._reply(
                "application/json",
                json.dumps(
                    {
                        "accessToken": NEW_ACCESS,
                        "tokenType": "Bearer",
                        "expiresIn": 28800,
                        "refreshToken": NEW_REFRESH,
                    }
                ),
            )
            return
        form = {key: values[0] for key, values in parse_qs(body).items()}
        self.calls.append({"op": form.get("Action"), **form})
        self._reply("text/xml", _sts_response())

    def do_GET(self) -> None:
        """SSO GetRoleCredentials: the bearer token comes in x-amz-sso_bearer_token."""
        self.calls.append(
            {"op": "GetRoleCredentials", "bearer": self.headers["x-amz-sso_bearer_token"]}
        )
        credentials = {
            "accessKeyId": "ASIAFAKESSO000000002",
            "secretAccessKey": SECRET_KEY,
            "sessionToken": SESSION_TOKEN,
            "expiration": int((time.time() + 3600) * 1000),
        }
        self._reply("application/json", json.dumps({"roleCredentials": credentials}))

    def _reply(self, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``calls``."""


def _sts_response() -> str:
    expiration = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<AssumeRoleWithWebIdentityResult>"
        f"<SubjectFromWebIdentityToken>{SUBJECT}</SubjectFromWebIdentityToken>"
        "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/eks-app/s</Arn>"
        "<AssumedRoleId>AROAFAKE00000000000:s</AssumedRoleId></AssumedRoleUser>"
        "<Credentials><AccessKeyId>ASIAFAKEIRSA00000001</AccessKeyId>"
        f"<SecretAccessKey>{SECRET_KEY}</SecretAccessKey>"
        f"<SessionToken>{SESSION_TOKEN}</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials>"
        "<Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult>"
        "<ResponseMetadata><RequestId>fake-request</RequestId></ResponseMetadata>"
        "</AssumeRoleWithWebIdentityResponse>"
    )


@pytest.fixture
def fake_aws() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A fake STS/SSO on 127.0.0.1: its URL and the calls it answered."""
    calls: list[dict[str, Any]] = []
    handler = type("Handler", (FakeAws,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def flow_env(flow: str, home: Path, url: str) -> dict[str, str]:
    """Files and AWS_* variables for an IRSA or SSO flow that only reaches ``url``."""
    aws = home / ".aws"
    (aws / "sso" / "cache").mkdir(parents=True)
    env = {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_STS": url,
        "AWS_ENDPOINT_URL_SSO": url,
        "AWS_ENDPOINT_URL_SSO_OIDC": url,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    (aws / "credentials").write_text("")
    if flow == "irsa":
        (home / "web-identity-token").write_text(JWT)
        (aws / "config").write_text("")
        env.update(
            AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(home / "web-identity-token")
        )
        return env
    (aws / "config").write_text(
        textwrap.dedent(f"""\
            [profile sso-app]
            sso_session = {SSO_SESSION}
            sso_account_id = 123456789012
            sso_role_name = db-connect
            region = us-east-1
            [sso-session {SSO_SESSION}]
            sso_start_url = {START_URL}
            sso_region = us-east-1
            """)
    )
    # The cached token expires within botocore's refresh window: it refreshes via CreateToken.
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    cached = {
        "startUrl": START_URL,
        "region": "us-east-1",
        "accessToken": OLD_ACCESS,
        "expiresAt": soon.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "clientId": "fake-client-id",
        "clientSecret": CLIENT_SECRET,
        "registrationExpiresAt": "2099-01-01T00:00:00Z",
        "refreshToken": OLD_REFRESH,
    }
    key = hashlib.sha1(SSO_SESSION.encode()).hexdigest()  # botocore's cache key
    (aws / "sso" / "cache" / f"{key}.json").write_text(json.dumps(cached))
    env["AWS_PROFILE"] = "sso-app"
    return env


@pytest.fixture
def flow(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this process's botocore at a flow's files (cache dirs are fixed at import)."""
    url = request.getfixturevalue("fake_aws")[0]
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in flow_env(request.param, tmp_path, url).items():
        monkeypatch.setenv(name, value)
    cache = str(tmp_path / ".aws" / "sso" / "cache")
    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", cache)
    monkeypatch.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", cache)
    return str(request.param)


def mint(caplog: pytest.LogCaptureFixture, profile: str | None) -> tuple[str, TokenProvider]:
    """Resolve credentials through a provider and mint a token, every logger at DEBUG."""
    with caplog.at_level(logging.DEBUG):
        provider = TokenProvider(profile=profile)
        token = provider.get_token(HOST, 5432, "app")
    return token, provider


def captured(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as text, exceptions included."""
    return caplog.text + "\n".join(r.getMessage() for r in caplog.records)


def records(caplog: pytest.LogCaptureFixture, name: str, *needles: str) -> list[str]:
    """Messages of logger ``name`` that contain every needle."""
    return [
        m
        for r in caplog.records
        if r.name == name and all(n in (m := r.getMessage()) for n in needles)
    ]


def assert_no_secret(text: str) -> None:
    """None of the fake flow's secrets (nor the session token's URL form) is in ``text``."""
    leaked = [i for i, s in enumerate((*SECRETS, *SESSION_TOKEN_FORMS)) if s in text]
    assert not leaked, f"secrets #{leaked} of the fake flow reached the log"


@pytest.mark.parametrize("flow", ["irsa"], indirect=True)
def test_irsa_web_identity_token_never_logged(
    flow: str, fake_aws: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    """IRSA: the JWT botocore sends to STS and the credentials it gets back are redacted."""
    token, provider = mint(caplog, profile=None)
    calls = fake_aws[1]
    assert [c["op"] for c in calls] == ["AssumeRoleWithWebIdentity"]
    assert calls[0]["WebIdentityToken"] == JWT and calls[0]["RoleArn"] == ROLE_ARN
    assert provider.identity == "ASIAFAKEIRSA00000001"
    assert "X-Amz-Security-Token=" in token and "X-Amz-Credential=ASIAFAKEIRSA" in token
    assert_no_secret(captured(caplog))
    # botocore did log the request and the response, with the secrets replaced in place.
    sent = records(caplog, "botocore.endpoint", "AssumeRoleWithWebIdentity", "'body':")
    assert sent and all(f"'WebIdentityToken': '{REDACTED}'" in m for m in sent)
    assert all(f"'RoleArn': '{ROLE_ARN}'" in m for m in sent)
    body = records(caplog, "botocore.parsers", "<AssumeRoleWithWebIdentityResponse")
    assert body and f"<SessionToken>{REDACTED}</SessionToken>" in body[0]
    assert f"<SecretAccessKey>{REDACTED}</SecretAccessKey>" in body[0]
    assert f"<SubjectFromWebIdentityToken>{SUBJECT}<" in body[0]


@pytest.mark.parametrize("flow", ["sso"], indirect=True)
def test_sso_bearer_and_oidc_tokens_never_logged(
    flow: str, fake_aws: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    """SSO: the refresh (CreateToken) and the bearer header of GetRoleCredentials are redacted."""
    token, provider = mint(caplog, profile="sso-app")
    calls = fake_aws[1]
    assert [c["op"] for c in calls] == ["CreateToken", "GetRoleCredentials"]
    assert calls[0]["refreshToken"] == OLD_REFRESH and calls[0]["clientSecret"] == CLIENT_SECRET
    assert calls[1]["bearer"] == NEW_ACCESS
    assert provider.identity == "ASIAFAKESSO000000002"
    assert "X-Amz-Security-Token=" in token
    assert_no_secret(captured(caplog))
    bearer = records(caplog, "botocore.endpoint", "x-amz-sso_bearer_token")
    # Once in the request parameters, once in the prepared request's headers (bytes).
    assert any(f"'x-amz-sso_bearer_token': '{REDACTED}'" in m for m in bearer)
    assert any(f"'x-amz-sso_bearer_token': b'{REDACTED}'" in m for m in bearer)
    assert all("role_name=db-connect&account_id=123456789012" in m for m in bearer)
    create = records(caplog, "botocore.endpoint", "CreateToken", "'body':")
    assert create and f'"clientSecret": "{REDACTED}"' in create[0]
    assert f'"refreshToken": "{REDACTED}"' in create[0]
    assert '"clientId": "fake-client-id"' in create[0]
    replies = "\n".join(records(caplog, "botocore.parsers", "Response body"))
    assert f'"accessToken": "{REDACTED}"' in replies and '"tokenType": "Bearer"' in replies
    assert f'"secretAccessKey": "{REDACTED}"' in replies


CONTROL = """
import json, logging, boto3
texts = []
class Keep(logging.Handler):
    def emit(self, record):
        texts.append(record.getMessage())
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.DEBUG)
boto3.Session().get_credentials().get_frozen_credentials()
print(json.dumps([any(s in t for t in texts) for s in json.loads(input())]))
"""


@pytest.mark.parametrize(("flow_name", "expected"), [("irsa", JWT), ("sso", NEW_ACCESS)])
def test_without_the_filter_the_same_flow_leaks(
    flow_name: str, expected: str, tmp_path: Path, fake_aws: tuple[str, list[dict[str, Any]]]
) -> None:
    """Control: plain boto3 (rdsiamkit never imported) logs the secret in the same flow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(flow_env(flow_name, tmp_path, fake_aws[0]))
    result = subprocess.run(
        [sys.executable, "-c", CONTROL],
        input=json.dumps([expected, SECRET_KEY]),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Only booleans come back: the child's stderr might carry the secret, so it is not shown.
    assert result.returncode == 0, f"control run failed (exit {result.returncode})"
    assert json.loads(result.stdout) == [True, True]
