"""rdsiamkit.asyncpg connections, pools and the SQLAlchemy asyncpg engine on the emulator."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import asyncpg
import pytest

import rdsiamkit
import rdsiamkit.asyncpg as kit_asyncpg
from rdsiamkit.sqlalchemy import create_async_engine
from rdsiamkit.testing import AuthFailureReason, FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

OTHER_HOST = "other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"


def options(emu: RdsIamEmulator, user: str) -> dict[str, Any]:
    """Libpq keywords to reach the emulator by endpoint name, dialling 127.0.0.1."""
    info = dict(emu.conninfo(user))
    info.pop("sslmode", None)
    return info


async def test_connect_logs_in_over_verify_full(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """connect() returns an asyncpg.Connection logged in with a token over TLS."""
    conn = await kit_asyncpg.connect(**options(rds_emulator, iam_user), token_provider=provider)
    try:
        assert isinstance(conn, asyncpg.Connection)
        row = await conn.fetchrow(
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        assert tuple(row) == (iam_user, True)
    finally:
        await conn.close()
    assert rds_emulator.auth_events()[-1].ok


def test_ssl_context_is_verify_full(rds_emulator: RdsIamEmulator) -> None:
    """The context asyncpg gets requires a certificate and checks the host name."""
    context = kit_asyncpg.ssl_context("db.example", "verify-full", str(rds_emulator.ca_file))
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname


async def test_hostname_mismatch_fails_even_when_dialling_an_ip(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """Dialling hostaddr 127.0.0.1, the certificate is still checked against host=."""
    rds_emulator.clear_auth_events()
    opts = options(rds_emulator, iam_user) | {"host": OTHER_HOST}
    with pytest.raises(rdsiamkit.TLSVerificationError, match="hostname mismatch"):
        await kit_asyncpg.connect(**opts, token_provider=provider)
    assert rds_emulator.auth_events() == []  # no token ever reached the server


async def test_untrusted_ca_fails(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """A CA that did not sign the server certificate is a TLS verification error."""
    opts = options(rds_emulator, iam_user) | {"sslrootcert": str(rds_emulator.untrusted_ca_file)}
    with pytest.raises(rdsiamkit.TLSVerificationError, match="untrusted server certificate"):
        await kit_asyncpg.connect(**opts, token_provider=provider)


async def test_weaker_tls_refused_unless_opted_out(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """sslmode=require is refused; with insecure_skip_tls_verify it connects, unverified."""
    opts = options(rds_emulator, iam_user) | {"sslmode": "require", "host": OTHER_HOST}
    with pytest.raises(rdsiamkit.InsecureTLSError):
        await kit_asyncpg.connect(**opts, token_provider=provider)
    with pytest.raises(rdsiamkit.ConfigurationError, match="ssl= is set by rdsiamkit"):
        await kit_asyncpg.connect(**options(rds_emulator, iam_user), ssl=False)
    conn = await kit_asyncpg.connect(
        **opts,
        token_provider=provider,
        insecure_skip_tls_verify=True,
        token_host=rds_emulator.endpoint,
    )
    await conn.close()


async def test_password_user_is_explained(
    rds_emulator: RdsIamEmulator, provider: TokenProvider
) -> None:
    """asyncpg's InvalidPasswordError becomes the kit's error naming rds_iam."""
    name = f"pw_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(name, password="pw-" + uuid.uuid4().hex)
    try:
        with pytest.raises(rdsiamkit.IamAuthenticationError, match="not a member of rds_iam"):
            await kit_asyncpg.connect(**options(rds_emulator, name), token_provider=provider)
    finally:
        rds_emulator.drop_user(name)


async def test_refused_cached_token_is_replaced_once(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """A cached token the server now calls expired is replaced by one fresh token."""
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=600.0
    )
    await (
        await kit_asyncpg.connect(**options(rds_emulator, iam_user), token_provider=provider)
    ).close()
    await asyncio.sleep(3.2)
    rds_emulator.max_token_age = 3.0
    rds_emulator.clear_auth_events()
    conn = await kit_asyncpg.connect(**options(rds_emulator, iam_user), token_provider=provider)
    assert await conn.fetchval("SELECT current_user") == iam_user
    await conn.close()
    assert [e.outcome for e in rds_emulator.auth_events()] == [AuthFailureReason.EXPIRED, None]
    assert provider.mint_count == 2


async def test_64_tasks_cold_cache_mint_once(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """64 tasks connecting at once with a cold cache cause exactly one mint."""
    aprovider = AsyncTokenProvider(provider)

    async def one() -> str:
        conn = await kit_asyncpg.connect(
            **options(rds_emulator, iam_user), token_provider=aprovider
        )
        try:
            return str(await conn.fetchval("SELECT current_user"))
        finally:
            await conn.close()

    assert await asyncio.gather(*(one() for _ in range(64))) == [iam_user] * 64
    assert provider.mint_count == 1


async def test_pool_survives_many_token_expiries(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """Tokens valid 5 s on the server, new pool connections every few queries: 0 failures."""
    rds_emulator.max_token_age = 5.0
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5
    )
    rds_emulator.clear_auth_events()
    failures = queries = 0
    async with kit_asyncpg.create_pool(
        **options(rds_emulator, iam_user),
        token_provider=provider,
        min_size=2,
        max_size=2,
        max_queries=10,
        max_inactive_connection_lifetime=1.0,
    ) as pool:
        assert isinstance(pool, asyncpg.Pool)
        deadline = time.monotonic() + 9.0
        while time.monotonic() < deadline:
            try:
                assert await pool.fetchval("SELECT current_user") == iam_user
                queries += 1
            except (asyncpg.PostgresError, rdsiamkit.RdsIamError):
                failures += 1
            await asyncio.sleep(0.02)
    events = rds_emulator.auth_events()
    assert failures == 0 and queries > 100
    assert provider.mint_count >= 4
    assert len(events) >= 20 and all(e.ok for e in events)


async def test_no_token_in_errors_reprs_or_logs(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    creds: FakeCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A denied login's error chain, its attributes and the pool's repr never show the token."""
    provider = TokenProvider(session=creds.boto3_session(region=rds_emulator.region))
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with (
            kit_asyncpg.create_pool(
                **options(rds_emulator, iam_user), token_provider=provider, min_size=1, max_size=1
            ) as pool,
            pool.acquire() as conn,
        ):
            texts += [repr(pool), repr(conn)]
        rds_emulator.set_policy(creds.access_key_id, [])
        provider.cache.clear()
        with pytest.raises(rdsiamkit.IamAuthenticationError) as info:
            await kit_asyncpg.connect(
                **options(rds_emulator, iam_user), token_provider=provider, max_attempts=2
            )
    chained: BaseException | None = info.value
    while chained is not None:
        texts += [str(chained), repr(chained), repr(vars(chained)), repr(chained.args)]
        tb = chained.__traceback__
        while tb is not None:  # frames left on the traceback hold no token
            texts += [repr(v) for v in tb.tb_frame.f_locals.values()]
            tb = tb.tb_next
        chained = chained.__cause__ or chained.__context__
    texts += [r.getMessage() for r in caplog.records]
    assert "PAM authentication failed" in str(info.value)
    assert not [t for t in texts if "X-Amz-Signature" in t]


async def test_sqlalchemy_asyncpg_engine_recycles(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """create_async_engine('postgresql+asyncpg://...') logs in through the kit across re-mints."""
    rds_emulator.max_token_age = 5.0
    sync = TokenProvider(session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5)
    query = f"hostaddr={rds_emulator.hostaddr}&sslrootcert={rds_emulator.ca_file}"
    engine = create_async_engine(
        f"postgresql+asyncpg://{iam_user}@{rds_emulator.endpoint}:{rds_emulator.port}"
        f"/postgres?{query}",
        token_provider=AsyncTokenProvider(sync),
        pool_size=2,
        pool_recycle=1,
    )
    users = set()
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            result = await conn.exec_driver_sql("SELECT current_user")
            users.add(result.scalar())
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, asyncpg.Connection)
    await engine.dispose()
    assert users == {iam_user}
    assert sync.mint_count >= 2
    assert "X-Amz" not in str(engine.url)
    assert all(e.ok for e in rds_emulator.auth_events())
