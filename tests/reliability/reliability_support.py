"""Helpers the reliability tests share (a module, not a conftest, so imports are unambiguous)."""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from rdsiamkit.testing import RdsIamEmulator

#: Where the soak and throttle tests leave their figures (the benchmarks table reads them):
#: the project's own ignored ``build/`` folder, never a fixed path in the system temp dir.
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parents[2] / "build" / "reliability"
RESULTS_DIR = Path(os.environ.get("RDSIAMKIT_RELIABILITY_RESULTS", str(DEFAULT_RESULTS_DIR)))


def kit_options(emu: RdsIamEmulator, user: str) -> dict[str, Any]:
    """Libpq keywords for the kit: endpoint name, 127.0.0.1, the emulator's CA; no sslmode."""
    info: dict[str, Any] = dict(emu.conninfo(user))
    info.pop("sslmode")  # the kit chooses verify-full itself
    return info


def server_sessions(emu: RdsIamEmulator, user: str) -> int:
    """Backends the server has open for ``user`` right now."""
    with emu.connect_admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [user]
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for_sessions(emu: RdsIamEmulator, user: str, expected: int, timeout: float) -> int:
    """Poll until the server shows ``expected`` sessions of ``user`` (backends exit lazily)."""
    deadline = time.monotonic() + timeout
    seen = server_sessions(emu, user)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = server_sessions(emu, user)
    return seen


def outcomes(emu: RdsIamEmulator, user: str) -> dict[str, int]:
    """IAM login decisions for ``user`` by outcome (``ok`` or the refusal reason)."""
    counts: collections.Counter[str] = collections.Counter(
        "ok" if e.ok else str(e.outcome.value if e.outcome else "?")
        for e in emu.auth_events()
        if e.user == user
    )
    return dict(sorted(counts.items()))


@attrs.define
class SoakCounters:
    """What the workers of a soak did; thread-safe."""

    queries: int = 0
    retried: int = 0
    failures: list[str] = attrs.field(factory=list)
    retry_reasons: collections.Counter[str] = attrs.field(factory=collections.Counter)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def ok(self) -> None:
        with self._lock:
            self.queries += 1

    def retry(self, err: BaseException) -> None:
        with self._lock:
            self.retried += 1
            self.retry_reasons[type(err).__name__] += 1

    def fail(self, err: BaseException) -> None:
        with self._lock:
            self.failures.append(f"{type(err).__name__}: {str(err)[:200]}")


def save_figures(name: str, figures: dict[str, Any]) -> Path:
    """Keep a test's figures as JSON for the performance page and the report."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str))
    return path
