"""What the checks learn and pass on: typed, frozen values, one per fact name.

A check names the facts it needs as parameters (``target: Target``) and declares
the one it provides (``@check(..., provides="address")``); see ``runner.py``.
The ``target`` fact is the connection spec the options make (:class:`Target`).
The runner itself provides ``inputs`` (what :func:`diagnose` was given) and
``secrets`` (where checks hand over every secret they touch, for redaction).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from rdsiamkit.authmode import AuthMode

# The connection spec (``target`` fact), imported here only: one line to follow its rename.
from rdsiamkit.connection import ConnectSpec as Target

if TYPE_CHECKING:
    import psycopg

    from rdsiamkit.discovery import DatabaseResource
    from rdsiamkit.errors import RdsIamError
    from rdsiamkit.policy import PolicyInput
    from rdsiamkit.tokens import TokenProvider

__all__ = [
    "Address",
    "Addresses",
    "Credentials",
    "Inputs",
    "Membership",
    "ResourceLookup",
    "Secrets",
    "ServerClock",
    "Target",
    "TlsSession",
]


@attrs.frozen(kw_only=True)
class Inputs:
    """What :func:`diagnose` was given (the fact named ``inputs``)."""

    conninfo: str
    kwargs: Mapping[str, Any]
    region: str | None
    token_host: str | None
    token_port: int | None
    insecure: bool
    admin_conn: psycopg.Connection[Any] | None
    #: Why the admin connection could not be opened, when the caller tried and failed.
    admin_error: str | None = None
    policies: PolicyInput | Sequence[PolicyInput] | None
    principal_arn: str | None
    account_id: str | None
    resource_id: str | None
    #: What the client sends as its password (a token, or not).
    token: str | None
    aws: bool
    login: bool
    timeout: float
    clock: Callable[[], float]
    #: A provider of the doctor's own: a cached token must not hide what a fresh one does.
    provider: TokenProvider


class Secrets:
    """Every secret the diagnosis held; none may appear in what it returns (``secrets``)."""

    def __init__(self, initial: Sequence[str] = ()) -> None:
        self._items: list[str] = [s for s in initial if s]

    def add(self, *secrets: str | None) -> None:
        """Remember more secrets (empty ones and ``None`` are ignored)."""
        self._items.extend(s for s in secrets if s)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>``."""
        for secret in self._items:
            text = text.replace(secret, "<redacted>")
        return text


@attrs.frozen
class Addresses:
    """The addresses to dial: ``hostaddr``, or what DNS answered (``addresses``)."""

    items: tuple[str, ...]


@attrs.frozen
class Address:
    """The address and port a TCP connection was opened to (``address``)."""

    host: str
    port: int


@attrs.frozen
class TlsSession:
    """TLS was negotiated and the certificate verified as sslmode asks (``tls``)."""

    version: str | None


@attrs.frozen(kw_only=True)
class Credentials:
    """What the credentials check learnt about the signing identity (``credentials``)."""

    #: Credentials to sign fresh tokens with were found (and have not expired).
    ok: bool = False
    #: How the credentials would be fetched, when only an AWS call (STS, SSO) can.
    unresolved: str | None = None
    access_key_id: str | None = None
    principal_arn: str | None = None
    account_id: str | None = None
    aws_reachable: bool = True


#: Nothing learnt about credentials (the check broke): defaults as if not looked at.
NO_CREDENTIALS = Credentials()


@attrs.frozen
class ResourceLookup:
    """The cluster / instance / proxy behind the endpoint, or why it is unknown (``resource``)."""

    resource: DatabaseResource | None
    error: RdsIamError | str | None = None


@attrs.frozen
class Membership:
    """How the user logs in, read from the catalog (``membership``)."""

    mode: AuthMode


@attrs.frozen
class ServerClock:
    """Server clock minus local clock in seconds, if an admin connection could tell."""

    offset: float | None
