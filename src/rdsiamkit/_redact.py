"""Keep signing material and credentials out of logs that the kit causes to be written.

botocore logs at DEBUG, on several loggers, what an attacker would need: the
canonical request (with the session token) and the signature of every SigV4
signature (``botocore.auth``), request headers with ``X-Amz-Security-Token``
and ``Authorization`` (``botocore.endpoint``), and response bodies such as
STS ``AssumeRole`` credentials (``botocore.parsers``).  For an IAM auth token
the signature *is* the credential.  When :mod:`rdsiamkit.tokens` is imported a
filter is added to those loggers that keeps each record but replaces the
secret part of its text.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["REDACTED", "protect_botocore_logs", "redact"]

REDACTED = "<redacted by rdsiamkit>"
# A value never starts with "<", so already-redacted text is left alone.
_SECRETS = (
    # SigV4 query parameters of presigned URLs (IAM auth tokens).
    re.compile(r"(X-Amz-(?:Signature|Security-Token|Credential)=)[^&\s'\"<][^&\s'\"]*"),
    # Request headers as botocore prints them: 'X-Amz-Security-Token': b'...'.
    re.compile(
        r"""((?:X-Amz-Security-Token|Authorization)['"]?\s*[:=]\s*b?['"]?)[^'"\s<][^'"\n]*""",
        re.IGNORECASE,
    ),
    # Credentials in XML or JSON response bodies (STS, SSO, container/instance metadata).
    re.compile(r"(<(?:SecretAccessKey|SessionToken)>)[^<]+"),
    re.compile(
        r"""(["'](?:SecretAccessKey|SessionToken|secretAccessKey|sessionToken)["']\s*:\s*["'])[^"'<][^"']*"""
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
)
_installed = threading.Lock()
_done = False


def redact(text: str) -> str:
    """Replace the values of SigV4 parameters, auth headers and credential fields."""
    for pattern in _SECRETS:
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
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(record_filter)
            _done = True
