"""psycopg_pool pools whose every physical connection logs in with a valid IAM token.

A token matters only while a connection is being opened, so a pool must never
freeze one into its conninfo.  ``create_pool`` gives psycopg_pool a connection
class whose ``connect`` asks the token provider at every attempt (a cache hit
almost always) and, when the server refuses a cached token, replaces it once:
a plain ``kwargs`` callable could mint tokens too, but could never learn that
its token was refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from rdsiamkit.connection import (
    Target,
    async_provider,
    login,
    login_async,
    sync_provider,
)
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    import boto3
    from psycopg.rows import TupleRow
    from psycopg_pool.abc import (
        AsyncConnectFailedCB,
        AsyncConnectionCB,
        ConnectFailedCB,
        ConnectionCB,
    )

    from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

__all__ = ["DEFAULT_MAX_LIFETIME", "create_async_pool", "create_pool"]

CT = TypeVar("CT", bound=psycopg.Connection[Any])
ACT = TypeVar("ACT", bound=psycopg.AsyncConnection[Any])

#: Tokens do not bound a connection's life, but recycling every 30 minutes makes a
#: revoked IAM permission or a switched auth mode take effect in bounded time.
DEFAULT_MAX_LIFETIME = 1800.0


def _iam_class(base: type[CT], target: Target, provider: TokenProvider) -> type[CT]:
    class IamConnection(base):  # type: ignore[valid-type,misc]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            def open_(token: str) -> Any:
                return super(IamConnection, cls).connect(conninfo, password=token, **kwargs)

            return login(target, provider, open_)

    IamConnection.__name__ = IamConnection.__qualname__ = f"Iam{base.__name__}"
    return cast("type[CT]", IamConnection)


def _async_iam_class(base: type[ACT], target: Target, provider: AsyncTokenProvider) -> type[ACT]:
    class IamAsyncConnection(base):  # type: ignore[valid-type,misc]
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            async def open_(token: str) -> Any:
                parent = super(IamAsyncConnection, cls).connect
                return await parent(conninfo, password=token, **kwargs)

            return await login_async(target, provider, open_)

    IamAsyncConnection.__name__ = IamAsyncConnection.__qualname__ = f"Iam{base.__name__}"
    return cast("type[ACT]", IamAsyncConnection)


def _target(conninfo: str, kwargs: dict[str, Any], **options: Any) -> Target:
    if not isinstance(conninfo, str):
        raise ConfigurationError(
            "conninfo must be a string: the pool already asks for a token at every connection"
        )
    if "kwargs" in kwargs:
        raise ConfigurationError(
            "pass connection keywords directly (host=..., autocommit=...), not kwargs="
        )
    retry_options = sorted({"max_attempts", "retry_budget"} & kwargs.keys())
    if retry_options:
        raise ConfigurationError(
            f"{', '.join(retry_options)} apply to rdsiamkit.connect(); a pool retries failed "
            "connection attempts itself (reconnect_timeout=)"
        )
    return Target.build(conninfo, kwargs, **options)


@overload
def create_pool(
    conninfo: str = "", *, connection_class: type[CT], **kwargs: Any
) -> ConnectionPool[CT]: ...
@overload
def create_pool(
    conninfo: str = "", **kwargs: Any
) -> ConnectionPool[psycopg.Connection[TupleRow]]: ...
def create_pool(
    conninfo: str = "",
    *,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    connection_class: type[CT] = psycopg.Connection,  # type: ignore[assignment]
    min_size: int = 4,
    max_size: int | None = None,
    open: bool | None = None,
    configure: ConnectionCB[CT] | None = None,
    check: ConnectionCB[CT] | None = None,
    reset: ConnectionCB[CT] | None = None,
    name: str | None = None,
    close_returns: bool = False,
    timeout: float = 30.0,
    max_waiting: int = 0,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
    max_idle: float = 600.0,
    reconnect_timeout: float = 300.0,
    reconnect_failed: ConnectFailedCB | None = None,
    num_workers: int = 3,
    **kwargs: Any,
) -> ConnectionPool[CT]:
    """A :class:`psycopg_pool.ConnectionPool` of IAM connections.

    Takes :func:`rdsiamkit.connect`'s connection options and psycopg_pool's
    own; use it as a context manager like the pool it returns.  The pool retries
    failed connection attempts with its own backoff (``reconnect_timeout``).
    """
    target = _target(
        conninfo,
        kwargs,
        region=region,
        token_host=token_host,
        token_port=token_port,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
    )
    provider = sync_provider(token_provider, session, profile)
    return ConnectionPool(
        target.conninfo,
        connection_class=_iam_class(connection_class, target, provider),
        kwargs=dict(target.options),
        min_size=min_size,
        max_size=max_size,
        open=open,
        configure=configure,
        check=check,
        reset=reset,
        name=name,
        close_returns=close_returns,
        timeout=timeout,
        max_waiting=max_waiting,
        max_lifetime=max_lifetime,
        max_idle=max_idle,
        reconnect_timeout=reconnect_timeout,
        reconnect_failed=reconnect_failed,
        num_workers=num_workers,
    )


@overload
def create_async_pool(
    conninfo: str = "", *, connection_class: type[ACT], **kwargs: Any
) -> AsyncConnectionPool[ACT]: ...
@overload
def create_async_pool(
    conninfo: str = "", **kwargs: Any
) -> AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]: ...
def create_async_pool(
    conninfo: str = "",
    *,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: AsyncTokenProvider | TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    connection_class: type[ACT] = psycopg.AsyncConnection,  # type: ignore[assignment]
    min_size: int = 4,
    max_size: int | None = None,
    open: bool | None = None,
    configure: AsyncConnectionCB[ACT] | None = None,
    check: AsyncConnectionCB[ACT] | None = None,
    reset: AsyncConnectionCB[ACT] | None = None,
    name: str | None = None,
    close_returns: bool = False,
    timeout: float = 30.0,
    max_waiting: int = 0,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
    max_idle: float = 600.0,
    reconnect_timeout: float = 300.0,
    reconnect_failed: AsyncConnectFailedCB | None = None,
    num_workers: int = 3,
    **kwargs: Any,
) -> AsyncConnectionPool[ACT]:
    """The asyncio twin of :func:`create_pool`: an :class:`AsyncConnectionPool`.

    Open it with ``async with`` (or ``await pool.open()``), as psycopg_pool asks.
    """
    target = _target(
        conninfo,
        kwargs,
        region=region,
        token_host=token_host,
        token_port=token_port,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
    )
    provider = async_provider(token_provider, session, profile)
    return AsyncConnectionPool(
        target.conninfo,
        connection_class=_async_iam_class(connection_class, target, provider),
        kwargs=dict(target.options),
        min_size=min_size,
        max_size=max_size,
        open=open,
        configure=configure,
        check=check,
        reset=reset,
        name=name,
        close_returns=close_returns,
        timeout=timeout,
        max_waiting=max_waiting,
        max_lifetime=max_lifetime,
        max_idle=max_idle,
        reconnect_timeout=reconnect_timeout,
        reconnect_failed=reconnect_failed,
        num_workers=num_workers,
    )
