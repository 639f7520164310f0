"""Notebook and terminal renderings: the user table by name, short reprs, HTML, widths."""

from __future__ import annotations

import datetime as dt
import re
from html import escape

import pytest

from rdsiamkit._render import cell, display_width, html_table, text_table
from rdsiamkit.authmode import (
    AuthMode,
    AuthModeChange,
    AuthModePlan,
    AuthStatus,
    PlannedSwitch,
    Refusal,
    RefusalReason,
    UnchangedRole,
)
from rdsiamkit.explore import ClusterSummary, UserInfo, UserTable
from rdsiamkit.roles.models import ApplyResult


def user(name: str, *, iam: bool = False) -> UserInfo:
    """A UserInfo as list_users would build it."""
    return UserInfo(
        name=name,
        mode=AuthMode.IAM if iam else AuthMode.PASSWORD,
        direct=iam,
        paths=((name, "rds_iam"),) if iam else (),
        can_login=True,
        is_superuser=name == "postgres",
        can_create_role=False,
        in_rds_superuser=False,
        in_rds_ad=False,
        connection_limit=None,
        valid_until=None,
    )


MANY = UserTable((user("postgres"), *(user(f"user_{i:05d}", iam=i % 2 == 0) for i in range(5020))))
HOSTILE = "<b>ev\nil</b>&\x1b[2J"


def test_user_table_is_a_read_only_mapping_by_name() -> None:
    """'postgres' in users, users['postgres'], get, keys, values and items work by name."""
    assert "postgres" in MANY and "nobody" not in MANY
    assert MANY["postgres"].name == "postgres" and MANY["postgres"].is_superuser
    with pytest.raises(KeyError, match="nobody"):
        MANY["nobody"]
    assert MANY.get("nobody") is None and MANY.get("user_00002") is MANY[3]
    assert list(MANY.keys())[:2] == ["postgres", "user_00000"] and len(MANY.keys()) == 5021
    assert MANY.values()[0] is MANY[0] and MANY.items()[1] == ("user_00000", MANY[1])
    assert MANY[0] in MANY  # a row is still found as a row
    with pytest.raises(TypeError):
        MANY["postgres"] = MANY[0]  # type: ignore[index]


def test_user_table_still_iterates_rows_slices_and_counts() -> None:
    """Iteration yields UserInfo rows; slices are UserTables that keep the name lookup."""
    assert all(isinstance(u, UserInfo) for u in MANY) and len(MANY) == 5021
    part = MANY[1:3]
    assert isinstance(part, UserTable) and [u.name for u in part] == ["user_00000", "user_00001"]
    assert "user_00001" in part and "postgres" not in part
    assert part == UserTable((MANY[1], MANY[2]))


def test_repr_of_thousands_of_users_is_short() -> None:
    """repr() of 5,021 users is the headline and the first rows (not a 1 MB attrs dump)."""
    text = repr(MANY)
    assert len(text) < 2_000, len(text)
    assert text.startswith("UserTable(5021 roles: 2510 IAM, 2511 PASSWORD, 1 admin(s))")
    assert "postgres" in text and "user_00008" in text and "user_00009" not in text
    assert "... and 5011 more roles" in text
    assert len(str(MANY).splitlines()) == 5021 + 3  # str() still lists every role


def test_summary_plan_and_apply_reprs_are_short() -> None:
    """ClusterSummary, AuthModePlan and ApplyResult reprs count, then show the first rows."""
    summary = ClusterSummary("h", 5432, "16.3", "postgres", MANY, None, "not asked")
    assert len(repr(summary)) < 3_000 and "5011 more roles" in repr(summary)
    plan = AuthModePlan(
        changes=tuple(
            PlannedSwitch(f"u{i}", AuthMode.PASSWORD, AuthMode.IAM, i) for i in range(5000)
        ),
        unchanged=(),
        refused=(Refusal("x", AuthMode.IAM, RefusalReason.USER_NOT_FOUND, "role x is gone"),),
    )
    assert len(repr(plan)) < 2_000 and "4991 more roles" in repr(plan)
    assert "refused by reason: 1 user_not_found" in repr(plan)
    applied = ApplyResult(tuple(f"u{i}" for i in range(5000)), (), 10, 1.5)
    assert repr(applied) == "ApplyResult(granted=5000, revoked=0, batches=10, elapsed=1.500s)"


def test_plan_status_change_and_apply_result_have_escaped_html_tables() -> None:
    """AuthModePlan, AuthStatus, AuthModeChange and ApplyResult render escaped HTML tables."""
    plan = AuthModePlan(
        changes=(PlannedSwitch(HOSTILE, AuthMode.PASSWORD, AuthMode.IAM, 1),),
        unchanged=(UnchangedRole("same", AuthMode.IAM),),
        refused=(Refusal("x", AuthMode.IAM, RefusalReason.USER_NOT_FOUND, "gone"),),
    )
    status = AuthStatus(
        HOSTILE, AuthMode.IAM, True, ((HOSTILE, "rds_iam"),), (), True, False, False, False, (),
        None, dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
    )  # fmt: skip
    change = AuthModeChange(HOSTILE, AuthMode.PASSWORD, AuthMode.IAM, True, False, False, False,
                            ('GRANT rds_iam TO "x"',), "switched")  # fmt: skip
    applied = ApplyResult((HOSTILE,), (), 1, 0.25)
    escaped = escape(repr(HOSTILE))
    for shown in (plan, status, change, applied):
        page = shown._repr_html_()
        assert page.startswith("<table>") and "<b>" not in page and "\x1b" not in page
        assert escaped in page, type(shown).__name__
    assert plan._repr_html_().count("<tr>") == 4  # header and three roles
    assert "<td>grant</td><td>password</td><td>iam</td>" in plan._repr_html_()
    assert "<td>user_not_found</td><td>gone</td>" in plan._repr_html_()
    assert "2030-01-01" in status._repr_html_() and "GRANT rds_iam TO" in change._repr_html_()


def test_wide_and_combining_names_align_by_display_width() -> None:
    """CJK (2 columns) and combining marks (0 columns) keep text table columns aligned."""
    assert (
        display_width("用户") == 4 and display_width("\uff46\uff55\uff4c\uff4c") == 8
    )  # fullwidth "full"
    assert display_width("e\u0301te\u0301") == 3 and display_width("abc") == 3
    table = text_table(["name", "mode"], [["用户名", "iam"], ["e\u0301", "password"], ["bob", "x"]])
    lines = table.splitlines()
    starts = {display_width(line[: line.rindex("  ") + 2]) for line in lines if "  " in line}
    assert starts == {8}, table  # "mode" column starts at the same screen column everywhere
    text = str(UserTable((user("管理者"), user("bob"))))
    rows = text.splitlines()[3:]
    assert [display_width(r[: r.index("password")]) for r in rows] == [8, 8]


def test_control_characters_are_escaped_the_same_in_text_and_html() -> None:
    """A name with a newline or escape shows as its repr() in text and in HTML alike."""
    table = UserTable((user(HOSTILE), user("ok")))
    assert cell(HOSTILE) == repr(HOSTILE) and cell("ok") == "ok"
    assert repr(HOSTILE) in str(table) and escape(repr(HOSTILE)) in table._repr_html_()
    assert not re.search(r"[\x00-\x1f]", table._repr_html_() + str(table).replace("\n", ""))
    assert html_table(["a"], [[cell("x\ty")]], caption="c") == (
        "<table><caption>c</caption><thead><tr><th>a</th></tr></thead>"
        "<tbody><tr><td>&#x27;x\\ty&#x27;</td></tr></tbody></table>"
    )
