"""``rdsiamkit.connect()`` and ``connect_async()``: psycopg logins with IAM tokens.

Data flows one way: conninfo and options → :class:`ConnectSpec` (endpoint, TLS,
what to sign) → token from a provider → psycopg connection.  The options are
declared in :mod:`rdsiamkit._options`, the login flow is written once in
:mod:`rdsiamkit._login`; this module is the thin public shell over both, and
:func:`login` / :func:`login_async` serve the pools, so a pooled connection
recovers from a refused cached token exactly like a direct one.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

import psycopg

from rdsiamkit._libpq import is_auth_failure
from rdsiamkit._login import (
    ConnectSpec,
    RetryPolicy,
    drive,
    drive_async,
    login_flow,
    quote_ident,
)
from rdsiamkit._options import (
    ConnectOptions,
    async_provider,
    default_provider,
    sync_provider,
    with_options_signature,
)

if TYPE_CHECKING:
    from psycopg.rows import AsyncRowFactory, Row, RowFactory, TupleRow

    from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

    #: Deprecated name of :class:`ConnectSpec`.
    Target = ConnectSpec

__all__ = [
    "ConnectSpec",
    "async_provider",
    "connect",
    "connect_async",
    "default_provider",
    "is_auth_failure",
    "login",
    "login_async",
    "quote_ident",
    "sync_provider",
]

T = TypeVar("T")


def __getattr__(name: str) -> Any:
    if name == "Target":
        warnings.warn(
            "rdsiamkit.connection.Target is deprecated: use ConnectSpec",
            DeprecationWarning,
            stacklevel=2,
        )
        return ConnectSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def login(
    spec: ConnectSpec,
    provider: TokenProvider,
    open_: Callable[..., T],
    *,
    replace_cached: bool = True,
) -> T:
    """Open a connection with a token (``open_(token, **libpq_overrides)``; the overrides
    are given only to retry with the full CA bundle); a refused token is never offered
    again, and with ``replace_cached`` a refused *cached* one is replaced at once."""
    flow = login_flow(spec, provider, replace_cached=replace_cached)
    return drive(flow, functools.partial(spec.issue, provider), open_)


async def login_async(
    spec: ConnectSpec,
    provider: AsyncTokenProvider,
    open_: Callable[..., Awaitable[T]],
    *,
    replace_cached: bool = True,
) -> T:
    """The asyncio twin of :func:`login`."""
    flow = login_flow(spec, provider, replace_cached=replace_cached)
    return await drive_async(flow, functools.partial(spec.issue_async, provider), open_)


def _prepare(conninfo: str, kwargs: dict[str, Any]) -> tuple[ConnectSpec, ConnectOptions]:
    options = ConnectOptions.from_kwargs(kwargs)
    return ConnectSpec.create(conninfo, kwargs, options), options


def _retrying_flow(
    spec: ConnectSpec, options: ConnectOptions, provider: TokenProvider | AsyncTokenProvider
) -> Any:
    return login_flow(
        spec,
        provider,
        retry=RetryPolicy.of(options),
        replace_cached=options.max_attempts == 1,
    )


def _open_kwargs(spec: ConnectSpec) -> Mapping[str, Any]:
    return {**spec.params, **spec.options}


@overload
def connect(
    conninfo: str = "", *, row_factory: RowFactory[Row], **kwargs: Any
) -> psycopg.Connection[Row]: ...
@overload
def connect(
    conninfo: str = "", *, row_factory: None = None, **kwargs: Any
) -> psycopg.Connection[TupleRow]: ...
@with_options_signature()
def connect(conninfo: str = "", **kwargs: Any) -> psycopg.Connection[Any]:
    """Connect to RDS / Aurora PostgreSQL as an IAM user, like :func:`psycopg.connect`.

    ``conninfo`` and ``kwargs`` are libpq keywords (``host``, ``port``, ``user``,
    ``dbname``, ``hostaddr``, ``sslrootcert``, ``connect_timeout``, ...) plus
    psycopg's own (``autocommit``, ``row_factory``, ...) plus the kit's options
    (:class:`~rdsiamkit._options.IamOptions`: ``region``, ``session``, ``profile``,
    ``token_provider``, ``token_host``, ``token_port``, ``insecure_skip_tls_verify``,
    ``max_attempts``, ``retry_budget``).  The token is signed for
    ``token_host:token_port`` (default: ``host:port``); set them when you dial a
    tunnel.  TLS is ``verify-full`` against the RDS CA bundle (RDS Proxy: the OS
    trust store; ``sslrootcert=`` overrides) unless the explicit, logged
    ``insecure_skip_tls_verify=True`` opt-out allows ``require``.  ``host`` must be
    a TCP host name: a Unix-domain socket (``/path``, ``@name``) is refused, since
    TLS never applies there.

    Transient network errors and refused logins (RDS throttling looks like a
    refusal) are retried up to ``max_attempts`` times (default 3) within
    ``retry_budget`` seconds (default 10), with exponential backoff and equal
    jitter; a refused token is never offered again, so a cached token that
    stopped working (rotated credentials, server-side expiry) is replaced by the
    next attempt.  Errors are :class:`~rdsiamkit.ConnectError` subclasses (also
    :class:`psycopg.OperationalError`) and never contain the token.
    """
    spec, options = _prepare(conninfo, kwargs)
    provider = options.sync_provider()
    params = _open_kwargs(spec)

    def open_(token: str, **ca: str) -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(password=token, **{**params, **ca})

    flow = _retrying_flow(spec, options, provider)
    return drive(flow, functools.partial(spec.issue, provider), open_)


@overload
async def connect_async(
    conninfo: str = "", *, row_factory: AsyncRowFactory[Row], **kwargs: Any
) -> psycopg.AsyncConnection[Row]: ...
@overload
async def connect_async(
    conninfo: str = "", *, row_factory: None = None, **kwargs: Any
) -> psycopg.AsyncConnection[TupleRow]: ...
@with_options_signature()
async def connect_async(conninfo: str = "", **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    """The asyncio twin of :func:`connect`: same options, never blocks the event loop.

    ``token_provider`` may be an :class:`~rdsiamkit.AsyncTokenProvider` or a
    :class:`~rdsiamkit.TokenProvider` (used through its async face).
    """
    spec, options = _prepare(conninfo, kwargs)
    provider = options.async_provider()
    params = _open_kwargs(spec)

    async def open_(token: str, **ca: str) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(password=token, **{**params, **ca})

    flow = _retrying_flow(spec, options, provider)
    return await drive_async(flow, functools.partial(spec.issue_async, provider), open_)
