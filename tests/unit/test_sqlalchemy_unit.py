"""rdsiamkit.sqlalchemy without a server: URL checks, wiring into the kit's connect."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import psycopg
import pytest
import sqlalchemy
from psycopg.adapt import AdaptersMap
from sqlalchemy.ext.asyncio import AsyncEngine

import rdsiamkit.sqlalchemy as rsa
from rdsiamkit.errors import ConfigurationError, InsecureTLSError
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

HOST = "mydb.cluster-abc123def456.eu-west-1.rds.amazonaws.com"
URL = f"postgresql+psycopg://app_user@{HOST}:5432/app"


class Refused(psycopg.OperationalError):
    """Stands in for a server, so no test here touches the network."""


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what the engines pass to rdsiamkit.connect / connect_async, then refuse."""
    seen: list[dict[str, Any]] = []

    def fake_connect(conninfo: str = "", **kwargs: Any) -> Any:
        seen.append({"conninfo": conninfo, **kwargs})
        raise Refused("refused by the test double")

    async def fake_connect_async(conninfo: str = "", **kwargs: Any) -> Any:
        return fake_connect(conninfo, **kwargs)

    monkeypatch.setattr(rsa, "connect", fake_connect)
    monkeypatch.setattr(rsa, "connect_async", fake_connect_async)
    return seen


def test_url_is_checked_and_cleaned() -> None:
    """Kit options leave the URL, libpq options stay, and a bare postgresql:// means psycopg."""
    engine = rsa.create_engine(
        f"postgresql://app_user@{HOST}/app?region=eu-west-1&token_port=6543&connect_timeout=5"
    )
    assert engine.url.drivername == "postgresql+psycopg"
    assert dict(engine.url.query) == {"connect_timeout": "5"}
    assert engine.url.password is None


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgres+psycopg"])
def test_scheme_aliases_mean_psycopg(scheme: str) -> None:
    """postgres:// and postgresql:// (with or without +psycopg) all become postgresql+psycopg."""
    engine = rsa.create_engine(f"{scheme}://app_user@{HOST}/app")
    assert engine.url.drivername == "postgresql+psycopg"


def test_keywords_alone_build_the_url() -> None:
    """Without a URL, host/port/user/dbname keywords make one."""
    engine = rsa.create_engine(host=HOST, port=6000, user="app_user", dbname="app")
    assert engine.url.render_as_string() == f"postgresql+psycopg://app_user@{HOST}:6000/app"


def test_keywords_override_url_parts() -> None:
    """A keyword wins over the same part of the URL."""
    engine = rsa.create_engine(URL, user="other", dbname="reports")
    assert (engine.url.username, engine.url.database, engine.url.port) == ("other", "reports", 5432)


def test_password_in_url_is_refused_without_echoing_it() -> None:
    """A URL password is refused (the token is the password), and not repeated in the error."""
    with pytest.raises(ConfigurationError, match="holds a password") as info:
        rsa.create_engine(f"postgresql+psycopg://app_user:hunter2secret@{HOST}/app")
    assert "hunter2secret" not in str(info.value)


def test_password_in_connect_args_is_refused() -> None:
    """connect_args cannot smuggle a password in either."""
    with pytest.raises(ConfigurationError, match="password"):
        rsa.create_engine(URL, connect_args={"password": "x"})


@pytest.mark.parametrize(
    "url",
    [f"postgresql+pg8000://u@{HOST}/d", f"postgresql+psycopg2cffi://u@{HOST}/d", "mysql://u@h/d"],
)
def test_other_drivers_are_refused(url: str) -> None:
    """Only psycopg 3, psycopg2 and asyncpg URLs are accepted: the drivers the kit logs in."""
    with pytest.raises(ConfigurationError, match="psycopg 3"):
        rsa.create_engine(url)


def test_drivers_go_to_the_matching_factory() -> None:
    """+asyncpg belongs to create_async_engine, +psycopg2 to create_engine."""
    with pytest.raises(ConfigurationError, match="create_async_engine"):
        rsa.create_engine(f"postgresql+asyncpg://u@{HOST}/d")
    with pytest.raises(ConfigurationError, match="blocking driver"):
        rsa.create_async_engine(f"postgresql+psycopg2://u@{HOST}/d")


def test_async_driver_and_plugin_urls_are_refused_by_the_sync_factory() -> None:
    """+psycopg_async belongs to create_async_engine; ?plugin= is for plain SQLAlchemy."""
    with pytest.raises(ConfigurationError, match="create_async_engine"):
        rsa.create_engine(f"postgresql+psycopg_async://u@{HOST}/d")
    with pytest.raises(ConfigurationError, match="drop \\?plugin="):
        rsa.create_engine(URL + "?plugin=rdsiamkit")


def test_weak_sslmode_is_refused_at_engine_creation() -> None:
    """sslmode=require fails when the engine is made, not at the first query."""
    with pytest.raises(InsecureTLSError):
        rsa.create_engine(URL + "?sslmode=require")


def test_missing_user_is_refused_at_engine_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine without a user to sign for is a configuration error up front."""
    monkeypatch.delenv("PGUSER", raising=False)
    with pytest.raises(ConfigurationError, match="user= is required"):
        rsa.create_engine(f"postgresql+psycopg://{HOST}/app")


def test_kit_options_in_connect_args_are_refused() -> None:
    """Token options belong to create_engine's keywords, where they are typed."""
    with pytest.raises(ConfigurationError, match="region"):
        rsa.create_engine(URL, connect_args={"region": "eu-west-1"})


def test_bad_token_port_in_url_is_refused() -> None:
    """token_port= in the URL must be a port number."""
    with pytest.raises(ConfigurationError, match="token_port"):
        rsa.create_engine(URL + "?token_port=abc")


def test_repeated_kit_option_is_refused() -> None:
    """A kit option given twice in the URL is ambiguous and refused."""
    with pytest.raises(ConfigurationError, match="given 2 times"):
        rsa.create_engine(URL + "?region=eu-west-1&region=us-east-1")


def test_provider_and_session_together_are_refused() -> None:
    """token_provider= and profile= name two credential sources: refused."""
    with pytest.raises(ConfigurationError, match="not both"):
        rsa.create_engine(URL, token_provider=TokenProvider(), profile="dev")


def test_sync_engine_connects_through_the_kit(calls: list[dict[str, Any]]) -> None:
    """Each DBAPI connect goes to rdsiamkit.connect with the dialect's args and the kit options."""
    provider = TokenProvider()
    engine = rsa.create_engine(
        URL + "?token_port=6543&hostaddr=10.0.0.7",
        token_provider=provider,
        connect_args={"application_name": "billing"},
        max_attempts=2,
    )
    with pytest.raises(sqlalchemy.exc.OperationalError, match="refused by the test double"):
        engine.connect()
    (call,) = calls
    assert call["token_provider"] is provider
    assert (call["host"], call["port"], call["user"], call["dbname"]) == (
        HOST,
        5432,
        "app_user",
        "app",
    )
    assert call["hostaddr"] == "10.0.0.7" and call["application_name"] == "billing"
    assert call["token_port"] == 6543 and call["max_attempts"] == 2
    assert isinstance(call["context"], AdaptersMap)  # the dialect's psycopg adapters are kept
    assert "password" not in call


async def test_async_engine_connects_through_the_kit(calls: list[dict[str, Any]]) -> None:
    """The async engine opens connections with rdsiamkit.connect_async and an async provider."""
    provider = TokenProvider()
    engine = rsa.create_async_engine(URL, token_provider=provider, region="eu-west-1")
    assert isinstance(engine, AsyncEngine)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="refused by the test double"):
        await engine.connect()
    (call,) = calls
    assert isinstance(call["token_provider"], AsyncTokenProvider)
    assert call["token_provider"].sync is provider
    assert call["region"] == "eu-west-1" and call["user"] == "app_user"
    await engine.dispose()


def test_pool_options_reach_sqlalchemy() -> None:
    """engine_kwargs configure SQLAlchemy's own pool."""
    engine = rsa.create_engine(URL, pool_size=3, echo=True)
    assert engine.pool.size() == 3  # type: ignore[attr-defined]
    assert engine.echo is True


def test_plugin_is_registered_for_sqlalchemy() -> None:
    """The sqlalchemy.plugins entry point named rdsiamkit loads RdsIamPlugin."""
    (entry,) = importlib.metadata.entry_points(group="sqlalchemy.plugins", name="rdsiamkit")
    assert entry.load() is rsa.RdsIamPlugin


def test_plugin_url_form(calls: list[dict[str, Any]]) -> None:
    """?plugin=rdsiamkit on a plain SQLAlchemy URL routes connects through the kit."""
    engine = sqlalchemy.engine_from_config(
        {
            "sqlalchemy.url": f"postgresql://app_user@{HOST}/app?plugin=rdsiamkit&token_port=6543",
            "sqlalchemy.pool_pre_ping": "true",
        }
    )
    assert engine.url.render_as_string() == f"postgresql+psycopg://app_user@{HOST}/app"
    with pytest.raises(sqlalchemy.exc.OperationalError):
        engine.connect()
    assert calls[0]["token_port"] == 6543
    assert isinstance(calls[0]["token_provider"], TokenProvider)


def test_plugin_refuses_password_urls() -> None:
    """The plugin applies the same URL checks as create_engine."""
    with pytest.raises(ConfigurationError, match="holds a password"):
        sqlalchemy.create_engine(f"postgresql+psycopg://u:pw@{HOST}/app?plugin=rdsiamkit")
