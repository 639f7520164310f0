"""A threaded psycopg2 application (Airflow-style) on an IAM-authenticated pool.

``rdsiamkit.psycopg2.ThreadedConnectionPool`` is psycopg2's own pool whose every
new connection logs in through the kit (cached or fresh IAM token, verify-full
TLS, the kit's retries and errors).  ``--workers`` threads check connections out
for ``--duration`` seconds and close every ``--renew``-th one, so the pool logs in
again as it would after a database restart.  Exits non-zero if a query failed.

Settings default to libpq's environment variables (``PGHOST``, ``PGPORT``,
``PGHOSTADDR``, ``PGDATABASE``, ``PGSSLROOTCERT``); AWS credentials come from
boto3's chain::

    python examples/psycopg2_pool.py --user app_user --workers 8 --duration 30
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence

import psycopg2

import rdsiamkit
import rdsiamkit.psycopg2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=env("PGHOST"), help="RDS endpoint name [PGHOST]")
    parser.add_argument("--port", type=int, default=int(env("PGPORT", "5432")))
    parser.add_argument("--hostaddr", default=env("PGHOSTADDR"), help="IP to dial [PGHOSTADDR]")
    parser.add_argument("--dbname", default=env("PGDATABASE", "postgres"))
    parser.add_argument("--sslrootcert", default=env("PGSSLROOTCERT"))
    parser.add_argument("--user", required=True, help="the IAM database user")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--renew", type=int, default=10, help="close every n-th connection")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = {
        k: v
        for k, v in vars(args).items()
        if k in ("host", "port", "hostaddr", "dbname", "sslrootcert", "user") and v
    }
    try:
        pool = rdsiamkit.psycopg2.ThreadedConnectionPool(1, args.workers, **options)
    except rdsiamkit.RdsIamError as err:
        print(f"cannot log in: {err}", file=sys.stderr)
        return 1
    counts = {"done": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + args.duration

    def worker() -> None:
        while time.monotonic() < deadline:
            try:
                conn = pool.getconn()
                with conn.cursor() as cur:
                    cur.execute("SELECT current_user")
                with lock:
                    counts["done"] += 1
                    renew = counts["done"] % args.renew == 0
                pool.putconn(conn, close=renew)
            except (psycopg2.Error, rdsiamkit.RdsIamError) as err:
                with lock:
                    counts["failed"] += 1
                print(f"query failed: {err}", file=sys.stderr)
                time.sleep(0.2)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.closeall()
    print(f"{counts['done']} queries, {counts['failed']} failed, as {args.user} on {args.host}")
    return 1 if counts["failed"] or not counts["done"] else 0


if __name__ == "__main__":
    sys.exit(main())
