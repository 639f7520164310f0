"""list_users / summarize on the emulator: one catalog query, pg_hba's answer, AWS view."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from rdsiamkit.authmode import AuthMode, get_auth_mode
from rdsiamkit.explore import list_users, summarize
from rdsiamkit.testing import RdsIamEmulator

ROLES = 10_000


class QueryCounter:
    """Counts the statements psycopg cursors send (each execute() is one Query message)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = psycopg.Cursor.execute

        def counting(cur: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(cur, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counting)


@pytest.fixture
def prefix(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """A unique role-name prefix; every role with it is dropped afterwards."""
    tag = f"lu{uuid.uuid4().hex[:6]}_"
    yield tag
    with rds_emulator.connect_admin() as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [tag]
        ).fetchall()
        if rows:
            names = sql.SQL(", ").join(sql.Identifier(r[0]) for r in rows)
            conn.execute(sql.SQL("DROP ROLE {}").format(names))


def test_modes_follow_pg_hba(rds_emulator: RdsIamEmulator, prefix: str) -> None:
    """Direct, nested and no membership, NOLOGIN and hostile names come out as the server sees."""
    with rds_emulator.connect_admin() as conn:
        for statement in (
            "CREATE ROLE {p}grp NOLOGIN",
            "GRANT rds_iam TO {p}grp",
            "CREATE ROLE {p}nested NOLOGIN IN ROLE {p}grp",
            "CREATE ROLE {p}direct LOGIN",
            "GRANT rds_iam TO {p}direct",
            "CREATE ROLE {p}deep LOGIN IN ROLE {p}nested",
            "CREATE ROLE {p}plain LOGIN CONNECTION LIMIT 3 VALID UNTIL '2031-01-01'",
            'CREATE ROLE "{p}<b>&\'x" LOGIN',
        ):
            conn.execute(statement.format(p=prefix))
        table = list_users(conn)
        everything = list_users(conn, include_nologin=True)
        for user in table:
            if user.name.startswith(prefix):
                assert user.mode is get_auth_mode(conn, user.name), user.name
    direct, deep, plain = (table.get(prefix + n) for n in ("direct", "deep", "plain"))
    assert direct is not None and direct.iam_path == "direct"
    assert deep is not None and deep.mode is AuthMode.IAM and deep.via == (prefix + "nested",)
    assert deep.paths == ((prefix + "deep", prefix + "nested", prefix + "grp", "rds_iam"),)
    assert plain is not None and plain.mode is AuthMode.PASSWORD
    assert plain.connection_limit == 3 and plain.valid_until is not None
    assert table.get(prefix + "grp") is None and everything.get(prefix + "grp") is not None
    master = table.get(rds_emulator.master_user)
    assert master is not None and master.in_rds_superuser and master.is_admin
    html = table._repr_html_()
    assert "&lt;b&gt;&amp;&#x27;x" in html and "<b>&" not in html


def test_ten_thousand_roles_in_one_query(
    rds_emulator: RdsIamEmulator, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 login roles (half IAM, a quarter nested) are listed with exactly one query."""
    with rds_emulator.connect_admin() as conn:
        names = [f"{prefix}{i:05d}" for i in range(ROLES)]
        conn.execute(
            sql.SQL("; ").join(
                [sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(prefix + "group"))]
                + [sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(n)) for n in names]
            )
        )
        grant = sql.SQL("GRANT {} TO {}")
        conn.execute(grant.format(sql.Identifier("rds_iam"), sql.Identifier(prefix + "group")))
        conn.execute(
            grant.format(
                sql.Identifier("rds_iam"),
                sql.SQL(", ").join(sql.Identifier(n) for n in names[::2]),
            )
        )
        conn.execute(
            grant.format(
                sql.Identifier(prefix + "group"),
                sql.SQL(", ").join(sql.Identifier(n) for n in names[1::4]),
            )
        )
        counter = QueryCounter(monkeypatch)
        started = time.perf_counter()
        table = list_users(conn)
        elapsed = time.perf_counter() - started
        assert counter.count == 1
    mine = [u for u in table if u.name.startswith(prefix)]
    assert len(mine) == ROLES
    iam = [u for u in mine if u.mode is AuthMode.IAM]
    assert len(iam) == ROLES // 2 + ROLES // 4
    assert sum(1 for u in mine if u.via == (prefix + "group",)) == ROLES // 4
    print(f"\nlist_users: {len(table)} roles in {elapsed:.3f} s (one query)")


def test_summary_combines_database_and_aws_views(rds_emulator: RdsIamEmulator) -> None:
    """summarize() reads moto's cluster behind the endpoint; offline it says why; NOLOGIN on ask."""
    creds = rds_emulator.add_credentials()
    with mock_aws(), rds_emulator.connect_admin() as conn:
        session = creds.boto3_session(region=rds_emulator.region)
        session.client("rds").create_db_cluster(
            DBClusterIdentifier="demo",
            Engine="aurora-postgresql",
            EngineVersion="15.4",
            MasterUsername="postgres",
            MasterUserPassword="not-used-1234",
            EnableIAMDatabaseAuthentication=True,
        )
        summary = summarize(conn, session=session)
        offline = summarize(conn, aws=False)
        every_role = summarize(conn, aws=False, include_nologin=True)
    assert (
        every_role.users.get("pg_monitor") is not None and summary.users.get("pg_monitor") is None
    )
    assert summary.aws is not None and summary.aws.iam_auth_enabled
    assert summary.aws.identifier == "demo" and summary.aws_error is None
    data = summary.to_dict()
    assert data["aws"]["engine_version"] == "15.4"  # type: ignore[index]
    assert data["host"] == rds_emulator.endpoint and data["roles"] == len(summary.users)
    text = str(summary)
    lines = text.splitlines()
    assert any(x.startswith("IAM database auth") and x.endswith(" enabled") for x in lines)
    assert summary.aws.iam_resource_id in text and "<table>" in summary._repr_html_()
    assert offline.aws is None and offline.aws_error is not None
    assert "not available" in str(offline)
