"""The suite-wide secret scan recognises JWTs and SSO tokens, and passes their redacted form."""

from __future__ import annotations

import pytest

import secret_scan
from rdsiamkit._redact import redact

# Values of their own (never register()ed), so only the patterns can find them.
JWT = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJhdWQiOiJzdHMuYW1hem9uYXdzLmNvbSIsInN1YiI6InNjYW4tdGVzdCJ9"
    ".bm90LWEtcmVhbC1zaWduYXR1cmUtc2Nhbm5lci10ZXN0"
)
ACCESS = "aoaAAAAAGc2Nhbm5lci10ZXN0LWFjY2Vzcy10b2tlbi0wMTIzNDU2Nzg5YWJjZGVm"
REFRESH = "aorAAAAAGc2Nhbm5lci10ZXN0LXJlZnJlc2gtdG9rZW4tMDEyMzQ1Njc4OQ"
OPAQUE = "c2Nhbm5lci10ZXN0LW9wYXF1ZS1zc28tdG9rZW4tMDEyMzQ1Njc4OQ"  # no aoa prefix
CLIENT_SECRET = "scanner-test-client-secret-0123456789abcdef"

LEAKS = {
    "irsa params": (f"'body': {{'RoleArn': 'r', 'WebIdentityToken': '{JWT}'}}", "JSON Web Token"),
    "form body": (f"Action=AssumeRoleWithWebIdentity&WebIdentityToken={JWT}", "JSON Web Token"),
    "bare jwt": (f"reading {JWT} from the token file", "JSON Web Token"),
    "sso params": (
        f"'headers': {{'x-amz-sso_bearer_token': '{OPAQUE}'}}",
        "SSO / OAuth token value",
    ),
    "sso prepared": (
        f"headers={{'x-amz-sso_bearer_token': b'{OPAQUE}'}}",
        "SSO / OAuth token value",
    ),
    "sso header line": (f"x-amz-sso_bearer_token: {OPAQUE}", "SSO / OAuth token value"),
    "cache json": (f'{{"accessToken": "{OPAQUE}", "expiresAt": "x"}}', "SSO / OAuth token value"),
    "refresh json": (f'b\'{{"refreshToken": "{OPAQUE}"}}\'', "SSO / OAuth token value"),
    "client secret": (f'{{"clientSecret": "{CLIENT_SECRET}"}}', "SSO / OAuth token value"),
    "oauth form": (f"grant_type=refresh_token&refresh_token={OPAQUE}", "SSO / OAuth token value"),
    "escaped json": (f'{{\\"accessToken\\": \\"{OPAQUE}\\"}}', "SSO / OAuth token value"),
    "aoa anywhere": (f"cached {ACCESS} for corp", "SSO access/refresh token"),
    "aor anywhere": (f"refresh with {REFRESH}", "SSO access/refresh token"),
    "bearer": (f"Authorization: Bearer {OPAQUE}", "Bearer credential"),
}


@pytest.mark.parametrize("name", LEAKS)
def test_scan_flags_jwts_and_sso_tokens(name: str) -> None:
    """Each leak is found under its kind, and the finding never repeats the secret."""
    text, kind = LEAKS[name]
    finding = secret_scan.scan_text(text, where=name)
    assert finding is not None and kind in finding.what
    shown = str(finding)
    assert all(s not in shown for s in (JWT, ACCESS, REFRESH, OPAQUE, CLIENT_SECRET))
    assert "<SECRET>" in shown


@pytest.mark.parametrize("name", LEAKS)
def test_scan_passes_the_redacted_form(name: str) -> None:
    """What rdsiamkit's filter leaves of the same text is not a finding."""
    text, _ = LEAKS[name]
    cleaned = redact(text)
    assert cleaned != text
    assert secret_scan.scan_text(cleaned, where=name) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"grantType": "refresh_token", "clientId": "fake-client-id"}',
        '{"accessToken": "<redacted by rdsiamkit>", "tokenType": "Bearer", "expiresIn": 28800}',
        "Checking for cached token at: 13d964f74e530cef34c9cc5577ad15501abebe0e",
        "SSO Token refresh succeeded; Bearer token expires at 2099-01-01",
        "<SubjectFromWebIdentityToken>system:serviceaccount:default:app</SubjectFromWebIdentityToken>",
        "?Action=connect&X-Amz-Expires=900&X-Amz-Signature=<redacted by rdsiamkit>",
        "eyJhbGciOiJ is only a JWT header prefix",
    ],
)
def test_scan_ignores_ordinary_text(text: str) -> None:
    """Text that only mentions tokens, or holds the redaction placeholder, is not a finding."""
    assert secret_scan.scan_text(text, where="ordinary") is None
