"""rdsiamkit.connect / connect_async / pools against the RDS IAM emulator."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

import rdsiamkit
from rdsiamkit.testing import AuthFailureReason, FakeCredentials, RdsIamEmulator, TcpTunnel
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider


def options(emu: RdsIamEmulator, user: str) -> dict[str, Any]:
    """Libpq keywords to reach the emulator by endpoint name, dialling 127.0.0.1."""
    info = dict(emu.conninfo(user))
    info.pop("sslmode", None)  # the kit sets verify-full itself
    return info


def test_connect_logs_in_as_iam_user(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """connect() logs in with a token over verify-full, by endpoint name and hostaddr."""
    with rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider) as conn:
        row = conn.execute(
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
        assert row == (iam_user, True)
        assert conn.info.get_parameters()["sslmode"] == "verify-full"
        assert "X-Amz-Signature=" in (conn.info.password or "")  # the token was the password
        assert "X-Amz" not in conn.info.dsn
    assert rds_emulator.auth_events()[-1].ok


async def test_connect_async_logs_in_as_iam_user(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """connect_async() logs in with a token over verify-full."""
    conn = await rdsiamkit.connect_async(
        **options(rds_emulator, iam_user), token_provider=AsyncTokenProvider(provider)
    )
    async with conn:
        cur = await conn.execute("SELECT current_user")
        assert await cur.fetchone() == (iam_user,)


def test_sync_pool_serves_iam_connections(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """create_pool() returns a real ConnectionPool whose connections are IAM logins."""
    with rdsiamkit.create_pool(
        **options(rds_emulator, iam_user), token_provider=provider, min_size=2, max_size=4
    ) as pool:
        assert isinstance(pool, __import__("psycopg_pool").ConnectionPool)
        pool.wait(timeout=10)
        for _ in range(5):
            with pool.connection() as conn:
                assert conn.execute("SELECT current_user").fetchone() == (iam_user,)
        assert "X-Amz" not in pool.conninfo and "password" not in pool.conninfo
    assert provider.mint_count == 1


async def test_async_pool_serves_iam_connections(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """create_async_pool() returns an AsyncConnectionPool of IAM logins."""
    async with rdsiamkit.create_async_pool(
        **options(rds_emulator, iam_user), token_provider=provider, min_size=2, max_size=4
    ) as pool:
        await pool.wait(timeout=10)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT current_user")
            assert await cur.fetchone() == (iam_user,)


def test_tunnel_needs_and_uses_token_port(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """Dialling a tunnel works when the token is signed for the real port, not the tunnel's."""
    with TcpTunnel(rds_emulator.hostaddr, rds_emulator.port) as tunnel:
        opts = options(rds_emulator, iam_user) | {"port": tunnel.port}
        with pytest.raises(rdsiamkit.IamAuthenticationError, match="token_host=/token_port="):
            rdsiamkit.connect(**opts, token_provider=provider)
        assert rds_emulator.auth_events()[-1].outcome is AuthFailureReason.ENDPOINT_MISMATCH
        with rdsiamkit.connect(
            **opts, token_provider=provider, token_port=rds_emulator.port
        ) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (iam_user,)


def test_pool_survives_many_token_expiries(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """With 5 s server max age and 1.5 s reuse, a recycling pool never fails a query."""
    # A reused token can look 2.5 s old (1.5 s reuse + whole-second X-Amz-Date): 5 s leaves
    # a loaded machine 2.5 s per login.
    rds_emulator.max_token_age = 5.0
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5
    )
    rds_emulator.clear_auth_events()
    failures = queries = 0
    with rdsiamkit.create_pool(
        **options(rds_emulator, iam_user),
        token_provider=provider,
        min_size=2,
        max_size=2,
        max_lifetime=1.0,
        max_idle=1.0,
    ) as pool:
        deadline = time.monotonic() + 9.0
        while time.monotonic() < deadline:
            try:
                with pool.connection(timeout=5) as conn:
                    conn.execute("SELECT 1")
                queries += 1
            except psycopg.Error:
                failures += 1
            time.sleep(0.02)
    events = rds_emulator.auth_events()
    assert failures == 0 and queries > 100
    assert provider.mint_count >= 4  # re-minted as tokens aged past the reuse window
    assert len(events) >= 6 and all(e.ok for e in events)


def test_refused_cached_token_is_replaced_once(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """A cached token the server now calls expired is discarded and a fresh one works."""
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=600.0
    )
    rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider).close()
    time.sleep(3.2)
    # X-Amz-Date has whole seconds: a fresh token can look up to 1 s old, so allowing 3 s
    # leaves its login 2 s even on a loaded machine.
    rds_emulator.max_token_age = 3.0
    rds_emulator.clear_auth_events()
    with rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (iam_user,)
    outcomes = [e.outcome for e in rds_emulator.auth_events()]
    assert outcomes == [AuthFailureReason.EXPIRED, None]
    assert provider.mint_count == 2


def test_rotated_credentials_are_picked_up_after_one_failure(
    rds_emulator: RdsIamEmulator, iam_user: str
) -> None:
    """Credentials rotated under a session: the stale cached token fails once, then B signs."""
    first, second = rds_emulator.add_credentials(), rds_emulator.add_credentials()
    session = first.boto3_session(region=rds_emulator.region)
    provider = TokenProvider(session=session)
    rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider).close()
    rds_emulator.revoke_credentials(first.access_key_id)
    session._session.set_credentials(second.access_key_id, second.secret_access_key)
    rds_emulator.clear_auth_events()
    with rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (iam_user,)
    events = rds_emulator.auth_events()
    assert [e.outcome for e in events] == [AuthFailureReason.UNKNOWN_KEY, None]
    assert events[-1].access_key_id == second.access_key_id


def test_64_threads_cold_cache_mint_once(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """64 threads connecting at the same moment with a cold cache cause exactly one mint."""
    barrier = threading.Barrier(64)
    users: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            with rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider) as c:
                users.append(c.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert users == [iam_user] * 64
    assert provider.mint_count == 1


async def test_64_tasks_cold_cache_mint_once(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """64 asyncio tasks connecting at once with a cold cache cause exactly one mint."""
    aprovider = AsyncTokenProvider(provider)

    async def one() -> str:
        conn = await rdsiamkit.connect_async(
            **options(rds_emulator, iam_user), token_provider=aprovider
        )
        async with conn:
            cur = await conn.execute("SELECT current_user")
            row = await cur.fetchone()
            assert row is not None
            return str(row[0])

    assert await asyncio.gather(*(one() for _ in range(64))) == [iam_user] * 64
    assert provider.mint_count == 1


def test_wrong_ca_is_a_tls_verification_error(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """A CA that did not sign the server certificate gives a specific TLS error."""
    opts = options(rds_emulator, iam_user) | {"sslrootcert": str(rds_emulator.untrusted_ca_file)}
    with pytest.raises(rdsiamkit.TLSVerificationError, match="untrusted server certificate"):
        rdsiamkit.connect(**opts, token_provider=provider)


def test_hostname_mismatch_is_a_tls_verification_error(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """Dialling the server under a name not in its certificate gives a specific TLS error."""
    opts = options(rds_emulator, iam_user) | {
        "host": "other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
    }
    with pytest.raises(rdsiamkit.TLSVerificationError, match="hostname mismatch"):
        rdsiamkit.connect(**opts, token_provider=provider)


def test_sslmode_downgrade_is_refused_before_connecting(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """sslmode=require is refused without dialling; the server sees no attempt."""
    rds_emulator.clear_auth_events()
    with pytest.raises(rdsiamkit.InsecureTLSError):
        rdsiamkit.connect(
            **options(rds_emulator, iam_user), sslmode="require", token_provider=provider
        )
    assert rds_emulator.auth_events() == []


def test_token_for_password_user_explains_rds_iam(
    rds_emulator: RdsIamEmulator, provider: TokenProvider
) -> None:
    """A user outside rds_iam refuses the token as a password; the error says why."""
    name = f"pw_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(name, password="pw-" + uuid.uuid4().hex)
    try:
        with pytest.raises(rdsiamkit.IamAuthenticationError, match="not a member of rds_iam"):
            rdsiamkit.connect(**options(rds_emulator, name), token_provider=provider)
    finally:
        rds_emulator.drop_user(name)


def test_policy_denial_is_not_retried_forever(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials, provider: TokenProvider
) -> None:
    """A denied identity costs exactly max_attempts logins, then fails with causes listed."""
    rds_emulator.set_policy(creds.access_key_id, [rds_emulator.db_user_arn("someone_else")])
    rds_emulator.clear_auth_events()
    with pytest.raises(rdsiamkit.IamAuthenticationError) as info:
        rdsiamkit.connect(
            **options(rds_emulator, iam_user), token_provider=provider, max_attempts=2
        )
    assert len(rds_emulator.auth_events()) == 2
    assert rds_emulator.auth_events()[0].outcome is AuthFailureReason.NOT_AUTHORIZED
    assert info.value.identity == creds.access_key_id
    assert "rds-db:connect" in str(info.value)


def test_no_secret_reaches_logs_errors_or_reprs(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    creds: FakeCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At DEBUG, across connect, pool, retry and failure, no token leaks (error attributes too)."""
    provider = TokenProvider(session=creds.boto3_session(region=rds_emulator.region))
    seen_tokens: list[str] = []
    original = provider.issue

    def spy(*args: Any, **kwargs: Any) -> Any:
        issued = original(*args, **kwargs)
        seen_tokens.append(issued.token)
        return issued

    provider.issue = spy  # type: ignore[method-assign]
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider).close()
        with rdsiamkit.create_pool(
            **options(rds_emulator, iam_user), token_provider=provider, min_size=1
        ) as pool:
            pool.wait(timeout=10)
            texts.append(repr(pool) + pool.conninfo)
        rds_emulator.max_token_age = 0.5
        time.sleep(1.0)
        rds_emulator.set_policy(creds.access_key_id, [])
        with pytest.raises(rdsiamkit.IamAuthenticationError) as info:
            rdsiamkit.connect(**options(rds_emulator, iam_user), token_provider=provider)
    err = info.value
    texts += [str(err), repr(err), repr(err.args), str(err.__cause__)]
    chained: BaseException | None = err
    while chained is not None:  # attributes too: psycopg keeps the attempt's PGconn
        texts += [repr(vars(chained)), repr(getattr(chained, "pgconn", None))]
        frames = chained.__traceback__
        while frames is not None:  # and the kit's locals, which error reporters capture
            if frames.tb_frame.f_code.co_filename != __file__:  # this test keeps tokens
                texts += [repr(v) for v in frames.tb_frame.f_locals.values()]
            frames = frames.tb_next
        chained = chained.__cause__ or chained.__context__
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    texts.append(repr(provider))
    secrets = {t.split("X-Amz-Signature=")[1] for t in seen_tokens} | {creds.secret_access_key}
    assert len(seen_tokens) >= 2
    blob = "\n".join(texts)
    assert "X-Amz-Signature" not in blob
    for secret in secrets:
        assert secret not in blob
