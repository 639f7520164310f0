"""Token minting under a connection storm and over 1,000 connects: rdsiamkit vs the others.

Counts every SigV4 presigning botocore does (each IAM token is one), whoever
asks for it, by wrapping ``botocore.auth.SigV4QueryAuth.add_auth``: the signer
under both ``generate_db_auth_token`` and the kit (which signs without a client).
Each approach gets a fresh IAM user of the local RDS IAM emulator, so every
cache starts cold.

* storm: 64 threads (or 64 asyncio tasks) released together, one connect each,
  repeated ``--rounds`` times (median);
* sequential: 1,000 connects in a row.

Approaches: rdsiamkit (one shared provider), minting per connect with one
shared boto3 client, minting per connect with a client per connect (a session
per thread: boto3 sessions are not thread-safe), and
aws-advanced-python-wrapper's IAM plugin when it is installed.

    .venv/bin/python bench/bench_storm.py [--threads 64] [--connects 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import botocore.auth
import psycopg

import rdsiamkit
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

Connect = Callable[[], None]
# A boto3 session per connect costs ~0.1 s of CPU: fewer sequential connects for it.
SEQUENTIAL_CAP = {"mint per connect, client per connect": 100}


class PresignCounter:
    """Counts botocore presignings (IAM tokens) while installed; thread-safe."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[PresignCounter]:
        real = botocore.auth.SigV4QueryAuth.add_auth

        def counting(signer: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            return real(signer, *args, **kwargs)

        botocore.auth.SigV4QueryAuth.add_auth = counting  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.auth.SigV4QueryAuth.add_auth = real  # type: ignore[method-assign]


def approaches(emu: RdsIamEmulator, creds: FakeCredentials) -> dict[str, Callable[[str], Connect]]:
    """For each approach, a factory: IAM user -> one connect (a fresh cache per factory call)."""

    def libpq(user: str) -> dict[str, Any]:
        return dict(emu.conninfo(user))

    def kit(user: str) -> Connect:
        provider = TokenProvider(session=creds.boto3_session(region=emu.region))
        # Build the signing client up front, as the others do; ``user``'s cache stays cold.
        provider.get_token(emu.endpoint, emu.port, "warm_up")
        options = {k: v for k, v in libpq(user).items() if k != "sslmode"}
        return lambda: rdsiamkit.connect(**options, token_provider=provider).close()

    def reused_client(user: str) -> Connect:
        client = creds.boto3_session(region=emu.region).client("rds")
        info = libpq(user)

        def run() -> None:
            token = client.generate_db_auth_token(emu.endpoint, emu.port, user)
            psycopg.connect(**info, password=token).close()

        return run

    def client_per_connect(user: str) -> Connect:
        info = libpq(user)

        def run() -> None:
            client = creds.boto3_session(region=emu.region).client("rds")
            token = client.generate_db_auth_token(emu.endpoint, emu.port, user)
            psycopg.connect(**info, password=token).close()

        return run

    found: dict[str, Callable[[str], Connect]] = {
        "rdsiamkit.connect": kit,
        "mint per connect, reused client": reused_client,
        "mint per connect, client per connect": client_per_connect,
    }
    try:
        from aws_advanced_python_wrapper import AwsWrapperConnection
    except ImportError:
        print("(aws-advanced-python-wrapper not installed: skipped)")
        return found

    def wrapper(user: str) -> Connect:
        info = libpq(user)
        return lambda: AwsWrapperConnection.connect(
            psycopg.Connection.connect,
            **info,
            plugins="iam",
            iam_region=emu.region,
            iam_default_port=str(emu.port),
            wrapper_dialect="pg",
        ).close()

    found["aws-advanced-python-wrapper iam plugin"] = wrapper
    return found


def storm(connect: Connect, threads: int) -> tuple[float, list[str]]:
    """Release ``threads`` threads at once, one connect each; seconds and errors."""
    barrier = threading.Barrier(threads + 1)
    errors: list[str] = []

    def one() -> None:
        barrier.wait()
        try:
            connect()
        except Exception as err:
            errors.append(repr(err)[:200])

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, errors


async def async_storm(provider: AsyncTokenProvider, options: dict[str, Any], tasks: int) -> float:
    """``tasks`` coroutines calling rdsiamkit.connect_async at once; seconds for all."""

    async def one() -> None:
        conn = await rdsiamkit.connect_async(**options, token_provider=provider)
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(tasks)))
    return time.perf_counter() - started


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the rounds; errors added up."""
    return {
        "tokens_minted": statistics.median(s["tokens_minted"] for s in samples),
        "tokens_minted_max": max(s["tokens_minted"] for s in samples),
        "seconds": round(statistics.median(s["seconds"] for s in samples), 3),
        "logins": statistics.median(s["logins"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
        "first_error": next((s["first_error"] for s in samples if s["first_error"]), None),
        "rounds": len(samples),
    }


def measure(threads: int, connects: int, rounds: int) -> dict[str, Any]:
    """Run every approach's storms (``rounds`` each, interleaved) and sequential loop."""
    storms: dict[str, list[dict[str, Any]]] = {}
    sequential: dict[str, Any] = {}
    saved_env = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with RdsIamEmulator() as emu, PresignCounter().installed() as counter:
        creds = emu.add_credentials()
        # The wrapper takes credentials from boto3's default chain only.
        os.environ["AWS_ACCESS_KEY_ID"] = creds.access_key_id
        os.environ["AWS_SECRET_ACCESS_KEY"] = creds.secret_access_key

        def fresh_user() -> str:
            return emu.create_user(f"storm_{uuid.uuid4().hex[:8]}", iam=True)

        def logins(user: str) -> int:
            return sum(1 for e in emu.auth_events() if e.user == user)

        try:
            kinds = approaches(emu, creds)
            warm = fresh_user()
            kinds["rdsiamkit.connect"](warm)()  # TLS, libpq and boto3 loaded once
            emu.drop_user(warm)
            for _ in range(rounds):
                for name, factory in kinds.items():
                    user = fresh_user()
                    connect = factory(user)
                    before = counter.count
                    seconds, errors = storm(connect, threads)
                    storms.setdefault(name, []).append(
                        {
                            "tokens_minted": counter.count - before,
                            "seconds": seconds,
                            "logins": logins(user),
                            "errors": len(errors),
                            "first_error": errors[0] if errors else None,
                        }
                    )
                    emu.drop_user(user)
                user = fresh_user()
                sync = TokenProvider(session=creds.boto3_session(region=emu.region))
                sync.get_token(emu.endpoint, emu.port, "warm_up")  # signing client, not ``user``
                options = {k: v for k, v in emu.conninfo(user).items() if k != "sslmode"}
                before = counter.count
                seconds = asyncio.run(async_storm(AsyncTokenProvider(sync), options, threads))
                storms.setdefault("rdsiamkit.connect_async (tasks)", []).append(
                    {
                        "tokens_minted": counter.count - before,
                        "seconds": seconds,
                        "logins": logins(user),
                        "errors": 0,
                        "first_error": None,
                    }
                )
                emu.drop_user(user)
            for name, factory in kinds.items():
                user = fresh_user()
                connect = factory(user)
                count = min(connects, SEQUENTIAL_CAP.get(name, connects))
                before = counter.count
                started = time.perf_counter()
                for _ in range(count):
                    connect()
                minted = counter.count - before
                sequential[name] = {
                    "connects": count,
                    "tokens_minted": minted,
                    # Scaled only where fewer connects were run (SEQUENTIAL_CAP).
                    "tokens_per_run": minted * connects / count,
                    "seconds": round(time.perf_counter() - started, 3),
                    "logins": logins(user),
                }
                emu.drop_user(user)
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {
        "threads": threads,
        "connects": connects,
        "storm": {name: _summary(samples) for name, samples in storms.items()},
        "sequential": sequential,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=64, help="threads/tasks in the storm")
    parser.add_argument("--connects", type=int, default=1000, help="sequential connects")
    parser.add_argument("--rounds", type=int, default=3, help="storms per approach (median)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = measure(args.threads, args.connects, args.rounds)
    print(
        f"\n{args.threads}-way connect storm on a cold cache, median of {args.rounds} "
        "(tokens minted, max, seconds, errors):"
    )
    for name, row in results["storm"].items():
        print(
            f"  {name:42s} {row['tokens_minted']:5g} {row['tokens_minted_max']:5d} "
            f"{row['seconds']:7.3f} s  {row['errors']}"
        )
    print(f"sequential connects (connects, tokens minted, per {args.connects:,}, seconds):")
    for name, row in results["sequential"].items():
        print(
            f"  {name:42s} {row['connects']:5d} {row['tokens_minted']:5d} "
            f"{row['tokens_per_run']:7.1f}  {row['seconds']:7.3f} s"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
