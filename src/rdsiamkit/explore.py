"""Explore a cluster from a notebook or a script: who logs in how, and what AWS says.

:func:`list_users` reads every login role with its auth mode in one catalog
round trip, through the same walk as pg_hba's ``+rds_iam``
(:mod:`rdsiamkit.roles.inventory`), so what it shows is what the server will
do.  :func:`summarize` adds the AWS side (IAM auth enabled, endpoints,
resource id, engine version) when credentials are at hand.

Results print as text, render as HTML tables in Jupyter (``_repr_html_``,
at most :data:`HTML_MAX_ROWS` roles), turn into plain dicts (``to_dicts()``)
and into a DataFrame (``to_pandas()``, when pandas is installed:
``pip install rdsiamkit[pandas]``).  Text and HTML tables show a name that is
not printable (a newline, an escape sequence) in its ``repr()`` form, so a role
name cannot forge lines in a terminal nor hide in a notebook; dicts and
DataFrames keep the real name.  ``repr()`` is short (the headline and the first
rows, like pandas); ``str()`` is the whole table.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Iterator, KeysView, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar, overload

import attrs
import psycopg
from psycopg.rows import tuple_row

from rdsiamkit._render import REPR_ROWS, cell, ljust, more, text_table
from rdsiamkit._render import html_table as _html_table
from rdsiamkit.errors import ConfigurationError, RdsIamError
from rdsiamkit.roles._catalog import RoleState, via_roles
from rdsiamkit.roles.inventory import list_states
from rdsiamkit.roles.models import AuthMode, role_facts

if TYPE_CHECKING:
    import boto3

    # pandas is optional and ships no type information: DataFrame is Any to mypy.
    import pandas  # type: ignore[import-not-found,import-untyped,unused-ignore]

    from rdsiamkit.discovery import DatabaseResource, ResourceEndpoint

__all__ = ["HTML_MAX_ROWS", "ClusterSummary", "UserInfo", "UserTable", "list_users", "summarize"]

log = logging.getLogger("rdsiamkit.explore")

_R = TypeVar("_R")

#: A plain value of :meth:`UserTable.to_dicts` rows.
Cell = str | int | bool | None
#: At most this many roles in a notebook's HTML table (``_repr_html_``); a footer
#: row counts the rest.  Text, ``to_dicts()`` and ``to_pandas()`` hold every role.
HTML_MAX_ROWS = 500
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


@attrs.frozen
class UserInfo:
    """One role: how it logs in (as pg_hba's ``+rds_iam`` decides) and what it may do.

    A row of :func:`list_users`, built from the same catalog row as
    :class:`~rdsiamkit.AuthStatus` (what :func:`~rdsiamkit.auth_status` returns for
    one user) and agreeing with it on every field they share (``mode``,
    ``direct``, ``paths``, ``can_login``, ``is_superuser``, ``connection_limit``,
    ``valid_until``).  It is the listing's view: the admin flags and Kerberos
    membership stay apart as plain values for tables, dicts and DataFrames, and
    what only a switch needs (the roles holding ``rds_iam`` that a REVOKE must
    reach, whether this is the session's own user, conflicts as sentences) is
    left to :class:`~rdsiamkit.AuthStatus`.
    """

    name: str
    #: Its auth mode as pg_hba decides it, also for a role that cannot log in
    #: (tables show ``no login`` for those, and count them apart).
    mode: AuthMode
    #: Granted ``rds_iam`` itself.
    direct: bool
    #: The ways to ``rds_iam``, shortest first: ``(name, "rds_iam")`` for a direct
    #: grant, and one shortest ``(name, group, ..., "rds_iam")`` through each group
    #: granted to this role that leads there (not every route).
    paths: tuple[tuple[str, ...], ...]
    #: Has ``LOGIN``; a ``NOLOGIN`` role (a group) never logs in, whatever its ``mode``.
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
            can_create_role=state.can_create_role,
            in_rds_superuser=state.in_rds_superuser,
            in_rds_ad=state.in_rds_ad,
            **role_facts(state),
        )

    @property
    def is_admin(self) -> bool:
        """Superuser, CREATEROLE or ``rds_superuser`` member: a lockout would hurt."""
        return self.is_superuser or self.can_create_role or self.in_rds_superuser

    @property
    def via(self) -> tuple[str, ...]:
        """The roles through which IAM is inherited (first hop of each longer path)."""
        return via_roles(self.paths)

    @property
    def iam_path(self) -> str:
        """``direct``, ``via a, b``, both, or ``""`` for a password user."""
        return _iam_path(self.direct, self.via)

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


def _iam_path(direct: bool, via: Sequence[str]) -> str:
    parts = []
    if direct:
        parts.append("direct")
    if via:
        parts.append("via " + ", ".join(via))
    return " + ".join(parts)


#: The mode cell of a role that cannot log in (its ``mode`` still says what pg_hba would do).
_NO_LOGIN = "no login"
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
    """The table cells of ``user``, names not printable as their ``repr()`` (text and HTML)."""
    row = user.to_dict()
    out = []
    for _, key in _COLUMNS:
        if key == "name":
            out.append(cell(user.name))
        elif key == "mode":
            out.append(user.mode.value if user.can_login else _NO_LOGIN)
        elif key == "iam_path":
            out.append(_iam_path(user.direct, [cell(v) for v in user.via]) or "-")
        elif key == "admin":
            out.append(", ".join(user.admin_flags) or "-")
        elif key == "connection_limit":
            out.append("unlimited" if user.connection_limit is None else str(user.connection_limit))
        elif key == "valid_until":
            out.append("never" if user.valid_until is None else user.valid_until.isoformat())
        else:
            value = row[key]
            out.append("yes" if value is True else "no" if value is False else str(value or "-"))
    return out


#: The tables of :mod:`rdsiamkit._render` (text aligned by display width), under the names
#: the doctor's and the access map's renderers import from here.
render_table = text_table
html_table = _html_table


def _import_pandas() -> ModuleType:
    try:
        return importlib.import_module("pandas")
    except ImportError as err:
        raise ConfigurationError(
            "to_pandas() needs pandas, which rdsiamkit does not install by default: "
            "pip install 'rdsiamkit[pandas]' (or use to_dicts())"
        ) from err


# to_pandas() dtypes beyond what pandas infers from to_dicts(): nullable booleans
# and integers (a limit of 3 stays 3, not 3.0); valid_until is set apart.
_PANDAS_DTYPES = {
    "direct": "boolean",
    "can_login": "boolean",
    "superuser": "boolean",
    "createrole": "boolean",
    "rds_superuser": "boolean",
    "admin": "boolean",
    "rds_ad": "boolean",
    "connection_limit": "Int64",
}


@attrs.frozen(repr=False)
class UserTable(Sequence[UserInfo]):
    """The roles of a cluster with their auth modes: rows, and a read-only mapping by name.

    As a sequence (what iteration yields): ``table[i]`` is a :class:`UserInfo`,
    ``table[i:j]`` a :class:`UserTable`, ``for user in table`` walks the rows,
    ``len(table)`` counts them.  By name, like a read-only mapping:
    ``"postgres" in table``, ``table["postgres"]`` (:class:`KeyError` when not
    listed), ``table.get(name)``, ``keys()`` (the names, in row order),
    ``values()`` and ``items()``.  It is not a :class:`~collections.abc.Mapping`
    (whose iteration would yield names): iterating stays over rows, as a
    listing's should.
    """

    users: tuple[UserInfo, ...]
    _by_name: dict[str, UserInfo] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {u.name: u for u in self.users})

    def __len__(self) -> int:
        return len(self.users)

    def __iter__(self) -> Iterator[UserInfo]:
        return iter(self.users)

    def __contains__(self, item: object) -> bool:
        """A role name (``"postgres" in table``) or a :class:`UserInfo` row."""
        if isinstance(item, str):
            return item in self._by_name
        return item in self.users

    @overload
    def __getitem__(self, index: int) -> UserInfo: ...

    @overload
    def __getitem__(self, index: slice) -> UserTable: ...

    @overload
    def __getitem__(self, index: str) -> UserInfo: ...

    def __getitem__(self, index: int | slice | str) -> UserInfo | UserTable:
        """Row ``index`` (an int), rows (a slice), or the role named ``index`` (a str)."""
        if isinstance(index, str):
            try:
                return self._by_name[index]
            except KeyError:
                raise KeyError(index) from None
        if isinstance(index, slice):
            return UserTable(self.users[index])
        return self.users[index]

    def get(self, name: str, default: UserInfo | None = None) -> UserInfo | None:
        """The role called ``name``, if listed, else ``default``."""
        return self._by_name.get(name, default)

    def keys(self) -> KeysView[str]:
        """The role names, in row order."""
        return self._by_name.keys()

    def values(self) -> tuple[UserInfo, ...]:
        """The rows, as iteration yields them."""
        return self.users

    def items(self) -> list[tuple[str, UserInfo]]:
        """``(name, row)`` pairs, in row order."""
        return [(u.name, u) for u in self.users]

    def counts(self) -> dict[AuthMode, int]:
        """How many roles that can log in use each mode (see :meth:`nologin_count`)."""
        counts = dict.fromkeys(AuthMode, 0)
        for user in self.users:
            if user.can_login:
                counts[user.mode] += 1
        return counts

    def nologin_count(self) -> int:
        """How many roles cannot log in (listed with ``include_nologin=True``)."""
        return sum(1 for u in self.users if not u.can_login)

    def headline(self) -> str:
        """``N roles: I IAM, P PASSWORD[, K NOLOGIN], A admin(s)``.

        IAM and PASSWORD count the roles that can log in; ``K NOLOGIN`` (only when
        there are some) the others; admins are counted among all of them.
        """
        counts = self.counts()
        nologin = self.nologin_count()
        admins = sum(1 for u in self.users if u.is_admin)
        return (
            f"{len(self.users)} roles: {counts[AuthMode.IAM]} IAM, "
            f"{counts[AuthMode.PASSWORD]} PASSWORD, "
            + (f"{nologin} NOLOGIN, " if nologin else "")
            + f"{admins} admin(s)"
        )

    def to_dicts(self) -> list[dict[str, Cell]]:
        """One flat dict per role."""
        return [u.to_dict() for u in self.users]

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame with one row per role (needs pandas: ``rdsiamkit[pandas]``).

        Columns are :data:`USER_COLUMNS`: flags are nullable ``boolean``,
        ``connection_limit`` nullable ``Int64`` (``<NA>``: unlimited) and
        ``valid_until`` ``datetime64[us, UTC]`` (``NaT``: never).
        """
        pd = _import_pandas()
        numpy = importlib.import_module("numpy")  # a dependency of pandas
        frame: pandas.DataFrame = pd.DataFrame(self.to_dicts(), columns=list(USER_COLUMNS))
        frame = frame.astype(_PANDAS_DTYPES)
        # Microseconds, as Python keeps them: pandas 2's nanoseconds end in 2262,
        # and a password may be valid until 9999.
        utc = [
            None if u.valid_until is None else u.valid_until.astimezone(dt.timezone.utc)
            for u in self.users
        ]
        stamps = numpy.array(
            [None if t is None else t.replace(tzinfo=None) for t in utc], dtype="datetime64[us]"
        )
        frame["valid_until"] = pd.DatetimeIndex(stamps).tz_localize("UTC")
        return frame

    def __str__(self) -> str:
        """The headline and an aligned table of every role (odd names ``repr()``-escaped)."""
        headers = [h for h, _ in _COLUMNS]
        return self.headline() + "\n" + text_table(headers, [_cells(u) for u in self.users])

    def __repr__(self) -> str:
        """Short, like pandas: the headline and the first :data:`REPR_ROWS` roles."""
        headers = [h for h, _ in _COLUMNS]
        shown = self.users[:REPR_ROWS]
        lines = [f"UserTable({self.headline()})"]
        if shown:
            lines.append(text_table(headers, [_cells(u) for u in shown]))
        left = more(len(self.users), len(shown), "role")
        if left:
            lines.append(left + "; str() shows all, to_pandas() or to_dicts() for data")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The headline and the first :data:`HTML_MAX_ROWS` roles, as an escaped table."""
        headers = [h for h, _ in _COLUMNS]
        shown = self.users[: max(HTML_MAX_ROWS, 0)]
        left = len(self.users) - len(shown)
        roles = "role" if left == 1 else "roles"
        footer = f"… and {left} more {roles}; use to_pandas() or to_dicts() for all"
        rows = [_cells(u) for u in shown]
        return html_table(headers, rows, caption=self.headline(), footer=footer if left else None)


def list_users(conn: psycopg.Connection[_R], *, include_nologin: bool = False) -> UserTable:
    """Every login role (``include_nologin``: every role but ``rds_iam``) with its auth mode.

    With ``include_nologin`` the table's counts and headline still count only
    roles that can log in as IAM or PASSWORD users, the rest as NOLOGIN.

    The server lists the roles and walks ``pg_auth_members`` for all of them in
    a single simple-protocol round trip, as pg_hba's ``+rds_iam`` does: no
    query per user, so 10,000 roles cost one round trip.

    :raises RdsIamRoleMissingError: the server has no ``rds_iam`` role (not RDS).
    :raises AuthModeError: the catalog query failed.
    """
    states = list_states(conn, include_nologin=include_nologin)
    table = UserTable(tuple(UserInfo._from_state(s) for s in states))
    log.debug("list_users: %s", table.headline())
    return table


@attrs.frozen(repr=False)
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
        """Plain values, for JSON.

        ``iam_users`` and ``password_users`` count the roles that can log in,
        ``nologin_roles`` the others; an endpoint's ``port`` is the resource's
        when the endpoint names none (``None``: not known).
        """
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
                    {"kind": e.kind.value, "host": e.host, "port": _port(e, self.aws)}
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
            "nologin_roles": self.users.nologin_count(),
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
            ("engine", _engine(resource)),
        ]
        for e in resource.endpoints:
            port = _port(e, resource)
            facts.append(
                (f"endpoint ({e.kind.value})", e.host if port is None else f"{e.host}:{port}")
            )
        return facts

    def __str__(self) -> str:
        """The facts, one per line (odd values ``repr()``-escaped), then the users' table."""
        return self._facts_text() + "\n\n" + str(self.users)

    def _facts_text(self) -> str:
        facts = self._facts()
        width = max(len(k) for k, _ in facts)
        return "\n".join(f"{ljust(k, width)}  {cell(v)}" for k, v in facts)

    def __repr__(self) -> str:
        """Short: the facts and the users' short ``repr()`` (``str()`` lists every role)."""
        return f"ClusterSummary\n{self._facts_text()}\n\n{self.users!r}"

    def _repr_html_(self) -> str:
        rows = [(k, cell(v)) for k, v in self._facts()]
        facts = html_table(["", ""], rows, caption=f"{self.host}:{self.port}")
        return facts + self.users._repr_html_()


def _engine(resource: DatabaseResource) -> str:
    """``engine version (status)``, leaving out what AWS did not say (a proxy has no version)."""
    engine = " ".join(x for x in (resource.engine, resource.engine_version) if x) or "unknown"
    return engine if resource.status is None else f"{engine} ({resource.status})"


def _port(endpoint: ResourceEndpoint, resource: DatabaseResource) -> int | None:
    """The endpoint's port, else the resource's; ``None`` when neither is known."""
    return endpoint.port if endpoint.port is not None else resource.port


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

    :raises AuthModeError: listing the roles failed (see :func:`list_users`).
    :raises RdsIamError: reading the server version failed.
    """
    users = list_users(conn, include_nologin=include_nologin)
    host = conn.info.host
    try:
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute("SELECT current_setting('server_version'), current_user").fetchone()
    except psycopg.Error as err:
        # Not an auth mode's read: the kit's root error, with psycopg's as the cause.
        raise RdsIamError(f"reading the server version failed: {err}") from err
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
