"""Listing every login role with its auth mode: one catalog query vs one status per user.

Creates N login users (untimed) in two layouts, one after the other:

* flat: every user granted ``rds_iam`` directly;
* nested: 5 department groups granted ``rds_iam``, 5 team groups each a member
  of all 5 departments, every user a member of all 5 teams (25 routes to
  ``rds_iam`` per user; the kit reports one shortest path per team).

For each it times ``rdsiamkit.list_users(conn)`` (median of ``--rounds``) and
the alternative a user would otherwise write, one ``rdsiamkit.auth_status()``
per user, over ``--single`` users spread over the list and scaled to N.  Round
trips are counted in one extra traced pass of each (libpq's protocol trace
would slow the timed runs).  Runs against the local RDS IAM emulator (root,
PostgreSQL server binaries), or against any server with an ``rds_iam`` role
given by ``--conninfo`` (an admin's libpq string).  Nothing is asserted beyond
every user being listed as IAM with the expected paths.

    .venv/bin/python bench/bench_list_users.py [--users 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from bench_authmode import admin_connection, create_roles, drop_users, traced, write_figures

import rdsiamkit
from rdsiamkit import AuthMode

DEPARTMENTS = 5
TEAMS = 5


def layout(
    conn: psycopg.Connection[Any], prefix: str, users: int, *, nested: bool
) -> tuple[list[str], list[str]]:
    """Create the users (and groups); return (users, groups), groups to drop after the users."""
    names = [f"{prefix}_u{i:06d}" for i in range(users)]
    if not nested:
        create_roles(conn, names, login=True, member_of=["rds_iam"])
        return names, []
    departments = [f"{prefix}_dept{i}" for i in range(DEPARTMENTS)]
    teams = [f"{prefix}_team{i}" for i in range(TEAMS)]
    create_roles(conn, departments, login=False, member_of=["rds_iam"])
    try:
        create_roles(conn, teams, login=False, member_of=departments)
        create_roles(conn, names, login=True, member_of=teams)
    except BaseException:
        drop_users(conn, [*names, *teams, *departments])
        raise
    return names, [*teams, *departments]


def median_ms(fn: Callable[[], object], rounds: int) -> tuple[float, list[float]]:
    """Median and every wall time of ``rounds`` calls of ``fn``, in ms."""
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1e3)
    return statistics.median(runs), runs


def measure(
    conn: psycopg.Connection[Any], names: list[str], *, paths: int, rounds: int, single: int
) -> dict[str, Any]:
    """Time ``list_users`` and ``auth_status`` one by one; check every user is IAM via ``paths``."""
    table, _, list_trips = traced(conn, lambda: rdsiamkit.list_users(conn))  # also a warm-up
    listed = {user.name: user for user in table}
    wrong = [
        n
        for n in names
        if n not in listed or listed[n].mode is not AuthMode.IAM or len(listed[n].paths) != paths
    ]
    if wrong:
        raise SystemExit(f"{len(wrong)} users not listed as IAM with {paths} paths: {wrong[:3]}")
    list_ms, list_runs = median_ms(lambda: rdsiamkit.list_users(conn), rounds)

    step = max(1, len(names) // single)
    few = names[::step][:single]

    def one_by_one() -> list[rdsiamkit.AuthStatus]:
        return [rdsiamkit.auth_status(conn, name) for name in few]

    statuses, _, single_trips = traced(conn, one_by_one)
    if any(s.paths != listed[s.user].paths for s in statuses):
        raise SystemExit("auth_status and list_users disagree on a user's paths")
    single_ms, single_runs = median_ms(one_by_one, rounds)
    return {
        "roles_listed": len(table),
        "paths_per_user": paths,
        "list_ms": list_ms,
        "list_ms_runs": list_runs,
        "list_round_trips": list_trips,
        "one_by_one": {
            "users": len(few),
            "ms": single_ms,
            "ms_runs": single_runs,
            "round_trips": single_trips,
            "ms_per_user": single_ms / len(few),
            "ms_scaled": single_ms / len(few) * len(names),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10000, help="login users (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (median)")
    parser.add_argument("--single", type=int, default=200, help="users for the one-by-one baseline")
    parser.add_argument("--conninfo", help="admin libpq string; default: start the emulator")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:6]
    figures: dict[str, Any] = {"users": args.users, "rounds": args.rounds}
    with admin_connection(args.conninfo) as conn:
        for key, nested in (("flat", False), ("nested", True)):
            started = time.perf_counter()
            names, groups = layout(conn, f"bench_lu_{tag}_{key}", args.users, nested=nested)
            setup_s = time.perf_counter() - started
            try:
                figures[key] = {
                    "setup_s": setup_s,
                    "departments": DEPARTMENTS if nested else 0,
                    "teams": TEAMS if nested else 0,
                    "routes_per_user": DEPARTMENTS * TEAMS if nested else 1,
                    **measure(
                        conn,
                        names,
                        paths=TEAMS if nested else 1,
                        rounds=args.rounds,
                        single=args.single,
                    ),
                }
            finally:
                drop_users(conn, [*names, *groups])

    print(f"users: {args.users:,} per layout, median of {args.rounds} rounds")
    for key in ("flat", "nested"):
        f = figures[key]
        s = f["one_by_one"]
        print(
            f"{key:>6} ({f['departments']} departments, {f['teams']} teams, "
            f"{f['routes_per_user']} route(s) each; set up in {f['setup_s']:.1f} s, untimed):\n"
            f"        list_users: {f['list_ms']:8.1f} ms, {f['list_round_trips']} round trip(s), "
            f"{f['roles_listed']:,} roles listed\n"
            f"  auth_status x{s['users']}: {s['ms']:8.1f} ms, {s['round_trips']} round trips "
            f"({s['ms_per_user']:.2f} ms per user, ~{s['ms_scaled']:,.0f} ms for "
            f"{args.users:,}: ratio {f['list_ms'] / s['ms_scaled']:.3g})"
        )
    if args.json:
        write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
