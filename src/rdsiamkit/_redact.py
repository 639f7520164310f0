"""Keep signing material and credentials out of logs that the kit causes to be written.

botocore logs at DEBUG, on several loggers, what an attacker would need: the
canonical request (with the session token) and the signature of every SigV4
signature (``botocore.auth``), request parameters and headers with
``X-Amz-Security-Token``, ``Authorization``, the web-identity JWT of an
``AssumeRoleWithWebIdentity`` call (EKS IRSA) and the ``x-amz-sso_bearer_token``
of an SSO ``GetRoleCredentials`` call (``botocore.endpoint``), and response
bodies such as STS or SSO credentials and SSO OIDC ``CreateToken`` tokens
(``botocore.parsers``).  For an IAM auth token the signature *is* the
credential.  When :mod:`rdsiamkit.tokens` is imported a filter is added to
those loggers that keeps each record but replaces the secret part of its text
with :data:`REDACTED`, leaving parameter names and non-secret values readable.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["REDACTED", "protect_botocore_logs", "redact"]

REDACTED = "<redacted by rdsiamkit>"
# Nothing already redacted is redacted again (idempotent; layers of logging may both redact).
_FRESH = r"(?!<redacted)"
# Names whose values are credentials: any *Token/*token/*_TOKEN parameter or field
# (WebIdentityToken, SessionToken, x-amz-sso_bearer_token, accessToken, ...), client
# secrets, secret keys and auth headers.
_CREDENTIAL_NAMES = (
    r"[\w.-]*(?i:token)"
    r"|(?i:client_?secret|secret_?access_?key|authorization|x-amz-signature|x-amz-credential)"
)
_NAME_WORDS = ("token", "secret", "authorization", "x-amz-signature", "x-amz-credential")
# Each pattern with the lower-case words one of which its match needs: a record without
# them is not searched (botocore writes dozens of DEBUG records per call, most of them clean).
# Patterns start with a literal where they can, so the regex engine skips ahead to it.
_SECRETS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # A JSON Web Token anywhere (a web-identity token, an SSO OIDC id token or client secret).
    (
        ("eyj",),
        re.compile(r"()eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ),
    # An SSO access or refresh token in the SSO cache's format (aoaAAA..., aorAAA...) anywhere.
    (
        ("aoaaaa", "aoraaa"),
        re.compile(r"()ao[ar]AAA(?<![A-Za-z0-9+/]ao[ar]AAA)[A-Za-z0-9+/=_:-]{30,}"),
    ),
    # Query strings and form bodies: X-Amz-Signature=..., WebIdentityToken=..., access_token=...
    (
        tuple(f"{word}=" for word in (*_NAME_WORDS, "key")),
        re.compile(rf"((?<![\w.-])(?:{_CREDENTIAL_NAMES})=){_FRESH}[^&\s'\"\\]+"),
    ),
    # Dict reprs and JSON (also JSON inside a bytes repr or escaped once):
    # 'x-amz-sso_bearer_token': b'...', "accessToken": "...", \"clientSecret\": \"...\".
    (
        _NAME_WORDS,
        re.compile(
            rf"""(["'](?:{_CREDENTIAL_NAMES})\\?["']\s*:\s*b?\\?["']){_FRESH}"""
            r"""(?:[^'"\\]|\\[^'"])+"""
        ),
    ),
    # HTTP header lines: "Authorization: AWS4-HMAC-SHA256 ...", "x-amz-sso_bearer_token: ...".
    (
        ("authorization", "x-amz-security-token", "bearer"),
        re.compile(
            rf"""((?<![\w"'-])(?:authorization|x-amz-security-token|[\w-]*bearer[\w-]*)\s*:\s*)"""
            rf"""{_FRESH}[^'"\s][^'"\n]*""",
            re.IGNORECASE,
        ),
    ),
    # A bearer credential in any other surrounding: "Bearer <token>".
    (
        ("bearer",),
        re.compile(rf"([Bb](?:earer|EARER)(?<![\w-].{{6}})\s+){_FRESH}[A-Za-z0-9._~+/=-]{{16,}}"),
    ),
    # Credentials in XML response bodies (STS); the token's subject stays readable.
    (
        ("secretaccesskey>", "clientsecret>", "token>"),
        re.compile(
            r"(<(?:SecretAccessKey|ClientSecret|(?!SubjectFromWebIdentityToken>)\w*Token)>)"
            rf"{_FRESH}[^<]+"
        ),
    ),
)
_SIGNING_RECORDS = ("CanonicalRequest", "StringToSign", "Signature")
_LOGGERS = (
    "botocore.auth",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.httpsession",
    "botocore.awsrequest",
    "botocore.hooks",
    "botocore.retryhandler",
    "botocore.credentials",
    "botocore.tokens",
    "botocore.utils",
    "botocore.client",
    "boto3.resources.action",
    "urllib3.connectionpool",
)
# Any other logger of these libraries that exists when the filter is installed gets it too.
_LOGGER_PREFIXES = ("botocore.", "boto3.")
_installed = threading.Lock()
_done = False


def redact(text: str) -> str:
    """Replace the values of SigV4 parameters, tokens, auth headers and credential fields."""
    lowered = text.lower()
    for words, pattern in _SECRETS:
        if any(word in lowered for word in words):
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class _SecretRecordFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if isinstance(msg, str) and msg.startswith(_SIGNING_RECORDS):
            record.msg = f"{msg.split(':', 1)[0]}: {REDACTED}"
            record.args = ()
            return True
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is the logging module's to report
            return True
        cleaned = redact(text)
        if cleaned != text:
            record.msg, record.args = cleaned, ()
        return True


def protect_botocore_logs() -> None:
    """Install the redaction filter on botocore's loggers, once per process."""
    global _done  # noqa: PLW0603 (process-wide, once)
    if _done:
        return
    with _installed:
        if not _done:
            record_filter = _SecretRecordFilter()
            existing = [
                name
                for name in list(logging.Logger.manager.loggerDict)
                if name.startswith(_LOGGER_PREFIXES)
            ]
            for name in dict.fromkeys((*_LOGGERS, *existing)):
                logging.getLogger(name).addFilter(record_filter)
            _done = True
