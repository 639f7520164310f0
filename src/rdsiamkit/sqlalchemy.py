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

from rdsiamkit.connection import Target, async_provider, connect, connect_async, sync_provider
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    import boto3
    from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
    from sqlalchemy.pool import ConnectionPoolEntry

    from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

__all__ = ["RdsIamPlugin", "create_async_engine", "create_engine"]

log = logging.getLogger("rdsiamkit.sqlalchemy")

#: The one driver these engines speak: the kit's connections are psycopg 3 connections.
DRIVERNAME = "postgresql+psycopg"
_PSYCOPG_DRIVERS = frozenset({"psycopg", "psycopg_async"})
#: Query options of the URL that configure the kit, not libpq.
URL_OPTIONS = ("region", "profile", "token_host", "token_port")
# Options of rdsiamkit.connect() that must not hide in connect_args.
_KIT_OPTIONS = frozenset(
    {
        *URL_OPTIONS,
        "session",
        "token_provider",
        "insecure_skip_tls_verify",
        "max_attempts",
        "retry_budget",
    }
)

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
    if backend not in {"postgresql", "postgres"} or (driver and driver not in _PSYCOPG_DRIVERS):
        raise ConfigurationError(
            f"rdsiamkit's SQLAlchemy engines use psycopg 3; the URL names {parsed.drivername!r}, "
            f"use {DRIVERNAME}://user@host:port/dbname"
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


def _port(value: str | int | None, name: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError as err:
        raise ConfigurationError(f"{name} must be a TCP port number, got {value!r}") from err


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
    url: URL,
    url_options: Mapping[str, str],
    engine_kwargs: Mapping[str, Any],
    *,
    region: str | None,
    token_host: str | None,
    token_port: int | None,
    insecure_skip_tls_verify: bool,
    max_attempts: int,
    retry_budget: float,
) -> dict[str, Any]:
    """Resolve and validate everything but the provider, before any network I/O."""
    if max_attempts < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")
    options: dict[str, Any] = {
        "region": region or url_options.get("region"),
        "token_host": token_host or url_options.get("token_host"),
        "token_port": _port(
            token_port if token_port is not None else url_options.get("token_port"), "token_port"
        ),
        "insecure_skip_tls_verify": insecure_skip_tls_verify,
        "max_attempts": max_attempts,
        "retry_budget": retry_budget,
    }
    Target.build(
        "",
        _libpq_params(url, engine_kwargs.get("connect_args")),
        region=options["region"],
        token_host=options["token_host"],
        token_port=options["token_port"],
        insecure_skip_tls_verify=insecure_skip_tls_verify,
    )
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


def _install(
    engine: Engine, options: Mapping[str, Any], provider: TokenProvider | AsyncTokenProvider
) -> None:
    connector = _async_connector if engine.dialect.is_async else _sync_connector
    event.listen(engine, "do_connect", connector({**options, "token_provider": provider}))
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


def create_engine(
    url: str | URL | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    dbname: str | None = None,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    max_attempts: int = 3,
    retry_budget: float = 10.0,
    **engine_kwargs: Any,
) -> Engine:
    """A :class:`sqlalchemy.engine.Engine` over psycopg 3 that logs in with IAM tokens.

    Give a URL (``postgresql+psycopg://user@host:port/dbname``, no password), or
    the parts as keywords, which override the URL's.  Other libpq keywords go in
    the URL query or ``connect_args`` as usual; the token options are those of
    :func:`rdsiamkit.connect`.  ``engine_kwargs`` go to
    :func:`sqlalchemy.create_engine` (``pool_size``, ``pool_pre_ping``,
    ``pool_recycle``, ``echo``...).  Configuration mistakes raise
    :class:`~rdsiamkit.ConfigurationError` here, before any connection.
    """
    parsed, url_options = _with_parts(url, host=host, port=port, user=user, dbname=dbname)
    if parsed.get_driver_name() == "psycopg_async":
        raise ConfigurationError(
            f"{parsed.drivername}:// is the asyncio driver: use "
            "rdsiamkit.sqlalchemy.create_async_engine, or postgresql+psycopg:// here"
        )
    options = _kit_options(
        parsed,
        url_options,
        engine_kwargs,
        region=region,
        token_host=token_host,
        token_port=token_port,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
        max_attempts=max_attempts,
        retry_budget=retry_budget,
    )
    provider = sync_provider(token_provider, session, profile or url_options.get("profile"))
    engine = sqlalchemy.create_engine(parsed, **engine_kwargs)
    _install(engine, options, provider)
    return engine


def create_async_engine(
    url: str | URL | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    dbname: str | None = None,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: AsyncTokenProvider | TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    max_attempts: int = 3,
    retry_budget: float = 10.0,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """The asyncio twin of :func:`create_engine`: an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.

    Tokens come from an :class:`~rdsiamkit.AsyncTokenProvider` (cache hits on the
    event loop, signing in a worker thread), so the loop never blocks on them.
    """
    parsed, url_options = _with_parts(url, host=host, port=port, user=user, dbname=dbname)
    options = _kit_options(
        parsed,
        url_options,
        engine_kwargs,
        region=region,
        token_host=token_host,
        token_port=token_port,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
        max_attempts=max_attempts,
        retry_budget=retry_budget,
    )
    provider = async_provider(token_provider, session, profile or url_options.get("profile"))
    engine = _sa_create_async_engine(parsed, **engine_kwargs)
    _install(engine.sync_engine, options, provider)
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
            parsed,
            url_options,
            kwargs,
            region=None,
            token_host=None,
            token_port=None,
            insecure_skip_tls_verify=False,
            max_attempts=3,
            retry_budget=10.0,
        )
        self._profile = url_options.get("profile")

    def update_url(self, url: URL) -> URL:
        """Drop the kit's query options (and name psycopg 3 when the URL does not)."""
        return _split_url(url)[0]

    def engine_created(self, engine: Engine) -> None:
        """Route the engine's connects through the kit."""
        if engine.dialect.is_async:
            provider: TokenProvider | AsyncTokenProvider = async_provider(None, None, self._profile)
        else:
            provider = sync_provider(None, None, self._profile)
        _install(engine, self._options, provider)
