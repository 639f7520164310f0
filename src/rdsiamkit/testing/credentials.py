"""Fake AWS credentials the emulator trusts, and the live registry that holds them.

The registry stands in for IAM: it knows each access key's secret (and, for
temporary ``ASIA…`` keys, the session token STS would have issued with it) and,
optionally, which ``rds-db:connect`` resources the key's identity is allowed.
Every change takes effect for the next login, without a restart.
"""

from __future__ import annotations

import base64
import re
import secrets
import string
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from rdsiamkit.errors import ConfigurationError
from rdsiamkit.testing.sigv4 import SigningSecret

if TYPE_CHECKING:
    import boto3

__all__ = [
    "CredentialRegistry",
    "FakeCredentials",
    "KeyView",
    "arn_matches",
    "generate_credentials",
]

#: STS session tokens seen in the wild run from ~400 bytes to over 2 kB; 1.5 kB
#: makes the auth token cross the 1.2 kB mark where naive PAM setups break.
DEFAULT_SESSION_TOKEN_SIZE = 1536
_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"


@attrs.frozen
class FakeCredentials:
    """An access key the emulator trusts; secrets are kept out of ``repr``."""

    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)
    session_token: str | None = attrs.field(repr=False)
    arn: str

    @property
    def temporary(self) -> bool:
        """True for STS-style credentials (``ASIA…`` key with a session token)."""
        return self.session_token is not None

    def boto3_session(self, *, region: str) -> boto3.Session:
        """A boto3 session signing with these credentials, e.g. for ``generate_db_auth_token``."""
        import boto3  # noqa: PLC0415 - lazy: importing rdsiamkit must not import boto3

        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=region,
        )


def generate_credentials(
    *,
    account_id: str,
    temporary: bool = False,
    arn: str | None = None,
    session_token_size: int = DEFAULT_SESSION_TOKEN_SIZE,
) -> FakeCredentials:
    """Random credentials shaped like IAM user keys (``AKIA``) or STS ones (``ASIA``)."""
    suffix = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    tag = suffix[-6:].lower()
    if not temporary:
        return FakeCredentials(
            access_key_id="AKIA" + suffix,
            secret_access_key=secret,
            session_token=None,
            arn=arn or f"arn:aws:iam::{account_id}:user/rdsiamkit-{tag}",
        )
    if session_token_size < 16:
        raise ConfigurationError(f"session_token_size must be >= 16, got {session_token_size}")
    # STS tokens are base64 text with '/', '+' and '=', which must be percent-encoded.
    raw = base64.b64encode(secrets.token_bytes(session_token_size)).decode()
    return FakeCredentials(
        access_key_id="ASIA" + suffix,
        secret_access_key=secret,
        session_token=raw[:session_token_size],
        arn=arn or f"arn:aws:sts::{account_id}:assumed-role/rdsiamkit-role/session-{tag}",
    )


def _pattern(arn_pattern: str) -> re.Pattern[str]:
    """IAM resource matching, case-sensitive: ``?`` is one character of a segment, ``*``
    a run within its segment, or past colons when it is the segment's last character."""
    parts = []
    for index, char in enumerate(arn_pattern):
        if char == "*":
            ends_segment = arn_pattern[index + 1 : index + 2] in ("", ":")
            parts.append(".*" if ends_segment else "[^:]*")
        else:
            parts.append("[^:]" if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def arn_matches(arn: str, patterns: Iterable[str]) -> bool:
    """True when ``arn`` matches one of the IAM resource ``patterns``."""
    return any(_pattern(pattern).fullmatch(arn) for pattern in patterns)


@attrs.define
class _Entry:
    credentials: FakeCredentials
    initial_policy: tuple[str, ...] | None
    policy: tuple[str, ...] | None


def _as_policy(allowed_arns: Sequence[str] | None) -> tuple[str, ...] | None:
    if allowed_arns is None:
        return None
    if isinstance(allowed_arns, str):
        raise ConfigurationError("allowed_arns must be a sequence of ARN patterns, not one string")
    return tuple(allowed_arns)


class CredentialRegistry:
    """Thread-safe map of access key id to credentials and optional allowed ARN patterns.

    A key without a policy may connect as anyone (the emulator then checks
    only the signature); a key with a policy may connect only to matching
    ``arn:aws:rds-db:…:dbuser:RESOURCE_ID/USER`` ARNs, an empty one to none.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def add(
        self, credentials: FakeCredentials, *, allowed_arns: Sequence[str] | None = None
    ) -> None:
        """Trust ``credentials``; ``allowed_arns`` is also what :meth:`reset_policies` restores."""
        policy = _as_policy(allowed_arns)
        with self._lock:
            self._entries[credentials.access_key_id] = _Entry(credentials, policy, policy)

    def revoke(self, access_key_id: str) -> None:
        """Forget a key: its tokens then fail with ``unknown_key``.

        :raises ConfigurationError: the key is not registered.
        """
        with self._lock:
            if self._entries.pop(access_key_id, None) is None:
                raise ConfigurationError(f"access key {access_key_id!r} is not registered")

    def set_policy(self, access_key_id: str, allowed_arns: Sequence[str] | None) -> None:
        """Replace the key's allowed ARN patterns (``None``: no policy check).

        :raises ConfigurationError: the key is not registered.
        """
        policy = _as_policy(allowed_arns)
        with self._lock:
            entry = self._entries.get(access_key_id)
            if entry is None:
                raise ConfigurationError(f"access key {access_key_id!r} is not registered")
            entry.policy = policy

    def reset_policies(self) -> None:
        """Give every key back the policy it was registered with."""
        with self._lock:
            for entry in self._entries.values():
                entry.policy = entry.initial_policy

    def view(self, access_key_id: str) -> KeyView | None:
        """The key's secret and policy as of one moment, or None if unknown.

        One snapshot serves a whole login decision, so a key revoked or re-scoped
        meanwhile cannot be judged half by its old state and half by its new.
        """
        with self._lock:
            entry = self._entries.get(access_key_id)
            if entry is None:
                return None
            creds, policy = entry.credentials, entry.policy
        return KeyView(SigningSecret(creds.secret_access_key, creds.session_token), policy)


@attrs.frozen
class KeyView:
    """A registered key as one login decision sees it."""

    secret: SigningSecret
    #: Allowed ARN patterns; ``None``: no policy check.
    policy: tuple[str, ...] | None

    def allows(self, arn: str) -> bool:
        """True when there is no policy or it matches ``arn``."""
        return self.policy is None or arn_matches(arn, self.policy)
