"""asyncpg and psycopg2 through the kit: connect overhead and tokens minted per 1,000 connects.

Per driver, against the local RDS IAM emulator: the kit's connect (warm token cache)
vs the same driver given a pre-minted token, and sqlalchemy-rdsiam's DBAPI connect
(it signs a token on every connect, with a new boto3 client).  Prints a table;
nothing is asserted.

    .venv/bin/python bench/bench_drivers.py [--connects 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg2

import rdsiamkit.asyncpg as kit_asyncpg
import rdsiamkit.psycopg2 as kit_psycopg2
from rdsiamkit.testing import RdsIamEmulator
from rdsiamkit.tokens import TokenProvider


def timed(fn: Callable[[], Any], n: int) -> float:
    """Median milliseconds of ``fn()`` (which connects and closes) over ``n`` runs."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def timed_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """The asyncio twin of :func:`timed`."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def rdsiam_mints(counter: list[int]) -> None:
    """Count sqlalchemy-rdsiam's token signings (it calls generate_db_auth_token per connect)."""
    import sqlalchemy_rdsiam.build as build

    original = build.rds_client  # cached per region: wrap each client once

    def counting(region: str) -> Any:
        client = original(region)
        if getattr(client, "_bench_counted", False):
            return client
        client._bench_counted = True
        sign = client.generate_db_auth_token

        def generate(**kwargs: Any) -> str:
            counter[0] += 1
            return str(sign(**kwargs))

        client.generate_db_auth_token = generate
        return client

    build.rds_client = counting


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=200)
    n = parser.parse_args().connects
    with RdsIamEmulator() as emu:
        user = f"bench_{uuid.uuid4().hex[:8]}"
        emu.create_user(user, iam=True)
        creds = emu.add_credentials()
        os.environ |= {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_DEFAULT_REGION": emu.region,
        }
        provider = TokenProvider(session=creds.boto3_session(region=emu.region))
        info = dict(emu.conninfo(user))
        info.pop("sslmode")
        token = provider.get_token(emu.endpoint, emu.port, user)
        libpq = info | {"sslmode": "verify-full"}
        rows: list[tuple[str, float, float]] = []

        cold = TokenProvider(session=creds.boto3_session(region=emu.region))
        kit = timed(lambda: kit_psycopg2.connect(**info, token_provider=cold).close(), n)
        rows.append(("psycopg2 via rdsiamkit", kit, cold.mint_count * 1000 / n))
        base = timed(lambda: psycopg2.connect(password=token, **libpq).close(), n)
        rows.append(("psycopg2, pre-minted token", base, 0.0))
        from sqlalchemy_rdsiam import dbapi_psycopg2

        counter = [0]
        rdsiam_mints(counter)
        other = timed(
            lambda: dbapi_psycopg2.connect(**libpq, aws_region_name=emu.region).close(), n
        )
        rows.append(("psycopg2 via sqlalchemy-rdsiam", other, counter[0] * 1000 / n))

        async def run_async() -> None:
            ctx = kit_asyncpg.ssl_context(emu.endpoint, "verify-full", str(emu.ca_file))
            direct = {
                "host": emu.hostaddr,
                "port": emu.port,
                "user": user,
                "database": "postgres",
                "ssl": ctx,
            }

            async def kit_one() -> None:
                await (await kit_asyncpg.connect(**info, token_provider=provider)).close()

            async def base_one() -> None:
                await (await asyncpg.connect(password=token, **direct)).close()

            provider.cache.clear()
            before = provider.mint_count
            kit_ms = await timed_async(kit_one, n)
            rows.append(
                ("asyncpg via rdsiamkit", kit_ms, (provider.mint_count - before) * 1000 / n)
            )
            rows.append(("asyncpg, pre-minted token", await timed_async(base_one, n), 0.0))

        asyncio.run(run_async())
    print(f"{'approach':34} {'median ms/connect':>18} {'mints/1,000':>12}")
    for name, ms, mints in rows:
        print(f"{name:34} {ms:18.2f} {mints:12.0f}")


if __name__ == "__main__":
    main()
