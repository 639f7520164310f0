"""What finding a global writer's region costs per connect, with and without the cache.

A connect through an Aurora Global Database writer name (no ``region=``) asks
``rdsiamkit._resolve.primary_region`` for the current primary's region.  Within
the cache's TTL (30 s) that is a dictionary lookup under a lock; when the entry
has expired, a name lookup (the CNAME chain) and the parse of each name on it.
Measured here, in this process, without a server:

* ``cached``: a remembered answer (every connect but one per TTL);
* ``resolved (table DNS)``: cache cleared each call, answered by an in-memory
  resolver: the kit's own work on a miss (chain walk, parsing, cache write);
* ``system lookup (localhost)``: one ``gethostbyname_ex`` through the operating
  system, for scale: what a miss adds when the name is not in a local cache;
* ``amortised per connect``: at ``--rate`` connects per second, one miss per TTL.

    .venv/bin/python bench/bench_resolve.py [--calls 200000] [--rate 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from rdsiamkit import _resolve
from rdsiamkit.endpoints import Endpoint

HASH = "c1a2b3c4d5e6"
GLOBAL = f"mydb.global-{HASH}.global.rds.amazonaws.com"
PRIMARY = f"east.cluster-{HASH}.us-east-1.rds.amazonaws.com"
TAIL = "ec2-3-4-5-6.compute-1.amazonaws.com"


def _table(host: str) -> _resolve.Lookup:
    if host != GLOBAL:
        raise OSError(f"{host}: not known")
    return _resolve.Lookup((GLOBAL, PRIMARY, TAIL), ("3.4.5.6",))


def per_call_us(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean microseconds per call of ``fn``."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def run(calls: int, rate: float) -> dict[str, Any]:
    """Measure and return the figures (microseconds)."""
    endpoint = Endpoint.parse(GLOBAL)
    previous = _resolve.set_resolver(_table)
    try:
        _resolve.primary_region(endpoint)
        cached = per_call_us(lambda: _resolve.primary_region(endpoint), calls)

        def miss() -> object:
            _resolve.clear_caches()
            return _resolve.primary_region(endpoint)

        resolved = per_call_us(miss, max(1, calls // 20))
    finally:
        _resolve.set_resolver(previous)
    system = per_call_us(lambda: _resolve.system_lookup("localhost"), max(1, calls // 200))
    per_ttl = rate * _resolve.DEFAULT_TTL
    amortised = cached + (resolved + system) / per_ttl
    return {
        "cached_us": cached,
        "resolved_table_dns_us": resolved,
        "system_lookup_localhost_us": system,
        "connects_per_ttl": per_ttl,
        "amortised_per_connect_us": amortised,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures as a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=50.0, help="connects per second")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    figures = run(args.calls, args.rate)
    rows = [
        ("cached (per connect)", figures["cached_us"]),
        ("resolved, table DNS (per miss)", figures["resolved_table_dns_us"]),
        ("system lookup of localhost (per miss)", figures["system_lookup_localhost_us"]),
        (
            f"amortised per connect at {args.rate:g}/s",
            figures["amortised_per_connect_us"],
        ),
    ]
    for label, value in rows:
        print(f"{label:<44} {value:10.2f} us")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
