"""Import time: ``import rdsiamkit`` vs ``import psycopg``, each in fresh interpreters.

Every sample is a new ``python -c`` process that times only the import
statement (interpreter start-up excluded); the two modules are sampled
alternately and the median is reported.  Also checks that ``import rdsiamkit``
leaves boto3 and botocore unimported.

    .venv/bin/python bench/bench_import.py [--runs 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

_PROBE = """
import sys, time
t0 = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t0
print(elapsed, int("boto3" in sys.modules), int("botocore" in sys.modules))
"""


def sample(module: str) -> tuple[float, bool]:
    """Seconds to import ``module`` in a fresh interpreter; whether boto3/botocore came too."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), out[1] == "1" or out[2] == "1"


def measure(runs: int) -> dict[str, Any]:
    """Median import seconds of rdsiamkit and psycopg over ``runs`` alternating samples."""
    modules = ("psycopg", "rdsiamkit")
    times: dict[str, list[float]] = {m: [] for m in modules}
    aws: dict[str, bool] = dict.fromkeys(modules, False)
    for module in modules:  # warm the OS file cache once
        sample(module)
    for _ in range(runs):
        for module in modules:
            seconds, pulled = sample(module)
            times[module].append(seconds)
            aws[module] |= pulled
    medians = {m: statistics.median(v) for m, v in times.items()}
    return {
        "runs": runs,
        "import_ms": {m: round(v * 1e3, 2) for m, v in medians.items()},
        "ratio_rdsiamkit_vs_psycopg": medians["rdsiamkit"] / medians["psycopg"],
        "rdsiamkit_imports_boto3": aws["rdsiamkit"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples per module (median)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.runs)
    ms = figures["import_ms"]
    print(f"import psycopg   {ms['psycopg']:8.2f} ms (median of {args.runs} fresh interpreters)")
    print(
        f"import rdsiamkit {ms['rdsiamkit']:8.2f} ms  x{figures['ratio_rdsiamkit_vs_psycopg']:.2f}"
    )
    print(f"boto3/botocore imported by `import rdsiamkit`: {figures['rdsiamkit_imports_boto3']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
