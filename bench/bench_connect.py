"""Connection overhead, token minting and pool checkout: rdsiamkit vs the alternatives.

Runs everything side by side in one process against the local RDS IAM emulator
(root, PostgreSQL server binaries) and prints a table; nothing here is asserted.

CA files: libpq parses ``sslrootcert`` on every connect, so its size is part of
the cost.  The baseline (plain psycopg) gets the one certificate that signs the
emulator's server certificate: the least any client can parse.  The emulator's
CA is its own, not an RDS one, so the kit cannot pick it from the RDS bundle;
the kit therefore gets exactly what its default would give an endpoint in the
emulator's region (the region's certificates, ``ca_bundle_path(region=...)``)
with the emulator's CA added, and the old default (the whole 118-certificate
global bundle, plus the emulator's CA) is measured with plain psycopg beside it.

    .venv/bin/python bench/bench_connect.py [--connects 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool

import rdsiamkit
from rdsiamkit.testing import RdsIamEmulator
from rdsiamkit.tls import ca_bundle_path, full_bundle_path
from rdsiamkit.tokens import TokenProvider

GLOBAL = "psycopg.connect, global bundle (old kit default)"
SAME_CA = "psycopg.connect, the kit's CA file"


def per_op(fn: Callable[[], object], n: int, rounds: int = 3) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` rounds of ``n`` calls."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def interleaved(fns: dict[str, Callable[[], object]], n: int, rounds: int = 5) -> dict[str, float]:
    """Median per-call time of each fn, rounds interleaved so drift hits all alike."""
    return {k: wall for k, (wall, _) in interleaved_cpu(fns, n, rounds).items()}


def interleaved_cpu(
    fns: dict[str, Callable[[], object]], n: int, rounds: int = 5
) -> dict[str, tuple[float, float]]:
    """Median per-call ``(wall, client CPU)`` seconds of each fn, rounds interleaved.

    Client CPU (this process's ``time.process_time``) is what the CA file costs;
    it is far less disturbed than wall time by other work on the machine.
    """
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn()
            samples[name].append(((time.perf_counter() - t0) / n, (time.process_time() - c0) / n))
    return {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=200, help="connects per round")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n = args.connects
    results: dict[str, Any] = {"connects_per_round": n}

    with RdsIamEmulator() as emu, tempfile.TemporaryDirectory() as tmp:
        user = f"bench_{uuid.uuid4().hex[:6]}"
        emu.create_user(user, iam=True)
        creds = emu.add_credentials()
        session = creds.boto3_session(region=emu.region)
        info = dict(emu.conninfo(user))
        host, port = info["host"], int(info["port"])
        ca_files = _ca_files(Path(info["sslrootcert"]), emu.region, Path(tmp))
        results["ca_files"] = {k: v[1] for k, v in ca_files.items()}
        kit_opts = {k: v for k, v in info.items() if k != "sslmode"}
        kit_opts["sslrootcert"] = ca_files["kit"][0]
        old_info = {**info, "sslrootcert": ca_files["global"][0]}
        same_ca_info = {**info, "sslrootcert": ca_files["kit"][0]}
        provider = TokenProvider(session=session)
        client = session.client("rds", region_name=emu.region)
        premint = client.generate_db_auth_token(host, port, user, Region=emu.region)

        def plain() -> None:
            psycopg.connect(**info, password=premint).close()

        def kit() -> None:
            rdsiamkit.connect(**kit_opts, token_provider=provider).close()

        def plain_global() -> None:
            psycopg.connect(**old_info, password=premint).close()

        def plain_same_ca() -> None:
            psycopg.connect(**same_ca_info, password=premint).close()

        def naive_reused_client() -> None:
            token = client.generate_db_auth_token(host, port, user, Region=emu.region)
            psycopg.connect(**info, password=token).close()

        def naive_client_per_connect() -> None:
            c = session.client("rds", region_name=emu.region)
            token = c.generate_db_auth_token(host, port, user, Region=emu.region)
            psycopg.connect(**info, password=token).close()

        fns: dict[str, Callable[[], object]] = {
            "psycopg.connect (pre-minted token)": plain,
            "rdsiamkit.connect": kit,
            SAME_CA: plain_same_ca,
            GLOBAL: plain_global,
            "mint per connect, reused client": naive_reused_client,
            "mint per connect, client per connect": naive_client_per_connect,
        }
        wrapper = _aws_wrapper_connect(emu, info, creds)
        if wrapper is not None:
            fns["aws-advanced-python-wrapper iam plugin"] = wrapper
        kit()  # warm the cache and the client
        times = interleaved_cpu(fns, max(1, n // 5))
        base, base_cpu = times["psycopg.connect (pre-minted token)"]
        results["connect"] = {
            k: {"ms": w * 1e3, "ratio": w / base, "cpu_ms": c * 1e3, "cpu_ratio": c / base_cpu}
            for k, (w, c) in times.items()
        }

        cold = TokenProvider(session=session)
        for _ in range(1000):
            rdsiamkit.connect(**kit_opts, token_provider=cold).close()
        results["tokens_minted_per_1000_connects"] = {
            "rdsiamkit (cold cache)": cold.mint_count,
            "mint per connect": 1000,
        }
        results["kit_overhead_us"] = _kit_overhead_us(kit_opts, provider)
        lookup = timeit.Timer(lambda: ca_bundle_path(region=emu.region)).repeat(5, 20_000)
        results["default_bundle_lookup_us"] = min(lookup) / 20_000 * 1e6
        hit = timeit.Timer(lambda: provider.get_token(host, port, user)).repeat(5, 100_000)
        results["cache_hit_us"] = min(hit) / 100_000 * 1e6

        kit_pool = rdsiamkit.create_pool(**kit_opts, token_provider=provider, min_size=4)
        plain_pool = psycopg_pool.ConnectionPool(
            psycopg.conninfo.make_conninfo(**info, password=premint), min_size=4, open=False
        )
        with kit_pool, plain_pool:
            plain_pool.open(wait=True)
            kit_pool.wait()

            def checkout(pool: psycopg_pool.ConnectionPool[Any]) -> Callable[[], None]:
                def run() -> None:
                    with pool.connection() as conn:
                        conn.execute("SELECT 1")

                return run

            pools = interleaved(
                {"psycopg_pool": checkout(plain_pool), "rdsiamkit.create_pool": checkout(kit_pool)},
                2000,
            )
        results["pool_checkout"] = {
            k: {"us": v * 1e6, "ratio": v / pools["psycopg_pool"]} for k, v in pools.items()
        }
        results["emulator_auth_events"] = len(emu.auth_events())

    _print(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


def _ca_files(emulator_ca: Path, region: str, tmp: Path) -> dict[str, tuple[str, int]]:
    """CA files per row, ``{row: (path, certificates)}``, each ending with the emulator's CA.

    ``kit``: the certificates the kit's default picks for ``region`` (what it would
    parse against a real endpoint there) plus the emulator's CA; ``global``: the
    whole RDS bundle plus the emulator's CA; ``baseline``: the emulator's CA alone.
    """
    own = emulator_ca.read_bytes()
    files = {"baseline": (str(emulator_ca), own.count(b"BEGIN CERTIFICATE"))}
    for name, source in (
        ("kit", ca_bundle_path(region=region)),
        ("global", full_bundle_path()),
    ):
        pem = Path(source).read_bytes()
        path = tmp / f"{name}-plus-emulator-ca.pem"
        path.write_bytes(pem.rstrip(b"\n") + b"\n" + own)
        files[name] = (str(path), path.read_bytes().count(b"BEGIN CERTIFICATE"))
    return files


def _kit_overhead_us(kit_opts: dict[str, Any], provider: TokenProvider) -> float:
    """rdsiamkit.connect's own cost per call: everything but the network login."""
    real = psycopg.Connection.connect
    psycopg.Connection.connect = classmethod(lambda cls, *a, **k: None)  # type: ignore[assignment]
    try:
        best = min(
            timeit.Timer(lambda: rdsiamkit.connect(**kit_opts, token_provider=provider)).repeat(
                5, 2000
            )
        )
    finally:
        psycopg.Connection.connect = real  # type: ignore[method-assign]
    return best / 2000 * 1e6


def _aws_wrapper_connect(
    emu: RdsIamEmulator, info: dict[str, Any], creds: Any
) -> Callable[[], object] | None:
    """A connect through aws-advanced-python-wrapper's IAM plugin, if it is installed."""
    try:
        from aws_advanced_python_wrapper import AwsWrapperConnection
    except ImportError:
        print(
            "(aws-advanced-python-wrapper not installed: pip install aws-advanced-python-wrapper)"
        )
        return None
    import os

    os.environ["AWS_ACCESS_KEY_ID"] = creds.access_key_id
    os.environ["AWS_SECRET_ACCESS_KEY"] = creds.secret_access_key
    opts = {k: v for k, v in info.items() if k != "password"}

    def run() -> None:
        AwsWrapperConnection.connect(
            psycopg.Connection.connect,
            **opts,
            plugins="iam",
            iam_region=emu.region,
            iam_default_port=str(emu.port),
            wrapper_dialect="pg",
        ).close()

    try:
        run()
    except Exception as err:
        print(f"(aws-advanced-python-wrapper could not connect to the emulator: {err!r})")
        return None
    return run


def _print(results: dict[str, Any]) -> None:
    certs = results["ca_files"]
    print(
        f"\nCA certificates parsed per connect: psycopg {certs['baseline']}, "
        f"rdsiamkit {certs['kit']} (its regional default + the emulator's CA), "
        f"old global default {certs['global']}"
    )
    print(f"connect loop ({results['connects_per_round']} connects per round, median of 5)")
    print(f"  {'':50s} {'wall':>17s}          {'client CPU':>17s}")
    for name, row in results["connect"].items():
        print(
            f"  {name:50s} {row['ms']:8.3f} ms x{row['ratio']:.3f}   "
            f"{row['cpu_ms']:8.3f} ms x{row['cpu_ratio']:.3f}"
        )
    print("tokens minted per 1,000 connects:", results["tokens_minted_per_1000_connects"])
    print(f"rdsiamkit.connect own overhead (no network): {results['kit_overhead_us']:.1f} us")
    print(f"default CA bundle lookup (remembered): {results['default_bundle_lookup_us']:.2f} us")
    print(f"cache-hit get_token: {results['cache_hit_us']:.3f} us")
    print("pool checkout + SELECT 1:")
    for name, row in results["pool_checkout"].items():
        print(f"  {name:42s} {row['us']:8.1f} us          x{row['ratio']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
