"""psycopg2 connections and pools that log in with IAM tokens.

``rdsiamkit.psycopg2.connect(**options)`` takes the options of
:func:`rdsiamkit.connect` (libpq keywords and the kit's
:class:`~rdsiamkit._options.IamOptions`, plus psycopg2's ``connection_factory``
and ``cursor_factory``) and returns a psycopg2 connection: verify-full TLS against
the RDS CA bundle, the token from the process-wide cache, a refused cached token
replaced once, transient errors retried within the kit's budget, the kit's errors
(never with the token).

psycopg2's pools open connections in ``_connect``; :class:`SimpleConnectionPool`
and :class:`ThreadedConnectionPool` here open each one through :func:`connect`::

    pool = rdsiamkit.psycopg2.ThreadedConnectionPool(1, 10, host=..., user=..., dbname=...)

Install with ``pip install 'rdsiamkit[psycopg2]'``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import psycopg

try:
    import psycopg2
    import psycopg2.extensions
    import psycopg2.pool
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "rdsiamkit.psycopg2 needs psycopg2: pip install 'rdsiamkit[psycopg2]'"
    ) from err

from rdsiamkit._login import ConnectSpec, RetryPolicy, drive, login_flow
from rdsiamkit._options import ConnectOptions, with_options_signature

__all__ = ["SimpleConnectionPool", "ThreadedConnectionPool", "connect"]

#: Keywords of psycopg2.connect() that are not libpq's.
PSYCOPG2_OPTIONS = frozenset({"connection_factory", "cursor_factory"})


def _dial(
    params: Mapping[str, Any], own: Mapping[str, Any], token: str, **ca: str
) -> psycopg2.extensions.connection:
    """Open one psycopg2 connection; its connect errors become psycopg errors (the
    login flow's), raised outside the handler so nothing chains to frames holding
    the token.  libpq words both the same way."""
    failure: psycopg.OperationalError
    try:
        conn: psycopg2.extensions.connection = psycopg2.connect(
            password=token, **{**params, **ca}, **own
        )
        return conn
    except psycopg2.OperationalError as err:
        failure = psycopg.OperationalError(str(err).strip())
        err.__traceback__ = None
    raise failure


class _Prepared:
    """A checked spec and options, built once; ``open()`` runs one login."""

    __slots__ = ("options", "own", "spec")

    def __init__(self, kwargs: dict[str, Any], dsn: str = "") -> None:
        self.options = ConnectOptions.from_kwargs(kwargs)
        self.own = {k: kwargs.pop(k) for k in list(kwargs) if k in PSYCOPG2_OPTIONS}
        self.spec = ConnectSpec.create(dsn, kwargs, self.options)

    def __repr__(self) -> str:
        return f"<rdsiamkit psycopg2 login {self.spec.describe()}>"

    def open(self) -> psycopg2.extensions.connection:
        provider = self.options.sync_provider()
        flow = login_flow(
            self.spec,
            provider,
            retry=RetryPolicy.of(self.options),
            replace_cached=self.options.max_attempts == 1,
        )
        issue = functools.partial(self.spec.issue, provider)
        dial = functools.partial(_dial, dict(self.spec.params), self.own)
        connection: psycopg2.extensions.connection = drive(flow, issue, dial)
        return connection


@with_options_signature()
def connect(dsn: str = "", **kwargs: Any) -> psycopg2.extensions.connection:
    """A psycopg2 connection logged in as an IAM user, like :func:`rdsiamkit.connect`.

    ``dsn`` is a libpq conninfo string (keywords win over it).  Raises the kit's
    errors (:class:`~rdsiamkit.ConnectError` and subclasses), never with the token.
    """
    return _Prepared(kwargs, dsn).open()


class _IamPoolMixin:
    """Opens a psycopg2 pool's connections through the kit (checked once, up front)."""

    _rdsiamkit: _Prepared
    _used: dict[Any, Any]
    _rused: dict[int, Any]
    _pool: list[Any]
    _keys: int

    def _connect(self, key: Any = None) -> psycopg2.extensions.connection:
        # psycopg2.pool.AbstractConnectionPool._connect, with the kit's login.
        conn = self._rdsiamkit.open()
        if key is not None:
            self._used[key] = conn
            self._rused[id(conn)] = key
        else:
            self._pool.append(conn)
        return conn


class SimpleConnectionPool(_IamPoolMixin, psycopg2.pool.SimpleConnectionPool):
    """:class:`psycopg2.pool.SimpleConnectionPool` logging in with IAM tokens (one thread)."""

    def __init__(self, minconn: int, maxconn: int, **kwargs: Any) -> None:
        self._rdsiamkit = _Prepared(kwargs)
        super().__init__(minconn, maxconn)


class ThreadedConnectionPool(_IamPoolMixin, psycopg2.pool.ThreadedConnectionPool):
    """:class:`psycopg2.pool.ThreadedConnectionPool` logging in with IAM tokens."""

    def __init__(self, minconn: int, maxconn: int, **kwargs: Any) -> None:
        self._rdsiamkit = _Prepared(kwargs)
        super().__init__(minconn, maxconn)
