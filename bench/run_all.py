"""Run every benchmark in one go and print one table of ratios (rdsiamkit / alternative).

Runs, in this process and against local RDS IAM emulators (root, PostgreSQL
server binaries, a C compiler):

* ``bench_import``   ``import rdsiamkit`` vs ``import psycopg`` (fresh interpreters);
* ``bench_coldstart`` a fresh interpreter's time to the first row over IAM auth vs
  boto3 + psycopg and aws-advanced-python-wrapper;
* ``bench_storm``    tokens minted in a 64-thread storm and over sequential connects;
* ``bench_connect``  connect time vs plain psycopg, minting per connect and
  aws-advanced-python-wrapper; pool checkout vs psycopg_pool;
* ``bench_authmode`` switching 1,000 users to IAM and back in bulk vs one by one;
* ``bench_list_users`` listing 10,000 users' auth modes in one query vs one by one,
  granted ``rds_iam`` directly and through 25 group routes each.

A ratio below 1 means rdsiamkit needs less (time or tokens) than the
alternative.  ``--write-docs`` rewrites ``docs/performance.md`` with the table,
the date and the machine; ``--with-reliability`` also runs the slow reliability
tests (soak, throttling) and adds their figures.

    .venv/bin/python bench/run_all.py [--quick] [--write-docs] [--with-reliability]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import io
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"
BASELINE = "psycopg.connect (pre-minted token)"
KIT = "rdsiamkit.connect"
ASYNC_KIT = "rdsiamkit.connect_async (tasks)"
REUSED = "mint per connect, reused client"

Row = tuple[str, str, float, str, float, str]  # what, kit, kit value, other, its value, unit


def machine() -> dict[str, str]:
    """Date and the machine the figures come from."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    postgres = "unknown"
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if bindirs:
        postgres = subprocess.run(
            [str(bindirs[-1]), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "psycopg": f"{psycopg.__version__} (libpq {psycopg.pq.version()})",
        "postgres": postgres,
    }


def _call(module: str, argv: list[str], verbose: bool) -> tuple[int, str]:
    """In the child: import the benchmark module and call its ``main()``."""
    sys.argv = [f"{module}.py", *argv]  # bench_connect / bench_authmode read sys.argv
    main = importlib.import_module(module).main
    if verbose:
        return main(), ""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main()
    return code, printed.getvalue()


def run(module: str, args: list[str], *, verbose: bool) -> dict[str, Any]:
    """Run a benchmark's ``main`` in a fresh interpreter, with ``--json``; return its figures.

    A process each: the benchmarks set AWS environment variables and the
    aws-advanced-python-wrapper keeps credentials process-wide, which would leak
    from one benchmark's emulator into the next.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{module}.json"
        print(f"running {module} {' '.join(args)} ...", file=sys.stderr, flush=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as child:
            code, printed = child.submit(
                _call, module, [*args, "--json", str(out)], verbose
            ).result()
        if code != 0:
            raise SystemExit(f"{module} failed ({code}):\n{printed}")
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures


def rows(figures: dict[str, Any]) -> list[Row]:
    """The comparison table: one row per (measure, alternative)."""
    table: list[Row] = []
    connect = figures["connect"]["connect"]
    for other in connect:
        if other != KIT:
            table.append(
                ("connect + close", KIT, connect[KIT]["ms"], other, connect[other]["ms"], "ms")
            )
    storm = figures["storm"]
    seq = storm["sequential"]
    for other in seq:
        if other != KIT:
            table.append(
                (
                    f"tokens minted per {storm['connects']:,} connects",
                    KIT,
                    seq[KIT]["tokens_per_run"],
                    other,
                    seq[other]["tokens_per_run"],
                    "tokens",
                )
            )
    threads = storm["threads"]
    burst = storm["storm"]
    for metric, unit, key in (
        ("tokens minted, most in one storm", "tokens", "tokens_minted_max"),
        ("median wall time", "s", "seconds"),
    ):
        for kit, others in ((KIT, "threads"), (ASYNC_KIT, "tasks")):
            for other in burst:
                if other in (KIT, ASYNC_KIT) or (kit == ASYNC_KIT and other != REUSED):
                    continue
                table.append(
                    (
                        f"{threads}-{others[:-1]} connect storm, {metric}",
                        kit,
                        burst[kit][key],
                        other,
                        burst[other][key],
                        unit,
                    )
                )
    pool = figures["connect"]["pool_checkout"]
    table.append(
        (
            "pool checkout + SELECT 1",
            "rdsiamkit.create_pool",
            pool["rdsiamkit.create_pool"]["us"],
            "psycopg_pool (pre-minted token)",
            pool["psycopg_pool"]["us"],
            "us",
        )
    )
    switch = figures["authmode"]
    users = switch["users"]
    one = switch["one_by_one"]
    table.append(
        (
            f"switch {users:,} users to IAM",
            "plan_auth_modes + apply",
            switch["to_iam"]["total_s"] * 1e3,
            f"set_auth_mode one by one (x{users:,} from {one['users']})",
            one["seconds_per_1000_users"] * users / 1000 * 1e3,
            "ms",
        )
    )
    listing = figures["list_users"]
    users = listing["users"]
    for layout, what in (
        ("flat", "flat"),
        ("nested", f"{listing['nested']['routes_per_user']} group routes each"),
    ):
        measured = listing[layout]
        one = measured["one_by_one"]
        table.append(
            (
                f"list {users:,} users, {what}",
                "rdsiamkit.list_users",
                measured["list_ms"],
                f"auth_status one by one (x{users:,} from {one['users']})",
                one["ms_scaled"],
                "ms",
            )
        )
    cold = figures.get("coldstart")  # absent from runs saved before it existed
    if cold:
        first = cold["first_row_ms"]
        for other in first:
            if other != KIT and KIT in first:
                table.append(
                    ("cold start to first row", KIT, first[KIT], other, first[other], "ms")
                )
    imports = figures["import"]["import_ms"]
    table.append(
        (
            "import time",
            "import rdsiamkit",
            imports["rdsiamkit"],
            "import psycopg",
            imports["psycopg"],
            "ms",
        )
    )
    return table


def _number(value: float) -> str:
    if float(value).is_integer() and value >= 10:
        return f"{int(value):,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _ratio(kit: float, other: float) -> str:
    return "n/a" if other == 0 else f"{kit / other:.3g}"


def render_text(table: list[Row]) -> str:
    """The table for a terminal."""
    width = max(len(row[0]) for row in table)
    lines = [
        f"{'measure':{width}s} {'rdsiamkit':>11s} {'other':>11s} {'ratio':>7s}  unit   other is",
    ]
    for what, _kit, kit_value, other, other_value, unit in table:
        lines.append(
            f"{what:{width}s} {_number(kit_value):>11s} {_number(other_value):>11s} "
            f"{_ratio(kit_value, other_value):>7s}  {unit:6s} {other}"
        )
    return "\n".join(lines)


def render_markdown(table: list[Row], figures: dict[str, Any], where: dict[str, str]) -> str:
    """The performance page."""
    connect = figures["connect"]
    storm = figures["storm"]
    switch = figures["authmode"]
    listing = figures["list_users"]
    flat, nested = listing["flat"], listing["nested"]
    out = [
        "# Performance",
        "",
        "<!-- Generated by bench/run_all.py --write-docs; edit that script, not this page. -->",
        "",
        f"Measured on {where['date']} with `{where['command']} --write-docs`.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in where.items() if key not in ("date", "command")),
        "",
        "Everything runs on one machine against the local RDS IAM emulator",
        "(`rdsiamkit.testing`): a real PostgreSQL server with TLS, whose PAM module",
        "verifies each token's SigV4 signature in the test process. Network latency",
        "is therefore near zero, which makes the kit's own overhead look as large as",
        "it can ever be; against a real RDS endpoint the login round trips dominate.",
        "",
        "## Ratios",
        "",
        "A ratio is rdsiamkit's figure divided by the alternative's: below 1, rdsiamkit",
        "needs less time or fewer tokens.",
        "",
        "| measure (unit) | rdsiamkit | alternative | rdsiamkit | alternative | ratio |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for what, kit, kit_value, other, other_value, unit in table:
        out.append(
            f"| {what} ({unit}) | {kit} | {other} | {_number(kit_value)} | "
            f"{_number(other_value)} | {_ratio(kit_value, other_value)} |"
        )
    out += [
        "",
        "## How each figure is made",
        "",
        f"- **connect + close**: `bench/bench_connect.py`, {connect['connects_per_round']} "
        "connects "
        "per round; the approaches run in interleaved rounds, median of 5. The kit reuses a "
        "cached token (its normal state); `psycopg.connect` gets a token minted beforehand, so "
        "the difference is the kit's whole cost. The kit's own work per connect, without "
        f"the network login, is {connect['kit_overhead_us']:.0f} us; a cache hit of "
        f"`get_token` is {connect['cache_hit_us']:.2f} us.",
        "- **tokens minted**: `bench/bench_storm.py` counts every SigV4 presigning botocore "
        "makes, whoever asks (each IAM token is one). Every approach starts with a cold cache "
        f"(a new database user). Sequential: {storm['connects']:,} connects in a row (a boto3 "
        "client per connect is measured over fewer connects and scaled). Storm: "
        f"{storm['threads']} threads released together, one connect each; the async row uses "
        f"{storm['threads']} tasks on one event loop; median of "
        f"{next(iter(storm['storm'].values()))['rounds']} storms per approach.",
        "- **pool checkout**: checkout + `SELECT 1` + return, 2,000 per round, interleaved "
        "with a plain psycopg_pool whose conninfo holds a pre-minted token.",
        f"- **switch {switch['users']:,} users**: `bench/bench_authmode.py`, median of the "
        "IAM-bound plan + apply; the one-by-one figure is `set_auth_mode()` per user over "
        f"{switch['one_by_one']['users']} users, scaled to {switch['users']:,}. "
        f"Plan: {switch['to_iam']['plan_round_trips']} round trip; apply: "
        f"{switch['to_iam']['apply_round_trips']} round trips in {switch['to_iam']['batches']} "
        "batches.",
        f"- **list {listing['users']:,} users**: `bench/bench_list_users.py`, median of "
        f"{listing['rounds']} `list_users()` calls, {flat['list_round_trips']} round trip "
        f"each, listing {flat['roles_listed']:,} login roles (the users and the emulator's "
        "own). Flat: every user granted `rds_iam` directly. Group routes: "
        f"{nested['departments']} department groups granted `rds_iam`, "
        f"{nested['teams']} team groups each a member of every department, every user "
        f"a member of every team ({nested['routes_per_user']} routes to `rds_iam`; the kit "
        f"reports one shortest path per team, {nested['paths_per_user']} per user). The "
        "one-by-one figure is `auth_status()` per user "
        f"({flat['one_by_one']['round_trips'] / flat['one_by_one']['users']:.0f} round trip "
        "each) over "
        f"{flat['one_by_one']['users']} users spread over the list (median of "
        f"{listing['rounds']}), scaled to {listing['users']:,}: "
        f"{flat['one_by_one']['ms_per_user']:.1f} ms per user flat, "
        f"{nested['one_by_one']['ms_per_user']:.1f} ms with group routes.",
        f"- **import time**: `bench/bench_import.py`, median of {figures['import']['runs']} "
        "fresh interpreters per module, import statement only. `import rdsiamkit` imports "
        f"boto3/botocore: {'yes' if figures['import']['rdsiamkit_imports_boto3'] else 'no'}.",
    ]
    cold = figures.get("coldstart")
    if cold:
        out.append(
            "- **cold start to first row**: `bench/bench_coldstart.py`, a new interpreter per "
            "sample that imports, resolves credentials from the environment, signs its first "
            "token and fetches `SELECT 1` over verify-full TLS; timed from the program's first "
            f"line, median of {cold['runs']} interleaved samples. The kit imports boto3: "
            f"{'yes' if cold['imports_boto3'].get(KIT) else 'no'}."
            + "".join(f" {name} was not measured: {err}." for name, err in cold["errors"].items())
        )
    reliability = figures.get("reliability")
    if reliability:
        out += ["", "## Reliability runs", "", *_reliability_markdown(reliability)]
    out += [
        "",
        "## Reproduce",
        "",
        "```bash",
        "sudo bash scripts/setup.sh",
        ".venv/bin/python bench/run_all.py --write-docs --with-reliability",
        "```",
        "",
    ]
    return "\n".join(out)


def _reliability_markdown(figures: dict[str, Any]) -> list[str]:
    lines = [
        "From `tests/reliability` (run by CI on every change), on the same machine and run:",
        "",
    ]
    for name in ("soak_sync", "soak_async"):
        soak = figures.get(name)
        if soak:
            lines.append(
                f"- **{name.replace('_', ' ')}**: {soak['workers']} workers for "
                f"{soak['seconds']} s, tokens valid 3 s, one server restart, one credential "
                f"rotation: {soak['queries']:,} queries, {soak['retried_once']} retried once "
                f"after the restart, {soak['failed']} failed; {soak['connections_opened']} "
                f"connections opened with {soak['tokens_minted']} tokens; logins "
                f"{soak['logins']}; {soak['server_sessions_after_close']} server sessions "
                "left after close."
            )
    pool = figures.get("throttle_pool")
    if pool:
        lines.append(
            f"- **throttled pool**: at {pool['rate_limit_per_second']:g} IAM logins/s a "
            f"{pool['pool_size']}-connection pool filled in {pool['seconds_to_fill']} s with "
            f"{pool['logins']} logins (per second: {pool['logins_per_second']})."
        )
    burst = figures.get("throttle_connect_storm")
    if burst:
        lines.append(
            f"- **throttled connect storm**: {burst['threads']} threads calling "
            f"`rdsiamkit.connect` at once against {burst['rate_limit_per_second']} IAM logins/s: "
            f"{burst['outcomes']}, {burst['logins']} logins "
            f"(per second: {burst['logins_per_second']})."
        )
    recovery = figures.get("throttle_recovery")
    if recovery:
        lines.append(
            f"- **throttling lifted**: {recovery['logins_while_throttled']} logins in "
            f"{recovery['throttled_seconds']} s at 0.2 logins/s (per second: "
            f"{recovery['logins_per_second_while_throttled']}); full "
            f"{recovery['seconds_to_fill_after_lift']} s after the limit was lifted."
        )
    return lines


def reliability(verbose: bool) -> dict[str, Any]:
    """Run the slow reliability tests and collect the figures they saved."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, RDSIAMKIT_RELIABILITY_RESULTS=tmp)
        print("running tests/reliability -m slow ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "-m",
                "slow",
                "tests/reliability",
            ],
            cwd=ROOT,
            env=env,
            capture_output=not verbose,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"reliability tests failed:\n{done.stdout}{done.stderr}")
        return {p.stem: json.loads(p.read_text()) for p in Path(tmp).glob("*.json")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"rewrite {DOCS.relative_to(ROOT)}"
    )
    parser.add_argument("--with-reliability", action="store_true", help="also run the soak tests")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--from-json", help="report a run saved with --json instead of running")
    parser.add_argument("--verbose", action="store_true", help="show each benchmark's own output")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        return report(saved.pop("machine"), saved, write_docs=args.write_docs)
    quick = args.quick
    figures: dict[str, Any] = {}
    figures["import"] = run(
        "bench_import", ["--runs", "5" if quick else "15"], verbose=args.verbose
    )
    figures["coldstart"] = run(
        "bench_coldstart",
        ["--runs", "5" if quick else "15", "--import-runs", "0"],
        verbose=args.verbose,
    )
    figures["storm"] = run(
        "bench_storm",
        ["--threads", "64", "--connects", "200" if quick else "1000"],
        verbose=args.verbose,
    )
    figures["connect"] = run(
        "bench_connect",
        ["--connects", "50" if quick else "200"],
        verbose=args.verbose,
    )
    figures["authmode"] = run(
        "bench_authmode",
        ["--users", "1000", "--rounds", "1" if quick else "3", "--single", "20" if quick else "50"],
        verbose=args.verbose,
    )
    figures["list_users"] = run(
        "bench_list_users",
        [
            "--users",
            "2000" if quick else "10000",
            "--rounds",
            "1" if quick else "3",
            "--single",
            "50" if quick else "200",
        ],
        verbose=args.verbose,
    )
    if args.with_reliability:
        figures["reliability"] = reliability(args.verbose)
    where = machine()
    flags = {"--quick": args.quick, "--with-reliability": args.with_reliability}
    where["command"] = " ".join(["bench/run_all.py", *(f for f, on in flags.items() if on)])
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": where, **figures}, indent=2))
    return report(where, figures, write_docs=args.write_docs)


def report(where: dict[str, str], figures: dict[str, Any], *, write_docs: bool) -> int:
    """Print the table; with ``write_docs`` rewrite the performance page."""
    table = rows(figures)
    print(f"\n{where['date']}: {where['nproc']} x {where['cpu']}, {where['memory']}")
    print(render_text(table))
    if write_docs:
        DOCS.write_text(render_markdown(table, figures, where))
        print(f"wrote {DOCS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
