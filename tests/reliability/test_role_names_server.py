"""Role names round-trip through a real server unchanged, and none of them injects SQL.

Hypothesis draws names with quotes, semicolons, backslashes, comment markers,
spaces, unicode and up to PostgreSQL's 63 bytes; each one is created, switched
to IAM with ``set_auth_mode``, read back with ``auth_status``, switched back
with ``plan_auth_modes`` + ``apply``, and the catalogs are compared before and
after: the only role that ever changes is the one named.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rdsiamkit.authmode import AuthMode, auth_status, get_auth_mode, plan_auth_modes, set_auth_mode
from rdsiamkit.testing import RdsIamEmulator

_NASTY = "'\";\\-/*$ ,.()[]{}%_\t\nAaZz09éß名🙂"
names = st.text(
    st.one_of(
        st.sampled_from(_NASTY),
        st.characters(codec="utf-8", exclude_characters="\x00"),
    ),
    min_size=1,
    max_size=63,
).filter(lambda n: len(n.encode()) <= 63)

CATALOG = """
SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcanlogin,
       coalesce(array_agg(g.rolname ORDER BY g.rolname) FILTER (WHERE g.rolname IS NOT NULL), '{}')
FROM pg_roles r
LEFT JOIN pg_auth_members m ON m.member = r.oid
LEFT JOIN pg_roles g ON g.oid = m.roleid
GROUP BY r.rolname, r.rolsuper, r.rolcreaterole, r.rolcanlogin
"""


@pytest.fixture(scope="module")
def admin(rds_emulator_session: RdsIamEmulator) -> Iterator[psycopg.Connection[Any]]:
    """The master user's autocommit connection, shared by every example."""
    with rds_emulator_session.connect_admin() as conn:
        yield conn


def catalog(conn: psycopg.Connection[Any]) -> dict[str, tuple[Any, ...]]:
    """Every role with its flags and the roles it is a member of."""
    return {row[0]: row[1:] for row in conn.execute(CATALOG)}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=names)
@example(name="x'; DROP ROLE postgres; --")
@example(name='"; GRANT rds_superuser TO public; --')
@example(name="é" * 31 + "x")  # exactly 63 bytes
@example(name="rds_IAM")
@example(name="Robert'); DROP TABLE students;--")
def test_role_names_round_trip_without_injection(
    name: str, admin: psycopg.Connection[Any], rds_emulator_session: RdsIamEmulator
) -> None:
    """Any name the server can hold switches to IAM and back unchanged; nothing else changes."""
    before = catalog(admin)
    # PostgreSQL reserves "public" and "none" even when quoted (and pg_ for itself).
    assume(name not in before and name not in {"public", "none"} and not name.startswith("pg_"))
    emu = rds_emulator_session
    emu.create_user(name)
    try:
        change = set_auth_mode(admin, name, AuthMode.IAM)
        assert (change.user, change.after, change.changed) == (name, AuthMode.IAM, True)
        status = auth_status(admin, name)
        assert (status.user, status.mode, status.direct) == (name, AuthMode.IAM, True)
        assert status.paths == ((name, "rds_iam"),)
        plan = plan_auth_modes(admin, {name: AuthMode.PASSWORD})
        assert plan.to_revoke == (name,) and not plan.refused
        result = plan.apply(admin)
        assert result.revoked == (name,)
        assert get_auth_mode(admin, name) is AuthMode.PASSWORD
        after = catalog(admin)
        assert after.pop(name) == (False, False, True, [])
        assert after == before
    finally:
        emu.drop_user(name)
    assert catalog(admin) == before
