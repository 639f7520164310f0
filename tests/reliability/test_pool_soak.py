"""Soak: sync and async IAM pools under load while tokens expire, the server restarts and
the signing credentials rotate.

Each soak runs ``WORKERS`` workers for ``DURATION`` seconds (and at most
``MAX_QUERIES`` queries) against an emulator of its own, with tokens the server
accepts for only 3 s (the provider reuses one for 1.5 s, the pool recycles
connections after ~2 s).  A third of the way in the server restarts; two thirds
in, new credentials are added, the session switches to them and the old key is
revoked.

The documented retry: a query whose connection the restart killed fails with
``psycopg.OperationalError``; the worker waits ``RETRY_PAUSE`` and retries it
once, as an application would.  The pause lets the fast shutdown finish
terminating every old backend (otherwise the retry can check out a connection
whose backend is about to be terminated too); the pool checks connections on
checkout (``check=``), so the retry gets one opened after the restart.  Goal: no
query fails after that one retry, no connection leaks.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from reliability_support import (
    SoakCounters,
    kit_options,
    outcomes,
    save_figures,
    server_sessions,
    wait_for_sessions,
)

import rdsiamkit
from rdsiamkit.testing import RdsIamEmulator
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

WORKERS = 8
DURATION = 20.0
MAX_QUERIES = 400_000
TOKEN_AGE = 3.0
REUSE_WINDOW = 1.5
MAX_LIFETIME = 2.0
RETRY_PAUSE = 0.5
POOL = {"min_size": 4, "max_size": WORKERS, "timeout": 15.0, "max_lifetime": MAX_LIFETIME}

pytestmark = pytest.mark.slow


@pytest.fixture
def soak_emulator(rds_emulator_session: RdsIamEmulator) -> Iterator[RdsIamEmulator]:
    """An emulator of the test's own (it restarts), with 3-second tokens.

    Depends on the session emulator only so that a machine that cannot run one
    fails (CI) or skips (elsewhere) the same way.
    """
    with RdsIamEmulator(max_token_age=TOKEN_AGE) as emu:
        yield emu


def rotate(emu: RdsIamEmulator, session: Any, old_key: str) -> str:
    """Add new credentials, switch the session to them, revoke the old key."""
    new = emu.add_credentials()
    session._session.set_credentials(new.access_key_id, new.secret_access_key, new.session_token)
    emu.revoke_credentials(old_key)
    return new.access_key_id


def summarise(
    emu: RdsIamEmulator,
    user: str,
    counters: SoakCounters,
    stats: dict[str, int],
    mints: int,
    elapsed: float,
    keys: tuple[str, str],
) -> dict[str, Any]:
    """The soak's figures: queries, retries, failures, logins by outcome and signing key."""
    events = [e for e in emu.auth_events() if e.user == user]
    return {
        "seconds": round(elapsed, 1),
        "workers": WORKERS,
        "queries": counters.queries,
        "queries_per_second": round(counters.queries / elapsed),
        "retried_once": counters.retried,
        "retry_reasons": dict(counters.retry_reasons),
        "failed": len(counters.failures),
        "tokens_minted": mints,
        "connections_opened": stats.get("connections_num", 0),
        "connections_lost": stats.get("connections_lost", 0),
        "connection_errors": stats.get("connections_errors", 0),
        "logins": outcomes(emu, user),
        "ok_logins_old_key": sum(1 for e in events if e.ok and e.access_key_id == keys[0]),
        "ok_logins_new_key": sum(1 for e in events if e.ok and e.access_key_id == keys[1]),
    }


def check(figures: dict[str, Any], failures: list[str]) -> None:
    """The soak's verdict; ``figures`` were saved before, so a failure still reports them."""
    assert failures == [], f"{len(failures)} queries failed after one retry: {failures[:5]}"
    assert figures["queries"] > 1000
    # Recycling every ~2 s for ~20 s needs new connections all along, and after the
    # rotation only the new key may log in.
    assert figures["connections_opened"] > 2 * WORKERS
    assert figures["ok_logins_old_key"] > 0 and figures["ok_logins_new_key"] > 0
    # One token per reuse window, not one per connection (plus a few for the rotation).
    assert figures["tokens_minted"] <= DURATION / REUSE_WINDOW + 8
    assert figures["tokens_minted"] < figures["connections_opened"]


def test_sync_pool_survives_expiry_restart_and_rotation(soak_emulator: RdsIamEmulator) -> None:
    """8 threads on a create_pool() pool for 20 s: no failed query, no leaked connection."""
    emu = soak_emulator
    user = emu.create_user(f"soak_{uuid.uuid4().hex[:6]}", iam=True)
    old = emu.add_credentials()
    session = old.boto3_session(region=emu.region)
    provider = TokenProvider(session=session, reuse_window=REUSE_WINDOW)
    counters = SoakCounters()
    started = time.monotonic()
    stop_at = started + DURATION

    with rdsiamkit.create_pool(
        **kit_options(emu, user),
        token_provider=provider,
        check=ConnectionPool.check_connection,
        **POOL,
    ) as pool:
        pool.wait(timeout=15)

        def query() -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()

        def worker() -> None:
            while time.monotonic() < stop_at and counters.queries < MAX_QUERIES:
                try:
                    query()
                except psycopg.OperationalError as err:
                    counters.retry(err)
                    time.sleep(RETRY_PAUSE)
                    try:
                        query()
                    except psycopg.Error as again:
                        counters.fail(again)
                        continue
                counters.ok()

        threads = [threading.Thread(target=worker, name=f"soak-{i}") for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        time.sleep(DURATION / 3)
        emu.restart()
        time.sleep(DURATION / 3)
        new_key = rotate(emu, session, old.access_key_id)
        for thread in threads:
            thread.join(timeout=DURATION + 30)
        assert not any(t.is_alive() for t in threads)
        elapsed = time.monotonic() - started
        stats = pool.get_stats()
        pool.check()  # drop what died, then the pool must own every server session
        idle = pool.get_stats()
        assert wait_for_sessions(emu, user, idle["pool_size"], timeout=5) == idle["pool_size"]
    figures = summarise(
        emu, user, counters, stats, provider.mint_count, elapsed, (old.access_key_id, new_key)
    )
    figures["server_sessions_after_close"] = wait_for_sessions(emu, user, 0, timeout=5)
    save_figures("soak_sync", figures)
    check(figures, counters.failures)
    assert figures["server_sessions_after_close"] == 0


async def test_async_pool_survives_expiry_restart_and_rotation(
    soak_emulator: RdsIamEmulator,
) -> None:
    """8 tasks on a create_async_pool() pool for 20 s: no failed query, no leaked connection."""
    emu = soak_emulator
    user = emu.create_user(f"asoak_{uuid.uuid4().hex[:6]}", iam=True)
    old = emu.add_credentials()
    session = old.boto3_session(region=emu.region)
    provider = AsyncTokenProvider(TokenProvider(session=session, reuse_window=REUSE_WINDOW))
    counters = SoakCounters()
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop_at = started + DURATION

    async with rdsiamkit.create_async_pool(
        **kit_options(emu, user),
        token_provider=provider,
        check=AsyncConnectionPool.check_connection,
        **POOL,
    ) as pool:
        await pool.wait(timeout=15)

        async def query() -> None:
            async with pool.connection() as conn:
                await (await conn.execute("SELECT 1")).fetchone()

        async def worker() -> None:
            while loop.time() < stop_at and counters.queries < MAX_QUERIES:
                try:
                    await query()
                except psycopg.OperationalError as err:
                    counters.retry(err)
                    await asyncio.sleep(RETRY_PAUSE)
                    try:
                        await query()
                    except psycopg.Error as again:
                        counters.fail(again)
                        continue
                counters.ok()

        async def events() -> str:
            await asyncio.sleep(DURATION / 3)
            await asyncio.to_thread(emu.restart)
            await asyncio.sleep(DURATION / 3)
            return await asyncio.to_thread(rotate, emu, session, old.access_key_id)

        *_, new_key = await asyncio.gather(*(worker() for _ in range(WORKERS)), events())
        elapsed = loop.time() - started
        stats = pool.get_stats()
        await pool.check()
        idle = pool.get_stats()
        seen = await asyncio.to_thread(wait_for_sessions, emu, user, idle["pool_size"], 5)
        assert seen == idle["pool_size"]
    figures = summarise(
        emu, user, counters, stats, provider.mint_count, elapsed, (old.access_key_id, new_key)
    )
    figures["server_sessions_after_close"] = await asyncio.to_thread(
        wait_for_sessions, emu, user, 0, 5
    )
    save_figures("soak_async", figures)
    check(figures, counters.failures)
    assert figures["server_sessions_after_close"] == 0
    assert server_sessions(emu, user) == 0
