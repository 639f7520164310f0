"""A small service that serves queries from an IAM-authenticated connection pool.

Each worker thread checks a connection out of ``rdsiamkit.create_pool``, runs a
query and gives it back, for ``--duration`` seconds; the pool logs each new
physical connection in with a cached or fresh IAM token, and recycles
connections after ``--max-lifetime`` seconds.  It prints what it did and exits
non-zero if any query failed.

Settings come from arguments, defaulting to libpq's usual environment variables
(``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``, ``PGHOSTADDR``,
``PGSSLROOTCERT``); AWS credentials from boto3's chain (``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``, an instance role...)::

    python examples/app_pool.py --host demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com \\
        --user app_user --dbname app --workers 8 --duration 30
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

import rdsiamkit

log = logging.getLogger("app_pool")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=env("PGHOST"), help="RDS endpoint name [PGHOST]")
    parser.add_argument("--port", type=int, default=int(env("PGPORT", "5432")), help="[PGPORT]")
    parser.add_argument("--user", default=env("PGUSER"), help="database user [PGUSER]")
    parser.add_argument("--dbname", default=env("PGDATABASE", "postgres"), help="[PGDATABASE]")
    parser.add_argument(
        "--hostaddr", default=env("PGHOSTADDR"), help="IP to dial, e.g. a tunnel [PGHOSTADDR]"
    )
    parser.add_argument(
        "--sslrootcert", default=env("PGSSLROOTCERT"), help="CA bundle [PGSSLROOTCERT]"
    )
    parser.add_argument("--token-port", type=int, help="the database's real port, behind a tunnel")
    parser.add_argument("--region", help="AWS region (default: read from the endpoint name)")
    parser.add_argument("--profile", help="AWS profile to sign tokens with")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run")
    parser.add_argument("--max-lifetime", type=float, default=1800.0, help="recycle after (s)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.host or not args.user:
        parser.error("--host and --user are required (or PGHOST and PGUSER)")
    return args


class Stats:
    """Counters shared by the workers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.users: set[str] = set()

    def record(self, user: str | None) -> None:
        with self.lock:
            if user is None:
                self.failed += 1
            else:
                self.ok += 1
                self.users.add(user)


def worker(pool: ConnectionPool[Any], stop: threading.Event, stats: Stats) -> None:
    while not stop.is_set():
        try:
            with pool.connection(timeout=10) as conn:
                row = conn.execute("SELECT current_user").fetchone()
            stats.record(row[0] if row else None)
        except psycopg.Error as err:
            log.error("query failed: %s", err)
            stats.record(None)
        time.sleep(0.01)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    provider = rdsiamkit.TokenProvider(profile=args.profile, region=args.region)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "user": args.user,
        "dbname": args.dbname,
        "hostaddr": args.hostaddr,
        "sslrootcert": args.sslrootcert,
        "token_port": args.token_port,
        "region": args.region,
        "token_provider": provider,
    }
    try:  # fail fast, with the kit's list of likely causes, instead of a pool retrying forever
        rdsiamkit.connect(**options, connect_timeout=10).close()
    except rdsiamkit.RdsIamError as err:
        print(f"cannot log in: {err}", file=sys.stderr)
        return 1
    stats = Stats()
    stop = threading.Event()
    started = time.monotonic()
    pool: ConnectionPool[psycopg.Connection[Any]] = rdsiamkit.create_pool(
        **options,
        min_size=1,
        max_size=args.pool_size,
        max_lifetime=args.max_lifetime,
        name="app",
    )
    with pool:
        pool.wait(timeout=30)
        threads = [
            threading.Thread(target=worker, args=(pool, stop, stats), name=f"worker-{i}")
            for i in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            print("interrupted; stopping workers", file=sys.stderr)
        stop.set()
        for thread in threads:
            thread.join()
        pool_stats = pool.get_stats()
    elapsed = time.monotonic() - started
    print(
        f"{stats.ok} queries ok, {stats.failed} failed in {elapsed:.1f} s "
        f"as {', '.join(sorted(stats.users)) or '-'}; "
        f"{pool_stats.get('connections_num', 0)} connections opened, "
        f"{provider.mint_count} token(s) minted"
    )
    return 1 if stats.failed or not stats.ok else 0


if __name__ == "__main__":
    sys.exit(main())
