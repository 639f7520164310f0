"""No code path sends an IAM token over less than verify-full TLS without the explicit opt-out.

Every connection attempt psycopg makes (sync and async, direct, pooled, through
SQLAlchemy, and the login that ``set_auth_mode(verify=True)`` tests) passes
through ``BaseConnection._connect_gen`` with the final libpq conninfo of that
attempt.  The test records each attempt's sslmode, and whether its password was
an IAM token, never the token itself.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import attrs
import psycopg
import pytest
from psycopg._connection_base import BaseConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from reliability_support import kit_options

import rdsiamkit
from rdsiamkit.authmode import AuthMode, set_auth_mode
from rdsiamkit.errors import InsecureTLSError
from rdsiamkit.sqlalchemy import create_async_engine, create_engine
from rdsiamkit.testing import RdsIamEmulator
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

# The phase of the test now running; a plain cell, so pool worker threads see it too.
_phase = ["unlabelled"]


@attrs.frozen
class Attempt:
    """One connection attempt as libpq was asked to make it (no secret kept)."""

    path: str
    user: str
    sslmode: str
    sslrootcert: str
    with_token: bool


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[Attempt]:
    """Record every psycopg connection attempt in this test, sync or async."""
    seen: list[Attempt] = []
    label("unlabelled")
    original = BaseConnection.__dict__["_connect_gen"].__func__

    def spy(cls: type[Any], conninfo: str = "") -> Any:
        params = conninfo_to_dict(conninfo)
        seen.append(
            Attempt(
                path=_phase[0],
                user=str(params.get("user", "")),
                sslmode=str(params.get("sslmode", "<unset: libpq would prefer>")),
                sslrootcert=str(params.get("sslrootcert", "")),
                with_token="X-Amz-Signature=" in str(params.get("password", "")),
            )
        )
        return original(cls, conninfo)

    monkeypatch.setattr(BaseConnection, "_connect_gen", classmethod(spy))
    return seen


def label(path: str) -> None:
    """Attribute the attempts that follow, from any thread or task, to ``path``."""
    _phase[0] = path


async def test_every_path_connects_with_verify_full(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    provider: TokenProvider,
    attempts: list[Attempt],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """connect, connect_async, both pools, both engines, a refused cached token's retry and
    set_auth_mode(verify=True) all send tokens over verify-full; only the opt-out does not,
    and it warns."""
    monkeypatch.setenv("PGSSLMODE", "disable")  # libpq's default must not matter
    options = kit_options(rds_emulator, iam_user)
    query = f"hostaddr={rds_emulator.hostaddr}&sslrootcert={rds_emulator.ca_file}"
    url = f"postgresql+psycopg://{iam_user}@{rds_emulator.endpoint}:{rds_emulator.port}/postgres"

    label("connect")
    rdsiamkit.connect(**options, token_provider=provider).close()
    label("connect_async")
    await (await rdsiamkit.connect_async(**options, token_provider=provider)).close()

    label("create_pool")
    with rdsiamkit.create_pool(**options, token_provider=provider, min_size=2) as pool:
        pool.wait(timeout=10)
        with pool.connection() as conn:
            conn.execute("SELECT 1")
    label("create_async_pool")
    async with rdsiamkit.create_async_pool(
        **options, token_provider=AsyncTokenProvider(provider), min_size=2
    ) as apool:
        await apool.wait(timeout=10)

    label("sqlalchemy")
    engine = create_engine(f"{url}?{query}", token_provider=provider)
    with engine.connect() as sa_conn:
        sa_conn.exec_driver_sql("SELECT 1")
    engine.dispose()
    label("sqlalchemy_async")
    aengine = create_async_engine(f"{url}?{query}", token_provider=provider)
    async with aengine.connect() as sa_aconn:
        await sa_aconn.exec_driver_sql("SELECT 1")
    await aengine.dispose()

    label("refused_cached_token_retry")
    # X-Amz-Date has whole seconds, so a fresh token can look 1 s old: 3 s leaves 2 s spare.
    rds_emulator.max_token_age = 3.0
    await asyncio.sleep(3.2)  # the cached token is now too old for the server, not for the cache
    rdsiamkit.connect(**options, token_provider=provider).close()
    rds_emulator.max_token_age = 900.0

    label("set_auth_mode_verify")
    switched = rds_emulator.create_user(f"rel_pw_{uuid.uuid4().hex[:6]}")
    admin_info = rds_emulator.conninfo(password=rds_emulator.master_password)
    admin_info["sslmode"] = "require"  # the admin's own weaker mode must not be inherited
    try:
        with psycopg.connect(make_conninfo(**admin_info), autocommit=True) as admin:
            change = set_auth_mode(
                admin, switched, AuthMode.IAM, verify=True, token_provider=provider
            )
        assert change.verified
    finally:
        rds_emulator.drop_user(switched)

    label("opt-out")
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        rdsiamkit.connect(
            **options, sslmode="require", insecure_skip_tls_verify=True, token_provider=provider
        ).close()
    warned = [r for r in caplog.records if r.name == "rdsiamkit.tls"]
    assert warned and all(r.levelno == logging.WARNING for r in warned)
    assert "insecure_skip_tls_verify=True" in warned[0].getMessage()

    tokened = [a for a in attempts if a.with_token]
    paths = {a.path for a in tokened}
    assert paths == {
        "connect",
        "connect_async",
        "create_pool",
        "create_async_pool",
        "sqlalchemy",
        "sqlalchemy_async",
        "refused_cached_token_retry",
        "set_auth_mode_verify",
        "opt-out",
    }
    weak = [a for a in tokened if a.sslmode != "verify-full"]
    assert {a.path for a in weak} == {"opt-out"}
    assert all(a.sslmode == "require" for a in weak)
    assert all(a.sslrootcert == str(rds_emulator.ca_file) for a in tokened)
    retry = [a for a in tokened if a.path == "refused_cached_token_retry"]
    assert len(retry) == 2  # the refused cached token, then the fresh one


@pytest.mark.parametrize(
    ("sslmode", "opt_out"),
    [
        ("disable", False),
        ("disable", True),
        ("allow", True),
        ("prefer", True),
        ("require", False),
        ("verify-ca", False),
        (" Prefer ", True),
    ],
)
def test_weaker_modes_are_refused_before_any_attempt(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    provider: TokenProvider,
    attempts: list[Attempt],
    sslmode: str,
    opt_out: bool,
) -> None:
    """Weaker modes without the opt-out, and cleartext modes always, fail before connecting."""
    options = kit_options(rds_emulator, iam_user)
    with pytest.raises(InsecureTLSError):
        rdsiamkit.connect(
            **options, sslmode=sslmode, insecure_skip_tls_verify=opt_out, token_provider=provider
        )
    with pytest.raises(InsecureTLSError):
        rdsiamkit.create_pool(
            f"sslmode='{sslmode}'",
            **options,
            insecure_skip_tls_verify=opt_out,
            token_provider=provider,
            open=False,
        )
    assert attempts == []
