"""The access map's value objects: principals, statements, grants, findings, the map itself."""

from __future__ import annotations

import enum
import html
import json
from collections.abc import Iterator, Mapping, Sequence

import attrs

from rdsiamkit._authmode_state import printable
from rdsiamkit.authmode import AuthMode
from rdsiamkit.explore import HTML_MAX_ROWS, html_table, render_table

__all__ = [
    "AccessMap",
    "Dangling",
    "DanglingReason",
    "DatabaseTarget",
    "Grant",
    "GrantIndex",
    "Principal",
    "PrincipalKind",
    "StatementSource",
    "Unknown",
    "UnknownKind",
    "UserAccess",
]

#: A plain JSON value of :meth:`AccessMap.to_dict`.
Json = str | int | bool | None | list["Json"] | dict[str, "Json"]


class PrincipalKind(enum.Enum):
    """Who holds the policies: an IAM user or an IAM role."""

    USER = "user"
    ROLE = "role"


@attrs.frozen
class Principal:
    """An IAM user or role that could sign a token."""

    kind: PrincipalKind
    name: str
    arn: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}"

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {"kind": self.kind.value, "name": self.name, "arn": self.arn}


@attrs.frozen
class StatementSource:
    """Where a statement is: which policy (inline or managed), attached to whom, which statement."""

    #: The policy's name (inline policies have only a name).
    policy: str
    #: A managed policy's ARN; ``None`` for an inline policy.
    policy_arn: str | None
    #: ``user NAME``, ``group NAME``, ``role NAME``, or ``permissions boundary``.
    attached_to: str
    #: Index in the policy's ``Statement`` list.
    index: int
    sid: str | None
    #: The statement's ``Resource`` (or, with ``not_resource``, ``NotResource``) as written.
    resources: tuple[str, ...]
    not_resource: bool = False

    def __str__(self) -> str:
        kind = "managed policy" if self.policy_arn else "inline policy"
        text = f"{kind} {self.policy!r} ({self.attached_to}) statement #{self.index}"
        return text + (f" (Sid {self.sid!r})" if self.sid else "")

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {
            "policy": self.policy,
            "policy_arn": self.policy_arn,
            "attached_to": self.attached_to,
            "statement": self.index,
            "sid": self.sid,
            "resources": list(self.resources),
            "not_resource": self.not_resource,
        }


@attrs.frozen
class Grant:
    """A principal allowed ``rds-db:connect`` by one statement; ``conditional``: only sometimes.

    ``conditional`` holds when the deciding statement has a Condition or a
    policy variable the map cannot resolve for this principal, or when a
    conditional Deny or permissions boundary may take the access away.
    """

    principal: Principal
    statement: StatementSource
    conditional: bool

    def __str__(self) -> str:
        when = " (only under conditions)" if self.conditional else ""
        return f"{self.principal} by {self.statement}{when}"

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {
            "principal": self.principal.to_dict(),
            "statement": self.statement.to_dict(),
            "conditional": self.conditional,
        }


class DanglingReason(enum.Enum):
    """Why a statement naming a database user lets nobody log in as it."""

    #: No role of that name exists.
    NO_SUCH_ROLE = "no-such-role"
    #: The role logs in with a password (not in ``rds_iam``): PAM refuses a token.
    NOT_IAM = "not-iam"
    #: The role exists but has ``NOLOGIN``.
    NO_LOGIN = "no-login"


@attrs.frozen
class Dangling:
    """A statement allowing a principal to log in as a database user by name, in vain."""

    principal: Principal
    statement: StatementSource
    db_user: str
    reason: DanglingReason
    conditional: bool

    def __str__(self) -> str:
        why = {
            DanglingReason.NO_SUCH_ROLE: "no such role",
            DanglingReason.NOT_IAM: "a password user (not in rds_iam)",
            DanglingReason.NO_LOGIN: "a NOLOGIN role",
        }[self.reason]
        return f"{printable(self.db_user)}: {why}; allowed to {self.principal} by {self.statement}"

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {
            "db_user": self.db_user,
            "reason": self.reason.value,
            "principal": self.principal.to_dict(),
            "statement": self.statement.to_dict(),
            "conditional": self.conditional,
        }


class UnknownKind(enum.Enum):
    """What the map could not see, so its answers hold only as far as these allow."""

    #: Organizations service / resource control policies may deny what identity policies allow.
    SERVICE_CONTROL_POLICIES = "service-control-policies"
    #: Session policies and session tags narrow an assumed role's session.
    SESSION_POLICIES = "session-policies"
    #: ``rds-db`` has no resource-based policies today; none were read.
    RESOURCE_POLICIES = "resource-policies"
    #: The account's root user may connect as any user; it is not listed.
    ROOT_USER = "root-user"
    #: Who may assume each role (trust policies) is not evaluated: roles are listed as principals.
    ROLE_TRUST = "role-trust"
    #: A policy attached to a principal is not in the authorization document.
    MISSING_POLICY = "missing-policy"
    #: A policy in the document could not be read as IAM policy JSON.
    UNREADABLE_POLICY = "unreadable-policy"


@attrs.frozen
class Unknown:
    """One thing the map could not know, named so it is never silently assumed."""

    kind: UnknownKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {"kind": self.kind.value, "detail": self.detail}


@attrs.frozen
class DatabaseTarget:
    """The database the map is about: the prefix of its ``rds-db`` ARNs."""

    partition: str
    region: str
    account_id: str
    resource_id: str

    @property
    def arn_prefix(self) -> str:
        """``arn:PARTITION:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/``."""
        return (
            f"arn:{self.partition}:rds-db:{self.region}:{self.account_id}:"
            f"dbuser:{self.resource_id}/"
        )

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {
            "partition": self.partition,
            "region": self.region,
            "account_id": self.account_id,
            "resource_id": self.resource_id,
        }


@attrs.frozen
class UserAccess:
    """One database login role: its auth mode and, for an IAM user, who may log in as it."""

    name: str
    mode: AuthMode
    #: Principals allowed ``rds-db:connect`` on this user's ARN (empty for a PASSWORD user:
    #: a token cannot log in as it).
    grants: tuple[Grant, ...]

    @property
    def principals(self) -> tuple[Principal, ...]:
        """The distinct principals in :attr:`grants`, in order."""
        return tuple(dict.fromkeys(g.principal for g in self.grants))

    @property
    def reachable(self) -> bool:
        """An IAM user some principal may log in as (perhaps only under conditions)."""
        return self.mode is AuthMode.IAM and bool(self.grants)

    def to_dict(self) -> dict[str, Json]:
        """Plain values, for JSON."""
        return {
            "name": self.name,
            "mode": self.mode.value,
            "grants": [g.to_dict() for g in self.grants],
        }


@attrs.frozen
class GrantIndex:
    """Which grants cover a user: few-user grants by name, wide ones (``…/*``) by membership.

    Indexing a grant of every user under every name would cost more than the
    evaluation; a lookup checks the few wide grants instead.  The number with
    each grant orders them by principal.
    """

    narrow: Mapping[str, Sequence[tuple[int, Grant]]]
    wide: Sequence[tuple[int, Grant, frozenset[str]]]

    def grants(self, name: str) -> tuple[Grant, ...]:
        """Every grant covering ``name``, in principal order."""
        found = [*self.narrow.get(name, ()), *((n, g) for n, g, u in self.wide if name in u)]
        found.sort(key=lambda item: item[0])
        return tuple(grant for _, grant in found)


_MAPPING_BASE = Mapping[str, UserAccess]


@attrs.frozen(eq=False)
class AccessMap(_MAPPING_BASE):
    """Who may log in as whom: database login roles, IAM principals, and where they disagree.

    A read-only mapping from login role name to :class:`UserAccess`.
    ``dangling``, ``unreachable`` and ``wildcards`` are the findings;
    ``unknowns`` names what the map could not see.
    """

    database: DatabaseTarget
    principals: tuple[Principal, ...]
    #: Statements naming users who cannot log in with IAM (missing, PASSWORD, NOLOGIN).
    dangling: tuple[Dangling, ...]
    #: IAM login users no principal may log in as, not even under conditions.
    unreachable: tuple[str, ...]
    #: Grants that allow every user of this database (``dbuser:*/*``, ``rds-db:*`` on ``*``...).
    wildcards: tuple[Grant, ...]
    unknowns: tuple[Unknown, ...]
    #: Every login role's auth mode, by name.
    _modes: Mapping[str, AuthMode] = attrs.field(alias="modes", repr=False)
    _grants: GrantIndex = attrs.field(alias="grants", repr=False)

    def __getitem__(self, name: str) -> UserAccess:
        mode = self._modes[name]
        grants = self._grants.grants(name) if mode is AuthMode.IAM else ()
        return UserAccess(name=name, mode=mode, grants=grants)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modes)

    def __len__(self) -> int:
        return len(self._modes)

    @property
    def clean(self) -> bool:
        """Nothing dangling and nothing unreachable (what ``rdsiamkit access`` exits 0 on)."""
        return not self.dangling and not self.unreachable

    def headline(self) -> str:
        """One line of counts."""
        iam = sum(1 for mode in self._modes.values() if mode is AuthMode.IAM)
        return (
            f"{len(self._modes)} login roles ({iam} IAM), {len(self.principals)} principals: "
            f"{len(self.wildcards)} wildcard grant(s), {len(self.dangling)} dangling, "
            f"{len(self.unreachable)} unreachable"
        )

    def __repr__(self) -> str:
        return f"<AccessMap {self.database.resource_id}: {self.headline()}>"

    def to_dict(self) -> dict[str, Json]:
        """Plain values (JSON-serialisable): the findings first, then every login role.

        The findings spell principals and statements out; each user's grants
        name the principal by ARN and the statement by its key in ``statements``,
        so a principal allowed every user does not repeat its statement 5,000 times.
        """
        keys: dict[StatementSource, str] = {}
        users: list[Json] = []
        for name, mode in self._modes.items():
            grants: list[Json] = []
            for grant in self._grants.grants(name) if mode is AuthMode.IAM else ():
                key = keys.setdefault(grant.statement, f"s{len(keys)}")
                grants.append(
                    {
                        "principal": grant.principal.arn,
                        "statement": key,
                        "conditional": grant.conditional,
                    }
                )
            users.append({"name": name, "mode": mode.value, "grants": grants})
        return {
            "database": self.database.to_dict(),
            "clean": self.clean,
            "wildcards": [g.to_dict() for g in self.wildcards],
            "dangling": [d.to_dict() for d in self.dangling],
            "unreachable": list(self.unreachable),
            "unknowns": [u.to_dict() for u in self.unknowns],
            "principals": [p.to_dict() for p in self.principals],
            "statements": {key: s.to_dict() for s, key in keys.items()},
            "users": users,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def _sections(self, *, text: bool) -> list[tuple[str, list[str], list[list[str]]]]:
        """(title, headers, rows) of each findings table; ``text``: names ``repr()``-escaped."""

        def name(value: str) -> str:
            return printable(value) if text else value

        wildcards = [
            [name(str(g.principal)), name(str(g.statement)), _yes(g.conditional)]
            for g in self.wildcards
        ]
        dangling = [
            [
                name(d.db_user),
                d.reason.value,
                name(str(d.principal)),
                name(str(d.statement)),
                _yes(d.conditional),
            ]
            for d in self.dangling
        ]
        users = [
            [
                name(u.name),
                u.mode.value,
                name(_who(u)) if u.mode is AuthMode.IAM else "-",
            ]
            for u in map(self.__getitem__, self._modes)
        ]
        return [
            ("wildcard grants", ["principal", "statement", "conditional"], wildcards),
            ("dangling", ["db user", "reason", "principal", "statement", "conditional"], dangling),
            ("unreachable IAM users", ["db user"], [[name(u)] for u in self.unreachable]),
            ("login roles", ["db user", "mode", "principals"], users),
        ]

    def __str__(self) -> str:
        """The headline, the findings, every login role, and what could not be known."""
        parts = [self.headline()]
        for title, headers, rows in self._sections(text=True):
            if rows:
                parts.append(f"{title}:\n" + render_table(headers, rows))
        if self.unknowns:
            parts.append("not known:\n" + "\n".join(f"  {u}" for u in self.unknowns))
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        """Escaped tables of the findings and (at most ``HTML_MAX_ROWS``) login roles."""
        out = [f"<p>{_escape(self.headline())}</p>"]
        for title, headers, rows in self._sections(text=False):
            if not rows:
                continue
            shown = rows[: max(HTML_MAX_ROWS, 0)]
            footer = None
            if len(rows) > len(shown):
                footer = f"… and {len(rows) - len(shown)} more; use to_dict() for all"
            out.append(html_table(headers, shown, caption=title, footer=footer))
        if self.unknowns:
            items = "".join(f"<li>{_escape(str(u))}</li>" for u in self.unknowns)
            out.append(f"<p>Not known:</p><ul>{items}</ul>")
        return "".join(out)


def _who(user: UserAccess) -> str:
    """``user a, role b (conditional)``: each principal once, conditional if all its grants are."""
    conditional: dict[Principal, bool] = {}
    for grant in user.grants:
        conditional[grant.principal] = conditional.get(grant.principal, True) and grant.conditional
    return ", ".join(f"{p} (conditional)" if c else str(p) for p, c in conditional.items()) or "-"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _escape(text: str) -> str:
    return html.escape(text)
