"""Cold start: a fresh interpreter's time to the first row of ``SELECT 1`` over IAM auth.

What a CLI, a cron job, a Lambda cold start or a short-lived worker pays: every
sample is a new ``python -c`` process that imports the libraries, resolves AWS
credentials (from the environment, as the emulator's key), signs its first IAM
token and runs ``SELECT 1`` over verify-full TLS against the local RDS IAM
emulator (root, PostgreSQL server binaries).  Three ways, sampled in
interleaved rounds (each goes first in turn), median of ``--runs``:

* ``rdsiamkit.connect``: the kit, credentials from the default chain;
* ``boto3 generate_db_auth_token + psycopg``: hand-written, an RDS client per
  process, the way the AWS documentation shows it;
* ``aws-advanced-python-wrapper iam plugin``: ``AwsWrapperConnection.connect``
  with ``plugins="iam"`` (the ``bench`` extra installs it).

The figure is measured inside the child from its first line (interpreter
start-up excluded, as for ``bench_import``); the whole process's wall time is
reported too.  ``import rdsiamkit`` vs ``import psycopg`` comes from
``bench_import`` (fresh interpreters, median of ``--import-runs``; 0 skips it).

    .venv/bin/python bench/bench_coldstart.py [--runs 15] [--import-runs 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rdsiamkit.testing import RdsIamEmulator

KIT = "rdsiamkit.connect"
HAND = "boto3 generate_db_auth_token + psycopg"
WRAPPER = "aws-advanced-python-wrapper iam plugin"

# Each probe starts its clock on its first line and prints one JSON line.
_HEAD = "import time\nt0 = time.perf_counter()\n"
_TAIL = (
    "row = conn.execute('SELECT 1').fetchone()\n"
    "ms = (time.perf_counter() - t0) * 1e3\n"
    "assert row == (1,), row\n"
    "conn.close()\n"
    "import json, sys\n"
    "print(json.dumps({'ms': ms, 'boto3': 'boto3' in sys.modules}))\n"
)
PROBES = {
    KIT: "import rdsiamkit\nconn = rdsiamkit.connect(**OPTS)\n",
    HAND: (
        "import boto3\n"
        "import psycopg\n"
        "client = boto3.client('rds', region_name=REGION)\n"
        "token = client.generate_db_auth_token(OPTS['host'], int(OPTS['port']), OPTS['user'],"
        " Region=REGION)\n"
        "conn = psycopg.connect(**OPTS, sslmode='verify-full', password=token)\n"
    ),
    WRAPPER: (
        "import psycopg\n"
        "from aws_advanced_python_wrapper import AwsWrapperConnection\n"
        "conn = AwsWrapperConnection.connect(psycopg.Connection.connect, **OPTS,"
        " sslmode='verify-full', plugins='iam', iam_region=REGION,"
        " iam_default_port=OPTS['port'], wrapper_dialect='pg')\n"
    ),
}


def probe_source(name: str, opts: dict[str, str], region: str) -> str:
    """The child's program for approach ``name``."""
    return f"{_HEAD}OPTS = {opts!r}\nREGION = {region!r}\n{PROBES[name]}{_TAIL}"


def child_env(access_key_id: str, secret: str, home: Path) -> dict[str, str]:
    """The environment of a sample: the emulator's key, no other AWS configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return env


def sample(source: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one child: its in-process ms to the first row and the process's wall ms."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", source], env=env, capture_output=True, text=True, check=False
    )
    wall = (time.perf_counter() - start) * 1e3
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        return {"error": lines[-1]}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_ms"] = wall
    return figures


def measure(runs: int) -> dict[str, Any]:
    """Median cold-start figures of each approach over ``runs`` interleaved rounds."""
    with RdsIamEmulator() as emu, tempfile.TemporaryDirectory() as home:
        user = f"cold_{uuid.uuid4().hex[:6]}"
        emu.create_user(user, iam=True)
        creds = emu.add_credentials()
        opts = {k: v for k, v in emu.conninfo(user).items() if k != "sslmode"}
        env = child_env(creds.access_key_id, creds.secret_access_key, Path(home))
        sources = {name: probe_source(name, opts, emu.region) for name in PROBES}
        errors: dict[str, str] = {}
        for name, source in sources.items():  # warm the OS file cache; find who cannot connect
            first = sample(source, env)
            if "error" in first:
                errors[name] = first["error"]
        samples: dict[str, list[dict[str, Any]]] = {n: [] for n in sources if n not in errors}
        names = list(samples)
        for turn in range(runs):  # each approach goes first in turn
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                figures = sample(sources[name], env)
                if "error" in figures:
                    raise SystemExit(f"{name} failed after a first success: {figures['error']}")
                samples[name].append(figures)
        logins = len(emu.auth_events())
    return {
        "runs": runs,
        "first_row_ms": {n: statistics.median(s["ms"] for s in v) for n, v in samples.items()},
        "process_ms": {
            n: statistics.median(s["process_ms"] for s in v) for n, v in samples.items()
        },
        "imports_boto3": {n: any(s["boto3"] for s in v) for n, v in samples.items()},
        "errors": errors,
        "emulator_logins": logins,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples per approach (median)")
    parser.add_argument(
        "--import-runs", type=int, default=15, help="import samples per module (0: skip)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.runs)
    if args.import_runs:
        from bench_import import measure as measure_imports

        figures["import"] = measure_imports(args.import_runs)
    _print(figures)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


def _print(figures: dict[str, Any]) -> None:
    runs = figures["runs"]
    print(f"\ntime to the first row of SELECT 1 in a fresh interpreter (median of {runs})")
    print(f"  {'':42s} {'in process':>10s} {'process wall':>13s}  imports boto3")
    for name, ms in sorted(figures["first_row_ms"].items(), key=lambda item: item[1]):
        print(
            f"  {name:42s} {ms:7.0f} ms {figures['process_ms'][name]:10.0f} ms  "
            f"{figures['imports_boto3'][name]}"
        )
    for name, error in figures["errors"].items():
        print(f"  {name}: not measured, it could not log in to the emulator: {error}")
    imports = figures.get("import")
    if imports:
        ms = imports["import_ms"]
        print(
            f"import rdsiamkit {ms['rdsiamkit']:.0f} ms vs import psycopg {ms['psycopg']:.0f} ms "
            f"(+{ms['rdsiamkit'] - ms['psycopg']:.0f} ms, median of {imports['runs']})"
        )


if __name__ == "__main__":
    sys.exit(main())
