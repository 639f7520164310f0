"""Throttled IAM logins: the kit backs off and recovers instead of storming the server.

RDS refuses new IAM connections above about 200 per second, with the same
``PAM authentication failed`` as any other refusal.  The emulator does the same
at a lower rate (``set_iam_rate_limit``) and records every attempt, so the
tests can count logins per second as the server saw them.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from reliability_support import kit_options, save_figures

import rdsiamkit
from rdsiamkit.errors import IamAuthenticationError
from rdsiamkit.testing import AuthEvent, AuthFailureReason, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider

pytestmark = pytest.mark.slow

RATE = 5.0
POOL_SIZE = 16
POOL_WORKERS = 3


@pytest.fixture
def throttled_user(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """An IAM user of its own, so its attempts can be told from other tests'."""
    name = rds_emulator.create_user(f"thr_{uuid.uuid4().hex[:8]}", iam=True)
    yield name
    rds_emulator.drop_user(name)


def attempts(emu: RdsIamEmulator, user: str, since: float) -> list[AuthEvent]:
    """The IAM logins of ``user`` the emulator decided since ``since`` (epoch seconds)."""
    return [e for e in emu.auth_events() if e.user == user and e.time >= since]


def per_second(events: list[AuthEvent], since: float) -> list[int]:
    """Logins in each whole second after ``since``."""
    counts = collections.Counter(int(e.time - since) for e in events)
    return [counts.get(i, 0) for i in range(max(counts, default=-1) + 1)]


def assert_no_storm(events: list[AuthEvent], since: float, wanted: int) -> None:
    """In every second, at most four logins per connection the pool still lacked.

    psycopg_pool retries a failed connection after 0.9-1.1 s, then 2, 4... s, so a
    missing connection makes at most two attempts in any one second, and the kit
    turns an attempt into at most two logins (a refused cached token is replaced
    once).  Without backoff, three pool workers would make ~100 logins a second.
    """
    for second, logins in enumerate(per_second(events, since)):
        opened = sum(1 for e in events if e.ok and e.time < since + second)
        assert logins <= 4 * (wanted - opened), (second, logins, wanted - opened)


def test_pool_under_throttling_fills_without_hammering(
    rds_emulator: RdsIamEmulator, throttled_user: str, provider: TokenProvider
) -> None:
    """At 5 logins/s a 16-connection pool fills by backing off, never storming, and a full
    pool makes no further logins."""
    options = kit_options(rds_emulator, throttled_user)
    rdsiamkit.connect(**options, token_provider=provider).close()  # warm token cache
    rds_emulator.set_iam_rate_limit(RATE)
    since = time.time()
    mints_before = provider.mint_count
    with rdsiamkit.create_pool(
        **options,
        token_provider=provider,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        num_workers=POOL_WORKERS,
    ) as pool:
        pool.wait(timeout=60)
        filled = time.time() - since
        stats = pool.get_stats()
        time.sleep(1.0)
        quiet_since = time.time()
        time.sleep(1.0)
        assert attempts(rds_emulator, throttled_user, quiet_since) == []
    seen = attempts(rds_emulator, throttled_user, since)
    refused = collections.Counter(e.outcome for e in seen if not e.ok)
    save_figures(
        "throttle_pool",
        {
            "rate_limit_per_second": RATE,
            "pool_size": POOL_SIZE,
            "seconds_to_fill": round(filled, 2),
            "logins": len(seen),
            "logins_ok": sum(e.ok for e in seen),
            "logins_per_second": per_second(seen, since),
            "pool_connection_attempts": stats["connections_num"],
            "pool_connection_errors": stats["connections_errors"],
            "tokens_minted": provider.mint_count - mints_before,
        },
    )
    assert set(refused) <= {AuthFailureReason.RATE_LIMITED}
    assert sum(e.ok for e in seen) == POOL_SIZE
    assert_no_storm(seen, since, POOL_SIZE)
    assert len(seen) <= 2 * stats["connections_num"]


def test_pool_recovers_promptly_when_throttling_ends(
    rds_emulator: RdsIamEmulator, throttled_user: str, provider: TokenProvider
) -> None:
    """With logins almost blocked (0.2/s) for 6 s a pool backs off exponentially; once the
    limit lifts it fills within one backoff period."""
    options = kit_options(rds_emulator, throttled_user)
    rds_emulator.set_iam_rate_limit(0.2)
    since = time.time()
    with rdsiamkit.create_pool(
        **options, token_provider=provider, min_size=8, max_size=8, num_workers=POOL_WORKERS
    ) as pool:
        time.sleep(6.0)
        throttled = attempts(rds_emulator, throttled_user, since)
        rds_emulator.set_iam_rate_limit(None)
        lifted = time.time()
        pool.wait(timeout=30)
        recovered = time.time() - lifted
    save_figures(
        "throttle_recovery",
        {
            "throttled_seconds": 6,
            "logins_while_throttled": len(throttled),
            "logins_per_second_while_throttled": per_second(throttled, since),
            "seconds_to_fill_after_lift": round(recovered, 2),
        },
    )
    assert_no_storm(throttled, since, 8)
    # Retries after 1, 2, 4 s: at most 4 attempts per connection in 6 s, two logins each.
    assert len(throttled) <= 8 * 4 * 2
    assert recovered < 10.0


def test_connect_storm_backs_off_with_jitter_and_every_connect_succeeds(
    rds_emulator: RdsIamEmulator, throttled_user: str, provider: TokenProvider
) -> None:
    """64 threads connecting at once at 20 logins/s all succeed within retry_budget, and the
    server sees no more than three logins per connect."""
    options = kit_options(rds_emulator, throttled_user)
    rdsiamkit.connect(**options, token_provider=provider).close()
    rds_emulator.set_iam_rate_limit(20.0)
    time.sleep(1.0)  # a full burst allowance
    outcomes: collections.Counter[str] = collections.Counter()
    barrier = threading.Barrier(64)
    since = time.time()

    def one() -> None:
        barrier.wait()
        try:
            rdsiamkit.connect(
                **options, token_provider=provider, max_attempts=6, retry_budget=10.0
            ).close()
        except IamAuthenticationError:
            outcomes["refused"] += 1
        else:
            outcomes["ok"] += 1

    threads = [threading.Thread(target=one) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    seen = attempts(rds_emulator, throttled_user, since)
    save_figures(
        "throttle_connect_storm",
        {
            "threads": 64,
            "rate_limit_per_second": 20,
            "outcomes": dict(outcomes),
            "logins": len(seen),
            "logins_per_second": per_second(seen, since),
        },
    )
    assert outcomes == {"ok": 64}
    assert len(seen) <= 3 * 64
