"""psycopg_pool pools whose every physical connection logs in with a valid IAM token.

A token matters only while a connection is being opened, so a pool must never
freeze one into its conninfo.  ``create_pool`` gives psycopg_pool a connection
class whose ``connect`` runs the kit's login flow at every attempt (a cache hit
almost always) and, when the server refuses a cached token, replaces it once:
a plain ``kwargs`` callable could mint tokens too, but could never learn that
its token was refused.

psycopg_pool's own options (``min_size``, ``max_size``, ``open``, ``check``,
``reconnect_timeout``...) are passed through as they are, with psycopg_pool's
defaults, except ``max_lifetime`` (:data:`DEFAULT_MAX_LIFETIME`): which names are
the pool's is read from the pool class's own signature, never re-declared here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from rdsiamkit._login import ConnectSpec
from rdsiamkit._options import ConnectOptions, with_options_signature
from rdsiamkit.connection import login, login_async
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    from psycopg.rows import TupleRow

    from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

__all__ = ["DEFAULT_MAX_LIFETIME", "create_async_pool", "create_pool"]

CT = TypeVar("CT", bound=psycopg.Connection[Any])
ACT = TypeVar("ACT", bound=psycopg.AsyncConnection[Any])

#: Tokens do not bound a connection's life, but recycling every 30 minutes makes a
#: revoked IAM permission or a switched auth mode take effect in bounded time.
DEFAULT_MAX_LIFETIME = 1800.0

# Set by the kit itself: the conninfo (the spec's, without a secret) and the
# psycopg options (taken as plain keywords, like connect()'s).
_SET_BY_THE_KIT = frozenset({"self", "conninfo", "kwargs"})
_CONNECT_ONLY = ("max_attempts", "retry_budget")


def _pool_parameters(pool_class: type[Any]) -> list[inspect.Parameter]:
    """psycopg_pool's own options, from its signature; the kit's default max_lifetime."""
    return [
        p.replace(default=DEFAULT_MAX_LIFETIME) if p.name == "max_lifetime" else p
        for p in inspect.signature(pool_class.__init__).parameters.values()
        if p.name not in _SET_BY_THE_KIT
    ]


_SYNC_OPTIONS = _pool_parameters(ConnectionPool)
_ASYNC_OPTIONS = _pool_parameters(AsyncConnectionPool)


class _LastFailure:
    """Why the pool's last connection attempt failed (``None`` once one succeeds).

    psycopg_pool retries failed attempts in the background and tells a waiting caller
    only ``PoolTimeout``; the pool re-raises that with this error (already explained,
    without a token) as its cause, so the caller sees why.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def explain(self, timeout: PoolTimeout) -> PoolTimeout:
        """``timeout`` itself, or a PoolTimeout naming the last failure (its ``__cause__``)."""
        error = self.error
        if error is None:
            return timeout
        explained = PoolTimeout(
            f"{timeout}; the last connection attempt failed: {type(error).__name__}: {error}"
        )
        explained.__cause__ = error
        return explained


def _remembering(login_: Callable[..., Any], failure: _LastFailure) -> Callable[..., Any]:
    """``login_`` (sync or async) noting its last failure in ``failure``."""
    if inspect.iscoroutinefunction(login_):

        async def login_async_(*args: Any) -> Any:
            try:
                conn = await login_(*args)
            except Exception as err:
                failure.error = err
                raise
            failure.error = None
            return conn

        return login_async_

    def login_sync(*args: Any) -> Any:
        try:
            conn = login_(*args)
        except Exception as err:
            failure.error = err
            raise
        failure.error = None
        return conn

    return login_sync


def _iam_class(
    base: type[Any],
    spec: ConnectSpec,
    provider: TokenProvider | AsyncTokenProvider,
    login_: Callable[..., Any],
    failure: _LastFailure,
) -> type[Any]:
    """``base`` whose ``connect`` logs in through ``login_`` (sync or async) with a token."""
    remembering = _remembering(login_, failure)

    class IamConnection(base):  # type: ignore[misc]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            parent = super().connect

            def open_(token: str, **ca: str) -> Any:
                return parent(conninfo, password=token, **{**kwargs, **ca})

            return remembering(spec, provider, open_)

    IamConnection.__name__ = IamConnection.__qualname__ = f"Iam{base.__name__}"
    return IamConnection


class _IamConnectionPool(ConnectionPool[Any]):
    """A ConnectionPool whose ``PoolTimeout`` says why connections could not be opened."""

    def __init__(self, *args: Any, last_failure: _LastFailure, **kwargs: Any) -> None:
        # Set before psycopg_pool's __init__, which may open the pool and wait at once.
        self._last_failure = last_failure
        super().__init__(*args, **kwargs)

    def getconn(self, timeout: float | None = None) -> Any:
        try:
            return super().getconn(timeout)
        except PoolTimeout as err:
            raise self._last_failure.explain(err) from self._last_failure.error

    def wait(self, timeout: float = 30.0) -> None:
        try:
            super().wait(timeout)
        except PoolTimeout as err:
            raise self._last_failure.explain(err) from self._last_failure.error


class _IamAsyncConnectionPool(AsyncConnectionPool[Any]):
    """The asyncio twin of :class:`_IamConnectionPool`."""

    def __init__(self, *args: Any, last_failure: _LastFailure, **kwargs: Any) -> None:
        # Set before psycopg_pool's __init__, which may open the pool and wait at once.
        self._last_failure = last_failure
        super().__init__(*args, **kwargs)

    async def getconn(self, timeout: float | None = None) -> Any:
        try:
            return await super().getconn(timeout)
        except PoolTimeout as err:
            raise self._last_failure.explain(err) from self._last_failure.error

    async def wait(self, timeout: float = 30.0) -> None:
        try:
            await super().wait(timeout)
        except PoolTimeout as err:
            raise self._last_failure.explain(err) from self._last_failure.error


def _prepare(
    conninfo: str, kwargs: dict[str, Any], pool_params: list[inspect.Parameter]
) -> tuple[ConnectSpec, ConnectOptions, dict[str, Any]]:
    """The spec, the kit's options and the pool's own options, all checked."""
    if not isinstance(conninfo, str):
        raise ConfigurationError(
            "conninfo must be a string: the pool already asks for a token at every connection"
        )
    if "kwargs" in kwargs:
        raise ConfigurationError(
            "pass connection keywords directly (host=..., autocommit=...), not kwargs="
        )
    retry_options = sorted(set(_CONNECT_ONLY) & kwargs.keys())
    if retry_options:
        raise ConfigurationError(
            f"{', '.join(retry_options)} apply to rdsiamkit.connect(); a pool retries failed "
            "connection attempts itself (reconnect_timeout=)"
        )
    pool_options = {p.name: kwargs.pop(p.name, p.default) for p in pool_params}
    options = ConnectOptions.from_kwargs(kwargs)
    return ConnectSpec.create(conninfo, kwargs, options), options, pool_options


@overload
def create_pool(
    conninfo: str = "", *, connection_class: type[CT], **kwargs: Any
) -> ConnectionPool[CT]: ...
@overload
def create_pool(
    conninfo: str = "", **kwargs: Any
) -> ConnectionPool[psycopg.Connection[TupleRow]]: ...
@with_options_signature(leave_out=_CONNECT_ONLY, extra=_SYNC_OPTIONS)
def create_pool(conninfo: str = "", **kwargs: Any) -> ConnectionPool[Any]:
    """A :class:`psycopg_pool.ConnectionPool` of IAM connections.

    Takes :func:`rdsiamkit.connect`'s connection options (but ``max_attempts`` and
    ``retry_budget``) and psycopg_pool's own, passed through with psycopg_pool's
    defaults except ``max_lifetime`` (30 minutes); use it as a context manager like
    the pool it returns.  The pool retries failed connection attempts with its own
    backoff (``reconnect_timeout``).
    """
    spec, options, pool_options = _prepare(conninfo, kwargs, _SYNC_OPTIONS)
    base = pool_options.pop("connection_class")
    failure = _LastFailure()
    pool: ConnectionPool[Any] = _IamConnectionPool(
        spec.conninfo,
        connection_class=_iam_class(base, spec, options.sync_provider(), login, failure),
        kwargs=dict(spec.options),
        last_failure=failure,
        **pool_options,
    )
    return pool


@overload
def create_async_pool(
    conninfo: str = "", *, connection_class: type[ACT], **kwargs: Any
) -> AsyncConnectionPool[ACT]: ...
@overload
def create_async_pool(
    conninfo: str = "", **kwargs: Any
) -> AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]: ...
@with_options_signature(leave_out=_CONNECT_ONLY, extra=_ASYNC_OPTIONS)
def create_async_pool(conninfo: str = "", **kwargs: Any) -> AsyncConnectionPool[Any]:
    """The asyncio twin of :func:`create_pool`: an :class:`AsyncConnectionPool`.

    Open it with ``async with`` (or ``await pool.open()``), as psycopg_pool asks.
    """
    spec, options, pool_options = _prepare(conninfo, kwargs, _ASYNC_OPTIONS)
    base = pool_options.pop("connection_class")
    failure = _LastFailure()
    pool: AsyncConnectionPool[Any] = _IamAsyncConnectionPool(
        spec.conninfo,
        connection_class=_iam_class(base, spec, options.async_provider(), login_async, failure),
        kwargs=dict(spec.options),
        last_failure=failure,
        **pool_options,
    )
    return pool
