"""asyncpg connections and pools that log in with IAM tokens.

``rdsiamkit.asyncpg.connect(**options)`` and ``create_pool(**options)`` take the
options of :func:`rdsiamkit.connect` (libpq names: ``host``, ``hostaddr``, ``port``,
``user``, ``dbname``, ``sslrootcert``, ``connect_timeout``, ``application_name``;
the kit's :class:`~rdsiamkit._options.IamOptions`) plus asyncpg's own keywords
(``statement_cache_size``, ``command_timeout``, ``server_settings``...), and
translate them to asyncpg's: dial ``hostaddr`` (else ``host``), verify the server
certificate against ``host`` with the kit's CA file (``verify-full``: an
:class:`ssl.SSLContext` with ``CERT_REQUIRED`` and ``check_hostname``, whatever
address is dialled).  A login runs the kit's one login flow
(:mod:`rdsiamkit._login`): the token from the process-wide cache, a refused cached
token replaced once, transient errors retried within the kit's budget, failures
explained as the kit's errors (never with the token).  A pool opens every new
connection through that flow, so it never reuses a frozen token.

Install with ``pip install 'rdsiamkit[asyncpg]'``.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg

try:
    import asyncpg
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError("rdsiamkit.asyncpg needs asyncpg: pip install 'rdsiamkit[asyncpg]'") from err

from rdsiamkit._login import ConnectSpec, RetryPolicy, drive_async, login_flow
from rdsiamkit._options import ConnectOptions, with_options_signature
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    from rdsiamkit.tokens import AsyncTokenProvider

__all__ = ["connect", "create_pool"]

# libpq keywords asyncpg can honour (translated in _asyncpg_kwargs); others are refused.
_LIBPQ_SUPPORTED = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "user",
        "dbname",
        "sslmode",
        "sslrootcert",
        "connect_timeout",
        "application_name",
    }
)
# Keywords of asyncpg.connect() passed through unchanged.
ASYNCPG_OPTIONS = frozenset(
    {
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "command_timeout",
        "server_settings",
        "connection_class",
        "record_class",
        "loop",
    }
)
# asyncpg's own spellings of what the kit takes under libpq names.
_ASYNCPG_SPELLINGS = {"database": "dbname", "timeout": "connect_timeout", "ssl": "sslmode"}
# X509_V_ERR_HOSTNAME_MISMATCH
_HOSTNAME_MISMATCH = 62


class _VerifyHost(ssl.SSLContext):
    """An SSL context that checks the certificate against one name, whatever is dialled.

    asyncpg hands the dialled address to the TLS layer as ``server_hostname``; the kit
    dials ``hostaddr`` but must verify ``host`` (libpq's verify-full), so the name is
    fixed here.
    """

    expected_host: str | None = None

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """:meth:`ssl.SSLContext.wrap_bio` for the expected name (asyncio's start_tls)."""
        if self.expected_host is not None:
            kwargs["server_hostname"] = self.expected_host
            args = args[:3]
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """:meth:`ssl.SSLContext.wrap_socket` for the expected name."""
        if self.expected_host is not None:
            kwargs["server_hostname"] = self.expected_host
            args = args[:4]
        return super().wrap_socket(*args, **kwargs)


@functools.lru_cache(maxsize=64)
def ssl_context(host: str, sslmode: str, sslrootcert: str) -> ssl.SSLContext:
    """The TLS settings of ``sslmode`` (as the kit checked it) for asyncpg.

    ``verify-full``: the certificate must chain to ``sslrootcert`` (``"system"``: the
    OS store) and name ``host``; ``verify-ca`` skips the name; ``require`` (the
    explicit opt-out only) checks nothing.  Built once per (host, mode, CA file).
    """
    context = _VerifyHost(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if sslrootcert == "system":
        context.load_default_certs()
    else:
        context.load_verify_locations(cafile=sslrootcert)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = sslmode == "verify-full"
    context.expected_host = host if context.check_hostname else None
    return context


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """asyncpg's own keywords out of ``kwargs``; what is left is libpq's (and the kit's)."""
    for theirs, ours in _ASYNCPG_SPELLINGS.items():
        if theirs in kwargs:
            if ours in kwargs:
                raise ConfigurationError(f"pass {ours}= or {theirs}=, not both")
            value = kwargs.pop(theirs)
            if theirs == "ssl":
                raise ConfigurationError(
                    "ssl= is set by rdsiamkit (verify-full against the RDS CA bundle); "
                    "pass sslrootcert= for another CA file"
                )
            kwargs[ours] = value
    own = {k: kwargs.pop(k) for k in list(kwargs) if k in ASYNCPG_OPTIONS}
    # A password is left for ConnectSpec.create, which refuses it.
    unsupported = sorted(k for k in kwargs if k not in _LIBPQ_SUPPORTED and k != "password")
    if unsupported:
        raise ConfigurationError(
            f"rdsiamkit.asyncpg cannot pass {', '.join(unsupported)} to asyncpg "
            "(no asyncpg equivalent)"
        )
    return kwargs, own


def _asyncpg_kwargs(spec: ConnectSpec, own: Mapping[str, Any]) -> dict[str, Any]:
    """asyncpg.connect() keywords for a spec: dial hostaddr, verify host, no password."""
    params = spec.params
    kwargs: dict[str, Any] = {
        "host": params.get("hostaddr") or spec.host,
        "port": spec.port,
        "user": spec.user,
        "ssl": ssl_context(spec.host, params["sslmode"], params["sslrootcert"]),
        "direct_tls": False,
    }
    if params.get("dbname"):
        kwargs["database"] = params["dbname"]
    timeout = int(params.get("connect_timeout", "0"))
    if timeout > 0:
        kwargs["timeout"] = float(timeout)
    settings = dict(own.get("server_settings") or {})
    if params.get("application_name"):
        settings.setdefault("application_name", params["application_name"])
    if settings:
        kwargs["server_settings"] = settings
    return {**kwargs, **{k: v for k, v in own.items() if k != "server_settings"}}


def _libpq_error(err: BaseException, spec: ConnectSpec) -> psycopg.OperationalError | None:
    """What libpq would have said for an asyncpg connect failure (the login flow reads
    libpq's messages); None for what is not a failure to connect."""
    where = f'connection to server at "{spec.host}", port {spec.port} failed: '
    if isinstance(err, ssl.SSLCertVerificationError):
        if err.verify_code == _HOSTNAME_MISMATCH:
            text = f'server certificate does not match host name "{spec.host}"'
        else:
            text = f"SSL error: certificate verify failed: {err.verify_message}"
    elif isinstance(err, asyncpg.PostgresError):
        text = f"FATAL:  {err.args[0] if err.args else type(err).__name__}"
    elif isinstance(err, asyncio.TimeoutError | TimeoutError):
        text = "timeout expired"
    elif isinstance(err, ConnectionRefusedError):
        text = "Connection refused"
    elif isinstance(err, ConnectionResetError):
        text = "Connection reset by peer"
    elif isinstance(err, ConnectionError) and "rejected SSL upgrade" in str(err):
        text = "server does not support SSL, but SSL was required"
    elif isinstance(err, OSError | ConnectionError | asyncpg.InterfaceError):
        text = f"server closed the connection unexpectedly ({type(err).__name__}: {err})"
    else:
        return None
    return psycopg.OperationalError(where + text)


async def _dial(spec: ConnectSpec, base: Mapping[str, Any], token: str, **ca: str) -> Any:
    """Open one asyncpg connection with ``token``; failures become libpq-worded
    psycopg errors raised outside the handler, so nothing chains to asyncpg's frames
    (which hold the token)."""
    kwargs = dict(base)
    if "sslrootcert" in ca:  # the flow's one retry with the full CA bundle
        kwargs["ssl"] = ssl_context(spec.host, spec.params["sslmode"], ca["sslrootcert"])
    failure: BaseException
    try:
        return await asyncpg.connect(password=token, **kwargs)
    except Exception as err:
        failure = _libpq_error(err, spec) or err
        if failure is err:
            raise
        err.__traceback__ = None
    raise failure


def _prepare(kwargs: dict[str, Any]) -> tuple[ConnectSpec, ConnectOptions, dict[str, Any]]:
    options = ConnectOptions.from_kwargs(kwargs)
    libpq, own = _split(kwargs)
    spec = ConnectSpec.create("", libpq, options)
    return spec, options, _asyncpg_kwargs(spec, own)


async def _login(
    spec: ConnectSpec,
    options: ConnectOptions,
    provider: AsyncTokenProvider,
    base: Mapping[str, Any],
) -> Any:
    flow = login_flow(
        spec,
        provider,
        retry=RetryPolicy.of(options),
        replace_cached=options.max_attempts == 1,
    )
    issue = functools.partial(spec.issue_async, provider)
    return await drive_async(flow, issue, functools.partial(_dial, spec, base))


@with_options_signature()
async def connect(**kwargs: Any) -> asyncpg.Connection:
    """An :class:`asyncpg.Connection` logged in as an IAM user, like :func:`rdsiamkit.connect`.

    Raises the kit's errors (:class:`~rdsiamkit.ConnectError` and subclasses:
    :class:`~rdsiamkit.IamAuthenticationError`, :class:`~rdsiamkit.TLSVerificationError`),
    never with the token.
    """
    spec, options, base = _prepare(kwargs)
    connection: asyncpg.Connection = await _login(spec, options, options.async_provider(), base)
    return connection


@with_options_signature()
def create_pool(
    *,
    min_size: int = 10,
    max_size: int = 10,
    max_queries: int = 50000,
    max_inactive_connection_lifetime: float = 300.0,
    setup: Any = None,
    init: Any = None,
    reset: Any = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    """An :class:`asyncpg.Pool` whose every new connection logs in through the kit.

    ``await`` it (or ``async with``) as asyncpg's own.  The options are checked here,
    before any I/O; each connection the pool opens gets its token from the cache
    (a fresh one once the reuse window passed), so no token is frozen into the pool.
    """
    spec, options, base = _prepare(kwargs)
    provider = options.async_provider()

    async def open_connection(*_args: Any, **pool_kwargs: Any) -> Any:
        # asyncpg passes loop, connection_class and record_class (and our empty args).
        extra = {k: v for k, v in pool_kwargs.items() if v is not None}
        return await _login(spec, options, provider, {**base, **extra})

    pool: asyncpg.Pool = asyncpg.create_pool(
        connect=open_connection,
        min_size=min_size,
        max_size=max_size,
        max_queries=max_queries,
        max_inactive_connection_lifetime=max_inactive_connection_lifetime,
        setup=setup,
        init=init,
        reset=reset,
    )
    return pool
