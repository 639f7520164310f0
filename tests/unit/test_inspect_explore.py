"""UserTable / UserInfo renderings (text, HTML, dicts, pandas) without a server."""

from __future__ import annotations

import datetime as dt
import sys
from html import escape as html_escape

import attrs
import psycopg
import pytest

import rdsiamkit
from rdsiamkit import explore
from rdsiamkit.arn import ResourceKind
from rdsiamkit.authmode import AuthMode
from rdsiamkit.discovery import DatabaseResource, ResourceEndpoint
from rdsiamkit.endpoints import EndpointKind
from rdsiamkit.errors import AuthModeError, ConfigurationError, RdsIamError
from rdsiamkit.explore import (
    USER_COLUMNS,
    ClusterSummary,
    UserInfo,
    UserTable,
    html_table,
    render_table,
)


def user(name: str, *, iam: bool = False, via: str | None = None, **flags: bool) -> UserInfo:
    """A UserInfo as list_users would build it."""
    paths: tuple[tuple[str, ...], ...] = ()
    if iam:
        paths = ((name, via, "rds_iam"),) if via else ((name, "rds_iam"),)
    return UserInfo(
        name=name,
        mode=AuthMode.IAM if iam else AuthMode.PASSWORD,
        direct=iam and via is None,
        paths=paths,
        can_login=flags.get("can_login", True),
        is_superuser=flags.get("superuser", False),
        can_create_role=flags.get("createrole", False),
        in_rds_superuser=flags.get("rds_superuser", False),
        in_rds_ad=False,
        connection_limit=None,
        valid_until=dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc) if not iam else None,
    )


TABLE = UserTable(
    (
        user("alice", iam=True),
        user("carol", iam=True, via="team"),
        user("bob"),
        user("<script>&'\"", rds_superuser=True),
    )
)


def test_iam_path_and_admin_flags() -> None:
    """Direct and inherited memberships and admin flags read as people expect."""
    assert TABLE[0].iam_path == "direct" and TABLE[0].via == ()
    assert TABLE[1].iam_path == "via team" and TABLE[1].via == ("team",)
    assert TABLE[2].iam_path == "" and not TABLE[2].is_admin
    assert TABLE[3].admin_flags == ("rds_superuser",) and TABLE[3].is_admin


def test_counts_and_headline() -> None:
    """The headline counts modes and admins."""
    assert TABLE.counts() == {AuthMode.IAM: 2, AuthMode.PASSWORD: 2}
    assert TABLE.headline() == "4 roles: 2 IAM, 2 PASSWORD, 1 admin(s)"
    assert len(TABLE) == 4 and TABLE.get("bob") is TABLE[2] and TABLE.get("nobody") is None


def test_text_table_is_aligned() -> None:
    """str() is the headline plus an aligned table, one line per role."""
    lines = str(TABLE).splitlines()
    assert lines[0] == TABLE.headline()
    assert lines[1].split() == [
        "user",
        "mode",
        "iam",
        "path",
        "login",
        "admin",
        "conn",
        "limit",
        "valid",
        "until",
    ]
    assert len(lines) == 3 + len(TABLE)
    assert lines[4].split()[:3] == ["carol", "iam", "via"]
    assert render_table(["a", "bb"], [["xyz", "1"]]) == "a    bb\n---  --\nxyz  1"


def test_html_escapes_names() -> None:
    """Hostile role names are escaped in the notebook table."""
    html = TABLE._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;&amp;&#x27;&quot;" in html
    assert html.startswith("<table><caption>4 roles") and html.count("<tr>") == 5
    assert html_table(["<h>"], [["x"]], caption="&") == (
        "<table><caption>&amp;</caption><thead><tr><th>&lt;h&gt;</th></tr></thead>"
        "<tbody><tr><td>x</td></tr></tbody></table>"
    )


def test_to_dicts_has_every_column() -> None:
    """to_dicts() rows are flat, JSON-ready and keyed by USER_COLUMNS in order."""
    rows = TABLE.to_dicts()
    assert [list(r) for r in rows] == [list(USER_COLUMNS)] * 4
    assert rows[1]["paths"] == "carol -> team -> rds_iam" and rows[1]["direct"] is False
    assert rows[2]["valid_until"] == "2031-01-01T00:00:00+00:00" and rows[2]["iam_path"] is None


def test_to_pandas_builds_a_frame() -> None:
    """to_pandas() gives one row per role with the documented columns (pandas: a dev dep)."""
    import pandas as pd

    frame = TABLE.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(USER_COLUMNS)
    assert frame["mode"].tolist() == ["iam", "iam", "password", "password"]
    assert list(UserTable(()).to_pandas().columns) == list(USER_COLUMNS)


def test_to_pandas_without_pandas_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With pandas unimportable, to_pandas() raises a ConfigurationError naming the extra."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ConfigurationError, match=r"rdsiamkit\[pandas\]") as info:
        TABLE.to_pandas()
    assert isinstance(info.value.__cause__, ImportError)


def summary_of(users: UserTable, resource: DatabaseResource | None = None) -> ClusterSummary:
    """A ClusterSummary as summarize would build it, without a server."""
    return ClusterSummary(
        host="db.example.com",
        port=5432,
        server_version="16.3",
        current_user="postgres",
        users=users,
        aws=resource,
        aws_error=None if resource else "not asked (aws=False)",
    )


def test_to_pandas_has_nullable_and_datetime_dtypes() -> None:
    """Limits stay integers (Int64, not float 3.0), flags are boolean, valid_until tz-aware."""
    import pandas as pd

    far = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    table = UserTable(
        (
            attrs.evolve(user("limited"), connection_limit=3, valid_until=far),
            user("free", iam=True),
        )
    )
    frame = table.to_pandas()
    assert str(frame["connection_limit"].dtype) == "Int64"
    assert frame["connection_limit"][0] == 3 and frame["connection_limit"].isna()[1]
    assert str(frame["valid_until"].dtype) == "datetime64[us, UTC]"
    assert frame["valid_until"][0] == pd.Timestamp("9999-12-31 21:59", tz="UTC")
    assert frame["valid_until"].isna()[1]
    for flag in ("direct", "can_login", "superuser", "createrole", "rds_superuser", "admin"):
        assert str(frame[flag].dtype) == "boolean", flag
    assert frame["direct"].tolist() == [False, True]
    empty = UserTable(()).to_pandas()
    assert str(empty["connection_limit"].dtype) == "Int64"
    assert str(empty["valid_until"].dtype) == "datetime64[us, UTC]"


NOLOGIN_TABLE = UserTable(
    (
        user("app"),
        user("svc", iam=True),
        user("iam_group", iam=True, can_login=False),
        user("pg_monitor", can_login=False),
        user("rds_superuser", rds_superuser=True, can_login=False),
    )
)


def test_nologin_roles_are_counted_apart() -> None:
    """Roles that cannot log in are not PASSWORD/IAM users in counts, headline or to_dict."""
    assert NOLOGIN_TABLE.counts() == {AuthMode.IAM: 1, AuthMode.PASSWORD: 1}
    assert NOLOGIN_TABLE.nologin_count() == 3
    assert NOLOGIN_TABLE.headline() == "5 roles: 1 IAM, 1 PASSWORD, 3 NOLOGIN, 1 admin(s)"
    data = summary_of(NOLOGIN_TABLE).to_dict()
    assert (data["roles"], data["iam_users"], data["password_users"]) == (5, 1, 1)
    assert data["nologin_roles"] == 3
    assert "NOLOGIN" not in TABLE.headline() and summary_of(TABLE).to_dict()["nologin_roles"] == 0


def test_nologin_roles_show_no_login_as_mode() -> None:
    """The text and HTML mode cell of a NOLOGIN role says so; .mode and to_dicts stay truthful."""
    rows = {line.split()[0]: line.split() for line in str(NOLOGIN_TABLE).splitlines()[3:]}
    assert rows["app"][1] == "password" and rows["svc"][1] == "iam"
    assert rows["iam_group"][1:4] == ["no", "login", "direct"]
    assert rows["pg_monitor"][1:3] == ["no", "login"]
    assert "<td>pg_monitor</td><td>no login</td>" in NOLOGIN_TABLE._repr_html_()
    group = NOLOGIN_TABLE.get("iam_group")
    assert group is not None and group.mode is AuthMode.IAM
    assert NOLOGIN_TABLE.to_dicts()[2]["mode"] == "iam"
    assert NOLOGIN_TABLE.to_dicts()[3]["mode"] == "password"


def test_text_table_escapes_unprintable_names() -> None:
    """Newlines and terminal escapes in role (and group) names cannot forge text lines."""
    forged = "x\nroot      iam       direct    yes"
    clear = "\x1b[2J\x1b[Hadmin"
    table = UserTable((user(forged), user(clear), user("m", iam=True, via="g\rrp"), user("bob")))
    text = str(table)
    lines = text.splitlines()
    assert len(lines) == 3 + len(table)
    assert "\x1b" not in text and "\r" not in text
    assert lines[3].startswith(repr(forged)) and lines[4].startswith(repr(clear))
    assert "via 'g\\rrp'" in lines[5] and lines[6].startswith("bob ")
    assert [r["name"] for r in table.to_dicts()] == [forged, clear, "m", "bob"]
    assert table.to_dicts()[2]["iam_path"] == "via g\rrp"
    # HTML escapes them the same way as text: the repr(), then HTML-escaped.
    assert f"<td>{html_escape(repr(forged))}</td>" in table._repr_html_()
    assert "\x1b" not in table._repr_html_() and "\r" not in table._repr_html_()
    summary = str(attrs.evolve(summary_of(table), current_user="a\nb"))
    assert "(as a\nb)" not in summary and "a\\nb" in summary


def test_slicing_gives_a_user_table() -> None:
    """table[i] is a UserInfo and table[i:j] a UserTable of those roles (not a tuple)."""
    part = TABLE[1:3]
    assert isinstance(part, UserTable) and part == UserTable(TABLE.users[1:3])
    assert [u.name for u in TABLE[::-2]] == ["<script>&'\"", "carol"]
    assert TABLE[-1] is TABLE.users[-1] and isinstance(TABLE[0], UserInfo)
    assert part.headline() == "2 roles: 1 IAM, 1 PASSWORD, 0 admin(s)"
    with pytest.raises(IndexError):
        TABLE[4]


def resource(port: int | None, *endpoints: ResourceEndpoint) -> DatabaseResource:
    """A DatabaseResource as discover would return, with the given ports."""
    return DatabaseResource(
        kind=ResourceKind.PROXY,
        identifier="demo",
        arn="arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123",
        resource_id="prx-0123",
        iam_resource_id="prx-0123",
        account_id="123456789012",
        region="us-east-1",
        partition="aws",
        port=port,
        iam_auth_enabled=True,
        endpoints=endpoints,
        engine="POSTGRESQL",
        engine_version=None,
        status="available",
    )


def test_summary_endpoints_without_a_port() -> None:
    """An endpoint with no known port prints as its host alone; to_dict's ports match the text."""
    unknown = resource(None, ResourceEndpoint(EndpointKind.PROXY, "p.example.com"))
    text = str(summary_of(TABLE, unknown))
    assert "None" not in text.split("\n\n", maxsplit=1)[0]
    assert any(
        x.startswith("engine") and x.endswith("  POSTGRESQL (available)") for x in text.splitlines()
    )
    assert any(
        x.startswith("endpoint (proxy)") and x.endswith("  p.example.com")
        for x in text.splitlines()
    )
    aws = summary_of(TABLE, unknown).to_dict()["aws"]
    assert aws["endpoints"] == [{"kind": "proxy", "host": "p.example.com", "port": None}]  # type: ignore[index]
    inherited = resource(
        5432,
        ResourceEndpoint(EndpointKind.PROXY, "p.example.com"),
        ResourceEndpoint(EndpointKind.PROXY, "q.example.com", 6432),
    )
    text = str(summary_of(TABLE, inherited))
    assert "  p.example.com:5432\n" in text and "  q.example.com:6432\n" in text
    ports = [e["port"] for e in summary_of(TABLE, inherited).to_dict()["aws"]["endpoints"]]  # type: ignore[index]
    assert ports == [5432, 6432]


def test_html_table_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook shows the first HTML_MAX_ROWS roles and a footer; text and dicts hold all."""
    many = UserTable(tuple(user(f"u{i:05d}") for i in range(10_000)))
    html = many._repr_html_()
    assert html.count("<tr>") == 1 + explore.HTML_MAX_ROWS + 1 and len(html) < 100_000
    assert "<td>u00499</td>" in html and "<td>u00500</td>" not in html
    assert '<tfoot><tr><td colspan="7">… and 9500 more roles; use to_pandas() or to_dicts()' in html
    assert html.count("10000 roles: 0 IAM, 10000 PASSWORD") == 1
    assert len(str(many).splitlines()) == 3 + 10_000 and len(many.to_dicts()) == 10_000
    assert "9500 more roles" in summary_of(many)._repr_html_()
    monkeypatch.setattr(explore, "HTML_MAX_ROWS", 3)
    assert many[:3]._repr_html_().count("<tr>") == 4 and "more roles" not in many[:3]._repr_html_()
    assert "… and 1 more role;" in many[:4]._repr_html_()


def test_user_info_is_exported() -> None:
    """UserInfo, the element type of the public UserTable, is public API too."""
    assert "UserInfo" in rdsiamkit.__all__ and rdsiamkit.UserInfo is UserInfo


class _FailingCursor:
    """A cursor whose every query fails as a dropped connection would."""

    def __enter__(self) -> _FailingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")


class _FailingConn:
    """Just enough of a psycopg connection for summarize() to reach its version read."""

    class info:
        host = "127.0.0.1"
        port = 5432

    def cursor(self, **_: object) -> _FailingCursor:
        return _FailingCursor()


def test_summarize_server_version_failure_is_not_an_auth_mode_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed server-version read raises the kit's root error, not AuthModeError."""
    monkeypatch.setattr(explore, "list_users", lambda conn, include_nologin: UserTable(()))
    with pytest.raises(RdsIamError, match="reading the server version failed") as caught:
        explore.summarize(_FailingConn(), aws=False)  # type: ignore[arg-type]
    assert not isinstance(caught.value, AuthModeError)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
