"""rdsiamkit.asyncpg and rdsiamkit.psycopg2 without a server: imports and option checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rdsiamkit.asyncpg as kit_asyncpg
import rdsiamkit.psycopg2 as kit_psycopg2
from rdsiamkit.errors import ConfigurationError

HOST = "mydb.cluster-abc123def456.us-east-1.rds.amazonaws.com"


def test_import_rdsiamkit_never_imports_the_drivers() -> None:
    """`import rdsiamkit` loads neither asyncpg nor psycopg2."""
    code = "import sys, rdsiamkit; print(sorted({'asyncpg', 'psycopg2'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


async def test_asyncpg_refuses_a_password_and_unknown_keywords() -> None:
    """A password, ssl= and a libpq keyword asyncpg cannot honour are refused before any I/O."""
    with pytest.raises(ConfigurationError, match="password"):
        await kit_asyncpg.connect(host=HOST, user="u", password="not-a-token")
    with pytest.raises(ConfigurationError, match="ssl= is set by rdsiamkit"):
        await kit_asyncpg.connect(host=HOST, user="u", ssl=True)
    with pytest.raises(ConfigurationError, match="keepalives"):
        await kit_asyncpg.connect(host=HOST, user="u", keepalives="1")
    with pytest.raises(ConfigurationError, match="dbname= or database="):
        await kit_asyncpg.connect(host=HOST, user="u", dbname="a", database="b")


def test_asyncpg_pool_checks_options_up_front() -> None:
    """create_pool() refuses a socket host before a pool exists."""
    with pytest.raises(ConfigurationError, match="host= is required"):
        kit_asyncpg.create_pool(host="/var/run/postgresql", user="u")


def test_asyncpg_context_verify_ca_and_require() -> None:
    """verify-ca skips the name check; require (the opt-out) checks nothing."""
    import ssl

    from rdsiamkit.tls import full_bundle_path

    ca = str(full_bundle_path(partition="aws"))
    verify_ca = kit_asyncpg.ssl_context(HOST, "verify-ca", ca)
    assert verify_ca.verify_mode is ssl.CERT_REQUIRED and not verify_ca.check_hostname
    require = kit_asyncpg.ssl_context(HOST, "require", ca)
    assert require.verify_mode is ssl.CERT_NONE


def test_psycopg2_refuses_a_password() -> None:
    """psycopg2.connect refuses a password, in keywords or the dsn."""
    with pytest.raises(ConfigurationError, match="password"):
        kit_psycopg2.connect(host=HOST, user="u", password="not-a-token")
    with pytest.raises(ConfigurationError, match="password"):
        kit_psycopg2.connect(f"host={HOST} user=u password=not-a-token")
