"""What an IAM auth token says about itself: the one token parser of the package.

A token is a presigned URL, ``host:port/?Action=connect&DBUser=...&X-Amz-...``.
:class:`TokenFacts` keeps what it names (host, port, user, signing key, region,
date, lifetime) and never the signature or the session token.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import attrs

__all__ = ["TokenFacts", "looks_like_token", "signer"]

_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_CREDENTIAL = "&X-Amz-Credential="


def _split(text: str) -> tuple[SplitResult, dict[str, str]] | None:
    """The URL parts and the (first) value of each query key; ``None`` if unreadable."""
    raw = text.strip()
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        query = {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=True).items()}
    except ValueError:
        return None
    return parts, query


# The start of a token: ``host[:port]/?`` then one of its query keys (a cut-short token
# still begins so; no password a person picks does).
_TOKEN_START_RE = re.compile(
    r"(?:https?://)?[A-Za-z0-9.-]+(?::\d+)?/\?(?:Action=|DBUser=|X-Amz-)", re.IGNORECASE
)


def looks_like_token(text: str) -> bool:
    """Whether ``text`` begins like a token (``host:port/?Action=connect...``), whole or not.

    What :meth:`TokenFacts.parse` cannot read but this accepts is a damaged token (cut
    short or altered), never a password.
    """
    return bool(_TOKEN_START_RE.match(text.strip()))


def signer(token: str) -> str | None:
    """The access key id in a token's ``X-Amz-Credential``; ``None`` if it names none.

    Reads that one parameter only (a few microseconds, for the minting path), where
    :meth:`TokenFacts.parse` reads them all.
    """
    query = "&" + token.partition("?")[2]
    start = query.find(_CREDENTIAL)
    if start < 0:
        return None
    value = query[start + len(_CREDENTIAL) :].partition("&")[0]
    return unquote(value).split("/")[0] or None


@attrs.frozen
class TokenFacts:
    """What a token says about itself; the signature and session token are not kept."""

    host: str
    port: int
    user: str
    access_key_id: str
    region: str
    service: str
    signed_at: dt.datetime
    expires: int
    #: ``X-Amz-Signature`` is 64 hex digits (not cut short or altered).
    signature_ok: bool = True

    @classmethod
    def parse(cls, text: str) -> TokenFacts | None:
        """Read a token (``host:port/?Action=connect&...``); ``None`` if it is not one."""
        split = _split(text)
        if split is None:
            return None
        parts, query = split
        try:
            key, _, region, service, _ = query["X-Amz-Credential"].split("/")
            signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.timezone.utc
            )
            facts = cls(
                host=(parts.hostname or "").lower(),
                port=parts.port or 443,
                user=query["DBUser"],
                access_key_id=key,
                region=region,
                service=service,
                signed_at=signed_at,
                expires=int(query["X-Amz-Expires"]),
                signature_ok=bool(_SIGNATURE_RE.fullmatch(query.get("X-Amz-Signature", ""))),
            )
        except (KeyError, ValueError):
            return None
        return facts if facts.host else None
