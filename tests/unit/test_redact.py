"""redact() on the exact texts botocore logs: tokens and credentials go, the rest stays readable."""

from __future__ import annotations

import logging

import pytest

from rdsiamkit._redact import REDACTED, redact

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ"
    ".eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ"
    ".c2lnbmF0dXJlLW9mLWEtZmFrZS1qd3QtZm9yLXRlc3Rz"
)
SSO = "aoaAAAAAGZmFrZS1zc28tYWNjZXNzLXRva2VuLWZvci1yZHNpYW1raXQtdGVzdHMtMDEyMzQ1Njc4OQ"
REFRESH = "aorAAAAAGZmFrZS1zc28tcmVmcmVzaC10b2tlbi1yZHNpYW1raXQtMDEyMzQ1Njc4OQ"
CLIENT_SECRET = "fake-client-secret-0123456789abcdefghijklmnop"
SECRET_KEY = "fakeSecretAccessKey/0123456789abcdefEXAMPLE"
SESSION_TOKEN = "FwoGZXIvYXdzFAKESESSIONTOKEN0123456789abcdef+EXAMPLE/=="
SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
UA = "Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux lang/python#3.11.7 Botocore/1.44.8"
CONTEXT = (
    "'context': {'client_region': 'us-east-1', 'client_config': "
    "<botocore.config.Config object at 0x7fccb726f590>, 'has_streaming_input': False, "
    "'auth_type': 'none', 'unsigned_payload': None, 'auth_options': ['aws.auth#sigv4']}}"
)

# botocore.endpoint "Making request for %s with params: %s", as an EKS pod (IRSA) logs it.
IRSA_REQUEST = (
    "Making request for OperationModel(name=AssumeRoleWithWebIdentity) with params: "
    "{'url_path': '/', 'query_string': '', 'method': 'POST', 'headers': {'Content-Type': "
    f"'application/x-www-form-urlencoded; charset=utf-8', 'User-Agent': '{UA}'}}, "
    "'body': {'Action': 'AssumeRoleWithWebIdentity', 'Version': '2011-06-15', "
    "'RoleArn': 'arn:aws:iam::123456789012:role/r', 'RoleSessionName': "
    f"'botocore-session-1796236725', 'WebIdentityToken': '{JWT}'}}, "
    f"'url': 'https://sts.us-east-1.amazonaws.com/', {CONTEXT}"
)
# SSO GetRoleCredentials: the params, then the prepared request (bytes header values).
SSO_REQUEST = (
    "Making request for OperationModel(name=GetRoleCredentials) with params: "
    "{'url_path': '/federation/credentials', 'query_string': {'role_name': 'r', "
    "'account_id': '123456789012'}, 'method': 'GET', 'headers': "
    f"{{'x-amz-sso_bearer_token': '{SSO}', 'User-Agent': '{UA}'}}, 'body': b'', "
    "'url': 'https://portal.sso.us-east-1.amazonaws.com/federation/credentials"
    f"?role_name=r&account_id=123456789012', {CONTEXT}"
)
SSO_SENT = (
    "Sending http request: <AWSPreparedRequest stream_output=False, method=GET, "
    "url=https://portal.sso.us-east-1.amazonaws.com/federation/credentials"
    f"?role_name=r&account_id=123456789012, headers={{'x-amz-sso_bearer_token': b'{SSO}', "
    f"'User-Agent': b'{UA}', 'amz-sdk-invocation-id': b'e81fb4e7-0021-489e-bca8-beebc148a09c', "
    "'amz-sdk-request': b'attempt=1; max=3'}>"
)
# SSO OIDC CreateToken (token refresh): a JSON body in a bytes repr, and the reply.
OIDC_REQUEST = (
    "Making request for OperationModel(name=CreateToken) with params: {'url_path': '/token', "
    "'query_string': {}, 'method': 'POST', 'headers': {'Content-Type': 'application/json'}, "
    '\'body\': b\'{"grantType": "refresh_token", "clientId": "fake-client-id", '
    f'"clientSecret": "{CLIENT_SECRET}", "refreshToken": "{REFRESH}"}}\', {CONTEXT}'
)
OIDC_REPLY = (
    f'Response body:\nb\'{{"accessToken": "{SSO}", "tokenType": "Bearer", '
    f'"expiresIn": 28800, "refreshToken": "{REFRESH}", "idToken": "{JWT}"}}\''
)
SSO_REPLY = (
    'Response body:\nb\'{"roleCredentials": {"accessKeyId": "ASIAFAKE000000000002", '
    f'"secretAccessKey": "{SECRET_KEY}", "sessionToken": "{SESSION_TOKEN}", '
    '"expiration": 4070908800000}}\''
)
STS_REPLY = (
    "Response body:\nb'<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
    "<SubjectFromWebIdentityToken>system:serviceaccount:default:app</SubjectFromWebIdentityToken>"
    "<Credentials><AccessKeyId>ASIAFAKE000000000001</AccessKeyId>"
    f"<SecretAccessKey>{SECRET_KEY}</SecretAccessKey><SessionToken>{SESSION_TOKEN}</SessionToken>"
    "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>'"
)
# A SigV4-signed call with temporary credentials, as "Sending http request" shows it.
SIGNED_SENT = (
    "Sending http request: <AWSPreparedRequest stream_output=False, method=POST, "
    "url=https://rds.us-east-1.amazonaws.com/, headers={'Content-Type': b'application/"
    "x-www-form-urlencoded; charset=utf-8', 'X-Amz-Date': b'20250101T000000Z', "
    f"'X-Amz-Security-Token': b'{SESSION_TOKEN}', 'Authorization': b'AWS4-HMAC-SHA256 "
    "Credential=ASIAFAKE000000000001/20250101/us-east-1/rds/aws4_request, "
    f"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature={SIGNATURE}', "
    "'Content-Length': '45'}>"
)
SAMPLES = {
    "irsa request": (IRSA_REQUEST, [JWT]),
    "sso request": (SSO_REQUEST, [SSO]),
    "sso prepared request": (SSO_SENT, [SSO]),
    "oidc request": (OIDC_REQUEST, [CLIENT_SECRET, REFRESH]),
    "oidc reply": (OIDC_REPLY, [SSO, REFRESH, JWT]),
    "sso reply": (SSO_REPLY, [SECRET_KEY, SESSION_TOKEN]),
    "sts reply": (STS_REPLY, [SECRET_KEY, SESSION_TOKEN]),
    "signed request": (SIGNED_SENT, [SESSION_TOKEN, SIGNATURE]),
    "form body": (f"Action=AssumeRoleWithWebIdentity&WebIdentityToken={JWT}&Version=1", [JWT]),
    "bearer header": (f"Authorization: Bearer {SSO}", [SSO]),
    "sso header line": (f"x-amz-sso_bearer_token: {SSO}\nUser-Agent: {UA}", [SSO]),
    "escaped json": (f'{{\\"accessToken\\": \\"{SSO}\\", \\"expiresIn\\": 1}}', [SSO]),
    "oauth form": (f"grant_type=refresh_token&refresh_token={REFRESH}&client_id=x", [REFRESH]),
    "env style": (f"AWS_SESSION_TOKEN={SESSION_TOKEN} AWS_REGION=us-east-1", [SESSION_TOKEN]),
    "bare jwt": (f"token file holds {JWT} (for the pod)", [JWT]),
    "sso cache token": (f"cached {SSO}:MGUCMQDfakeSignature0123/+= for corp", [SSO, "MGUCMQ"]),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_redact_removes_every_secret_of_botocore_texts(name: str) -> None:
    """Each botocore text loses its secrets and keeps its shape; redacting twice changes nothing."""
    text, secrets = SAMPLES[name]
    cleaned = redact(text)
    assert [s for s in secrets if s in text] == secrets  # the sample really carries them
    assert [s for s in secrets if s in cleaned] == []
    assert REDACTED in cleaned
    assert redact(cleaned) == cleaned


def test_redaction_keeps_names_and_non_secret_values() -> None:
    """Parameter names and non-secret values (role, URL, expiry, token type) stay readable."""
    irsa, sso, sent = redact(IRSA_REQUEST), redact(SSO_SENT), redact(SSO_REQUEST)
    assert f"'WebIdentityToken': '{REDACTED}'" in irsa
    assert "'RoleArn': 'arn:aws:iam::123456789012:role/r'" in irsa
    assert "'url': 'https://sts.us-east-1.amazonaws.com/'" in irsa
    assert f"'x-amz-sso_bearer_token': b'{REDACTED}'" in sso
    assert "'amz-sdk-request': b'attempt=1; max=3'" in sso and f"'User-Agent': b'{UA}'" in sso
    assert f"'x-amz-sso_bearer_token': '{REDACTED}'" in sent
    assert "role_name=r&account_id=123456789012" in sent
    oidc, reply = redact(OIDC_REQUEST), redact(OIDC_REPLY)
    assert '"grantType": "refresh_token", "clientId": "fake-client-id"' in oidc
    assert f'"clientSecret": "{REDACTED}", "refreshToken": "{REDACTED}"' in oidc
    assert f'"accessToken": "{REDACTED}", "tokenType": "Bearer", "expiresIn": 28800' in reply
    sts = redact(STS_REPLY)
    assert "<SubjectFromWebIdentityToken>system:serviceaccount:default:app<" in sts
    assert "<AccessKeyId>ASIAFAKE000000000001</AccessKeyId>" in sts
    signed = redact(SIGNED_SENT)
    assert f"'Authorization': b'{REDACTED}'" in signed and "'Content-Length': '45'" in signed


@pytest.mark.parametrize(
    "text",
    [
        "Checking for cached token at: 13d964f74e530cef34c9cc5577ad15501abebe0e",
        "SSO Token refresh succeeded",
        "Loading cached SSO token for corp",
        "Bearer token refresh failed, retrying",
        "?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900",
        "minted IAM token for app@db.example:5432 (us-east-1) signed by ASIAFAKE0000, reused",
        "{'NextToken': None, 'MaxRecords': 100}",
        "Found credentials from assume role with web identity (AWS_ROLE_ARN)",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Log lines that merely mention tokens, or carry no secret, are unchanged."""
    assert redact(text) == text


def test_botocore_endpoint_record_is_redacted_by_the_installed_filter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Importing rdsiamkit.tokens installs the filter: a record logged like botocore's is clean."""
    import rdsiamkit.tokens  # noqa: F401 (installs the filter)

    params = {"headers": {"x-amz-sso_bearer_token": SSO}, "body": {"WebIdentityToken": JWT}}
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("botocore.endpoint").debug(
            "Making request for %s with params: %s", "OperationModel(name=X)", params
        )
    [record] = [r for r in caplog.records if r.name == "botocore.endpoint"]
    message = record.getMessage()
    assert SSO not in message and JWT not in message
    assert f"'x-amz-sso_bearer_token': '{REDACTED}'" in message
    assert f"'WebIdentityToken': '{REDACTED}'" in message
