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
from psycopg_pool import AsyncConnectionPool, ConnectionPool

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


def _iam_class(
    base: type[Any],
    spec: ConnectSpec,
    provider: TokenProvider | AsyncTokenProvider,
    login_: Callable[..., Any],
) -> type[Any]:
    """``base`` whose ``connect`` logs in through ``login_`` (sync or async) with a token."""

    class IamConnection(base):  # type: ignore[misc]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            parent = super().connect

            def open_(token: str, **ca: str) -> Any:
                return parent(conninfo, password=token, **{**kwargs, **ca})

            return login_(spec, provider, open_)

    IamConnection.__name__ = IamConnection.__qualname__ = f"Iam{base.__name__}"
    return IamConnection


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
    return ConnectionPool(
        spec.conninfo,
        connection_class=_iam_class(base, spec, options.sync_provider(), login),
        kwargs=dict(spec.options),
        **pool_options,
    )


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
    return AsyncConnectionPool(
        spec.conninfo,
        connection_class=_iam_class(base, spec, options.async_provider(), login_async),
        kwargs=dict(spec.options),
        **pool_options,
    )
