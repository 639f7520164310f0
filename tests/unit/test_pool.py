"""create_pool / create_async_pool argument handling (no server needed)."""

from __future__ import annotations

import pytest

import rdsiamkit

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"


@pytest.mark.parametrize("factory", [rdsiamkit.create_pool, rdsiamkit.create_async_pool])
@pytest.mark.parametrize("option", ["max_attempts", "retry_budget"])
def test_connect_retry_options_are_refused_clearly(factory: object, option: str) -> None:
    """connect()'s retry options on a pool are a ConfigurationError naming them."""
    with pytest.raises(rdsiamkit.ConfigurationError, match=option):
        factory(host=HOST, user="app", open=False, **{option: 3})  # type: ignore[operator]


@pytest.mark.parametrize("factory", [rdsiamkit.create_pool, rdsiamkit.create_async_pool])
def test_weak_sslmode_is_refused_before_the_pool_exists(factory: object) -> None:
    """A pool is never built around a downgraded TLS mode."""
    with pytest.raises(rdsiamkit.InsecureTLSError):
        factory(host=HOST, user="app", sslmode="require", open=False)  # type: ignore[operator]


def test_pool_conninfo_holds_no_secret_and_verifies_fully() -> None:
    """The pool's conninfo is verify-full with the RDS bundle and carries no password."""
    pool = rdsiamkit.create_pool(host=HOST, user="app", dbname="db", open=False)
    assert "sslmode=verify-full" in pool.conninfo
    assert "password" not in pool.conninfo
    assert pool.max_lifetime == 1800.0
    assert pool.connection_class.__name__ == "IamConnection"


@pytest.mark.parametrize(
    ("factory", "pool_class"),
    [
        (rdsiamkit.create_pool, "ConnectionPool"),
        (rdsiamkit.create_async_pool, "AsyncConnectionPool"),
    ],
)
def test_every_psycopg_pool_option_is_taken(factory: object, pool_class: str) -> None:
    """Each option of psycopg_pool's pool is a named parameter, not mistaken for libpq's."""
    import inspect

    import psycopg_pool

    theirs = set(inspect.signature(getattr(psycopg_pool, pool_class).__init__).parameters)
    ours = set(inspect.signature(factory).parameters)  # type: ignore[arg-type]
    assert theirs - {"self", "kwargs"} <= ours
    pool = factory(host=HOST, user="app", close_returns=True, open=False)  # type: ignore[operator]
    assert pool.close_returns


@pytest.mark.parametrize("factory", [rdsiamkit.create_pool, rdsiamkit.create_async_pool])
def test_a_callable_conninfo_is_refused_clearly(factory: object) -> None:
    """psycopg_pool's callable conninfo has no use here: the kit supplies tokens itself."""
    with pytest.raises(rdsiamkit.ConfigurationError, match="conninfo must be a string"):
        factory(lambda: "host=x", user="app", open=False)  # type: ignore[operator]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _provider() -> rdsiamkit.TokenProvider:
    import boto3

    session = boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region_name="us-east-1",
    )
    return rdsiamkit.TokenProvider(session=session)


def test_pool_timeout_names_the_last_connection_error() -> None:
    """A pool that cannot connect raises PoolTimeout caused by the explained connect error."""
    from psycopg_pool import PoolTimeout

    pool = rdsiamkit.create_pool(
        host=HOST,
        hostaddr="127.0.0.1",
        port=_closed_port(),
        user="app",
        token_provider=_provider(),
        open=False,
    )
    with pytest.raises(PoolTimeout, match="last connection attempt failed") as caught:
        pool.open(wait=True, timeout=1.5)
    pool.close()
    assert isinstance(caught.value.__cause__, rdsiamkit.ConnectError)
    assert "Connection refused" in str(caught.value)
    assert "X-Amz" not in str(caught.value)


async def test_async_pool_timeout_names_the_last_connection_error() -> None:
    """The async pool's PoolTimeout carries the last connect error too."""
    from psycopg_pool import PoolTimeout

    pool = rdsiamkit.create_async_pool(
        host=HOST,
        hostaddr="127.0.0.1",
        port=_closed_port(),
        user="app",
        token_provider=_provider(),
        open=False,
    )
    with pytest.raises(PoolTimeout, match="last connection attempt failed") as caught:
        await pool.open(wait=True, timeout=1.5)
    await pool.close()
    assert isinstance(caught.value.__cause__, rdsiamkit.ConnectError)
