"""The catalog SQL layer: who needs IAM, read the way pg_hba's ``+rds_iam`` decides it.

pg_hba matches ``+rds_iam`` with ``is_member_of_role_nosuper()``: a walk over
``pg_auth_members`` that follows every grant, direct or nested, and ignores
superuser status (``pg_has_role(..., 'member')`` says yes for superusers, so it
must not be used here).  Since PostgreSQL 16 a grant carries ``inherit_option``
and ``set_option``; the walk for membership ignores both, and so do the queries
below.  On 16+ several rows may link the same pair (one per grantor), so edges
are de-duplicated first.

Every query here takes a ``text[]`` literal of role names and travels in one
simple-protocol round trip, so that :mod:`rdsiamkit.roles.switch` can chain
``GRANT`` / ``REVOKE`` between a re-check and a read-back at no extra cost.
The statements that change memberships are built here too (identifiers only
through :class:`psycopg.sql.Identifier`); nothing here decides or explains.

Recursive CTEs make the planner overestimate row counts by orders of
magnitude, which on a server with JIT enabled (the default) compiles the
query for over a second although it runs in milliseconds.  And a freshly
filled ``pg_auth_members`` often has stale statistics, so the planner would
scan the whole table once per role it visits (quadratic) instead of probing
its indexes.  Each round trip therefore turns JIT and sequential scans off
for itself with ``set_config(..., true)`` and puts the previous values back,
so the caller's session and transaction keep theirs.  The walks probe the
indexes one role at a time (``LATERAL ... OFFSET 0``), so reading one user
costs about the same on a cluster with 10 grants or 100,000.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

import attrs
import psycopg
from psycopg import pq, sql
from psycopg.rows import tuple_row

from rdsiamkit.errors import AuthModeError, ConfigurationError, RdsIamRoleMissingError

IAM_ROLE = "rds_iam"
KERBEROS_ROLE = "rds_ad"
#: PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated by the server.
MAX_NAME_BYTES = 63

_R = TypeVar("_R")

# One row per requested name, in request order, plus a single all-NULL row when
# no name was requested, so the rds_iam check always has a row to report on.
_STATE_SQL = """\
WITH RECURSIVE
-- the (group, member) links, read through the catalog's indexes; PG16+ keeps one
-- row per grantor, so every use below is either a UNION/DISTINCT or an EXISTS
edges AS NOT MATERIALIZED (
    SELECT roleid, member FROM pg_catalog.pg_auth_members
),
special AS (
    SELECT
        (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam') AS iam,
        (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'rds_superuser') AS su,
        (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'rds_ad') AS ad
),
input AS (
    SELECT n.name, n.ord, r.oid
    FROM unnest({names}::pg_catalog.text[]) WITH ORDINALITY AS n(name, ord)
    LEFT JOIN pg_catalog.pg_roles AS r ON r.rolname = n.name
),
-- rds_superuser and every role that reaches it
admins(oid) AS (
    SELECT su FROM special WHERE su IS NOT NULL
    UNION
    SELECT e.member FROM admins AS a JOIN edges AS e ON e.roleid = a.oid
),
-- every role that reaches a requested role: it changes mode along with it
down(uid, oid) AS (
    SELECT i.oid, e.member FROM input AS i JOIN edges AS e ON e.roleid = i.oid
    UNION
    SELECT d.uid, e.member FROM down AS d JOIN edges AS e ON e.roleid = d.oid
),
-- those of them a lockout would hurt
guarded(uid, oid) AS (
    SELECT d.uid, d.oid
    FROM down AS d JOIN pg_catalog.pg_roles AS r ON r.oid = d.oid
    WHERE r.rolsuper OR r.rolcreaterole OR d.oid IN (SELECT oid FROM admins)
        OR r.rolname IN (current_user, session_user)
),
-- every role each requested or guarded role reaches, itself included (as pg_hba)
up(uid, oid) AS (
    SELECT s.oid, s.oid
    FROM (SELECT oid FROM input WHERE oid IS NOT NULL UNION SELECT oid FROM guarded) AS s
    UNION
    SELECT u.uid, g.roleid FROM up AS u, LATERAL (
        -- OFFSET 0 keeps this an index probe per row: the planner cannot size a recursive
        -- CTE and would otherwise scan every grant of the cluster at each step
        SELECT m.roleid FROM pg_catalog.pg_auth_members AS m WHERE m.member = u.oid OFFSET 0
    ) AS g
),
-- the links out of those roles: the only ones a path to rds_iam from them can take
up_edges(roleid, member) AS (
    SELECT DISTINCT g.roleid, u.oid FROM (SELECT DISTINCT oid FROM up) AS u, LATERAL (
        SELECT m.roleid FROM pg_catalog.pg_auth_members AS m WHERE m.member = u.oid OFFSET 0
    ) AS g
),
-- the roles among those that reach rds_iam, with their distances to it (one row
-- per role and path length: listing every path instead grows exponentially)
dist(oid, d) AS (
    SELECT iam, 0 FROM special WHERE iam IS NOT NULL
    UNION
    SELECT e.member, t.d + 1 FROM dist AS t JOIN up_edges AS e ON e.roleid = t.oid
    -- PostgreSQL refuses circular grants, but two concurrent GRANTs can still commit a
    -- cycle; each step of a shortest path ends at a different group, so this ends the walk
    WHERE t.d < (SELECT count(DISTINCT roleid) FROM up_edges)
),
shortest AS (
    SELECT oid, min(d) AS d FROM dist GROUP BY oid
),
-- the next role on one shortest way to rds_iam (ties: the first name in C order)
next_hop(oid, next) AS (
    SELECT DISTINCT ON (e.member) e.member, e.roleid
    FROM up_edges AS e
    JOIN shortest AS a ON a.oid = e.member
    JOIN shortest AS b ON b.oid = e.roleid AND b.d = a.d - 1
    JOIN pg_catalog.pg_roles AS r ON r.oid = e.roleid
    ORDER BY e.member, r.rolname COLLATE "C"
),
-- for each role a requested role is granted that leads to rds_iam (rds_iam itself
-- included): one shortest path through it, by name
paths(uid, last, names) AS (
    SELECT i.oid, e.roleid, ARRAY[i.name COLLATE "C", r.rolname::text]
    FROM (SELECT DISTINCT oid, name FROM input) AS i
    JOIN up_edges AS e ON e.member = i.oid
    JOIN pg_catalog.pg_roles AS r ON r.oid = e.roleid
    WHERE e.roleid IN (SELECT oid FROM shortest)
    UNION ALL
    SELECT p.uid, h.next, p.names || r.rolname::text
    FROM paths AS p
    JOIN next_hop AS h ON h.oid = p.last
    JOIN pg_catalog.pg_roles AS r ON r.oid = h.next
    WHERE h.next <> p.uid  -- only a cycle leads back: such a way is no path of its own
),
path_json AS (
    SELECT p.uid, json_agg(p.names ORDER BY array_length(p.names, 1), p.names) AS paths
    FROM paths AS p, special AS s WHERE p.last = s.iam
    GROUP BY p.uid
),
-- the other roles a requested role reaches that hold rds_iam directly: revoking
-- rds_iam from all of them is the other way to cut its inherited paths
holders AS (
    SELECT u.uid, array_agg(r.rolname::text ORDER BY r.rolname COLLATE "C") AS names
    FROM up AS u
    JOIN up_edges AS e ON e.member = u.oid
    JOIN special AS s ON e.roleid = s.iam
    JOIN pg_catalog.pg_roles AS r ON r.oid = u.oid
    WHERE u.oid <> u.uid AND u.uid IN (SELECT oid FROM input)
    GROUP BY u.uid
),
-- who granted rds_iam to each requested role directly (one probe per role: joined
-- instead, the planner walks every member of rds_iam)
direct AS (
    SELECT i.oid AS member, d.grantors FROM (SELECT DISTINCT oid FROM input) AS i, LATERAL (
        SELECT array_agg(DISTINCT COALESCE(g.rolname::text, m.grantor::text)) AS grantors
        FROM pg_catalog.pg_auth_members AS m
        LEFT JOIN pg_catalog.pg_roles AS g ON g.oid = m.grantor
        WHERE m.member = i.oid AND m.roleid = (SELECT iam FROM special)
    ) AS d
    WHERE d.grantors IS NOT NULL
),
member_counts AS (
    SELECT uid, count(*) AS n FROM down GROUP BY uid
),
guarded_names AS (
    SELECT g.uid, array_agg(r.rolname::text ORDER BY r.rolname) AS names
    FROM guarded AS g JOIN pg_catalog.pg_roles AS r ON r.oid = g.oid
    WHERE g.oid NOT IN (SELECT oid FROM shortest)
    GROUP BY g.uid
),
-- the other requested roles each requested role reaches: a GRANT to one of them
-- switches it too, which a plan must know
requested_above AS (
    SELECT u.uid, array_agg(DISTINCT i.name ORDER BY i.name) AS names
    FROM up AS u JOIN input AS i ON i.oid = u.oid
    WHERE u.uid <> u.oid AND u.uid IN (SELECT oid FROM input)
    GROUP BY u.uid
)
SELECT
    s.iam IS NOT NULL,
    i.name,
    i.oid,
    i.oid IN (SELECT oid FROM shortest),
    d.grantors,
    COALESCE(pj.paths, '[]'::json),
    COALESCE(h.names, '{{}}'),
    r.rolcanlogin,
    r.rolsuper,
    r.rolcreaterole,
    i.oid IN (SELECT oid FROM admins),
    i.oid IN (SELECT u.uid FROM up AS u, special AS s2 WHERE u.oid = s2.ad),
    r.rolname IN (current_user, session_user),
    COALESCE(mc.n, 0),
    COALESCE(gn.names, '{{}}'),
    COALESCE(ra.names, '{{}}'),
    r.rolconnlimit,
    -- psycopg cannot load infinite timestamps: 'infinity' (never expires) becomes
    -- NULL, '-infinity' (always expired) the epoch
    CASE
        WHEN isfinite(r.rolvaliduntil) THEN r.rolvaliduntil
        WHEN r.rolvaliduntil < 'epoch' THEN 'epoch'::timestamptz
    END
FROM special AS s
LEFT JOIN input AS i ON true
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = i.oid
LEFT JOIN direct AS d ON d.member = i.oid
LEFT JOIN path_json AS pj ON pj.uid = i.oid
LEFT JOIN holders AS h ON h.uid = i.oid
LEFT JOIN member_counts AS mc ON mc.uid = i.oid
LEFT JOIN guarded_names AS gn ON gn.uid = i.oid
LEFT JOIN requested_above AS ra ON ra.uid = i.oid
ORDER BY i.ord"""

# The lean form: does each name (still) reach rds_iam?  Used after GRANT/REVOKE.
_MODES_SQL = """\
WITH RECURSIVE
special AS (
    SELECT (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam') AS iam
),
input AS (
    SELECT n.name, n.ord, r.oid
    FROM unnest({names}::pg_catalog.text[]) WITH ORDINALITY AS n(name, ord)
    LEFT JOIN pg_catalog.pg_roles AS r ON r.rolname = n.name
),
up(uid, oid) AS (
    SELECT oid, oid FROM input WHERE oid IS NOT NULL
    UNION
    SELECT u.uid, m.roleid FROM up AS u JOIN pg_catalog.pg_auth_members AS m ON m.member = u.oid
)
SELECT
    s.iam IS NOT NULL,
    i.name,
    i.oid,
    i.oid IN (SELECT u.uid FROM up AS u, special AS s2 WHERE u.oid = s2.iam)
FROM special AS s
LEFT JOIN input AS i ON true
ORDER BY i.ord"""


def check_name(name: object) -> str:
    """Return ``name`` if PostgreSQL can hold it as a role name unchanged."""
    if not isinstance(name, str):
        raise ConfigurationError(f"a role name must be a str, got {type(name).__name__}")
    if not name:
        raise ConfigurationError("a role name must not be empty")
    if "\x00" in name:
        raise ConfigurationError(f"role name {name!r} contains a NUL character")
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise ConfigurationError(
            f"role name {name!r} is {size} bytes in UTF-8; PostgreSQL keeps at most "
            f"{MAX_NAME_BYTES} and would silently truncate it"
        )
    return name


def state_query(names: sql.Composable) -> sql.Composed:
    """The full per-role state query for ``names`` (a ``text[]`` literal)."""
    return sql.SQL(_STATE_SQL).format(names=names)


def modes_query(names: sql.Composable) -> sql.Composed:
    """The lean "does it reach rds_iam" query for ``names``."""
    return sql.SQL(_MODES_SQL).format(names=names)


def names_literal(names: Sequence[str]) -> sql.Literal:
    """``names`` as a SQL literal (quoted by psycopg), for simple-protocol queries."""
    return sql.Literal(list(names))


def grant_iam(users: Sequence[str]) -> sql.Composed:
    """``GRANT rds_iam TO ...``: switches ``users`` to IAM."""
    return sql.SQL("GRANT {} TO {}").format(sql.Identifier(IAM_ROLE), _roles(users))


def revoke_iam(users: Sequence[str]) -> sql.Composed:
    """``REVOKE rds_iam FROM ...``: switches ``users`` back to PASSWORD (direct grants only)."""
    return sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(IAM_ROLE), _roles(users))


def set_password(user: str, verifier: sql.Composable) -> sql.Composed:
    """``ALTER ROLE user PASSWORD verifier`` (a SCRAM verifier, never the plain text)."""
    return sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), verifier)


def _roles(users: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(u) for u in users)


@attrs.frozen
class RoleState:
    """What the catalogs say about one requested role name (``oid`` None: no such role)."""

    name: str
    oid: int | None
    is_iam: bool
    direct_grantors: tuple[str, ...]
    #: One shortest path to rds_iam through each role granted to this one that leads
    #: there (``(name, "rds_iam")`` for a direct grant), shortest first.  In a membership
    #: cycle (only concurrent GRANTs can commit one) a way back through this role is left out.
    paths: tuple[tuple[str, ...], ...]
    #: The other roles this one reaches that are granted rds_iam directly: non-empty exactly
    #: when it needs IAM through another role, cycles or not.
    holders: tuple[str, ...]
    can_login: bool
    is_superuser: bool
    can_create_role: bool
    in_rds_superuser: bool
    in_rds_ad: bool
    is_session_user: bool
    member_count: int
    guarded_members: tuple[str, ...]
    #: Roles of the same query that this one reaches (is a member of, at any depth).
    member_of_requested: tuple[str, ...]
    connection_limit: int | None
    valid_until: dt.datetime | None

    @property
    def exists(self) -> bool:
        return self.oid is not None

    @property
    def direct(self) -> bool:
        return bool(self.direct_grantors)

    @property
    def inherited_paths(self) -> tuple[tuple[str, ...], ...]:
        """Paths that go through another role (longer than ``user → rds_iam``)."""
        return tuple(p for p in self.paths if len(p) > 2)

    @property
    def via(self) -> tuple[str, ...]:
        """The groups through which IAM is inherited (first hop of each longer path)."""
        return via_roles(self.paths)

    @property
    def is_admin(self) -> bool:
        return self.is_superuser or self.can_create_role or self.in_rds_superuser


def via_roles(paths: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The first hops of the ``paths`` that go through another role, sorted, once each."""
    return tuple(sorted({p[1] for p in paths if len(p) > 2}))


@attrs.frozen
class RoleMode:
    """The lean answer: does ``name`` exist, and does it reach rds_iam."""

    name: str
    oid: int | None
    is_iam: bool


def _missing_iam_role() -> RdsIamRoleMissingError:
    return RdsIamRoleMissingError(
        "the server has no rds_iam role, so it is not Amazon RDS / Aurora PostgreSQL (or the "
        "rdsiamkit emulator): IAM database authentication does not exist there"
    )


def _checked(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if not rows or not rows[0][0]:
        raise _missing_iam_role()
    return [row for row in rows if row[1] is not None]


def parse_states(rows: Sequence[tuple[Any, ...]]) -> list[RoleState]:
    """Turn rows of :func:`state_query` into :class:`RoleState` objects."""
    states = []
    for row in _checked(rows):
        (
            _,
            name,
            oid,
            is_iam,
            grantors,
            paths,
            holders,
            login,
            sup,
            crole,
            in_su,
            in_ad,
            me,
            members,
            guarded,
            above,
            connlimit,
            valid_until,
        ) = row
        states.append(
            RoleState(
                name=name,
                oid=oid,
                is_iam=bool(is_iam),
                direct_grantors=tuple(grantors or ()),
                paths=tuple(tuple(p) for p in paths),
                holders=tuple(holders),
                can_login=bool(login),
                is_superuser=bool(sup),
                can_create_role=bool(crole),
                in_rds_superuser=bool(in_su),
                in_rds_ad=bool(in_ad),
                is_session_user=bool(me),
                member_count=int(members),
                guarded_members=tuple(guarded),
                member_of_requested=tuple(above),
                connection_limit=None if connlimit is None or connlimit < 0 else connlimit,
                valid_until=valid_until,
            )
        )
    return states


def parse_modes(rows: Sequence[tuple[Any, ...]]) -> list[RoleMode]:
    """Turn rows of :func:`modes_query` into :class:`RoleMode` objects."""
    return [
        RoleMode(name=name, oid=oid, is_iam=bool(is_iam)) for _, name, oid, is_iam in _checked(rows)
    ]


_PLANNER_SET = sql.SQL(
    "SELECT set_config('rdsiamkit.jit', current_setting('jit'), true), "
    "set_config('jit', 'off', true), "
    "set_config('rdsiamkit.enable_seqscan', current_setting('enable_seqscan'), true), "
    "set_config('enable_seqscan', 'off', true)"
)
_PLANNER_BACK = sql.SQL(
    "SELECT set_config('jit', current_setting('rdsiamkit.jit'), true), "
    "set_config('enable_seqscan', current_setting('rdsiamkit.enable_seqscan'), true)"
)


def round_trip(
    conn: psycopg.Connection[_R], parts: Sequence[sql.Composable]
) -> list[list[tuple[Any, ...]]]:
    """Run ``parts`` in order as one simple-protocol query; rows of each row-returning part.

    Without bind parameters psycopg sends a single ``Query`` message, so all
    parts cost one round trip and run inside the open (or implicit) transaction.
    """
    if conn.pgconn.pipeline_status != pq.PipelineStatus.OFF:
        raise ConfigurationError(
            "rdsiamkit reads and switches auth modes in single-message round trips, which "
            "pipeline mode cannot run: call it outside conn.pipeline()"
        )
    query = sql.SQL(";\n").join([_PLANNER_SET, *parts, _PLANNER_BACK])
    results: list[list[tuple[Any, ...]]] = []
    with conn.cursor(row_factory=tuple_row) as cur:
        # Several statements never make a prepared statement, whatever prepare_threshold says.
        cur.execute(query, prepare=False)
        while True:
            if cur.description is not None:
                results.append(cur.fetchall())
            if not cur.nextset():
                return results[1:-1]


def _fetch(
    conn: psycopg.Connection[_R], query: sql.Composed, names: Sequence[str]
) -> list[tuple[Any, ...]]:
    try:
        (rows,) = round_trip(conn, [query])
    except psycopg.Error as err:
        raise AuthModeError(
            f"reading the role memberships of {_show(names)} failed: {err}"
        ) from err
    return rows


def read_states(conn: psycopg.Connection[_R], names: Sequence[str]) -> list[RoleState]:
    """One round trip: the state of every role in ``names``, in order."""
    return parse_states(_fetch(conn, state_query(names_literal(names)), names))


def read_modes(conn: psycopg.Connection[_R], names: Sequence[str]) -> list[RoleMode]:
    """One round trip: whether each role in ``names`` reaches rds_iam."""
    return parse_modes(_fetch(conn, modes_query(names_literal(names)), names))


# Every login role (optionally every role), sorted by name, as the ``text[]``
# the state query takes: the server lists the names itself, so the listing and
# the walk travel in the same single query.
_ALL_ROLES = sql.SQL(
    "(SELECT COALESCE(array_agg(rolname::text ORDER BY rolname COLLATE \"C\"), '{{}}') "
    "FROM pg_catalog.pg_roles WHERE {where})"
)
_LOGIN_ONLY = sql.SQL("rolcanlogin")
_ANY_ROLE = sql.SQL("rolname <> 'rds_iam'")
# The state query is tuned for the few names a switch or plan batch names: the
# planner takes the role list for 10 rows, and for thousands its nested-loop
# semi-joins go quadratic (10,000 roles: 1.7 s instead of 0.3 s).  Hash joins
# are right for "every role", so they are forced for this one query, and the
# previous setting is put back, as the round trip does for JIT.
_NESTLOOP_OFF = sql.SQL(
    "SELECT set_config('rdsiamkit.nestloop', current_setting('enable_nestloop'), true), "
    "set_config('enable_nestloop', 'off', true)"
)
_NESTLOOP_BACK = sql.SQL(
    "SELECT set_config('enable_nestloop', current_setting('rdsiamkit.nestloop'), true)"
)


def read_all_states(conn: psycopg.Connection[_R], *, include_nologin: bool) -> list[RoleState]:
    """One round trip: every login role (``include_nologin``: every role but rds_iam), by name."""
    names = _ALL_ROLES.format(where=_ANY_ROLE if include_nologin else _LOGIN_ONLY)
    try:
        _, rows, _ = round_trip(conn, [_NESTLOOP_OFF, state_query(names), _NESTLOOP_BACK])
    except psycopg.Error as err:
        raise AuthModeError(f"listing the roles and their auth modes failed: {err}") from err
    return parse_states(rows)


def _show(names: Sequence[str]) -> str:
    if len(names) <= 3:
        return ", ".join(repr(n) for n in names)
    return f"{len(names)} roles"
