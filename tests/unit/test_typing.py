"""The public API type-checks the way users write it (mypy --strict on a snippet)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

# assert_type, not annotated assignments: those would also accept Any.
SNIPPET = """
import psycopg
from psycopg.rows import DictRow, TupleRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import assert_type

import rdsiamkit


async def use() -> None:
    pool = rdsiamkit.create_pool(host="h", user="u")
    assert_type(pool, ConnectionPool[psycopg.Connection[TupleRow]])
    apool = rdsiamkit.create_async_pool(host="h", user="u")
    assert_type(apool, AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]])
    conn = rdsiamkit.connect(host="h", user="u")
    assert_type(conn, psycopg.Connection[TupleRow])
    dconn = rdsiamkit.connect(host="h", user="u", row_factory=dict_row)
    assert_type(dconn, psycopg.Connection[DictRow])
    aconn = await rdsiamkit.connect_async(host="h", user="u")
    assert_type(aconn, psycopg.AsyncConnection[TupleRow])
    adconn = await rdsiamkit.connect_async(host="h", user="u", row_factory=dict_row)
    assert_type(adconn, psycopg.AsyncConnection[DictRow])
    mode: rdsiamkit.AuthMode = rdsiamkit.AuthMode.parse("iam")
    assert_type(mode, rdsiamkit.AuthMode)
    users = rdsiamkit.list_users(conn)
    assert_type(users[0], rdsiamkit.UserInfo)
    assert_type(users[0:2], rdsiamkit.UserTable)
"""


def test_public_api_infers_precise_types(tmp_path: Path) -> None:
    """Pools, connections and UserTable items/slices infer precise types without annotations."""
    source = tmp_path / "snippet.py"
    source.write_text(textwrap.dedent(SNIPPET))
    out, err, status = api.run(["--strict", "--no-incremental", str(source)])
    assert status == 0, out + err


def test_a_wrong_annotation_is_caught(tmp_path: Path) -> None:
    """The check can fail: a wrong row type is a mypy error."""
    source = tmp_path / "wrong.py"
    source.write_text(
        "import psycopg\nimport rdsiamkit\n"
        "c: psycopg.Connection[int] = rdsiamkit.connect(host='h', user='u')\n"
    )
    out, _, status = api.run(["--strict", "--no-incremental", str(source)])
    assert status == 1
    assert "Incompatible types" in out
