"""Bulk auth mode switches: plan + apply for N users, and round trips per batch.

Creates N password users (untimed), then times planning and applying the
switch of all of them to IAM and back, counts client/server round trips with
libpq's protocol trace, and compares with switching users one call at a time.
Runs against the local RDS IAM emulator (root, PostgreSQL server binaries), or
against any server with an ``rds_iam`` role given by ``--conninfo`` (an admin's
libpq string).  Nothing is asserted; the goal is plan + apply of 1,000 users in
under a second, with a constant number of round trips per batch.

    .venv/bin/python bench/bench_authmode.py [--users 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import pq, sql

from rdsiamkit.authmode import AuthMode, plan_auth_modes, set_auth_mode

T = TypeVar("T")


def traced(conn: psycopg.Connection[Any], fn: Callable[[], T]) -> tuple[T, float, int]:
    """Run ``fn``; return its result, wall seconds and round trips (server ReadyForQuery count)."""
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            started = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - started
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        trips = sum(1 for line in trace if line.startswith("B\t5\tReadyForQuery"))
    return result, elapsed, trips


@contextlib.contextmanager
def admin_connection(conninfo: str | None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit admin connection: to ``conninfo``, or to a fresh emulator."""
    if conninfo:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            yield conn
        return
    from rdsiamkit.testing import RdsIamEmulator

    with RdsIamEmulator() as emu, emu.connect_admin() as conn:
        yield conn


def create_roles(
    conn: psycopg.Connection[Any],
    names: list[str],
    *,
    login: bool = True,
    member_of: Sequence[str] = (),
) -> None:
    """CREATE ROLE for every name (member of ``member_of``): one server-side loop, one
    statement, one transaction (untimed set-up)."""
    granted = sql.SQL(", ").join(sql.Identifier(m) for m in member_of).as_string(conn)
    statement = sql.SQL(
        "DO $bench$ DECLARE name text; BEGIN FOREACH name IN ARRAY {names}::text[] LOOP "
        "EXECUTE format('CREATE ROLE %I {login}' || {in_role}, name); "
        "END LOOP; END $bench$"
    ).format(
        names=sql.Literal(names),
        login=sql.SQL("LOGIN" if login else "NOLOGIN"),
        in_role=sql.Literal(f" IN ROLE {granted}" if member_of else ""),
    )
    with conn.transaction():
        conn.execute(statement)


def write_figures(path: str, figures: dict[str, Any]) -> None:
    """The figures as JSON, for bench/run_all.py."""
    with open(path, "w") as out:
        json.dump(figures, out, indent=2, default=str)


def drop_users(conn: psycopg.Connection[Any], names: list[str]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            cur.execute(
                sql.SQL("DROP ROLE IF EXISTS {}").format(
                    sql.SQL(", ").join(sql.Identifier(n) for n in chunk)
                )
            )


def switch_all(
    conn: psycopg.Connection[Any], names: list[str], mode: AuthMode, batch_size: int
) -> dict[str, float | int]:
    """Plan and apply ``names`` -> ``mode``; seconds and round trips of each step."""
    plan, plan_s, plan_trips = traced(
        conn, lambda: plan_auth_modes(conn, dict.fromkeys(names, mode))
    )
    if len(plan.changes) != len(names):
        raise SystemExit(f"expected {len(names)} changes, the plan has:\n{plan}")
    result, apply_s, apply_trips = traced(conn, lambda: plan.apply(conn, batch_size=batch_size))
    return {
        "plan_s": plan_s,
        "apply_s": apply_s,
        "total_s": plan_s + apply_s,
        "plan_round_trips": plan_trips,
        "apply_round_trips": apply_trips,
        "batches": result.batches,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users to switch (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="IAM-and-back rounds (median)")
    parser.add_argument("--single", type=int, default=50, help="users for the one-by-one baseline")
    parser.add_argument("--conninfo", help="admin libpq string; default: start the emulator")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:6]
    names = [f"bench_am_{tag}_{i:05d}" for i in range(args.users)]
    figures: dict[str, Any] = {"users": args.users}
    with admin_connection(args.conninfo) as conn:
        started = time.perf_counter()
        create_roles(conn, names)
        figures["setup_s"] = time.perf_counter() - started
        try:
            runs: dict[str, list[dict[str, float | int]]] = {"to_iam": [], "to_password": []}
            for _ in range(args.rounds):
                runs["to_iam"].append(switch_all(conn, names, AuthMode.IAM, 500))
                runs["to_password"].append(switch_all(conn, names, AuthMode.PASSWORD, 500))
            for direction, samples in runs.items():
                figures[direction] = {
                    key: statistics.median(s[key] for s in samples) for key in samples[0]
                }

            per_batch = {}
            for batch_size in (50, 100, 250, 500, 1000):
                run = switch_all(conn, names, AuthMode.IAM, batch_size)
                switch_all(conn, names, AuthMode.PASSWORD, batch_size)
                per_batch[batch_size] = {
                    "batches": run["batches"],
                    "apply_round_trips": run["apply_round_trips"],
                    "apply_s": run["apply_s"],
                }
            figures["by_batch_size"] = per_batch

            few = names[: args.single]

            def one_by_one() -> None:
                for name in few:
                    set_auth_mode(conn, name, AuthMode.IAM)

            _, single_s, single_trips = traced(conn, one_by_one)
            plan_auth_modes(conn, dict.fromkeys(few, AuthMode.PASSWORD)).apply(conn)
            figures["one_by_one"] = {
                "users": len(few),
                "seconds": single_s,
                "round_trips": single_trips,
                "seconds_per_1000_users": single_s / len(few) * 1000,
            }
        finally:
            drop_users(conn, names)

    print(f"users: {args.users} (created in {figures['setup_s']:.2f} s, untimed)")
    for direction in ("to_iam", "to_password"):
        f = figures[direction]
        print(
            f"{direction:>12}: plan {f['plan_s'] * 1000:7.1f} ms ({f['plan_round_trips']} trip), "
            f"apply {f['apply_s'] * 1000:7.1f} ms ({f['apply_round_trips']} trips, "
            f"{f['batches']} batches), total {f['total_s'] * 1000:7.1f} ms"
        )
    print("apply round trips by batch size (BEGIN + one per batch + COMMIT):")
    for size, f in per_batch.items():
        print(
            f"  batch {size:>5}: {f['batches']:>3} batches -> {f['apply_round_trips']:>3} "
            f"round trips, {f['apply_s'] * 1000:7.1f} ms"
        )
    s = figures["one_by_one"]
    print(
        f"one set_auth_mode() per user: {s['seconds'] * 1000 / s['users']:.2f} ms and "
        f"{s['round_trips'] / s['users']:.0f} round trips per user "
        f"(~{s['seconds_per_1000_users']:.1f} s per 1,000 users)"
    )
    if args.json:
        write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
