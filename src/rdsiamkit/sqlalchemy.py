"""SQLAlchemy engines whose every new connection logs in with an IAM token.

SQLAlchemy keeps its own pool, so a token must be fetched each time that pool
opens a DBAPI connection, and must never be frozen into the engine's URL.  The
engines made here listen to the dialect's ``do_connect`` event and open each
connection through :func:`rdsiamkit.connect` (or :func:`rdsiamkit.connect_async`)
with the arguments SQLAlchemy built from the URL.  That keeps psycopg's adapters
that the dialect installs, the kit's verify-full TLS, its transient-error
retries and its one fresh-token retry when the server refuses a cached token;
``pool_pre_ping`` and ``pool_recycle`` work unchanged.

Two ways in::

    engine = rdsiamkit.sqlalchemy.create_engine(
        "postgresql+psycopg://app_user@mydb.cluster-abc123def456.us-east-1.rds.amazonaws.com/app",
        pool_pre_ping=True,
    )

or, from a configuration file, the ``rdsiamkit`` plugin of a plain
:func:`sqlalchemy.create_engine` / :func:`sqlalchemy.engine_from_config`::

    postgresql+psycopg://app_user@mydb...rds.amazonaws.com/app?plugin=rdsiamkit&region=us-east-1

URL query options for the kit (removed from the URL before SQLAlchemy sees it):
``region``, ``profile``, ``token_host``, ``token_port``.  Every other query
option is a libpq keyword (``hostaddr``, ``sslrootcert``, ``connect_timeout``...).
Install with ``pip install 'rdsiamkit[sqlalchemy]'``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import psycopg

try:
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.engine import URL, CreateEnginePlugin, Engine, make_url
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.ext.asyncio import create_async_engine as _sa_create_async_engine
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "rdsiamkit.sqlalchemy needs SQLAlchemy 2: pip install 'rdsiamkit[sqlalchemy]'"
    ) from err

from rdsiamkit._login import ConnectSpec
from rdsiamkit._options import OPTION_NAMES, ConnectOptions, with_options_signature
from rdsiamkit.connection import connect, connect_async
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
    from sqlalchemy.pool import ConnectionPoolEntry

    from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

__all__ = ["RdsIamPlugin", "create_async_engine", "create_engine"]

log = logging.getLogger("rdsiamkit.sqlalchemy")

#: The default driver: a bare ``postgresql://`` URL means psycopg 3.
DRIVERNAME = "postgresql+psycopg"
#: The drivers these engines speak (psycopg2 and asyncpg through their kit modules).
_DRIVERS = frozenset({"psycopg", "psycopg_async", "psycopg2", "asyncpg"})
_ASYNC_DRIVERS = frozenset({"psycopg_async", "asyncpg"})
#: Query options of the URL that configure the kit, not libpq.
URL_OPTIONS = ("region", "profile", "token_host", "token_port")
# Options of rdsiamkit.connect() that must not hide in connect_args.
_KIT_OPTIONS = frozenset(OPTION_NAMES)
# Chosen once per engine, not per connection: the provider replaces them.
_CREDENTIAL_SOURCES = ("session", "profile", "token_provider")

#: A ``do_connect`` listener: (dialect, pool entry, cargs, cparams) -> DBAPI connection.
Connector = Callable[["Dialect", "ConnectionPoolEntry | None", list[Any], dict[str, Any]], object]


def _single(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(f"URL option {key}= is given {len(value)} times; give it once")


def _split_url(url: str | URL) -> tuple[URL, dict[str, str]]:
    """Check the URL and take the kit's options out of its query.

    The URL must name psycopg 3 (a bare ``postgresql://`` or ``postgres://`` is
    taken to mean it) and carry no password: the token is the password, fetched
    per connection.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as err:
        raise ConfigurationError(f"not a SQLAlchemy URL: {err}") from err
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in {"postgresql", "postgres"} or (driver and driver not in _DRIVERS):
        raise ConfigurationError(
            "rdsiamkit's SQLAlchemy engines use psycopg 3, psycopg2 or asyncpg; the URL names "
            f"{parsed.drivername!r}, use {DRIVERNAME}://user@host:port/dbname "
            "(or postgresql+psycopg2://, postgresql+asyncpg://)"
        )
    if parsed.password is not None:
        raise ConfigurationError(
            "the URL holds a password, but these engines log in with IAM tokens; "
            "drop the password from the URL"
        )
    options: dict[str, str] = {}
    for key in URL_OPTIONS:
        value = _single(parsed, key)
        if value is not None:
            options[key] = value
    parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return parsed.difference_update_query(URL_OPTIONS), options


def _libpq_params(url: URL, connect_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keywords SQLAlchemy's psycopg dialect will pass to connect, from URL and args."""
    params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    for key, value in url.query.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"URL option {key}= is given {len(value)} times; give it once")
        params[key] = value
    extra = dict(connect_args or {})
    misplaced = sorted(_KIT_OPTIONS.intersection(extra))
    if misplaced:
        raise ConfigurationError(
            f"pass {', '.join(misplaced)} as keyword(s) of create_engine, not in connect_args"
        )
    params.update(extra)
    return params


def _kit_options(
    url: URL, url_options: Mapping[str, str], engine_kwargs: dict[str, Any]
) -> ConnectOptions:
    """The kit's options, out of ``engine_kwargs`` then the URL, checked with the URL's
    connection keywords before any network I/O."""
    options = ConnectOptions.from_kwargs(engine_kwargs)
    from_url: dict[str, Any] = {k: v for k, v in url_options.items() if getattr(options, k) is None}
    options = attrs.evolve(options, **from_url)
    ConnectSpec.create("", _libpq_params(url, engine_kwargs.get("connect_args")), options)
    return options


def _sync_connector(options: Mapping[str, Any]) -> Connector:
    def do_connect(
        dialect: Dialect,
        record: ConnectionPoolEntry | None,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> psycopg.Connection[Any]:
        return connect(*cargs, **{**cparams, **options})

    return do_connect


def _async_connector(options: Mapping[str, Any]) -> Connector:
    def do_connect(
        dialect: Dialect,
        record: ConnectionPoolEntry | None,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> DBAPIConnection:
        # The asyncio psycopg dialect awaits `async_creator_fn(*cargs, **cparams)` and adapts
        # the result: the hook SQLAlchemy's own `async_creator=` is built on.
        creator = functools.partial(connect_async, **options)
        return dialect.connect(*cargs, async_creator_fn=creator, **cparams)

    return do_connect


def _psycopg2_connector(options: Mapping[str, Any]) -> Connector:
    from rdsiamkit import psycopg2 as kit_psycopg2  # noqa: PLC0415 - an optional extra

    def do_connect(
        dialect: Dialect,
        record: ConnectionPoolEntry | None,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> Any:
        return kit_psycopg2.connect(*cargs, **{**cparams, **options})

    return do_connect


def _asyncpg_connector(options: Mapping[str, Any]) -> Connector:
    from rdsiamkit import asyncpg as kit_asyncpg  # noqa: PLC0415 - an optional extra

    def do_connect(
        dialect: Dialect,
        record: ConnectionPoolEntry | None,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> DBAPIConnection:
        # As for psycopg_async: the asyncpg dialect awaits `async_creator_fn(**cparams)`
        # (user, database, host, port and the URL query) and adapts the connection.
        creator = functools.partial(kit_asyncpg.connect, **options)
        return dialect.connect(*cargs, async_creator_fn=creator, **cparams)

    return do_connect


def _install(engine: Engine, options: ConnectOptions) -> None:
    """Route the engine's connects through the kit, with one provider for the engine."""
    provider: TokenProvider | AsyncTokenProvider
    driver = engine.dialect.driver
    if engine.dialect.is_async:
        provider = options.async_provider()
        connector = _asyncpg_connector if driver == "asyncpg" else _async_connector
    else:
        provider = options.sync_provider()
        connector = _psycopg2_connector if driver == "psycopg2" else _sync_connector
    per_connect = {k: v for k, v in options.as_kwargs().items() if k not in _CREDENTIAL_SOURCES}
    event.listen(engine, "do_connect", connector({**per_connect, "token_provider": provider}))
    log.debug("SQLAlchemy engine %s logs in with IAM tokens", engine.url)


def _with_parts(
    url: str | URL | None,
    *,
    host: str | None,
    port: int | None,
    user: str | None,
    dbname: str | None,
) -> tuple[URL, dict[str, str]]:
    """The checked URL with keyword parts applied over it, and the kit's URL options."""
    parsed, options = _split_url(url if url is not None else URL.create(DRIVERNAME))
    if "plugin" in parsed.query:
        raise ConfigurationError(
            "drop ?plugin= from the URL: rdsiamkit.sqlalchemy's engines log in with IAM "
            "already (the plugin is for sqlalchemy.create_engine)"
        )
    parsed = parsed.set(
        host=host if host is not None else parsed.host,
        port=port if port is not None else parsed.port,
        username=user if user is not None else parsed.username,
        database=dbname if dbname is not None else parsed.database,
    )
    return parsed, options


def _engine(
    url: str | URL | None, parts: dict[str, Any], kwargs: dict[str, Any], *, asyncio: bool
) -> Any:
    """The one way to an engine, sync or asyncio: checks, options, SQLAlchemy, the hook."""
    parsed, url_options = _with_parts(url, **parts)
    if not asyncio and parsed.get_driver_name() in _ASYNC_DRIVERS:
        raise ConfigurationError(
            f"{parsed.drivername}:// is an asyncio driver: use "
            "rdsiamkit.sqlalchemy.create_async_engine, or postgresql+psycopg:// here"
        )
    if asyncio and parsed.get_driver_name() == "psycopg2":
        raise ConfigurationError(
            f"{parsed.drivername}:// is a blocking driver: use rdsiamkit.sqlalchemy.create_engine, "
            "or postgresql+asyncpg:// / postgresql+psycopg:// here"
        )
    options = _kit_options(parsed, url_options, kwargs)
    if asyncio:
        engine: Any = _sa_create_async_engine(parsed, **kwargs)
        _install(engine.sync_engine, options)
    else:
        engine = sqlalchemy.create_engine(parsed, **kwargs)
        _install(engine, options)
    return engine


@with_options_signature()
def create_engine(
    url: str | URL | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    dbname: str | None = None,
    **kwargs: Any,
) -> Engine:
    """A :class:`sqlalchemy.engine.Engine` over psycopg 3 that logs in with IAM tokens.

    Give a URL (``postgresql+psycopg://user@host:port/dbname``, no password), or
    the parts as keywords, which override the URL's.  Other libpq keywords go in
    the URL query or ``connect_args`` as usual; the token options are those of
    :func:`rdsiamkit.connect` (``region``, ``session``, ``profile``,
    ``token_provider``, ``token_host``, ``token_port``, ``insecure_skip_tls_verify``,
    ``max_attempts``, ``retry_budget``).  Every other keyword goes to
    :func:`sqlalchemy.create_engine` (``pool_size``, ``pool_pre_ping``,
    ``pool_recycle``, ``echo``...).  Configuration mistakes raise
    :class:`~rdsiamkit.ConfigurationError` here, before any connection.
    """
    parts = {"host": host, "port": port, "user": user, "dbname": dbname}
    engine: Engine = _engine(url, parts, kwargs, asyncio=False)
    return engine


@with_options_signature()
def create_async_engine(
    url: str | URL | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    dbname: str | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """The asyncio twin of :func:`create_engine`: an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.

    Tokens come from an :class:`~rdsiamkit.AsyncTokenProvider` (cache hits on the
    event loop, signing in a worker thread), so the loop never blocks on them.
    """
    parts = {"host": host, "port": port, "user": user, "dbname": dbname}
    engine: AsyncEngine = _engine(url, parts, kwargs, asyncio=True)
    return engine


class RdsIamPlugin(CreateEnginePlugin):
    """``?plugin=rdsiamkit``: IAM logins for engines made from a URL alone.

    For configuration files and frameworks that only take a URL.  Credentials
    come from the URL's ``profile=`` or boto3's default chain; pass a session or
    a provider through :func:`create_engine` instead when code builds the engine.
    """

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        parsed, url_options = _split_url(url.difference_update_query(["plugin"]))
        self._options = _kit_options(
            parsed, url_options, {"connect_args": kwargs.get("connect_args")}
        )

    def update_url(self, url: URL) -> URL:
        """Drop the kit's query options (and name psycopg 3 when the URL does not)."""
        return _split_url(url)[0]

    def engine_created(self, engine: Engine) -> None:
        """Route the engine's connects through the kit."""
        _install(engine, self._options)
