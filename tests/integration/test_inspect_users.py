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


def test_nologin_roles_are_not_password_users(rds_emulator: RdsIamEmulator, prefix: str) -> None:
    """With include_nologin, groups count as NOLOGIN, not PASSWORD/IAM, and show "no login"."""
    with rds_emulator.connect_admin() as conn:
        for statement in (
            "CREATE ROLE {p}iamgrp NOLOGIN",
            "GRANT rds_iam TO {p}iamgrp",
            "CREATE ROLE {p}grp NOLOGIN",
            "CREATE ROLE {p}user LOGIN IN ROLE {p}iamgrp",
        ):
            conn.execute(statement.format(p=prefix))
        logins = list_users(conn)
        everything = list_users(conn, include_nologin=True)
        summary = summarize(conn, aws=False, include_nologin=True)
    assert everything.counts() == logins.counts()
    nologin = [u for u in everything if not u.can_login]
    assert {"pg_monitor", prefix + "grp", prefix + "iamgrp"} <= {u.name for u in nologin}
    assert everything.nologin_count() == len(nologin) == len(everything) - len(logins)
    assert f", {len(nologin)} NOLOGIN, " in everything.headline()
    data = summary.to_dict()
    assert data["password_users"] == logins.counts()[AuthMode.PASSWORD]
    assert data["iam_users"] == logins.counts()[AuthMode.IAM]
    assert data["nologin_roles"] == len(nologin)
    rows = {line.split()[0]: line.split() for line in str(everything).splitlines()[3:]}
    assert rows[prefix + "grp"][1:3] == ["no", "login"]
    assert rows[prefix + "iamgrp"][1:4] == ["no", "login", "direct"]
    assert rows[prefix + "user"][1:4] == ["iam", "via", prefix + "iamgrp"]
    group = everything.get(prefix + "iamgrp")
    assert group is not None and group.mode is AuthMode.IAM and not group.can_login


def test_role_names_cannot_forge_text_lines(rds_emulator: RdsIamEmulator, prefix: str) -> None:
    """Names with newlines or terminal escapes print escaped; dicts keep the real name."""
    forged = prefix + "x\nroot  iam  direct  yes"
    escape = prefix + "\x1b[2J\x1b[31mred"
    group = prefix + "g\rp"
    with rds_emulator.connect_admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(forged)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(escape)))
        conn.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE rds_iam").format(sql.Identifier(group))
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(prefix + "member"), sql.Identifier(group)
            )
        )
        table = list_users(conn)
    text = str(table)
    assert len(text.splitlines()) == 3 + len(table)
    assert "\x1b" not in text and "\r" not in text
    assert repr(forged) in text and repr(escape) in text and f"via {group!r}" in text
    names = {r["name"] for r in table.to_dicts()}
    assert {forged, escape, prefix + "member"} <= names


def test_to_pandas_keeps_server_types(rds_emulator: RdsIamEmulator, prefix: str) -> None:
    """A connection limit of 3 stays the integer 3 and VALID UNTIL a UTC timestamp."""
    import pandas as pd

    with rds_emulator.connect_admin() as conn:
        conn.execute(
            f"CREATE ROLE {prefix}lim LOGIN CONNECTION LIMIT 3 VALID UNTIL '2031-01-01 12:00:00+02'"
        )
        frame = list_users(conn).to_pandas().set_index("name")
    row = frame.loc[prefix + "lim"]
    assert row["connection_limit"] == 3 and str(frame["connection_limit"].dtype) == "Int64"
    assert row["valid_until"] == pd.Timestamp("2031-01-01 10:00", tz="UTC")
    assert str(frame["valid_until"].dtype) == "datetime64[us, UTC]"
    assert frame.loc[rds_emulator.master_user, "connection_limit"] is pd.NA
