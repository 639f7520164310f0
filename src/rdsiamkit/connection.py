"""``rdsiamkit.connect()`` and ``connect_async()``: psycopg logins with IAM tokens.

Data flows one way: conninfo and options → :class:`Target` (endpoint, TLS,
what to sign) → token from a provider → psycopg connection.  The same
:func:`login` / :func:`login_async` pair also serves the pools, so a pooled
connection recovers from a refused cached token exactly like a direct one.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import psycopg
import tenacity
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rdsiamkit._libpq import TRANSIENT, is_auth_failure
from rdsiamkit.endpoints import Endpoint, EndpointKind, partition_for_region
from rdsiamkit.errors import (
    ConfigurationError,
    ConnectError,
    IamAuthenticationError,
    TLSVerificationError,
)
from rdsiamkit.tls import ca_bundle_path, check_sslmode
from rdsiamkit.tokens import AsyncTokenProvider, IssuedToken, TokenProvider

if TYPE_CHECKING:
    import boto3
    from psycopg.rows import AsyncRowFactory, Row, RowFactory, TupleRow

__all__ = [
    "Target",
    "async_provider",
    "connect",
    "connect_async",
    "default_provider",
    "is_auth_failure",
    "login",
    "login_async",
    "sync_provider",
]

log = logging.getLogger("rdsiamkit.connection")

T = TypeVar("T")
_E = TypeVar("_E", bound=BaseException)


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    """Every keyword this libpq accepts (PQconndefaults), read once: checking a set is
    ~60 us cheaper per connect than having libpq parse a conninfo string."""
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


@functools.lru_cache(maxsize=256)
def _endpoint(host: str) -> Endpoint | None:
    """:meth:`Endpoint.try_parse`, remembered: a process dials the same few hosts over and
    over, and an Endpoint is immutable."""
    return Endpoint.try_parse(host)


DEFAULT_PORT = 5432
# Arguments of psycopg's Connection.connect() that are not libpq keywords.
PSYCOPG_OPTIONS = frozenset(
    {"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"}
)

_PROXY_KINDS = frozenset({EndpointKind.PROXY, EndpointKind.PROXY_ENDPOINT})


@attrs.frozen
class Target:
    """Where to connect, how to verify the server, and what to sign a token for.

    ``params`` are libpq keywords (never a password); ``token_host`` and
    ``token_port`` differ from ``host``/``port`` only behind tunnels.
    """

    params: Mapping[str, Any]  # libpq keywords; every value is a str
    options: Mapping[str, Any]
    host: str
    port: int
    user: str
    token_host: str
    token_port: int
    region: str | None
    partition: str

    @classmethod
    def build(
        cls,
        conninfo: str,
        kwargs: Mapping[str, Any],
        *,
        region: str | None = None,
        token_host: str | None = None,
        token_port: int | None = None,
        insecure_skip_tls_verify: bool = False,
    ) -> Target:
        """Validate and resolve everything needed before any network I/O."""
        options = {k: v for k, v in kwargs.items() if k in PSYCOPG_OPTIONS}
        libpq = {k: v for k, v in kwargs.items() if k not in PSYCOPG_OPTIONS and v is not None}
        if conninfo:
            try:
                libpq = conninfo_to_dict(conninfo, **libpq)
            except psycopg.ProgrammingError:
                # libpq's message quotes the string, which may hold a password: drop it.
                raise ConfigurationError(
                    "invalid conninfo: libpq cannot parse it (details withheld: the string "
                    "may contain a password)"
                ) from None
        params = {k: str(v) for k, v in libpq.items()}
        if "password" in params or "passfile" in params:
            raise ConfigurationError(
                "a password was given, but rdsiamkit.connect() logs in with an IAM token; "
                "drop password= (use psycopg.connect for password logins)"
            )
        service = params.get("service") or os.environ.get("PGSERVICE")
        if service:
            # libpq's order: explicit keywords, then the service, then PGHOST & co.
            for key, value in _service_target(service).items():
                params.setdefault(key, value)
        host = params.get("host") or os.environ.get("PGHOST", "")
        user = params.get("user") or os.environ.get("PGUSER", "")
        port_text = params.get("port") or os.environ.get("PGPORT") or str(DEFAULT_PORT)
        if not host or host.startswith("/"):
            raise ConfigurationError("host= is required: the RDS endpoint name (not a socket)")
        if "," in host or "," in port_text:
            raise ConfigurationError(
                f"multiple hosts ({host!r}) are not supported: each needs its own token"
            )
        if not user:
            raise ConfigurationError("user= is required: the database user to sign a token for")
        port = _port(port_text, "port")
        token_host = (token_host or host).lower().rstrip(".")
        token_port = _port(str(token_port), "token_port") if token_port is not None else port
        endpoint = _endpoint(token_host)
        if region:
            partition = partition_for_region(region)
        else:
            partition = endpoint.partition if endpoint else "aws"
        params["host"], params["port"], params["user"] = host, str(port), user
        params["sslmode"] = check_sslmode(
            params.get("sslmode"), insecure_skip_tls_verify=insecure_skip_tls_verify
        )
        params["sslrootcert"] = ca_bundle_path(
            partition=partition,
            sslrootcert=params.get("sslrootcert"),
            proxy=endpoint is not None and endpoint.kind in _PROXY_KINDS,
        )
        # What libpq or psycopg would refuse, refused before a token exists to show up in
        # the error: unknown keywords, and a connect_timeout psycopg cannot read.
        unknown = sorted(set(params) - _libpq_keywords())
        if unknown:
            names = ", ".join(f'"{name}"' for name in unknown)
            plural = "s" if len(unknown) > 1 else ""
            raise ConfigurationError(f"invalid connection option{plural} {names}: unknown to libpq")
        timeout = params.get("connect_timeout", "0")
        if not timeout.strip().lstrip("-").isdigit():
            raise ConfigurationError(f"connect_timeout must be whole seconds, not {timeout!r}")
        return cls(
            params=params,
            options=options,
            host=host,
            port=port,
            user=user,
            token_host=token_host,
            token_port=token_port,
            region=region or (endpoint.region if endpoint else None),
            partition=partition,
        )

    @property
    def conninfo(self) -> str:
        """The libpq connection string, without any secret."""
        return make_conninfo("", **self.params)

    def describe(self) -> str:
        """``user@host:port``, plus the signing target when it differs."""
        text = f"{self.user}@{self.host}:{self.port}"
        if (self.token_host, self.token_port) != (self.host.lower(), self.port):
            text += f" (token for {self.token_host}:{self.token_port})"
        return text

    def issue(self, provider: TokenProvider) -> IssuedToken:
        """Get a token for this target from a sync provider."""
        return provider.issue(self.token_host, self.token_port, self.user, region=self.region)

    async def issue_async(self, provider: AsyncTokenProvider) -> IssuedToken:
        """Get a token for this target from an async provider."""
        return await provider.issue(self.token_host, self.token_port, self.user, region=self.region)

    def explain(self, err: psycopg.OperationalError, issued: IssuedToken) -> ConnectError:
        """Turn a psycopg connect error into the kit's typed error, with likely causes."""
        _forget_attempt(err)
        message = str(err).strip()
        region = issued.key.region
        context: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "region": region,
            "identity": issued.key.identity,
        }
        where = f"IAM login as {self.describe()} ({region}, signed by {issued.key.identity})"
        doctor = (
            f"Run `rdsiamkit doctor --host {self.token_host} --port {self.token_port} "
            f"--user {self.user}` to check each cause."
        )
        causes: tuple[str, ...]
        if "PAM authentication failed" in message:
            arn = f"arn:{self.partition}:rds-db:{region}:<account>:dbuser:<resource-id>/{self.user}"
            causes = (
                f"the IAM policy of {issued.key.identity} does not allow rds-db:connect on {arn}",
                "IAM database authentication is not enabled on the cluster/instance",
                f"the token was signed for {self.token_host}:{self.token_port}, which is not this "
                "server's endpoint and port (behind a tunnel pass token_host=/token_port=)",
                f"region {region} is not the database's region",
                "the AWS credentials expired or were revoked, or the clock is skewed",
                "more than 200 new IAM connections per second (RDS throttles them)",
                doctor,
            )
            return IamAuthenticationError(f"{where} refused: {message}", causes=causes, **context)
        if "password authentication failed" in message:
            causes = (
                f"{self.user} is not a member of rds_iam, so the server expects its password: "
                f"GRANT rds_iam TO {quote_ident(self.user)} "
                f"(rdsiamkit switch {shlex.quote(self.user)} iam)",
                doctor,
            )
            return IamAuthenticationError(f"{where} refused: {message}", causes=causes, **context)
        if "certificate verify failed" in message:
            causes = (
                f"the server certificate is not signed by a CA in {self.params['sslrootcert']}: "
                "refresh the bundle (rdsiamkit ca update) or pass sslrootcert=",
            )
            return TLSVerificationError(
                f"TLS: untrusted server certificate for {where}: {message}",
                causes=causes,
                **context,
            )
        if "does not match host name" in message:
            causes = (
                "host= must be the endpoint name in the server certificate; to dial another "
                "address (tunnel, IP) keep host=<endpoint> and pass hostaddr=<ip>",
            )
            return TLSVerificationError(
                f"TLS: hostname mismatch for {where}: {message}", causes=causes, **context
            )
        if "server does not support SSL" in message or "root certificate file" in message:
            return TLSVerificationError(f"TLS unavailable for {where}: {message}", **context)
        return ConnectError(f"cannot connect for {where}: {message}", **context)


def quote_ident(name: str) -> str:
    """``name`` as it must appear in SQL, quoted where needed, for messages and fixes."""
    return sql.Identifier(name).as_string(None)


def _port(text: str, name: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ConfigurationError(f"{name} must be a TCP port number, got {text!r}")
    return port


def _is_retryable(err: BaseException) -> bool:
    """Transient network trouble, or a PAM refusal (RDS throttling looks exactly like one)."""
    cause = str(err.__cause__)
    if isinstance(err, IamAuthenticationError):
        return "PAM authentication failed" in cause
    return type(err) is ConnectError and any(s in cause for s in TRANSIENT)


def retry_policy(*, max_attempts: int, retry_budget: float) -> dict[str, Any]:
    """Tenacity arguments: bounded attempts and time, exponential backoff with equal jitter.

    A refused IAM login is retried too, within the same bounds: RDS refuses logins above
    200 new IAM connections per second with the same ``PAM authentication failed`` as a
    policy denial.  The n-th wait is half of ``min(4, 0.5 * 2**(n-1))`` seconds plus a
    random share of the other half: the jitter spreads a storm of clients out instead of
    synchronising them, and the fixed half keeps a throttled client from spending its few
    attempts back to back (with full jitter, a storm of 64 clients at 20 logins/s sometimes
    left one client refused after 6 attempts).  A denial therefore costs ``max_attempts``
    logins (one more when ``max_attempts=1`` and a refused cached token is replaced at once).
    """
    if max_attempts < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")
    return {
        "stop": tenacity.stop_after_attempt(max_attempts) | tenacity.stop_after_delay(retry_budget),
        "wait": tenacity.wait_exponential(multiplier=0.25, max=2.0)
        + tenacity.wait_random_exponential(multiplier=0.25, max=2.0),
        "retry": tenacity.retry_if_exception(_is_retryable),
        "reraise": True,
        "before_sleep": tenacity.before_sleep_log(log, logging.INFO),
    }


def _service_target(service: str) -> dict[str, str]:
    """``host``, ``port`` and ``user`` of a libpq service, read as libpq does.

    The token must name what libpq will dial, and libpq fills unset keywords
    from the service file: the user's file (``PGSERVICEFILE``, default
    ``~/.pg_service.conf``) first, else the system one in ``PGSYSCONFDIR``
    (Debian: ``/etc/postgresql-common``).
    """
    user_file = os.environ.get("PGSERVICEFILE") or os.path.expanduser("~/.pg_service.conf")
    system_dir = os.environ.get("PGSYSCONFDIR") or "/etc/postgresql-common"
    searched = [Path(user_file), Path(system_dir) / "pg_service.conf"]
    for path in searched:
        section = _service_section(path, service)
        if section is not None:
            return {k: v for k, v in section.items() if k in ("host", "port", "user")}
    raise ConfigurationError(
        f"libpq service {service!r} is not defined in {' or '.join(map(str, searched))}"
    )


def _service_section(path: Path, service: str) -> dict[str, str] | None:
    """The ``[service]`` section of a pg_service.conf file; None if absent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"cannot read the libpq service file {path}: {err}") from err
    section: dict[str, str] | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if section is not None:
                break
            if line.rstrip("]")[1:] == service:
                section = {}
        elif section is not None and "=" in line:
            key, _, value = line.partition("=")
            section[key.strip()] = value.strip()
    return section


def _forget_attempt(err: _E) -> _E:
    """Drop what holds the token from the psycopg errors along ``err``'s chain.

    psycopg keeps the failed attempt's connection on the error (``err.pgconn``),
    password (the token) included, and the error's traceback holds the token in
    the frames that connected (error reporters capture their locals); the kit's
    errors chain to these errors.  psycopg itself drops the connection when it
    pickles an error, and re-raises connection errors without a traceback.
    """
    seen: set[int] = set()
    error: BaseException | None = err
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, psycopg.Error):
            error._pgconn = None
            error.__traceback__ = None
        error = error.__cause__ or error.__context__
    return err


def _refused(
    provider: TokenProvider | AsyncTokenProvider, issued: IssuedToken, err: psycopg.OperationalError
) -> bool:
    """Forget a token the server refused, so no later attempt offers it again."""
    if not is_auth_failure(err):
        return False
    provider.invalidate(issued)
    return True


def login(
    target: Target,
    provider: TokenProvider,
    open_: Callable[[str], T],
    *,
    replace_cached: bool = True,
) -> T:
    """Open a connection with a token; a refused token is never offered again.

    With ``replace_cached``, a refused *cached* token is replaced by a fresh one at
    once (pools, which have no retry of their own at this level); without it the
    caller's backoff decides when to try again, so a throttled storm of clients
    costs one login per attempt.
    """
    issued = target.issue(provider)
    try:
        return open_(issued.token)
    except psycopg.OperationalError as err:
        refused = _refused(provider, issued, err)
        if not (refused and issued.from_cache and replace_cached):
            raise target.explain(err, issued) from err
        log.info(
            "cached IAM token for %s was refused; retrying with a fresh one", target.describe()
        )
    except psycopg.Error as err:  # not about connecting: pass it on, without the token
        raise _forget_attempt(err) from None
    issued = target.issue(provider)
    try:
        return open_(issued.token)
    except psycopg.OperationalError as err:
        _refused(provider, issued, err)
        raise target.explain(err, issued) from err
    except psycopg.Error as err:  # not about connecting: pass it on, without the token
        raise _forget_attempt(err) from None


async def login_async(
    target: Target,
    provider: AsyncTokenProvider,
    open_: Callable[[str], Awaitable[T]],
    *,
    replace_cached: bool = True,
) -> T:
    """The asyncio twin of :func:`login`."""
    issued = await target.issue_async(provider)
    try:
        return await open_(issued.token)
    except psycopg.OperationalError as err:
        refused = _refused(provider, issued, err)
        if not (refused and issued.from_cache and replace_cached):
            raise target.explain(err, issued) from err
        log.info(
            "cached IAM token for %s was refused; retrying with a fresh one", target.describe()
        )
    except psycopg.Error as err:  # not about connecting: pass it on, without the token
        raise _forget_attempt(err) from None
    issued = await target.issue_async(provider)
    try:
        return await open_(issued.token)
    except psycopg.OperationalError as err:
        _refused(provider, issued, err)
        raise target.explain(err, issued) from err
    except psycopg.Error as err:  # not about connecting: pass it on, without the token
        raise _forget_attempt(err) from None


_defaults_lock = threading.Lock()
_by_profile: dict[str | None, TokenProvider] = {}
# A session's provider lives on the session (the provider holds the session, so a
# weak-keyed registry would keep both forever); the pair is freed with the session.
_SESSION_PROVIDER = "_rdsiamkit_token_provider"
_ASYNC_FACE = "_rdsiamkit_async_face"


def default_provider(
    *, session: boto3.Session | None = None, profile: str | None = None
) -> TokenProvider:
    """The process-wide provider for a session or profile, so tokens are reused across calls."""
    with _defaults_lock:
        if session is not None:
            if profile is not None:
                raise ConfigurationError("pass either session= or profile=, not both")
            provider: TokenProvider | None = getattr(session, _SESSION_PROVIDER, None)
            if provider is None:
                provider = TokenProvider(session=session)
                setattr(session, _SESSION_PROVIDER, provider)
            return provider
        provider = _by_profile.get(profile)
        if provider is None:
            provider = _by_profile[profile] = TokenProvider(profile=profile)
        return provider


def sync_provider(
    token_provider: TokenProvider | None,
    session: boto3.Session | None,
    profile: str | None,
) -> TokenProvider:
    """The sync provider to use: given, or the default for the session/profile."""
    if token_provider is None:
        return default_provider(session=session, profile=profile)
    if session is not None or profile is not None:
        raise ConfigurationError("pass either token_provider= or session=/profile=, not both")
    return token_provider


def async_provider(
    token_provider: AsyncTokenProvider | TokenProvider | None,
    session: boto3.Session | None,
    profile: str | None,
) -> AsyncTokenProvider:
    """The async provider to use: given, or the async face of the sync default."""
    if isinstance(token_provider, AsyncTokenProvider):
        if session is not None or profile is not None:
            raise ConfigurationError("pass either token_provider= or session=/profile=, not both")
        return token_provider
    sync = sync_provider(token_provider, session, profile)
    with _defaults_lock:
        provider: AsyncTokenProvider | None = getattr(sync, _ASYNC_FACE, None)
        if provider is None:
            provider = AsyncTokenProvider(sync)
            setattr(sync, _ASYNC_FACE, provider)
        return provider


@overload
def connect(
    conninfo: str = "", *, row_factory: RowFactory[Row], **kwargs: Any
) -> psycopg.Connection[Row]: ...
@overload
def connect(
    conninfo: str = "", *, row_factory: None = None, **kwargs: Any
) -> psycopg.Connection[TupleRow]: ...
def connect(
    conninfo: str = "",
    *,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    max_attempts: int = 3,
    retry_budget: float = 10.0,
    **kwargs: Any,
) -> psycopg.Connection[Any]:
    """Connect to RDS / Aurora PostgreSQL as an IAM user, like :func:`psycopg.connect`.

    ``conninfo`` and ``kwargs`` are libpq keywords (``host``, ``port``, ``user``,
    ``dbname``, ``hostaddr``, ``sslrootcert``, ``connect_timeout``, ...) plus
    psycopg's own (``autocommit``, ``row_factory``, ...).  The token is signed
    for ``token_host:token_port`` (default: ``host:port``); set them when you
    dial a tunnel.  TLS is ``verify-full`` against the RDS CA bundle (RDS Proxy:
    the OS trust store; ``sslrootcert=`` overrides) unless the explicit,
    logged ``insecure_skip_tls_verify=True`` opt-out allows ``require``.

    Transient network errors and refused logins (RDS throttling looks like a
    refusal) are retried up to ``max_attempts`` times within ``retry_budget``
    seconds, with exponential backoff and equal jitter; a refused token is never
    offered again, so a cached token that stopped working (rotated credentials,
    server-side expiry) is replaced by the next attempt.  Errors
    are :class:`~rdsiamkit.ConnectError` subclasses (also
    :class:`psycopg.OperationalError`) and never contain the token.
    """
    target = Target.build(
        conninfo,
        kwargs,
        region=region,
        token_host=token_host,
        token_port=token_port,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
    )
    provider = sync_provider(token_provider, session, profile)

    def open_(token: str) -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(password=token, **target.params, **target.options)

    retrying = tenacity.Retrying(
        **retry_policy(max_attempts=max_attempts, retry_budget=retry_budget)
    )
    return retrying(login, target, provider, open_, replace_cached=max_attempts == 1)


@overload
async def connect_async(
    conninfo: str = "", *, row_factory: AsyncRowFactory[Row], **kwargs: Any
) -> psycopg.AsyncConnection[Row]: ...
@overload
async def connect_async(
    conninfo: str = "", *, row_factory: None = None, **kwargs: Any
) -> psycopg.AsyncConnection[TupleRow]: ...
async def connect_async(
    conninfo: str = "",
    *,
    region: str | None = None,
    session: boto3.Session | None = None,
    profile: str | None = None,
    token_provider: AsyncTokenProvider | TokenProvider | None = None,
    token_host: str | None = None,
    token_port: int | None = None,
    insecure_skip_tls_verify: bool = False,
    max_attempts: int = 3,
    retry_budget: float = 10.0,
    **kwargs: Any,
) -> psycopg.AsyncConnection[Any]:
    """The asyncio twin of :func:`connect`: same options, never blocks the event loop."""
    target = Target.build(
        conninfo,
        kwargs,
        region=region,
        token_host=token_host,
        token_port=token_port,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
    )
    provider = async_provider(token_provider, session, profile)

    async def open_(token: str) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            password=token, **target.params, **target.options
        )

    retrying = tenacity.AsyncRetrying(
        **retry_policy(max_attempts=max_attempts, retry_budget=retry_budget)
    )
    return await retrying(login_async, target, provider, open_, replace_cached=max_attempts == 1)
