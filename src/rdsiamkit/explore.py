"""Explore a cluster from a notebook or a script: who logs in how, and what AWS says.

:func:`list_users` reads every login role with its auth mode in one catalog
round trip, through the same walk as pg_hba's ``+rds_iam``
(:mod:`rdsiamkit._authmode_state`), so what it shows is what the server will
do.  :func:`summarize` adds the AWS side (IAM auth enabled, endpoints,
resource id, engine version) when credentials are at hand.

Results print as text, render as HTML tables in Jupyter (``_repr_html_``),
turn into plain dicts (``to_dicts()``) and into a DataFrame (``to_pandas()``,
when pandas is installed: ``pip install rdsiamkit[pandas]``).
"""

from __future__ import annotations

import datetime as dt
import html
import importlib
import logging
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from rdsiamkit._authmode_state import RoleState, parse_states, round_trip, state_query
from rdsiamkit.authmode import AuthMode
from rdsiamkit.errors import AuthModeError, ConfigurationError, RdsIamError

if TYPE_CHECKING:
    import boto3

    # pandas is optional and ships no type information: DataFrame is Any to mypy.
    import pandas  # type: ignore[import-not-found,import-untyped,unused-ignore]

    from rdsiamkit.discovery import DatabaseResource

__all__ = ["ClusterSummary", "UserInfo", "UserTable", "list_users", "summarize"]

log = logging.getLogger("rdsiamkit.explore")

_R = TypeVar("_R")

#: A plain value of :meth:`UserTable.to_dicts` rows.
Cell = str | int | bool | None
#: The keys of :meth:`UserInfo.to_dict`, in order: the columns of ``to_pandas()``.
USER_COLUMNS = (
    "name",
    "mode",
    "iam_path",
    "direct",
    "paths",
    "can_login",
    "superuser",
    "createrole",
    "rds_superuser",
    "admin",
    "rds_ad",
    "connection_limit",
    "valid_until",
)

# Every login role (optionally every role), sorted by name, as the ``text[]``
# the shared state query takes: the server lists the names itself, so the
# listing and the walk travel in the same single query.
_ALL_ROLES = sql.SQL(
    "(SELECT COALESCE(array_agg(rolname::text ORDER BY rolname COLLATE \"C\"), '{{}}') "
    "FROM pg_catalog.pg_roles WHERE {where})"
)
_LOGIN_ONLY = sql.SQL("rolcanlogin")
# The shared walk is tuned for the few names a switch or plan batch names: the
# planner takes the role list for 10 rows, and for thousands its nested-loop
# semi-joins go quadratic (10,000 roles: 1.7 s instead of 0.3 s).  Hash joins
# are right for "every role", so they are forced for this one query, and the
# previous setting is put back, as the shared round trip does for JIT.
_NESTLOOP_OFF = sql.SQL(
    "SELECT set_config('rdsiamkit.nestloop', current_setting('enable_nestloop'), true), "
    "set_config('enable_nestloop', 'off', true)"
)
_NESTLOOP_BACK = sql.SQL(
    "SELECT set_config('enable_nestloop', current_setting('rdsiamkit.nestloop'), true)"
)
_ANY_ROLE = sql.SQL("rolname <> 'rds_iam'")


@attrs.frozen
class UserInfo:
    """One role: how it logs in (as pg_hba's ``+rds_iam`` decides) and what it may do."""

    name: str
    mode: AuthMode
    #: Granted ``rds_iam`` itself.
    direct: bool
    #: Each way to ``rds_iam``: ``(name, ..., "rds_iam")``, shortest first.
    paths: tuple[tuple[str, ...], ...]
    can_login: bool
    is_superuser: bool
    can_create_role: bool
    in_rds_superuser: bool
    #: Also a Kerberos (``rds_ad``) user: RDS lets a user have Kerberos or IAM, not both.
    in_rds_ad: bool
    #: ``None``: unlimited.
    connection_limit: int | None
    #: When the *password* expires (IAM logins ignore it); ``None``: never.
    valid_until: dt.datetime | None

    @classmethod
    def _from_state(cls, state: RoleState) -> UserInfo:
        return cls(
            name=state.name,
            mode=AuthMode.IAM if state.is_iam else AuthMode.PASSWORD,
            direct=state.direct,
            paths=state.paths,
            can_login=state.can_login,
            is_superuser=state.is_superuser,
            can_create_role=state.can_create_role,
            in_rds_superuser=state.in_rds_superuser,
            in_rds_ad=state.in_rds_ad,
            connection_limit=state.connection_limit,
            valid_until=state.valid_until,
        )

    @property
    def is_admin(self) -> bool:
        """Superuser, CREATEROLE or ``rds_superuser`` member: a lockout would hurt."""
        return self.is_superuser or self.can_create_role or self.in_rds_superuser

    @property
    def via(self) -> tuple[str, ...]:
        """The roles through which IAM is inherited (first hop of each longer path)."""
        return tuple(sorted({p[1] for p in self.paths if len(p) > 2}))

    @property
    def iam_path(self) -> str:
        """``direct``, ``via a, b``, both, or ``""`` for a password user."""
        parts = []
        if self.direct:
            parts.append("direct")
        if self.via:
            parts.append("via " + ", ".join(self.via))
        return " + ".join(parts)

    @property
    def admin_flags(self) -> tuple[str, ...]:
        """``superuser``, ``createrole``, ``rds_superuser``: whichever apply."""
        flags = []
        if self.is_superuser:
            flags.append("superuser")
        if self.can_create_role:
            flags.append("createrole")
        if self.in_rds_superuser:
            flags.append("rds_superuser")
        return tuple(flags)

    def to_dict(self) -> dict[str, Cell]:
        """A flat dict of plain values, for JSON, CSV or a DataFrame."""
        return {
            "name": self.name,
            "mode": self.mode.value,
            "iam_path": self.iam_path or None,
            "direct": self.direct,
            "paths": "; ".join(" -> ".join(p) for p in self.paths) or None,
            "can_login": self.can_login,
            "superuser": self.is_superuser,
            "createrole": self.can_create_role,
            "rds_superuser": self.in_rds_superuser,
            "admin": self.is_admin,
            "rds_ad": self.in_rds_ad,
            "connection_limit": self.connection_limit,
            "valid_until": None if self.valid_until is None else self.valid_until.isoformat(),
        }


# What the text and HTML tables show: header, and how to read the cell from a UserInfo.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("user", "name"),
    ("mode", "mode"),
    ("iam path", "iam_path"),
    ("login", "can_login"),
    ("admin", "admin"),
    ("conn limit", "connection_limit"),
    ("valid until", "valid_until"),
)


def _cells(user: UserInfo) -> list[str]:
    row = user.to_dict()
    out = []
    for _, key in _COLUMNS:
        if key == "admin":
            out.append(", ".join(user.admin_flags) or "-")
        elif key == "connection_limit":
            out.append("unlimited" if user.connection_limit is None else str(user.connection_limit))
        elif key == "valid_until":
            out.append("never" if user.valid_until is None else user.valid_until.isoformat())
        else:
            value = row[key]
            out.append("yes" if value is True else "no" if value is False else str(value or "-"))
    return out


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns (no trailing blanks)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str) -> str:
    """An escaped HTML table: role names may hold ``<``, ``&`` or quotes."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _import_pandas() -> ModuleType:
    try:
        return importlib.import_module("pandas")
    except ImportError as err:
        raise ConfigurationError(
            "to_pandas() needs pandas, which rdsiamkit does not install by default: "
            "pip install 'rdsiamkit[pandas]' (or use to_dicts())"
        ) from err


@attrs.frozen
class UserTable(Sequence[UserInfo]):
    """The roles of a cluster with their auth modes; a sequence of :class:`UserInfo`."""

    users: tuple[UserInfo, ...]

    def __len__(self) -> int:
        return len(self.users)

    def __iter__(self) -> Iterator[UserInfo]:
        return iter(self.users)

    def __getitem__(self, index: int) -> UserInfo:  # type: ignore[override]
        return self.users[index]

    def get(self, name: str) -> UserInfo | None:
        """The role called ``name``, if listed."""
        return next((u for u in self.users if u.name == name), None)

    def counts(self) -> dict[AuthMode, int]:
        """How many roles use each mode."""
        counts = dict.fromkeys(AuthMode, 0)
        for user in self.users:
            counts[user.mode] += 1
        return counts

    def headline(self) -> str:
        """``N roles: I IAM, P PASSWORD, A admins``."""
        counts = self.counts()
        admins = sum(1 for u in self.users if u.is_admin)
        return (
            f"{len(self.users)} roles: {counts[AuthMode.IAM]} IAM, "
            f"{counts[AuthMode.PASSWORD]} PASSWORD, {admins} admin(s)"
        )

    def to_dicts(self) -> list[dict[str, Cell]]:
        """One flat dict per role."""
        return [u.to_dict() for u in self.users]

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame with one row per role (needs pandas: ``rdsiamkit[pandas]``)."""
        frame: pandas.DataFrame = _import_pandas().DataFrame(
            self.to_dicts(), columns=list(USER_COLUMNS)
        )
        return frame

    def __str__(self) -> str:
        headers = [h for h, _ in _COLUMNS]
        return self.headline() + "\n" + render_table(headers, [_cells(u) for u in self.users])

    def _repr_html_(self) -> str:
        headers = [h for h, _ in _COLUMNS]
        return html_table(headers, [_cells(u) for u in self.users], caption=self.headline())


def list_users(conn: psycopg.Connection[_R], *, include_nologin: bool = False) -> UserTable:
    """Every login role (``include_nologin``: every role) with its auth mode, in one query.

    The server lists the roles and walks ``pg_auth_members`` for all of them in
    a single simple-protocol round trip, as pg_hba's ``+rds_iam`` does: no
    query per user, so 10,000 roles cost one round trip.

    :raises RdsIamRoleMissingError: the server has no ``rds_iam`` role (not RDS).
    :raises AuthModeError: the catalog query failed.
    """
    names = _ALL_ROLES.format(where=_ANY_ROLE if include_nologin else _LOGIN_ONLY)
    try:
        _, rows, _ = round_trip(conn, [_NESTLOOP_OFF, state_query(names), _NESTLOOP_BACK])
    except psycopg.Error as err:
        raise AuthModeError(f"listing the roles and their auth modes failed: {err}") from err
    table = UserTable(tuple(UserInfo._from_state(s) for s in parse_states(rows)))
    log.debug("list_users: %s", table.headline())
    return table


@attrs.frozen
class ClusterSummary:
    """The database's view and, when AWS could be asked, the AWS view of one cluster."""

    host: str
    port: int
    server_version: str
    current_user: str
    users: UserTable
    #: What :func:`~rdsiamkit.discover` found; ``None`` when AWS was not asked or failed.
    aws: DatabaseResource | None
    #: Why there is no AWS view (no credentials, access denied...), else ``None``.
    aws_error: str | None

    def to_dict(self) -> dict[str, object]:
        """Plain values, for JSON."""
        aws: dict[str, object] | None = None
        if self.aws is not None:
            aws = {
                "kind": self.aws.kind.value,
                "identifier": self.aws.identifier,
                "arn": self.aws.arn,
                "resource_id": self.aws.resource_id,
                "iam_resource_id": self.aws.iam_resource_id,
                "account_id": self.aws.account_id,
                "region": self.aws.region,
                "iam_auth_enabled": self.aws.iam_auth_enabled,
                "engine": self.aws.engine,
                "engine_version": self.aws.engine_version,
                "status": self.aws.status,
                "endpoints": [
                    {"kind": e.kind.value, "host": e.host, "port": e.port}
                    for e in self.aws.endpoints
                ],
                "pending_modifications": list(self.aws.pending_modifications),
            }
        counts = self.users.counts()
        return {
            "host": self.host,
            "port": self.port,
            "server_version": self.server_version,
            "current_user": self.current_user,
            "roles": len(self.users),
            "iam_users": counts[AuthMode.IAM],
            "password_users": counts[AuthMode.PASSWORD],
            "aws": aws,
            "aws_error": self.aws_error,
        }

    def _facts(self) -> list[tuple[str, str]]:
        facts = [
            ("endpoint", f"{self.host}:{self.port}"),
            ("server", f"PostgreSQL {self.server_version} (as {self.current_user})"),
            ("roles", self.users.headline()),
        ]
        resource = self.aws
        if resource is None:
            facts.append(("AWS", f"not available: {self.aws_error}"))
            return facts
        iam = "enabled" if resource.iam_auth_enabled else "DISABLED"
        if "IAMDatabaseAuthenticationEnabled" in resource.pending_modifications:
            iam += " (change pending)"
        facts += [
            ("AWS resource", f"{resource.kind.value} {resource.identifier} ({resource.arn})"),
            ("IAM database auth", iam),
            ("resource id for rds-db ARNs", resource.iam_resource_id),
            ("engine", f"{resource.engine} {resource.engine_version} ({resource.status})"),
        ]
        facts += [
            (f"endpoint ({e.kind.value})", f"{e.host}:{e.port or resource.port}")
            for e in resource.endpoints
        ]
        return facts

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self._facts())
        lines = [f"{k.ljust(width)}  {v}" for k, v in self._facts()]
        return "\n".join(lines) + "\n\n" + str(self.users)

    def _repr_html_(self) -> str:
        facts = html_table(["", ""], self._facts(), caption=f"{self.host}:{self.port}")
        return facts + self.users._repr_html_()


def summarize(
    conn: psycopg.Connection[_R],
    *,
    aws: bool = True,
    session: boto3.Session | None = None,
    region: str | None = None,
    target: str | None = None,
    include_nologin: bool = False,
) -> ClusterSummary:
    """The database view of ``conn``'s cluster plus, with ``aws``, what AWS says about it.

    The users are :func:`list_users`'s (``include_nologin`` as there).
    ``target`` is what to look up in AWS (endpoint or identifier); by default
    the host ``conn`` is connected to.  AWS trouble (no credentials, access
    denied, not found) does not fail the summary: :attr:`ClusterSummary.aws_error`
    says what went wrong.
    """
    users = list_users(conn, include_nologin=include_nologin)
    host = conn.info.host
    try:
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute("SELECT current_setting('server_version'), current_user").fetchone()
    except psycopg.Error as err:
        raise AuthModeError(f"reading the server version failed: {err}") from err
    version, user = (str(row[0]), str(row[1])) if row is not None else ("?", "?")
    resource: DatabaseResource | None = None
    aws_error: str | None = "not asked (aws=False)"
    if aws:
        resource, aws_error = _aws_view(target or host, session=session, region=region)
    return ClusterSummary(
        host=host,
        port=int(conn.info.port),
        server_version=version,
        current_user=user,
        users=users,
        aws=resource,
        aws_error=aws_error,
    )


def _aws_view(
    target: str, *, session: boto3.Session | None, region: str | None
) -> tuple[DatabaseResource | None, str | None]:
    from rdsiamkit.discovery import discover  # noqa: PLC0415 - keeps boto3 off import

    try:
        return discover(target, session=session, region=region), None
    except RdsIamError as err:
        log.info("no AWS view of %s: %s", target, err)
        return None, str(err)
