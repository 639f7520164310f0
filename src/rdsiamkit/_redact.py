"""Keep signing material out of logs that the kit causes to be written.

botocore logs the canonical request (which holds the session token), the
string to sign and the final signature of every SigV4 signature at DEBUG on
``botocore.auth``.  For an IAM auth token that signature *is* the credential, so
the first time the kit signs, it adds a filter to that logger which keeps the
records but replaces their secret payload.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["REDACTED", "protect_botocore_logs", "redact"]

REDACTED = "<redacted by rdsiamkit>"
# A value never starts with "<", so already-redacted text is left alone.
_SECRET_PARAMS = re.compile(r"(X-Amz-(?:Signature|Security-Token|Credential)=)[^&\s'\"<][^&\s'\"]*")
_SIGNING_RECORDS = ("CanonicalRequest", "StringToSign", "Signature")
_installed = threading.Lock()
_done = False


def redact(text: str) -> str:
    """Replace the values of SigV4 query parameters that grant access."""
    return _SECRET_PARAMS.sub(lambda m: m.group(1) + REDACTED, text)


class _SigningRecordFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if isinstance(msg, str) and msg.startswith(_SIGNING_RECORDS):
            record.msg = f"{msg.split(':', 1)[0]}: {REDACTED}"
            record.args = ()
        return True


def protect_botocore_logs() -> None:
    """Install the ``botocore.auth`` redaction filter once per process."""
    global _done  # noqa: PLW0603 (process-wide, once)
    if _done:
        return
    with _installed:
        if not _done:
            logging.getLogger("botocore.auth").addFilter(_SigningRecordFilter())
            _done = True
