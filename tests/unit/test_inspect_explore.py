"""UserTable / UserInfo renderings (text, HTML, dicts, pandas) without a server."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from rdsiamkit.authmode import AuthMode
from rdsiamkit.errors import ConfigurationError
from rdsiamkit.explore import USER_COLUMNS, UserInfo, UserTable, html_table, render_table


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
