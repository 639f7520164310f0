"""ConnectSpec (formerly Target): conninfo, TLS floor, token target, error translation."""

from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

import rdsiamkit
from rdsiamkit import _login
from rdsiamkit._login import RetryPolicy
from rdsiamkit._options import ConnectOptions
from rdsiamkit.connection import ConnectSpec, is_auth_failure
from rdsiamkit.errors import (
    CABundleError,
    ConfigurationError,
    ConnectError,
    IamAuthenticationError,
    InsecureTLSError,
    TLSVerificationError,
)
from rdsiamkit.tls import is_regional_bundle
from rdsiamkit.tokens import IssuedToken, TokenKey, TokenProvider

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
TOKEN = f"{HOST}:5432/?Action=connect&DBUser=app&X-Amz-Signature=deadbeefcafef00d"


def build(conninfo: str = "", **kwargs: object) -> ConnectSpec:
    return ConnectSpec.build(conninfo, kwargs)


def issued(target: ConnectSpec) -> IssuedToken:
    key = TokenKey("AKIAEXAMPLE", target.token_host, target.token_port, target.user, "us-east-1")
    return IssuedToken(TOKEN, key, from_cache=False)


def test_keywords_and_conninfo_string_merge() -> None:
    """A conninfo string and libpq keywords combine; keywords win, like psycopg."""
    target = build(f"host={HOST} port=6000 dbname=x", user="app", port=5432)
    assert (target.host, target.port, target.user) == (HOST, 5432, "app")
    assert target.params["dbname"] == "x"
    assert target.region == "us-east-1" and target.partition == "aws"


def test_tls_is_forced_to_verify_full_with_the_rds_bundle() -> None:
    """Without TLS options the target verifies the full chain and hostname (region's CAs)."""
    target = build(host=HOST, user="app")
    assert target.params["sslmode"] == "verify-full"
    assert target.params["sslrootcert"].endswith("us-east-1-bundle.pem")
    assert is_regional_bundle(target.params["sslrootcert"])
    assert "sslmode=verify-full" in target.conninfo


def test_downgrade_is_refused() -> None:
    """sslmode=require without the opt-out fails before any connection attempt."""
    with pytest.raises(InsecureTLSError):
        build(host=HOST, user="app", sslmode="require")
    with pytest.raises(InsecureTLSError):
        build(f"host={HOST} user=app sslmode=disable")


def test_psycopg_options_are_split_from_libpq_keywords() -> None:
    """autocommit and friends go to psycopg, not into the conninfo string."""
    target = build(host=HOST, user="app", autocommit=True, application_name="svc")
    assert target.options == {"autocommit": True}
    assert "autocommit" not in target.conninfo
    assert "application_name=svc" in target.conninfo


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user": "app"}, "host= is required"),
        ({"host": HOST}, "user= is required"),
        ({"host": f"{HOST},other", "user": "app"}, "multiple hosts"),
        ({"host": HOST, "user": "app", "port": "http"}, "port must be"),
        ({"host": HOST, "user": "app", "port": 70000}, "port must be"),
        ({"host": HOST, "user": "app", "password": "hunter2"}, "password was given"),
        ({"host": "/var/run/postgresql", "user": "app"}, "not a socket"),
        ({"host": "@abstract", "user": "app"}, "not a socket"),
        ({"host": "C:\\pg", "user": "app"}, "not a socket"),
        ({"host": HOST, "hostaddr": "db.example", "user": "app"}, "numeric IP"),
        ({"host": HOST, "hostaddr": "10.0.0.1,10.0.0.2", "user": "app"}, "multiple hosts"),
    ],
)
def test_bad_input_names_what_is_wrong(
    kwargs: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each invalid option fails with a ConfigurationError that names it."""
    for name in ("PGHOST", "PGUSER", "PGPORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match=message) as info:
        build(**kwargs)
    assert "hunter2" not in str(info.value)


def test_libpq_environment_defaults_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """PGHOST/PGPORT/PGUSER fill in what the caller did not pass, as for psql."""
    monkeypatch.setenv("PGHOST", HOST)
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PGUSER", "envuser")
    target = build()
    assert (target.host, target.port, target.user) == (HOST, 6543, "envuser")


def test_libpq_service_is_read_like_libpq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service's host/port/user come after explicit keywords and before PGHOST & co."""
    services = tmp_path / "pg_service.conf"
    services.write_text(
        f"# comment\n[other]\nport=1\n[prod]\nhost={HOST}\nport=6432\nuser = svc\n"
        "password=not-read-by-the-kit\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPORT", "6543")
    target = build("service=prod")
    assert (target.host, target.port, target.user) == (HOST, 6432, "svc")
    assert "password" not in target.params
    assert build("service=prod port=5433 user=app").port == 5433
    monkeypatch.setenv("PGSERVICE", "prod")
    assert build(user="app").user == "app" and build().port == 6432
    with pytest.raises(ConfigurationError, match="service 'nope' is not defined"):
        build("service=nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connect_timeot": 5}, 'invalid connection option "connect_timeot"'),
        ({"SSLMODE": "disable"}, 'invalid connection option "SSLMODE"'),
        ({"connect_timeout": "abc"}, "connect_timeout must be whole seconds"),
    ],
)
def test_options_libpq_would_refuse_fail_before_a_token_exists(
    kwargs: dict[str, object], message: str
) -> None:
    """A typo in a keyword is a ConfigurationError at build time, not after minting."""
    with pytest.raises(ConfigurationError, match=message):
        build(host=HOST, user="app", **kwargs)


def test_non_connect_psycopg_errors_leave_no_token_in_frames() -> None:
    """A psycopg error that is not about connecting is passed on without the token's frames."""
    import boto3

    from rdsiamkit.connection import login
    from rdsiamkit.tokens import TokenProvider

    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLE000000001", aws_secret_access_key="s", region_name="us-east-1"
    )
    provider = TokenProvider(session=session)
    target = build(host=HOST, user="app")
    minted: list[str] = []

    def open_(token: str) -> None:
        minted.append(token)
        raise psycopg.ProgrammingError("something psycopg did not like")

    with pytest.raises(psycopg.ProgrammingError) as info:
        login(target, provider, open_)
    frames = info.value.__traceback__
    shown: list[str] = []
    while frames is not None:
        if frames.tb_frame.f_code.co_filename != __file__:
            shown += [repr(v) for v in frames.tb_frame.f_locals.values()]
        frames = frames.tb_next
    assert minted and not any(minted[0] in text for text in shown)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_tunnel_signs_for_the_real_endpoint() -> None:
    """token_host/token_port override what is signed, not what is dialled."""
    target = ConnectSpec.build(
        "",
        {"host": HOST, "hostaddr": "127.0.0.1", "port": 15432, "user": "app"},
        token_port=5432,
    )
    assert (target.port, target.token_host, target.token_port) == (15432, HOST, 5432)
    assert "token for" in target.describe()


def test_non_rds_host_keeps_region_open_and_uses_aws_bundle() -> None:
    """A CNAME or IP leaves the region to the provider and verifies with the aws bundle."""
    target = build(host="db.internal.example", user="app")
    assert target.region is None and target.partition == "aws"


def test_govcloud_endpoint_needs_its_bundle() -> None:
    """A GovCloud endpoint without a GovCloud bundle is refused, not verified wrongly."""
    with pytest.raises(CABundleError, match="aws-us-gov"):
        build(host="db1.c1a2b3c4d5e6.us-gov-west-1.rds.amazonaws.com", user="app")


def test_explicit_sslrootcert_is_kept(tmp_path: Path) -> None:
    """A caller's CA file is used as given."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert build(host=HOST, user="app", sslrootcert=str(ca)).params["sslrootcert"] == str(ca)


def pg_error(message: str) -> psycopg.OperationalError:
    return psycopg.OperationalError(message)


def test_pam_failure_becomes_iam_authentication_error_with_causes() -> None:
    """PAM refusal → IamAuthenticationError with context, causes, doctor hint, no token."""
    target = build(host=HOST, user="app")
    err = target.explain(
        pg_error('connection failed: FATAL:  PAM authentication failed for user "app"'),
        issued(target),
    )
    assert isinstance(err, IamAuthenticationError)
    assert isinstance(err, psycopg.OperationalError)
    assert (err.host, err.port, err.user, err.region, err.identity) == (
        HOST,
        5432,
        "app",
        "us-east-1",
        "AKIAEXAMPLE",
    )
    text = str(err)
    assert "rds-db:connect" in text and "rdsiamkit doctor" in text
    assert "deadbeef" not in text and "X-Amz" not in text and "deadbeef" not in repr(err.args)


def test_password_failure_points_at_rds_iam_membership() -> None:
    """scram refusal means the user is not in rds_iam: say so."""
    target = build(host=HOST, user="app")
    err = target.explain(
        pg_error('FATAL:  password authentication failed for user "app"'), issued(target)
    )
    assert isinstance(err, IamAuthenticationError)
    assert "not a member of rds_iam" in str(err)


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        ("SSL error: certificate verify failed", "untrusted server certificate"),
        ('server certificate for "x" does not match host name "y"', "hostname mismatch"),
        ("server does not support SSL, but SSL was required", "TLS unavailable"),
    ],
)
def test_tls_failures_are_named(message: str, needle: str) -> None:
    """Wrong CA, hostname mismatch and TLS-less servers each get a specific message."""
    target = build(host=HOST, user="app")
    err = target.explain(pg_error(message), issued(target))
    assert isinstance(err, TLSVerificationError)
    assert needle in str(err)


def test_other_failures_are_connect_errors() -> None:
    """Anything unrecognised is still a typed ConnectError with the server's text."""
    target = build(host=HOST, user="app")
    err = target.explain(pg_error("connection refused"), issued(target))
    assert type(err) is ConnectError and "connection refused" in str(err)


def test_auth_failure_detection() -> None:
    """Only credential refusals count as auth failures."""
    assert is_auth_failure(pg_error('PAM authentication failed for user "x"'))
    assert not is_auth_failure(pg_error("Connection refused"))


def test_retry_policy_retries_transient_errors_and_pam_refusals_only() -> None:
    """Retried: network trouble and PAM refusals (throttling); never TLS or scram refusals."""
    retry = RetryPolicy(max_attempts=3, retry_budget=5.0).retryable
    target = build(host=HOST, user="app")

    def raised(message: str) -> BaseException:
        cause = pg_error(message)
        err = target.explain(cause, issued(target))
        err.__cause__ = cause
        return err

    assert retry(raised("Connection refused"))
    assert retry(raised('PAM authentication failed for user "app"'))
    assert not retry(raised('password authentication failed for user "app"'))
    assert not retry(raised("certificate verify failed"))
    assert not retry(raised("something unexpected"))
    with pytest.raises(ConfigurationError):
        ConnectOptions(max_attempts=0)


def test_retry_policy_stops_at_the_attempt_and_time_bounds() -> None:
    """Another attempt only below max_attempts and inside retry_budget."""
    policy = RetryPolicy(max_attempts=3, retry_budget=5.0)
    target = build(host=HOST, user="app")
    cause = pg_error("Connection refused")
    err = target.explain(cause, issued(target))
    err.__cause__ = cause
    assert policy.again(err, 2, 4.9)
    assert not policy.again(err, 3, 0.0)
    assert not policy.again(err, 1, 5.0)


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_retry_waits_keep_a_floor_of_half_the_exponential_step(
    monkeypatch: pytest.MonkeyPatch, draw: float
) -> None:
    """The n-th wait is min(4, 0.5 * 2**(n-1)) s times (1 + draw) / 2: never back to back."""
    monkeypatch.setattr(_login.random, "uniform", lambda lo, hi: lo + draw * (hi - lo))
    wait = RetryPolicy(max_attempts=9, retry_budget=60.0).wait
    for attempt in range(1, 9):
        step = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert wait(attempt) == pytest.approx(step * (1 + draw) / 2), attempt


def test_malformed_conninfo_string_is_a_configuration_error() -> None:
    """A conninfo string libpq cannot parse is reported as such."""
    with pytest.raises(ConfigurationError, match="invalid conninfo"):
        build("host=x user='unterminated")


@pytest.mark.parametrize(
    "conninfo",
    ["postgresql://app:s3cr3t-PW@[::1/db", "postgresql://app:Hunter2%ZZsecret@host/db"],
)
def test_malformed_conninfo_never_echoes_its_password(conninfo: str) -> None:
    """libpq's parse error quotes the string; the kit's error and its chain do not."""
    with pytest.raises(ConfigurationError) as info:
        build(conninfo)
    assert "s3cr3t" not in str(info.value) and "Hunter2" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_proxy_endpoint_uses_the_amazon_root_cas() -> None:
    """A proxy hostname is verified against the Amazon Root CAs (ACM), instances against RDS's."""
    proxy = build(host="myproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com", user="app")
    cluster = build(host=HOST, user="app")
    from rdsiamkit.tls import amazon_root_cas_path

    assert proxy.params["sslrootcert"] == amazon_root_cas_path() != cluster.params["sslrootcert"]
    assert proxy.params["sslmode"] == "verify-full"


def test_a_regional_ca_file_that_fails_falls_back_to_the_full_bundle_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Verification failing with a region's CA file retries with the full bundle, loudly."""
    from rdsiamkit.connection import login
    from rdsiamkit.tls import full_bundle_path

    monkeypatch.setattr(_login, "_CA_FALLBACKS", {})
    spec = build(host=HOST, user="app")
    regional, full = spec.params["sslrootcert"], full_bundle_path(partition="aws")
    dialled: list[dict[str, str]] = []

    def open_(token: str, **ca: str) -> str:
        dialled.append(ca)
        if ca.get("sslrootcert") != full:
            raise pg_error("SSL error: certificate verify failed")
        return "connection"

    with caplog.at_level("WARNING", logger="rdsiamkit.connection"):
        assert login(spec, FakeProvider(), open_) == "connection"  # type: ignore[arg-type]
        assert login(spec, FakeProvider(), open_) == "connection"  # type: ignore[arg-type]
    assert dialled == [{}, {"sslrootcert": full}, {"sslrootcert": full}]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "us-east-1" in warning and regional in warning and full in warning


def test_a_full_bundle_that_fails_too_is_a_tls_error() -> None:
    """No fallback from a file that is not regional: the TLS error is raised at once."""
    from rdsiamkit.connection import login

    spec = build(host="db.internal.example", user="app")
    dialled: list[dict[str, str]] = []

    def open_(token: str, **ca: str) -> str:
        dialled.append(ca)
        raise pg_error("SSL error: certificate verify failed")

    with pytest.raises(TLSVerificationError, match="untrusted server certificate"):
        login(spec, FakeProvider(), open_)  # type: ignore[arg-type]
    assert dialled == [{}]


def static_provider() -> TokenProvider:
    """A provider that signs offline with fixed keys."""
    import boto3

    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLE000000001", aws_secret_access_key="s", region_name="us-east-1"
    )
    return TokenProvider(session=session)


@pytest.mark.skipif(sys.platform != "linux", reason="abstract Unix sockets exist on Linux only")
@pytest.mark.parametrize("via", ["host", "PGHOST"])
def test_abstract_socket_host_gets_no_connection_attempt(
    via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """host='@name' (libpq: an abstract Unix socket, no TLS) is refused before any I/O."""
    name = f"rdsiamkit-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    listener.settimeout(0.5)
    provider = static_provider()
    kwargs: dict[str, object] = {"user": "app", "connect_timeout": 2, "max_attempts": 1}
    if via == "host":
        kwargs["host"] = "@" + name
    else:
        monkeypatch.setenv("PGHOST", "@" + name)
    try:
        with pytest.raises(ConfigurationError, match="not a socket"):
            rdsiamkit.connect(region="us-east-1", token_provider=provider, **kwargs)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    assert provider.mint_count == 0


@pytest.mark.parametrize("entry", [rdsiamkit.connect, rdsiamkit.create_pool])
def test_a_refused_password_stays_in_no_frame_of_the_traceback(entry: Any) -> None:
    """password= is refused, and no kit frame along the traceback still holds it."""
    secret = f"hunter2-{uuid.uuid4().hex}"
    with pytest.raises(ConfigurationError, match="password was given") as info:
        entry(host=HOST, user="app", password=secret, dbname="app")
    frames = info.value.__traceback__
    shown: list[str] = []
    while frames is not None:
        if frames.tb_frame.f_code.co_filename != __file__:
            shown += [repr(v) for v in frames.tb_frame.f_locals.values()]
        frames = frames.tb_next
    assert shown and not any(secret in text for text in shown)


class FakeProvider:
    """Issues numbered tokens (the first from the cache) and records invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidated: list[str] = []

    def issue(self, host: str, port: int, user: str, *, region: str | None = None) -> IssuedToken:
        self.issued += 1
        key = TokenKey("AKIAEXAMPLE", host, port, user, region or "us-east-1")
        return IssuedToken(f"token-{self.issued}", key, from_cache=self.issued == 1)

    def invalidate(self, issued: IssuedToken) -> None:
        self.invalidated.append(issued.token)


def test_a_refused_cached_token_is_replaced_once_by_the_flow() -> None:
    """Pools' flow: the refused cached token is dropped and a fresh one opens the connection."""
    from rdsiamkit.connection import login

    spec = build(host=HOST, user="app")
    provider = FakeProvider()
    dialled: list[str] = []

    def open_(token: str) -> str:
        dialled.append(token)
        if token == "token-1":
            raise pg_error('PAM authentication failed for user "app"')
        return "connection"

    assert login(spec, provider, open_) == "connection"  # type: ignore[arg-type]
    assert dialled == ["token-1", "token-2"] and provider.invalidated == ["token-1"]


def test_the_flow_pauses_between_attempts_and_stops_at_max_attempts() -> None:
    """connect()'s flow: Issue, Dial, Pause... then the explained error of the last attempt."""
    spec = build(host=HOST, user="app")
    provider = FakeProvider()
    flow = _login.login_flow(
        spec, provider, retry=RetryPolicy(max_attempts=3, retry_budget=60.0), replace_cached=False
    )  # type: ignore[arg-type]
    kinds: list[str] = []

    def run() -> None:
        step = next(flow)
        while True:
            kinds.append(type(step).__name__)
            if isinstance(step, _login.Issue):
                step = flow.send(spec.issue(provider))  # type: ignore[arg-type]
            elif isinstance(step, _login.Dial):
                step = flow.throw(pg_error("Connection refused"))
            else:
                assert 0.125 <= step.seconds <= 1.0
                step = flow.send(None)

    with pytest.raises(ConnectError, match="Connection refused") as info:
        run()
    assert kinds == ["Issue", "Dial", "Pause", "Issue", "Dial", "Pause", "Issue", "Dial"]
    assert type(info.value) is ConnectError and provider.invalidated == []


async def test_the_async_driver_runs_the_same_flow() -> None:
    """drive_async opens with awaitables and replaces a refused cached token like drive."""
    from rdsiamkit.connection import login_async

    spec = build(host=HOST, user="app")
    provider = FakeProvider()

    async def open_(token: str) -> str:
        if token == "token-1":
            raise pg_error('PAM authentication failed for user "app"')
        return token

    class AsyncFake:
        async def issue(self, *args: Any, **kwargs: Any) -> IssuedToken:
            return provider.issue(*args, **kwargs)

        def invalidate(self, issued: IssuedToken) -> None:
            provider.invalidate(issued)

    assert await login_async(spec, AsyncFake(), open_) == "token-2"  # type: ignore[arg-type]
    assert provider.invalidated == ["token-1"]


def test_target_is_a_deprecated_alias_of_connect_spec() -> None:
    """rdsiamkit.connection.Target still works, with a DeprecationWarning naming ConnectSpec."""
    import rdsiamkit.connection as connection

    with pytest.warns(DeprecationWarning, match="ConnectSpec"):
        assert connection.Target is ConnectSpec
