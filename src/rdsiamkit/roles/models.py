"""The value objects of auth modes: what a role is, what a switch or a plan will do.

Everything here is a frozen value that does no I/O (:meth:`AuthModePlan.apply`
is a convenience that hands the plan to :func:`rdsiamkit.roles.switch.apply_plan`).
:class:`AuthStatus` and :class:`rdsiamkit.explore.UserInfo` are both built from
the same catalog row (:class:`~rdsiamkit.roles._catalog.RoleState`) through
:func:`role_facts`, so they never disagree on a mode, a path or a flag; they
serve different questions (see their docstrings).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from rdsiamkit._render import REPR_ROWS, cell, html_table, more
from rdsiamkit.errors import ConfigurationError
from rdsiamkit.roles._catalog import KERBEROS_ROLE, RoleState, via_roles
from rdsiamkit.roles._text import ident, printable, yes

if TYPE_CHECKING:
    import psycopg

_R = TypeVar("_R")

#: Roles per round trip of :meth:`AuthModePlan.apply`.
DEFAULT_BATCH_SIZE = 500
#: Seconds one round trip of :meth:`AuthModePlan.apply` may wait for the server.
DEFAULT_APPLY_TIMEOUT = 60.0


class AuthMode(str, enum.Enum):
    """How a database user logs in: with its password, or with an IAM token."""

    PASSWORD = "password"  # noqa: S105  (a mode's name, not a secret)
    IAM = "iam"

    @classmethod
    def _missing_(cls, value: object) -> AuthMode:
        if isinstance(value, str):
            for mode in cls:
                if mode.value == value.strip().lower():
                    return mode
        choices = ", ".join(repr(m.value) for m in cls)
        raise ConfigurationError(f"unknown auth mode {value!r}: expected one of {choices}")

    @classmethod
    def parse(cls, value: AuthMode | str) -> AuthMode:
        """``AuthMode`` from itself or a case-insensitive name (``"IAM"``, ``"password"``)."""
        return cls(value)

    def __str__(self) -> str:
        return self.value


class RefusalReason(enum.Enum):
    """Why a switch was refused; each maps to one exception of :mod:`rdsiamkit.errors`."""

    #: No such role (:class:`~rdsiamkit.UserNotFoundError`).
    USER_NOT_FOUND = "user_not_found"
    #: The name is ``rds_iam`` itself (:class:`~rdsiamkit.ConfigurationError`).
    RESERVED_ROLE = "reserved_role"
    #: IAM comes through another role (:class:`~rdsiamkit.InheritedMembershipError`).
    INHERITED_MEMBERSHIP = "inherited_membership"
    #: An admin or the session's user could be locked out (:class:`~rdsiamkit.LockoutRefusedError`).
    LOCKOUT_GUARD = "lockout_guard"
    #: Also a Kerberos (``rds_ad``) user (:class:`~rdsiamkit.SwitchRefusedError`): RDS lets a
    #: user log in with Kerberos or IAM, not both.  Its value stays ``"conflict"``.
    KERBEROS = "conflict"
    #: The former name of :attr:`KERBEROS` (an alias: the same member, same value).
    CONFLICT = "conflict"
    #: Plans only: a GRANT to this group would switch members the plan wants on PASSWORD.
    PLAN_CONFLICT = "plan_conflict"


def mode_of(is_iam: bool) -> AuthMode:
    """:attr:`AuthMode.IAM` for a role that reaches ``rds_iam``, else PASSWORD."""
    return AuthMode.IAM if is_iam else AuthMode.PASSWORD


def verb(target: AuthMode) -> str:
    """The statement that switches a role to ``target``: ``GRANT`` or ``REVOKE``."""
    return "GRANT" if target is AuthMode.IAM else "REVOKE"


def kerberos_conflict(name: str) -> str:
    """Why a Kerberos (``rds_ad``) user cannot also be an IAM user, with the fix."""
    return (
        f"{printable(name)} is a member of {KERBEROS_ROLE} (Kerberos): an RDS user logs in with "
        f"Kerberos or IAM, not both; REVOKE {KERBEROS_ROLE} FROM {ident(name)} first if it "
        "should use IAM"
    )


def role_facts(state: RoleState) -> dict[str, Any]:
    """The fields :class:`AuthStatus` and :class:`~rdsiamkit.explore.UserInfo` share, read
    from one catalog row the same way."""
    return {
        "mode": mode_of(state.is_iam),
        "direct": state.direct,
        "paths": state.paths,
        "can_login": state.can_login,
        "is_superuser": state.is_superuser,
        "connection_limit": state.connection_limit,
        "valid_until": state.valid_until,
    }


@attrs.frozen(repr=False)
class AuthStatus:
    """One user's login, as a switch decides on it: what :func:`auth_status` returns.

    Built from the same catalog row as :class:`~rdsiamkit.explore.UserInfo` (one
    row of a cluster listing, :func:`~rdsiamkit.explore.list_users`), and agreeing
    with it on every shared field.  It differs in what it is for: it names the
    roles whose ``rds_iam`` grant a REVOKE would have to reach (:attr:`holders`),
    whether the role is this session's own user, the admin verdict in one flag,
    and conflicting settings as sentences; the listing instead keeps the three
    admin flags and Kerberos membership apart, for tables and DataFrames.
    """

    user: str
    mode: AuthMode
    #: Granted ``rds_iam`` itself (not only through other roles).
    direct: bool
    #: How ``user`` reaches ``rds_iam``: ``(user, "rds_iam")`` for a direct grant, and one
    #: shortest ``(user, group, ..., "rds_iam")`` through each group granted to ``user`` that
    #: leads there; shortest first.  (Every route would be exponential in nested groups.)
    paths: tuple[tuple[str, ...], ...]
    #: The other roles ``user`` reaches that are granted ``rds_iam`` directly, on any route.
    holders: tuple[str, ...]
    can_login: bool
    is_superuser: bool
    #: Superuser, CREATEROLE, or member of ``rds_superuser``: a lockout would hurt.
    is_admin: bool
    #: The role this session is logged in as (``session_user``) or acts as.
    is_session_user: bool
    #: Other settings that fight with the auth mode, each a sentence.
    conflicts: tuple[str, ...]
    #: ``None``: unlimited.
    connection_limit: int | None
    #: When the *password* expires (IAM logins ignore it); ``None``: never.
    valid_until: dt.datetime | None

    @classmethod
    def _from_state(cls, state: RoleState) -> AuthStatus:
        conflicts: tuple[str, ...] = ()
        if state.is_iam and state.in_rds_ad:
            conflicts = (kerberos_conflict(state.name),)
        return cls(
            user=state.name,
            holders=state.holders,
            is_admin=state.is_admin,
            is_session_user=state.is_session_user,
            conflicts=conflicts,
            **role_facts(state),
        )

    @property
    def via(self) -> tuple[str, ...]:
        """The groups through which IAM is inherited (first hop of each longer path)."""
        return via_roles(self.paths)

    def __str__(self) -> str:
        if self.mode is AuthMode.IAM:
            how = []
            if self.direct:
                how.append("granted rds_iam directly")
            if self.via:
                how.append("through " + ", ".join(map(printable, self.via)))
            head = f"{printable(self.user)}: IAM ({' and '.join(how) or 'is rds_iam'})"
        else:
            head = f"{printable(self.user)}: PASSWORD (not a member of rds_iam)"
        lines = [head]
        lines.extend("  path: " + " -> ".join(map(printable, p)) for p in self.paths)
        flags = [
            "can log in" if self.can_login else "NOLOGIN",
            f"superuser: {yes(self.is_superuser)}",
            f"admin: {yes(self.is_admin)}",
        ]
        if self.is_session_user:
            flags.append("this session's user")
        lines.append("  " + ", ".join(flags))
        limit = "unlimited" if self.connection_limit is None else str(self.connection_limit)
        until = "never" if self.valid_until is None else self.valid_until.isoformat()
        lines.append(f"  connection limit: {limit}, password valid until: {until}")
        lines.extend(f"  conflict: {c}" for c in self.conflicts)
        return "\n".join(lines)

    def __repr__(self) -> str:
        via = f", via={list(self.via)!r}" if self.via else ""
        return (
            f"AuthStatus(user={self.user!r}, mode={self.mode.value}{via}, "
            f"can_login={self.can_login}, is_admin={self.is_admin})"
        )

    def _facts(self) -> list[tuple[str, str]]:
        limit = "unlimited" if self.connection_limit is None else str(self.connection_limit)
        until = "never" if self.valid_until is None else self.valid_until.isoformat()
        facts = [
            ("mode", self.mode.value),
            ("granted rds_iam directly", yes(self.direct)),
            ("through", ", ".join(map(cell, self.via)) or "-"),
            *(("path", " -> ".join(map(cell, p))) for p in self.paths),
            ("can log in", yes(self.can_login)),
            ("superuser", yes(self.is_superuser)),
            ("admin", yes(self.is_admin)),
            ("this session's user", yes(self.is_session_user)),
            ("connection limit", limit),
            ("password valid until", until),
        ]
        facts.extend(("conflict", cell(c)) for c in self.conflicts)
        return facts

    def _repr_html_(self) -> str:
        """A two-column table of the facts (escaped)."""
        return html_table(["", ""], self._facts(), caption=cell(self.user))


@attrs.frozen(repr=False)
class AuthModeChange:
    """What :func:`set_auth_mode` did (or, with ``dry_run``, would do)."""

    user: str
    before: AuthMode
    after: AuthMode
    #: The auth mode changed (with ``dry_run``: would change).
    changed: bool
    #: An IAM login as ``user`` was tested and worked.
    verified: bool
    #: A new password was set (with ``dry_run``: would be set).
    password_set: bool
    dry_run: bool
    #: The SQL sent (or to send); any password verifier is redacted.
    statements: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"AuthModeChange(user={self.user!r}, {self.before.value} -> {self.after.value}, "
            f"changed={self.changed}, verified={self.verified}, dry_run={self.dry_run})"
        )

    def _repr_html_(self) -> str:
        """A two-column table: the switch, its flags and the statements (escaped)."""
        rows = [
            ("before", self.before.value),
            ("after", self.after.value),
            ("changed" if not self.dry_run else "would change", yes(self.changed)),
            ("verified", yes(self.verified)),
            ("password set", yes(self.password_set)),
            ("dry run", yes(self.dry_run)),
            *(("statement", cell(st)) for st in self.statements),
            ("message", cell(self.message)),
        ]
        return html_table(["", ""], rows, caption=cell(self.user))


@attrs.frozen
class PlannedSwitch:
    """One role the plan switches: ``GRANT`` to go IAM, ``REVOKE`` to go PASSWORD."""

    user: str
    before: AuthMode
    after: AuthMode
    #: The role's oid when planned: a role dropped and re-created makes the plan stale.
    oid: int = attrs.field(repr=False)
    #: Groups of this plan that it belongs to: their GRANT switches it to IAM as well.
    also_through: tuple[str, ...] = attrs.field(default=(), repr=False)

    @property
    def statement(self) -> str:
        return verb(self.after)


@attrs.frozen
class UnchangedRole:
    """A role already in the wanted mode."""

    user: str
    mode: AuthMode


@attrs.frozen
class Refusal:
    """A role the plan will not switch, and why, with what to do instead."""

    user: str
    wanted: AuthMode
    reason: RefusalReason
    detail: str


@attrs.frozen(repr=False)
class ApplyResult:
    """What :meth:`AuthModePlan.apply` changed."""

    granted: tuple[str, ...]
    revoked: tuple[str, ...]
    batches: int
    elapsed: float

    def __str__(self) -> str:
        return (
            f"granted rds_iam to {len(self.granted)}, revoked it from {len(self.revoked)} "
            f"in {self.batches} batch(es), {self.elapsed:.3f} s"
        )

    def __repr__(self) -> str:
        """Counts, not the (maybe thousands of) names: ``granted`` and ``revoked`` hold them."""
        return (
            f"ApplyResult(granted={len(self.granted)}, revoked={len(self.revoked)}, "
            f"batches={self.batches}, elapsed={self.elapsed:.3f}s)"
        )

    def _repr_html_(self) -> str:
        """Counts, and the first roles granted and revoked (escaped)."""
        rows = [
            ("granted rds_iam", str(len(self.granted)), _first(self.granted)),
            ("revoked rds_iam", str(len(self.revoked)), _first(self.revoked)),
            ("batches", str(self.batches), ""),
            ("elapsed", f"{self.elapsed:.3f} s", ""),
        ]
        return html_table(["", "count", "roles"], rows, caption="applied auth mode plan")


def _first(names: tuple[str, ...], shown: int = REPR_ROWS) -> str:
    """The first ``shown`` names (escaped for text), then how many more."""
    text = ", ".join(cell(n) for n in names[:shown])
    left = more(len(names), min(len(names), shown), "role")
    return f"{text} {left}".strip()


@attrs.frozen(repr=False)
class AuthModePlan:
    """What switching many roles would do; read it (``str()``), then :meth:`apply` it."""

    changes: tuple[PlannedSwitch, ...]
    unchanged: tuple[UnchangedRole, ...]
    refused: tuple[Refusal, ...]

    @property
    def to_grant(self) -> tuple[str, ...]:
        """Roles to switch to IAM."""
        return tuple(c.user for c in self.changes if c.after is AuthMode.IAM)

    @property
    def to_revoke(self) -> tuple[str, ...]:
        """Roles to switch to PASSWORD."""
        return tuple(c.user for c in self.changes if c.after is AuthMode.PASSWORD)

    def headline(self) -> str:
        """``auth mode plan: G to IAM (GRANT rds_iam), R to PASSWORD ..., F refused``."""
        return (
            f"auth mode plan: {len(self.to_grant)} to IAM (GRANT rds_iam), "
            f"{len(self.to_revoke)} to PASSWORD (REVOKE rds_iam), "
            f"{len(self.unchanged)} unchanged, {len(self.refused)} refused"
        )

    def _lines(self) -> list[str]:
        """One line per role: changes, then unchanged, then refusals."""
        lines = [
            f"  {c.statement:<7} {printable(c.user)}: {c.before} -> {c.after}" for c in self.changes
        ]
        lines.extend(f"  same    {printable(u.user)}: {u.mode}" for u in self.unchanged)
        lines.extend(
            f"  REFUSED {printable(r.user)} -> {r.wanted} ({r.reason.value}): {r.detail}"
            for r in self.refused
        )
        return lines

    def __str__(self) -> str:
        return "\n".join([self.headline(), *self._lines()])

    def summary(self, *, rows: int = REPR_ROWS) -> str:
        """The headline, refusals counted by reason, and the first ``rows`` lines of the plan."""
        out = [self.headline()]
        reasons: dict[str, int] = {}
        for r in self.refused:
            reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
        if reasons:
            counted = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
            out.append(f"refused by reason: {counted}")
        lines = self._lines()
        out.extend(lines[: max(rows, 0)])
        left = more(len(lines), min(len(lines), max(rows, 0)), "role")
        if left:
            out.append(f"  {left}")
        return "\n".join(out)

    def __repr__(self) -> str:
        """Short, like pandas: :meth:`summary` (``str()`` lists every role)."""
        return f"AuthModePlan\n{self.summary()}"

    def _repr_html_(self) -> str:
        """An escaped table of the first ``HTML_MAX_ROWS`` roles, the rest counted."""
        from rdsiamkit.explore import HTML_MAX_ROWS  # noqa: PLC0415  (explore imports models)

        dicts = self.to_dicts()
        rows = [
            [cell(d["user"] or ""), d["action"] or "", d["before"] or "-", d["after"] or ""]
            for d in dicts
        ]
        for row, d in zip(rows, dicts, strict=True):
            row.extend([d["reason"] or "", cell(d["detail"] or "")])
        shown = rows[: max(HTML_MAX_ROWS, 0)]
        footer = more(len(rows), len(shown), "role")
        return html_table(
            ["user", "action", "before", "after", "reason", "detail"],
            shown,
            caption=self.headline(),
            footer=f"{footer}; use to_dicts() for all" if footer else None,
        )

    def to_dicts(self) -> list[dict[str, str | None]]:
        """One plain dict per role, for JSON or a table."""
        rows: list[dict[str, str | None]] = [
            {
                "user": c.user,
                "action": c.statement.lower(),
                "before": c.before.value,
                "after": c.after.value,
                "reason": None,
                "detail": None,
            }
            for c in self.changes
        ]
        rows.extend(
            {
                "user": u.user,
                "action": "none",
                "before": u.mode.value,
                "after": u.mode.value,
                "reason": None,
                "detail": None,
            }
            for u in self.unchanged
        )
        rows.extend(
            {
                "user": r.user,
                "action": "refused",
                "before": None,
                "after": r.wanted.value,
                "reason": r.reason.value,
                "detail": r.detail,
            }
            for r in self.refused
        )
        return rows

    def _expected(self) -> dict[str, AuthMode]:
        """Every role the plan does not refuse, with the mode it must end in."""
        expected = {u.user: u.mode for u in self.unchanged}
        expected.update((c.user, c.after) for c in self.changes)
        return expected

    def apply(
        self,
        conn: psycopg.Connection[_R],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int, int], object] | None = None,
        single_transaction: bool = True,
        timeout: float | None = DEFAULT_APPLY_TIMEOUT,
    ) -> ApplyResult:
        """Apply :attr:`changes` (refused roles are left alone) in batches.

        Each batch is one round trip: it re-reads the batch's roles, sends one
        ``GRANT rds_iam TO ...`` and one ``REVOKE rds_iam FROM ...``, and reads
        the result back (in one transaction, the last batch reads back every
        role of the plan, since a GRANT to a group switches its members).
        ``conn`` must be at READ COMMITTED, so the re-check sees today's catalogs.
        If any role changed since planning, :class:`StalePlanError` is raised;
        if a role does not end up in the wanted mode,
        :class:`~rdsiamkit.AuthModeError`.  Either way, or on any
        server error, everything is rolled back: all batches by default, only
        the failing batch with ``single_transaction=False`` (earlier batches
        stay committed).  ``progress(done, total)`` runs after each batch;
        with ``single_transaction`` "done" is not yet committed.

        ``timeout`` bounds each round trip (each batch, and the commit) in seconds,
        on both sides: the server cancels a statement that runs longer (a GRANT
        waiting on a lock; in a transaction the kit opens itself), and the client
        closes the connection when no answer comes within ``1.5 * timeout + 1``
        seconds (a network that stalls silently), so nothing is committed and
        nothing waits forever.  ``None`` waits as long as it takes.
        """
        from rdsiamkit.roles.switch import apply_plan  # noqa: PLC0415  (switch imports models)

        return apply_plan(
            self,
            conn,
            batch_size=batch_size,
            progress=progress,
            single_transaction=single_transaction,
            timeout=timeout,
        )
