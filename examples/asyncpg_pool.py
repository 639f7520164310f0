"""An asyncio service's queries on an IAM-authenticated asyncpg pool.

``rdsiamkit.asyncpg.create_pool`` opens every pool connection through the kit:
a cached or fresh IAM token, verify-full TLS against the RDS CA bundle, the kit's
retries and errors.  The script runs ``--tasks`` concurrent tasks for
``--duration`` seconds, prints what it did and exits non-zero if a query failed.

Settings default to libpq's environment variables (``PGHOST``, ``PGPORT``,
``PGHOSTADDR``, ``PGDATABASE``, ``PGSSLROOTCERT``); AWS credentials come from
boto3's chain::

    python examples/asyncpg_pool.py --user app_user --tasks 16 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

import rdsiamkit
import rdsiamkit.asyncpg


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=env("PGHOST"), help="RDS endpoint name [PGHOST]")
    parser.add_argument("--port", type=int, default=int(env("PGPORT", "5432")))
    parser.add_argument("--hostaddr", default=env("PGHOSTADDR"), help="IP to dial [PGHOSTADDR]")
    parser.add_argument("--dbname", default=env("PGDATABASE", "postgres"))
    parser.add_argument("--sslrootcert", default=env("PGSSLROOTCERT"))
    parser.add_argument("--user", required=True, help="the IAM database user")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    options = {
        k: v
        for k, v in vars(args).items()
        if k in ("host", "port", "hostaddr", "dbname", "sslrootcert", "user") and v
    }
    done = failed = 0
    deadline = time.monotonic() + args.duration
    async with rdsiamkit.asyncpg.create_pool(**options, min_size=1, max_size=args.tasks) as pool:

        async def worker() -> None:
            nonlocal done, failed
            while time.monotonic() < deadline:
                try:
                    await pool.fetchval("SELECT current_user")
                    done += 1
                except rdsiamkit.RdsIamError as err:
                    failed += 1
                    print(f"query failed: {err}", file=sys.stderr)
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(worker() for _ in range(args.tasks)))
    print(f"{done} queries, {failed} failed, as {args.user} on {args.host}")
    return 1 if failed or not done else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(serve(args))
    except rdsiamkit.RdsIamError as err:
        print(f"cannot log in: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
