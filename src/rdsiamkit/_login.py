"""The login flow, written once: spec → token → login → explanation, with its retries.

Data flows one way.  :class:`ConnectSpec` resolves the endpoint, the TLS floor and
what to sign a token for from the conninfo, the libpq keywords and the kit's
:class:`~rdsiamkit._options.ConnectOptions`, before any network I/O.  Then
:func:`login_flow`, a generator, yields the steps of a login (:class:`Issue` a
token, :class:`Dial` with it, :class:`Pause` before another attempt) and receives
what each step gave, or the exception it raised, so the decisions (a refused
cached token is never offered again, what is retried, how a failure is explained)
live in one place.  :func:`drive` and :func:`drive_async` run the steps with
blocking or asyncio I/O; every entry point (``connect``, the pools, the SQLAlchemy
engines) is a thin shell over one of them, like httpx's ``Auth.auth_flow`` driven
by ``sync_auth_flow`` and ``async_auth_flow``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import random
import shlex
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rdsiamkit._libpq import PAM_REFUSED, PASSWORD_REFUSED, TRANSIENT, is_auth_failure
from rdsiamkit._options import ConnectOptions, parse_port
from rdsiamkit.endpoints import Endpoint, EndpointKind, partition_for_region
from rdsiamkit.errors import (
    ConfigurationError,
    ConnectError,
    IamAuthenticationError,
    TLSVerificationError,
)
from rdsiamkit.tls import ca_bundle_path, check_sslmode, full_bundle_path, is_regional_bundle

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from rdsiamkit._options import IamOptions
    from rdsiamkit.tokens import AsyncTokenProvider, IssuedToken, TokenProvider

__all__ = [
    "ConnectSpec",
    "Dial",
    "Issue",
    "Pause",
    "RetryPolicy",
    "drive",
    "drive_async",
    "forget_attempt",
    "login_flow",
    "quote_ident",
]

log = logging.getLogger("rdsiamkit.connection")

T = TypeVar("T")
_E = TypeVar("_E", bound=BaseException)

DEFAULT_PORT = 5432
# Arguments of psycopg's Connection.connect() that are not libpq keywords.
PSYCOPG_OPTIONS = frozenset(
    {"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"}
)
_PROXY_KINDS = frozenset({EndpointKind.PROXY, EndpointKind.PROXY_ENDPOINT})
# libpq reads these as secrets: never accepted, never kept (see _refuse_password).
_SECRETS = ("password", "passfile")


def _is_socket_path(host: str) -> bool:
    """What libpq takes for a Unix-domain socket rather than a TCP host (is_unixsock_path):
    an absolute path (on Windows also a UNC or drive path) or a Linux abstract name
    ``@name``."""
    if host[:1] in ("/", "@", "\\"):
        return True
    return host[1:2] == ":" and host[:1].isalpha() and host[2:3] in ("/", "\\")


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


def quote_ident(name: str) -> str:
    """``name`` as it must appear in SQL, quoted where needed, for messages and fixes."""
    return sql.Identifier(name).as_string(None)


# -- the spec: everything decided before any I/O -------------------------------------------


def _refuse_password(kwargs: Mapping[str, Any]) -> None:
    """Refuse a password or passfile, dropping it first from a mutable ``kwargs``.

    Error reporters capture the local variables of every frame along a traceback;
    the caller's ``**kwargs`` dict is shared by each frame down to here, so the
    secret leaves it before the error is raised, and this frame never holds it.
    """
    given = [name for name in _SECRETS if name in kwargs]
    if not given:
        return
    if isinstance(kwargs, MutableMapping):
        for name in given:
            del kwargs[name]
    raise ConfigurationError(
        "a password was given, but rdsiamkit.connect() logs in with an IAM token; "
        "drop password= (use psycopg.connect for password logins)"
    )


def _parse_conninfo(conninfo: str, libpq: dict[str, Any]) -> dict[str, Any]:
    """Merge a conninfo string under the keywords (keywords win, as in psycopg)."""
    try:
        merged = conninfo_to_dict(conninfo, **libpq)
    except psycopg.ProgrammingError:
        # libpq's message quotes the string, which may hold a password: drop it.
        raise ConfigurationError(
            "invalid conninfo: libpq cannot parse it (details withheld: the string "
            "may contain a password)"
        ) from None
    _refuse_password(merged)
    return merged


def _tcp_host(host: str, hostaddr: str) -> None:
    """Refuse what libpq would not reach over TCP with TLS: a token must never go there."""
    if not host or _is_socket_path(host):
        raise ConfigurationError(
            "host= is required: the RDS endpoint name (not a socket: libpq reads a host "
            "starting with '/' or '@' as a Unix-domain socket, where TLS never applies)"
        )
    if "," in host or "," in hostaddr:
        raise ConfigurationError(
            f"multiple hosts ({host!r}) are not supported: each needs its own token"
        )
    if hostaddr:
        try:
            ipaddress.ip_address(hostaddr)
        except ValueError:
            raise ConfigurationError(
                f"hostaddr= must be a numeric IP address, got {hostaddr!r} "
                "(put the endpoint name in host=)"
            ) from None


def _check_libpq(params: Mapping[str, str]) -> None:
    """What libpq or psycopg would refuse, refused before a token exists to show up in
    the error: unknown keywords, and a connect_timeout psycopg cannot read."""
    unknown = sorted(set(params) - _libpq_keywords())
    if unknown:
        names = ", ".join(f'"{name}"' for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigurationError(f"invalid connection option{plural} {names}: unknown to libpq")
    timeout = params.get("connect_timeout", "0")
    if not timeout.strip().lstrip("-").isdigit():
        raise ConfigurationError(f"connect_timeout must be whole seconds, not {timeout!r}")


@attrs.frozen
class ConnectSpec:
    """A connection spec: where to connect, how to verify the server, what to sign.

    ``params`` are libpq keywords (never a password); ``token_host`` and
    ``token_port`` differ from ``host``/``port`` only behind tunnels.  ``region``
    is resolved here, once: the option, else the endpoint name's (``None`` for a
    CNAME or IP, where the credentials' region applies).
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
    #: ``region`` was passed (not read from the endpoint name): the doctor hint repeats it.
    region_given: bool = False
    #: The CA bundle the caller named, if any (``params`` holds the one resolved).
    sslrootcert_given: str | None = None

    @classmethod
    def build(
        cls, conninfo: str, kwargs: Mapping[str, Any], **options: Unpack[IamOptions]
    ) -> ConnectSpec:
        """Validate and resolve everything needed before any network I/O."""
        return cls.create(conninfo, kwargs, ConnectOptions.of(**options))

    @classmethod
    def create(
        cls, conninfo: str, kwargs: Mapping[str, Any], options: ConnectOptions
    ) -> ConnectSpec:
        """:meth:`build` from options already checked (``kwargs``: libpq and psycopg's)."""
        _refuse_password(kwargs)
        psycopg_options = {k: v for k, v in kwargs.items() if k in PSYCOPG_OPTIONS}
        libpq = {k: v for k, v in kwargs.items() if k not in PSYCOPG_OPTIONS and v is not None}
        if conninfo:
            libpq = _parse_conninfo(conninfo, libpq)
        params = {k: str(v) for k, v in libpq.items()}
        service = params.get("service") or os.environ.get("PGSERVICE")
        if service:
            # libpq's order: explicit keywords, then the service, then PGHOST & co.
            for key, value in _service_target(service).items():
                params.setdefault(key, value)
        host = params.get("host") or os.environ.get("PGHOST", "")
        user = params.get("user") or os.environ.get("PGUSER", "")
        port_text = params.get("port") or os.environ.get("PGPORT") or str(DEFAULT_PORT)
        _tcp_host(host, params.get("hostaddr") or os.environ.get("PGHOSTADDR", ""))
        if "," in port_text:
            raise ConfigurationError(
                f"multiple hosts ({host!r}) are not supported: each needs its own token"
            )
        if not user:
            raise ConfigurationError("user= is required: the database user to sign a token for")
        port = parse_port(port_text, "port")
        token_host = (options.token_host or host).lower().rstrip(".")
        endpoint = _endpoint(token_host)
        if options.token_host is None:
            _check_region(options.region, endpoint)
        region = options.region or (endpoint.region if endpoint else None)
        partition = partition_for_region(region) if region else "aws"
        params["host"], params["port"], params["user"] = host, str(port), user
        params["sslmode"] = check_sslmode(
            params.get("sslmode"), insecure_skip_tls_verify=options.insecure_skip_tls_verify
        )
        given_ca = params.get("sslrootcert")
        params["sslrootcert"] = ca_bundle_path(
            partition=partition,
            sslrootcert=params.get("sslrootcert"),
            proxy=endpoint is not None and endpoint.kind in _PROXY_KINDS,
            region=region,
        )
        _check_libpq(params)
        return cls(
            region_given=options.region is not None,
            sslrootcert_given=given_ca,
            params=params,
            options=psycopg_options,
            host=host,
            port=port,
            user=user,
            token_host=token_host,
            token_port=options.token_port if options.token_port is not None else port,
            region=region,
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

    def doctor_command(self) -> str:
        """The ``rdsiamkit doctor`` command that diagnoses this very attempt, shell-quoted."""
        args = ["rdsiamkit", "doctor", "--host", self.host, "--port", str(self.port)]
        args += ["--user", self.user]
        for key in ("hostaddr", "dbname"):
            if self.params.get(key):
                args += [f"--{key}", self.params[key]]
        if self.sslrootcert_given:
            args += ["--sslrootcert", self.sslrootcert_given]
        if self.token_host != self.host.lower().rstrip("."):
            args += ["--token-host", self.token_host]
        if self.token_port != self.port:
            args += ["--token-port", str(self.token_port)]
        if self.region_given and self.region:
            args += ["--region", self.region]
        return shlex.join(args)

    def issue(self, provider: TokenProvider) -> IssuedToken:
        """Get a token for this spec from a sync provider."""
        return provider.issue(self.token_host, self.token_port, self.user, region=self.region)

    async def issue_async(self, provider: AsyncTokenProvider) -> IssuedToken:
        """Get a token for this spec from an async provider."""
        return await provider.issue(self.token_host, self.token_port, self.user, region=self.region)

    def explain(self, err: psycopg.OperationalError, issued: IssuedToken) -> ConnectError:
        """Turn a psycopg connect error into the kit's typed error, with likely causes."""
        return _explain(self, forget_attempt(err), issued)


def _explain(spec: ConnectSpec, err: psycopg.OperationalError, issued: IssuedToken) -> ConnectError:
    message = str(err).strip()
    region = issued.key.region
    context: dict[str, Any] = {
        "host": spec.host,
        "port": spec.port,
        "user": spec.user,
        "region": region,
        "identity": issued.key.identity,
    }
    where = f"IAM login as {spec.describe()} ({region}, signed by {issued.key.identity})"
    doctor = f"Run `{spec.doctor_command()}` to check each cause."
    causes: tuple[str, ...]
    if PAM_REFUSED in message:
        arn = f"arn:{spec.partition}:rds-db:{region}:<account>:dbuser:<resource-id>/{spec.user}"
        causes = (
            f"the IAM policy of {issued.key.identity} does not allow rds-db:connect on {arn}",
            "IAM database authentication is not enabled on the cluster/instance",
            f"the token was signed for {spec.token_host}:{spec.token_port}, which is not this "
            "server's endpoint and port (behind a tunnel pass token_host=/token_port=)",
            f"region {region} is not the database's region",
            "the AWS credentials expired or were revoked, or the clock is skewed",
            "more than 200 new IAM connections per second (RDS throttles them)",
            doctor,
        )
        return IamAuthenticationError(f"{where} refused: {message}", causes=causes, **context)
    if PASSWORD_REFUSED in message:
        causes = (
            f"{spec.user} is not a member of rds_iam, so the server expects its password, "
            "or the role does not exist (PostgreSQL answers both alike): if it exists, "
            f"GRANT rds_iam TO {quote_ident(spec.user)} "
            f"(rdsiamkit.set_auth_mode(conn, {spec.user!r}, 'iam')); else create it first "
            f"(CREATE ROLE {quote_ident(spec.user)} LOGIN)",
            doctor,
        )
        return IamAuthenticationError(f"{where} refused: {message}", causes=causes, **context)
    if "certificate verify failed" in message:
        ca = spec.params["sslrootcert"]
        causes = (
            f"the server certificate is not signed by a CA in {_CA_FALLBACKS.get(ca, ca)}: "
            "refresh the bundle (rdsiamkit.refresh_ca_bundle()) or pass sslrootcert=",
        )
        return TLSVerificationError(
            f"TLS: untrusted server certificate for {where}: {message}", causes=causes, **context
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


class RegionContradictionError(ConfigurationError):
    """``region=`` names another region than the endpoint name (the doctor names it)."""


def _check_region(region: str | None, endpoint: Endpoint | None) -> None:
    """Refuse a region that contradicts the endpoint name: every token would be refused."""
    if region is None or endpoint is None or endpoint.region is None:
        return
    if region != endpoint.region:
        raise RegionContradictionError(
            f"region={region!r} contradicts the endpoint {endpoint.host}, which is in "
            f"{endpoint.region}: RDS refuses a token signed for another region; drop "
            "region= (or pass token_host= when the token must name another endpoint)"
        )


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


# -- the flow ------------------------------------------------------------------------------


def forget_attempt(err: _E) -> _E:
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


@attrs.frozen
class RetryPolicy:
    """Bounded attempts and time, exponential backoff with equal jitter.

    A refused IAM login is retried too, within the same bounds: RDS refuses logins above
    200 new IAM connections per second with the same ``PAM authentication failed`` as a
    policy denial.  The n-th wait is half of ``min(4, 0.5 * 2**(n-1))`` seconds plus a
    random share of the other half: the jitter spreads a storm of clients out instead of
    synchronising them, and the fixed half keeps a throttled client from spending its few
    attempts back to back (with full jitter, a storm of 64 clients at 20 logins/s sometimes
    left one client refused after 6 attempts).  A denial therefore costs ``max_attempts``
    logins (one more when ``max_attempts=1`` and a refused cached token is replaced at once).
    """

    max_attempts: int
    retry_budget: float

    @classmethod
    def of(cls, options: ConnectOptions) -> RetryPolicy:
        """The policy the options ask for."""
        return cls(options.max_attempts, options.retry_budget)

    @staticmethod
    def retryable(err: BaseException) -> bool:
        """Transient network trouble, or a PAM refusal (RDS throttling looks exactly like one)."""
        cause = str(err.__cause__)
        if isinstance(err, IamAuthenticationError):
            return PAM_REFUSED in cause
        return type(err) is ConnectError and any(s in cause for s in TRANSIENT)

    @staticmethod
    def wait(attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure."""
        half = min(2.0, 0.25 * 2.0 ** (attempt - 1))
        return half + random.uniform(0.0, half)  # noqa: S311 - jitter, not a secret

    def again(self, err: BaseException, attempt: int, elapsed: float) -> bool:
        """Whether to try once more after ``err`` ended the ``attempt``-th login."""
        return attempt < self.max_attempts and elapsed < self.retry_budget and self.retryable(err)


# The steps are plain slotted classes, not attrs ones: three fewer classes to build at
# `import rdsiamkit` (about 0.5 ms each), and nothing here needs comparing or hashing.


class Issue:
    """Step: get a token for the spec; the reply is an :class:`IssuedToken`."""

    __slots__ = ()


class Dial:
    """Step: open a connection with this token (and these libpq keywords over the spec's:
    ``open_(token, **params)``); the reply is the connection.  Its repr hides the token."""

    __slots__ = ("params", "token")

    def __init__(self, token: str, params: Mapping[str, str] | None = None) -> None:
        self.token = token
        self.params: Mapping[str, str] = params or {}

    def __repr__(self) -> str:
        return f"Dial(params={self.params!r})"


class Pause:
    """Step: wait this many seconds before the next attempt; no reply."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"Pause(seconds={self.seconds!r})"


Step = Issue | Dial | Pause
Flow = Generator[Step, Any, Any]
_ISSUE = Issue()


def _refused(
    provider: TokenProvider | AsyncTokenProvider, issued: IssuedToken, err: psycopg.OperationalError
) -> bool:
    """Forget a token the server refused, so no later attempt offers it again."""
    if not is_auth_failure(err):
        return False
    provider.invalidate(issued)
    return True


# A regional CA file that failed verification -> the full bundle used instead, per process.
_CA_FALLBACKS: dict[str, str] = {}


def _ca_override(spec: ConnectSpec) -> dict[str, str]:
    full = _CA_FALLBACKS.get(spec.params["sslrootcert"])
    return {} if full is None else {"sslrootcert": full}


def _fall_back_to_full_bundle(spec: ConnectSpec, err: psycopg.OperationalError) -> bool:
    """After a regional CA file failed verification, use the full bundle from now on (once).

    A region's file holds only the CAs AWS lists for it; a server moved to a CA the file
    lacks (a new root before the kit's bundle knows the region has it) still verifies
    against the whole bundle, so the login is tried once more with it, loudly.
    """
    regional = spec.params["sslrootcert"]
    if (
        "certificate verify failed" not in str(err)
        or regional in _CA_FALLBACKS
        or not is_regional_bundle(regional)
    ):
        return False
    _CA_FALLBACKS[regional] = full = full_bundle_path(partition=spec.partition)
    log.warning(
        "the server %s:%s is not verified by the CA file of region %s (%s); using the full "
        "bundle %s from now on: refresh the bundle (rdsiamkit.refresh_ca_bundle())",
        spec.host,
        spec.port,
        spec.region,
        regional,
        full,
    )
    return True


def _attempt(
    spec: ConnectSpec, provider: TokenProvider | AsyncTokenProvider, *, replace_cached: bool
) -> Flow:
    """One login; with ``replace_cached``, a refused *cached* token is replaced at once."""
    replaced = False
    issued: IssuedToken = yield _ISSUE
    while True:
        try:
            return (yield Dial(issued.token, _ca_override(spec)))
        except psycopg.OperationalError as err:
            if _fall_back_to_full_bundle(spec, err):
                continue  # TLS failed before the token was sent: the same one will do
            refused = _refused(provider, issued, err)
            if replaced or not (refused and issued.from_cache and replace_cached):
                raise spec.explain(err, issued) from err
            log.info(
                "cached IAM token for %s was refused; retrying with a fresh one", spec.describe()
            )
        except psycopg.Error as err:  # not about connecting: pass it on, without the token
            raise forget_attempt(err) from None
        replaced = True
        issued = yield _ISSUE


def login_flow(
    spec: ConnectSpec,
    provider: TokenProvider | AsyncTokenProvider,
    *,
    retry: RetryPolicy | None = None,
    replace_cached: bool = True,
) -> Flow:
    """The steps of an IAM login; a refused token is never offered again.

    With ``replace_cached``, a refused *cached* token is replaced by a fresh one at
    once (pools, which have no retry of their own at this level); without it the
    ``retry`` policy's backoff decides when to try again, so a throttled storm of
    clients costs one login per attempt.
    """
    started = time.monotonic()
    attempt = 1
    while True:
        try:
            return (yield from _attempt(spec, provider, replace_cached=replace_cached))
        except ConnectError as err:
            if retry is None or not retry.again(err, attempt, time.monotonic() - started):
                raise
            delay = retry.wait(attempt)
            log.info(
                "login %d of %d for %s failed (%s); retrying in %.2f s",
                attempt,
                retry.max_attempts,
                spec.describe(),
                type(err).__name__,
                delay,
            )
        yield Pause(delay)
        attempt += 1


class _Stepper:
    """Feeds a flow the reply (or the exception) of its last step."""

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self._reply: Any = None
        self._failure: BaseException | None = None
        self.value: Any = None

    def next(self) -> Step | None:
        """The next step, or None once the flow returned (its value in :attr:`value`)."""
        reply, failure = self._reply, self._failure
        self._reply = self._failure = None
        try:
            if failure is None:
                return self._flow.send(reply)
            return self._flow.throw(failure)
        except StopIteration as done:
            self.value = done.value
            return None

    def reply(self, value: Any) -> None:
        """What the step gave."""
        self._reply = value

    def fail(self, err: BaseException) -> None:
        """What the step raised."""
        self._failure = err


def drive(flow: Flow, issue: Callable[[], IssuedToken], open_: Callable[..., T]) -> T:
    """Run a login flow with blocking I/O."""
    stepper = _Stepper(flow)
    while (step := stepper.next()) is not None:
        try:
            if isinstance(step, Dial):
                stepper.reply(open_(step.token, **step.params))
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            else:
                stepper.reply(issue())
        except Exception as err:  # handed to the flow, which decides
            stepper.fail(err)
    return stepper.value  # type: ignore[no-any-return]


async def drive_async(
    flow: Flow,
    issue: Callable[[], Awaitable[IssuedToken]],
    open_: Callable[..., Awaitable[T]],
) -> T:
    """Run a login flow on the event loop (the asyncio twin of :func:`drive`)."""
    stepper = _Stepper(flow)
    while (step := stepper.next()) is not None:
        try:
            if isinstance(step, Dial):
                stepper.reply(await open_(step.token, **step.params))
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            else:
                stepper.reply(await issue())
        except Exception as err:  # handed to the flow, which decides
            stepper.fail(err)
    return stepper.value  # type: ignore[no-any-return]
