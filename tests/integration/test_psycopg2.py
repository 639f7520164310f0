"""rdsiamkit.psycopg2 connections, pools, the SQLAlchemy psycopg2 engine, one cache for all."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg2
import pytest

import rdsiamkit
import rdsiamkit.asyncpg as kit_asyncpg
import rdsiamkit.psycopg2 as kit_psycopg2
from rdsiamkit.sqlalchemy import create_engine
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider


def options(emu: RdsIamEmulator, user: str) -> dict[str, Any]:
    """Libpq keywords to reach the emulator by endpoint name, dialling 127.0.0.1."""
    info = dict(emu.conninfo(user))
    info.pop("sslmode", None)
    return info


def current_user(conn: Any) -> str:
    """The session user of a psycopg2 connection."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        return str(cur.fetchone()[0])


def test_connect_logs_in_over_verify_full(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """connect() returns a psycopg2 connection over verify-full; its dsn hides the token."""
    conn = kit_psycopg2.connect(**options(rds_emulator, iam_user), token_provider=provider)
    try:
        assert isinstance(conn, psycopg2.extensions.connection)
        assert current_user(conn) == iam_user
        assert conn.get_dsn_parameters()["sslmode"] == "verify-full"
        assert "X-Amz" not in conn.dsn
    finally:
        conn.close()


def test_dsn_string_and_hostname_mismatch(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """A conninfo string works; a host name not in the certificate is a TLS error."""
    dsn = " ".join(f"{k}={v}" for k, v in options(rds_emulator, iam_user).items())
    conn = kit_psycopg2.connect(dsn, token_provider=provider)
    assert current_user(conn) == iam_user
    conn.close()
    with pytest.raises(rdsiamkit.TLSVerificationError, match="hostname mismatch"):
        kit_psycopg2.connect(
            dsn,
            host="other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
            token_provider=provider,
        )
    with pytest.raises(rdsiamkit.InsecureTLSError):
        kit_psycopg2.connect(dsn, sslmode="require", token_provider=provider)


def test_denied_login_is_the_kits_error_without_the_token(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials, provider: TokenProvider
) -> None:
    """A policy denial is an IamAuthenticationError; nothing along its chain holds the token."""
    rds_emulator.set_policy(creds.access_key_id, [])
    with pytest.raises(rdsiamkit.IamAuthenticationError, match="rds-db:connect") as info:
        kit_psycopg2.connect(
            **options(rds_emulator, iam_user), token_provider=provider, max_attempts=1
        )
    texts: list[str] = []
    chained: BaseException | None = info.value
    while chained is not None:
        texts += [str(chained), repr(chained), repr(vars(chained))]
        tb = chained.__traceback__
        while tb is not None:
            texts += [repr(v) for v in tb.tb_frame.f_locals.values()]
            tb = tb.tb_next
        chained = chained.__cause__ or chained.__context__
    assert not [t for t in texts if "X-Amz-Signature" in t]


def test_threaded_pool_through_many_token_expiries(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """A ThreadedConnectionPool replacing connections as tokens expire: 0 failures."""
    rds_emulator.max_token_age = 5.0
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5
    )
    rds_emulator.clear_auth_events()
    pool = kit_psycopg2.ThreadedConnectionPool(
        1, 2, **options(rds_emulator, iam_user), token_provider=provider
    )
    failures = queries = 0
    try:
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            try:
                conn = pool.getconn()
                assert current_user(conn) == iam_user
                queries += 1
                pool.putconn(conn, close=queries % 5 == 0)  # a new login every 5 queries
            except (psycopg2.Error, rdsiamkit.RdsIamError):
                failures += 1
            time.sleep(0.02)
    finally:
        pool.closeall()
    events = rds_emulator.auth_events()
    assert failures == 0 and queries > 100
    assert provider.mint_count >= 4
    assert len(events) >= 20 and all(e.ok for e in events)


def test_64_threads_cold_cache_mint_once(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """64 threads connecting at once with a cold cache cause exactly one mint."""
    barrier = threading.Barrier(64)
    users: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            conn = kit_psycopg2.connect(**options(rds_emulator, iam_user), token_provider=provider)
            users.append(current_user(conn))
            conn.close()
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


def test_sqlalchemy_psycopg2_engine_and_plugin(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """create_engine('postgresql+psycopg2://...') and ?plugin=rdsiamkit log in through the kit."""
    import sqlalchemy

    query = f"hostaddr={rds_emulator.hostaddr}&sslrootcert={rds_emulator.ca_file}"
    url = f"postgresql+psycopg2://{iam_user}@{rds_emulator.endpoint}:{rds_emulator.port}/postgres"
    engine = create_engine(f"{url}?{query}", token_provider=provider, pool_pre_ping=True)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == iam_user
        assert isinstance(conn.connection.dbapi_connection, psycopg2.extensions.connection)
    engine.dispose()
    assert "X-Amz" not in repr(engine)
    plugin = sqlalchemy.create_engine(
        f"{url}?{query}&plugin=rdsiamkit", connect_args={}, pool_pre_ping=True
    )
    assert "region" not in str(plugin.url)
    plugin.dispose()


def test_one_cache_across_drivers(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """psycopg 3, psycopg2 and asyncpg logins from one session share one token: one mint."""
    session = creds.boto3_session(region=rds_emulator.region)
    opts = options(rds_emulator, iam_user)
    with rdsiamkit.connect(**opts, session=session) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (iam_user,)
    pg2 = kit_psycopg2.connect(**opts, session=session)
    assert current_user(pg2) == iam_user
    pg2.close()

    async def via_asyncpg() -> str:
        conn = await kit_asyncpg.connect(**opts, session=session)
        try:
            return str(await conn.fetchval("SELECT current_user"))
        finally:
            await conn.close()

    assert asyncio.run(via_asyncpg()) == iam_user
    from rdsiamkit._options import default_provider

    assert default_provider(session=session).mint_count == 1
