"""rdsiamkit.sqlalchemy engines against the RDS IAM emulator."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.dialects.postgresql import JSONB

import rdsiamkit
from rdsiamkit.sqlalchemy import create_async_engine, create_engine
from rdsiamkit.testing import AuthFailureReason, FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider


def url(emu: RdsIamEmulator, user: str) -> str:
    """A SQLAlchemy URL for the emulator, dialling 127.0.0.1 and trusting its CA."""
    query = f"hostaddr={emu.hostaddr}&sslrootcert={emu.ca_file}"
    return f"postgresql+psycopg://{user}@{emu.endpoint}:{emu.port}/postgres?{query}"


def test_engine_logs_in_as_iam_user_over_verify_full(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """The engine's connections are IAM logins over verified TLS."""
    engine = create_engine(url(rds_emulator, iam_user), token_provider=provider)
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).one()
        assert tuple(row) == (iam_user, True)
        dbapi = conn.connection.dbapi_connection
        assert isinstance(dbapi, psycopg.Connection)
        assert dbapi.info.get_parameters()["sslmode"] == "verify-full"
    engine.dispose()
    assert rds_emulator.auth_events()[-1].ok


def test_keywords_and_connect_args_instead_of_a_url(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """host/port/user/dbname keywords plus connect_args reach the server like a URL does."""
    engine = create_engine(
        host=rds_emulator.endpoint,
        port=rds_emulator.port,
        user=iam_user,
        dbname="postgres",
        connect_args={
            "hostaddr": rds_emulator.hostaddr,
            "sslrootcert": str(rds_emulator.ca_file),
            "application_name": "sa-test",
        },
        token_provider=provider,
    )
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW application_name").scalar() == "sa-test"
    engine.dispose()


def test_dialect_adapters_are_kept(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """Typed SQLAlchemy round trips (JSONB, bound parameters) work on kit connections."""
    engine = create_engine(url(rds_emulator, iam_user), token_provider=provider)
    document = {"user": iam_user, "scores": [1, 2, 3], "nested": {"ok": True}}
    statement = sqlalchemy.select(sqlalchemy.cast(sqlalchemy.literal(document, JSONB), JSONB))
    with engine.connect() as conn:
        assert conn.execute(statement).scalar() == document
    engine.dispose()


def test_secrets_never_in_engine_repr_or_url(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """After real logins, neither the engine nor its URL nor the pool shows a token or secret."""
    provider = TokenProvider(session=creds.boto3_session(region=rds_emulator.region))
    tokens: list[str] = []
    original = provider.issue

    def spy(*args: Any, **kwargs: Any) -> Any:
        issued = original(*args, **kwargs)
        tokens.append(issued.token)
        return issued

    provider.issue = spy  # type: ignore[method-assign]
    engine = create_engine(url(rds_emulator, iam_user), token_provider=provider, pool_size=2)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    texts = [
        repr(engine),
        str(engine.url),
        engine.url.render_as_string(hide_password=False),
        repr(engine.url),
        engine.pool.status(),
        repr(provider),
    ]
    engine.dispose()
    blob = "\n".join(texts)
    assert tokens and engine.url.password is None
    assert "X-Amz" not in blob
    for secret in [*tokens, creds.secret_access_key]:
        assert secret not in blob


def test_pool_recycle_across_many_token_expiries(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """5 s server max age, 1.5 s reuse, pool_recycle=1: ~8 s of queries with zero failures."""
    # A reused token can look 2.5 s old (1.5 s reuse + whole-second X-Amz-Date).
    rds_emulator.max_token_age = 5.0
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5
    )
    engine = create_engine(
        url(rds_emulator, iam_user),
        token_provider=provider,
        pool_size=2,
        max_overflow=0,
        pool_recycle=1,
    )
    rds_emulator.clear_auth_events()
    failures = queries = 0
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            queries += 1
        except sqlalchemy.exc.DBAPIError:
            failures += 1
        time.sleep(0.02)
    engine.dispose()
    events = rds_emulator.auth_events()
    assert failures == 0 and queries > 100
    assert provider.mint_count >= 4  # re-minted as tokens aged past the reuse window
    assert len(events) >= 6 and all(e.ok for e in events)


def test_pre_ping_replaces_a_killed_connection(
    rds_emulator: RdsIamEmulator, iam_user: str, provider: TokenProvider
) -> None:
    """pool_pre_ping notices a terminated backend and logs in again with a token."""
    engine = create_engine(
        url(rds_emulator, iam_user), token_provider=provider, pool_size=1, pool_pre_ping=True
    )
    with engine.connect() as conn:
        first_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with rds_emulator.connect_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first_pid])
    rds_emulator.clear_auth_events()
    with engine.connect() as conn:
        second_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    engine.dispose()
    assert second_pid != first_pid
    assert [e.ok for e in rds_emulator.auth_events()] == [True]


def test_refused_cached_token_is_replaced_once(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """A cached token the server calls expired is discarded and the engine logs in afresh."""
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=600.0
    )
    engine = create_engine(url(rds_emulator, iam_user), token_provider=provider)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    engine.dispose()  # the next checkout must open a new connection with the cached token
    time.sleep(3.2)
    # X-Amz-Date has whole seconds, so a fresh token can look 1 s old: 3 s leaves 2 s spare.
    rds_emulator.max_token_age = 3.0
    rds_emulator.clear_auth_events()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == iam_user
    engine.dispose()
    assert [e.outcome for e in rds_emulator.auth_events()] == [AuthFailureReason.EXPIRED, None]
    assert provider.mint_count == 2


def test_denied_login_is_a_typed_error(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials, provider: TokenProvider
) -> None:
    """A policy denial surfaces as SQLAlchemy's OperationalError wrapping the kit's error."""
    rds_emulator.set_policy(creds.access_key_id, [rds_emulator.db_user_arn("someone_else")])
    engine = create_engine(url(rds_emulator, iam_user), token_provider=provider)
    with pytest.raises(sqlalchemy.exc.OperationalError) as info:
        engine.connect()
    engine.dispose()
    assert isinstance(info.value.orig, rdsiamkit.IamAuthenticationError)
    assert "rds-db:connect" in str(info.value.orig)


async def test_async_engine_logs_in_and_recycles(
    rds_emulator: RdsIamEmulator, iam_user: str, creds: FakeCredentials
) -> None:
    """The AsyncEngine runs queries across token re-mints with pool_recycle, zero failures."""
    rds_emulator.max_token_age = 5.0  # a reused token can look 2.5 s old
    sync = TokenProvider(session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5)
    engine = create_async_engine(
        url(rds_emulator, iam_user),
        token_provider=AsyncTokenProvider(sync),
        pool_size=2,
        pool_recycle=1,
        pool_pre_ping=True,
    )
    users = set()
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            result = await conn.exec_driver_sql("SELECT current_user")
            users.add(result.scalar())
    await engine.dispose()
    assert users == {iam_user}
    assert sync.mint_count >= 2
    assert all(e.ok for e in rds_emulator.auth_events())


def test_plugin_url_from_a_config_file(
    rds_emulator: RdsIamEmulator,
    iam_user: str,
    creds: FakeCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """engine_from_config with ?plugin=rdsiamkit&profile=... logs in with that profile's keys."""
    profile = f"p{uuid.uuid4().hex[:8]}"
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[{profile}]\naws_access_key_id = {creds.access_key_id}\n"
        f"aws_secret_access_key = {creds.secret_access_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    engine = sqlalchemy.engine_from_config(
        {
            "sqlalchemy.url": url(rds_emulator, iam_user) + f"&plugin=rdsiamkit&profile={profile}",
            "sqlalchemy.pool_pre_ping": "true",
        }
    )
    assert "profile" not in str(engine.url) and "plugin" not in str(engine.url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == iam_user
    engine.dispose()
    assert rds_emulator.auth_events()[-1].access_key_id == creds.access_key_id
