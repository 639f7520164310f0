"""Evaluate every principal against every database user without trying every pair.

The kit's evaluator (:func:`~rdsiamkit.policy.action_rules`,
:func:`~rdsiamkit.policy.resource_pattern`) reads the statements; instead of
asking it about each (principal, user) pair, each distinct resource pattern is
resolved once into the set of user names it matches:

* a literal ARN of this database names one user (a dict lookup);
* a pattern whose literal head reaches into the user name (``…/app_*``) is
  tried only on the names sharing that head (a range of the sorted names);
* a pattern whose head stops before the user name (``…/*``, ``arn:aws:rds-db:*``,
  ``*``) is tried on every name, once, whichever principals hold it;
* a pattern for another database matches nothing, without a regex.

A principal's decision is then set algebra over its statements' sets, by
:func:`~rdsiamkit.policy.evaluate_policy`'s rules: a Deny beats an Allow, a
Condition (or an unresolved policy variable) makes an answer conditional, and
a permissions boundary must allow too.  Two probe names no policy can list
stand for "any other user": a principal whose access covers them has a
wildcard grant.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from rdsiamkit.access._document import AccountAuthorization, AttachedPolicy, PrincipalPolicies
from rdsiamkit.access._model import (
    AccessMap,
    Dangling,
    DanglingReason,
    DatabaseTarget,
    Grant,
    GrantIndex,
    Principal,
    PrincipalKind,
    StatementSource,
    Unknown,
    UnknownKind,
)
from rdsiamkit.authmode import AuthMode
from rdsiamkit.errors import InvalidPolicyError
from rdsiamkit.policy import (
    CONNECT_ACTION,
    POLICY_VERSION,
    Outcome,
    ResourceRule,
    action_rules,
    evaluate_policy,
)
from rdsiamkit.policy import resource_pattern as compile_pattern

__all__ = ["RoleFacts", "build_access_map"]

#: Names no role can have in a policy's eyes: a grant covering both covers "everyone".
PROBES = ("\u2603", "\u2603\u2603\u2603 \u2603")
# Stands in for a policy variable that has no value for a principal: matches no ARN.
_ABSENT = "\x00"
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_WILDCARD_CHARS = re.compile(r"[*?]")
_EMPTY: frozenset[str] = frozenset()
# A grant covering more users than this is checked by membership, not indexed by name.
_NARROW = 64
_STANDING_UNKNOWNS = (
    Unknown(
        UnknownKind.SERVICE_CONTROL_POLICIES,
        "AWS Organizations SCPs and RCPs may deny what these identity policies allow",
    ),
    Unknown(
        UnknownKind.SESSION_POLICIES,
        "session policies and session tags may narrow an assumed role's or federated session",
    ),
    Unknown(
        UnknownKind.RESOURCE_POLICIES,
        "resource-based policies were not read (rds-db:connect has none today)",
    ),
    Unknown(
        UnknownKind.ROOT_USER,
        "the account's root user may connect as any IAM user and is not listed",
    ),
    Unknown(
        UnknownKind.ROLE_TRUST,
        "who may assume each role (its trust policy) is not evaluated; roles are listed as "
        "principals",
    ),
)


@attrs.frozen
class RoleFacts:
    """What the map needs to know about one database role."""

    name: str
    mode: AuthMode
    can_login: bool


@attrs.frozen
class _Rule:
    """One statement of one policy, as it applies to one principal."""

    source: StatementSource
    allow: bool
    #: Users it covers outright / only perhaps (condition, unresolved variable).
    firm: frozenset[str]
    maybe: frozenset[str]
    #: Users it names by a literal ARN of this database.
    named: frozenset[str]


class _Index:
    """Resource patterns resolved against the database's user names, once per distinct pattern."""

    def __init__(self, base: str, names: Iterable[str]) -> None:
        self.base = base
        self.names = sorted({*names, *PROBES})
        self.universe = frozenset(self.names)
        self._patterns: dict[tuple[str, bool], tuple[frozenset[str], bool]] = {}
        self._rules: dict[tuple[tuple[str, ...], bool, bool], tuple[frozenset[str], ...]] = {}

    def pattern(self, pattern: str, *, variables: bool) -> tuple[frozenset[str], bool]:
        """The names ``pattern`` matches, and whether it holds a policy variable."""
        key = (pattern, variables)
        found = self._patterns.get(key)
        if found is not None:
            return found
        head = literal_head(pattern, variables=variables)
        base = self.base
        if head == pattern:
            name = pattern[len(base) :] if pattern.startswith(base) else None
            found = (frozenset((name,)) if name in self.universe else _EMPTY, False)
        elif pattern == head + "*" and head.startswith(base):
            # ``…/app_*``: a final ``*`` matches anything, so the range of names is the answer.
            found = (frozenset(self._starting_with(head[len(base) :])), False)
        else:
            regex, variable = compile_pattern(pattern, variables=variables)
            if head.startswith(base):
                candidates: Sequence[str] = self._starting_with(head[len(base) :])
            elif base.startswith(head):
                candidates = self.names
            else:
                candidates = ()
            found = (frozenset(n for n in candidates if regex.fullmatch(base + n)), variable)
        self._patterns[key] = found
        return found

    def _starting_with(self, prefix: str) -> list[str]:
        start = bisect.bisect_left(self.names, prefix)
        end = start
        while end < len(self.names) and self.names[end].startswith(prefix):
            end += 1
        return self.names[start:end]

    def rule(self, rule: ResourceRule) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """(matched outright, matched perhaps, named literally) for a statement's resources."""
        key = (rule.resources, rule.not_resource, rule.variables)
        found = self._rules.get(key)
        if found is None:
            literal: set[str] = set()
            variable: set[str] = set()
            literally: set[str] = set()
            for pattern in rule.resources:
                users, has_variable = self.pattern(pattern, variables=rule.variables)
                (variable if has_variable else literal).update(users)
                if not has_variable and literal_head(pattern, variables=rule.variables) == pattern:
                    literally.update(users)
            maybe = frozenset(variable - literal)
            if rule.not_resource:
                found = (self.universe - literal - maybe, maybe, _EMPTY)
            else:
                found = (frozenset(literal), maybe, frozenset(literally))
            self._rules[key] = found
        firm, maybe, named = found
        if rule.conditional:
            return _EMPTY, firm | maybe, named
        return firm, maybe, named


def literal_head(pattern: str, *, variables: bool) -> str:
    """The part of a resource pattern before its first wildcard (or policy variable)."""
    end = len(pattern)
    wildcard = _WILDCARD_CHARS.search(pattern)
    if wildcard is not None:
        end = wildcard.start()
    if variables:
        dollar = pattern.find("${", 0, end)
        if dollar >= 0:
            end = dollar
    return pattern[:end]


def literal_names(rules: Iterable[ResourceRule], base: str) -> set[str]:
    """User names of this database that statements name by a literal ARN."""
    names = set()
    for rule in rules:
        for pattern in rule.resources:
            if (
                pattern.startswith(base)
                and _ABSENT not in pattern
                and literal_head(pattern, variables=rule.variables) == pattern
            ):
                names.add(pattern[len(base) :])
    return names


# -- policy variables -------------------------------------------------------------------


class Unresolved(enum.Enum):
    """A policy variable whose value depends on the request (a role session's tags...)."""

    UNKNOWN = "unknown"


#: A variable's value for a principal: text, absent (``None``: it has none), or unknown.
VariableLookup = Callable[[str], "str | Unresolved | None"]


def variable_lookup(entry: PrincipalPolicies, account_id: str) -> VariableLookup:
    """The policy variables knowable for a principal from the document alone.

    An IAM user has ``aws:username``, ``aws:userid`` and its tags; a role's
    session has no ``aws:username``, and its ``aws:userid`` and tags depend on
    the session, so they stay unknown (the answer becomes conditional).
    """
    principal = entry.principal
    user = principal.kind is PrincipalKind.USER
    known: dict[str, str | None] = {
        "aws:principalaccount": account_id,
        "aws:principalarn": principal.arn,
        "aws:principaltype": "User" if user else "AssumedRole",
    }
    tags = {k.lower(): v for k, v in entry.tags.items()}
    if user:
        known["aws:username"] = principal.name
        if entry.unique_id:
            known["aws:userid"] = entry.unique_id
    else:
        known["aws:username"] = None

    def lookup(key: str) -> str | Unresolved | None:
        if key in known:
            return known[key]
        if user and key.startswith("aws:principaltag/"):
            return tags.get(key.removeprefix("aws:principaltag/"))
        return Unresolved.UNKNOWN

    return lookup


def substitute(document: Mapping[str, Any], lookup: VariableLookup) -> Mapping[str, Any]:
    """``document`` with the known policy variables of its resources replaced.

    Values are escaped (``*`` becomes ``${*}``) so they match literally; a
    variable without a value (and no default) matches nothing; unknown ones stay.
    """
    if document.get("Version") != POLICY_VERSION:
        return document  # without 2012-10-17 IAM reads ${...} as text

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner in ("*", "?", "$"):
            return match.group(0)
        key, comma, default = inner.partition(",")
        value = lookup(key.strip().lower())
        if value is Unresolved.UNKNOWN:
            return match.group(0)
        if value is None:
            default = default.strip()
            if not (comma and len(default) >= 2 and default[0] == default[-1] == "'"):
                return _ABSENT
            value = default[1:-1]
        return "".join("${" + c + "}" if c in "*?$" else c for c in str(value))

    def resources(value: object) -> object:
        if isinstance(value, str):
            return _VARIABLE_RE.sub(replace, value)
        if isinstance(value, list):
            return [resources(v) for v in value]
        return value

    raw = document.get("Statement")
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list):
        return document
    statements = [
        {k: resources(v) if k in ("Resource", "NotResource") else v for k, v in item.items()}
        if isinstance(item, Mapping)
        else item
        for item in items
    ]
    return {**document, "Statement": statements}


# -- evaluation -------------------------------------------------------------------------


class _Parser:
    """Reads each policy once (once per principal when its resources hold variables)."""

    def __init__(self) -> None:
        self._cache: dict[int, list[ResourceRule] | None] = {}
        self._reported: set[int] = set()
        self.unknowns: list[Unknown] = []

    def rules(self, policy: AttachedPolicy, lookup: VariableLookup) -> list[ResourceRule] | None:
        """The policy's statements about ``rds-db:connect``; ``None``: not known."""
        document = policy.document
        if document is None:
            return None
        if policy.has_variables:
            return self._read(policy, substitute(document, lookup))
        key = id(document)
        if key not in self._cache:
            self._cache[key] = self._read(policy, document)
        return self._cache[key]

    def _read(
        self, policy: AttachedPolicy, document: Mapping[str, Any]
    ) -> list[ResourceRule] | None:
        try:
            return action_rules(document, action=CONNECT_ACTION)
        except InvalidPolicyError as err:
            if id(policy.document) not in self._reported:
                self._reported.add(id(policy.document))
                name = policy.arn or policy.name
                self.unknowns.append(
                    Unknown(
                        UnknownKind.UNREADABLE_POLICY,
                        f"policy {name!r} ({policy.attached_to}) is not read: {err}",
                    )
                )
            return None


@attrs.frozen
class _Read:
    """A principal's statements, read, and its permissions boundary's (``None``: none)."""

    entry: PrincipalPolicies
    rules: list[tuple[AttachedPolicy, ResourceRule]]
    boundary: list[tuple[AttachedPolicy, ResourceRule]] | None
    #: It has a boundary the map could not read: every access it has is conditional.
    boundary_unknown: bool = False


def _read_all(
    authorization: AccountAuthorization, account_id: str, base: str
) -> tuple[list[_Read], set[str], list[Unknown]]:
    parser = _Parser()
    reads: list[_Read] = []
    named: set[str] = set()
    seen: set[int] = set()
    for entry in authorization.principals:
        lookup = variable_lookup(entry, account_id)
        rules = []
        for policy in entry.policies:
            for rule in parser.rules(policy, lookup) or ():
                rules.append((policy, rule))
        boundary = None
        if entry.boundary is not None:
            found = parser.rules(entry.boundary, lookup)
            boundary = [(entry.boundary, r) for r in found or ()]
        for _, rule in rules:
            if id(rule) not in seen:
                seen.add(id(rule))
                named |= literal_names([rule], base)
        unknown = entry.boundary is not None and found is None
        reads.append(_Read(entry=entry, rules=rules, boundary=boundary, boundary_unknown=unknown))
    return reads, named, parser.unknowns


def _source(policy: AttachedPolicy, rule: ResourceRule) -> StatementSource:
    """Where the statement is, with its resources as written (before variables were resolved)."""
    resources = rule.resources
    document = policy.document
    if policy.has_variables and document is not None:
        raw = document.get("Statement")
        items = [raw] if isinstance(raw, Mapping) else raw
        index = rule.ref.statement or 0
        if isinstance(items, list) and index < len(items) and isinstance(items[index], Mapping):
            written = items[index].get("NotResource" if rule.not_resource else "Resource")
            resources = (written,) if isinstance(written, str) else tuple(map(str, written))
    return StatementSource(
        policy=policy.name,
        policy_arn=policy.arn,
        attached_to=policy.attached_to,
        index=rule.ref.statement or 0,
        sid=rule.ref.sid,
        resources=resources,
        not_resource=rule.not_resource,
    )


def _rules(index: _Index, pairs: Iterable[tuple[AttachedPolicy, ResourceRule]]) -> list[_Rule]:
    out = []
    for policy, rule in pairs:
        firm, maybe, named = index.rule(rule)
        if firm or maybe:
            out.append(_Rule(_source(policy, rule), rule.allow, firm, maybe, named))
    return out


def _decide(rules: Sequence[_Rule]) -> tuple[frozenset[str], frozenset[str]]:
    """(allowed, only conditionally allowed), by evaluate_policy's rules."""
    if all(r.allow for r in rules):  # the usual case: nothing to subtract
        allowed = _EMPTY.union(*(r.firm for r in rules))
        return allowed, _EMPTY.union(*(r.maybe for r in rules)) - allowed
    deny_firm = _EMPTY.union(*(r.firm for r in rules if not r.allow))
    deny_maybe = _EMPTY.union(*(r.maybe for r in rules if not r.allow)) - deny_firm
    allow_firm = _EMPTY.union(*(r.firm for r in rules if r.allow))
    allow_any = allow_firm.union(*(r.maybe for r in rules if r.allow))
    allowed = allow_firm - deny_firm - deny_maybe
    return allowed, allow_any - deny_firm - allowed


@attrs.frozen
class _Outcome:
    """One principal's access: grants with the users each covers; dangling names."""

    groups: list[tuple[Grant, frozenset[str]]]
    dangling: list[Dangling]
    wildcard: Grant | None


def _evaluate(
    index: _Index, read: _Read, iam: frozenset[str], roles: Mapping[str, RoleFacts]
) -> _Outcome:
    principal = read.entry.principal
    rules = _rules(index, read.rules)
    allowed, conditional = _decide(rules)
    if read.boundary_unknown:
        allowed, conditional = _EMPTY, allowed | conditional
    elif read.boundary is not None:
        bounded, bounded_maybe = _decide(_rules(index, read.boundary))
        both = allowed & bounded
        conditional = ((allowed | conditional) & (bounded | bounded_maybe)) - both
        allowed = both
    allows = [r for r in rules if r.allow]
    groups = _assign(principal, allows, allowed, conditional)
    reached = allowed | conditional
    wildcard = None
    if all(p in reached for p in PROBES):
        wildcard = next(g for g, users in groups if PROBES[0] in users)
    dangling = [
        Dangling(
            principal, rule.source, name, _dangling_reason(roles.get(name)), name in conditional
        )
        for rule in allows
        for name in sorted((rule.named & reached) - iam)
    ]
    return _Outcome(groups, dangling, wildcard)


def _assign(
    principal: Principal,
    allows: Sequence[_Rule],
    allowed: frozenset[str],
    conditional: frozenset[str],
) -> list[tuple[Grant, frozenset[str]]]:
    """Each user under the first statement that allows it, as evaluate_policy reports it.

    An allowed user: the first firm Allow.  A conditional one: the first firm
    Allow (a conditional Deny or boundary makes it conditional), else the
    first conditional Allow.
    """
    groups: list[tuple[Grant, frozenset[str]]] = []
    left = allowed
    for rule in allows:
        hit = rule.firm & left
        if hit:
            groups.append((Grant(principal, rule.source, False), hit))
            left = left - hit
    left = conditional
    for rule, covered in [(r, r.firm) for r in allows] + [(r, r.maybe) for r in allows]:
        hit = covered & left
        if hit:
            groups.append((Grant(principal, rule.source, True), hit))
            left = left - hit
    return groups


def _dangling_reason(role: RoleFacts | None) -> DanglingReason:
    if role is None:
        return DanglingReason.NO_SUCH_ROLE
    if not role.can_login:
        return DanglingReason.NO_LOGIN
    return DanglingReason.NOT_IAM


def build_access_map(
    roles: Iterable[RoleFacts], authorization: AccountAuthorization, database: DatabaseTarget
) -> AccessMap:
    """The access map of ``roles`` (every role, login or not) under ``authorization``.

    No I/O: :func:`rdsiamkit.access_map` gathers both sides and calls this.
    """
    facts = {r.name: r for r in roles}
    base = database.arn_prefix
    reads, named, unknowns = _read_all(authorization, database.account_id, base)
    index = _Index(base, [*facts, *named])
    iam = frozenset(n for n, r in facts.items() if r.can_login and r.mode is AuthMode.IAM)
    narrow: dict[str, list[tuple[int, Grant]]] = {}
    wide: list[tuple[int, Grant, frozenset[str]]] = []
    reached: set[str] = set()
    dangling: list[Dangling] = []
    wildcards: list[Grant] = []
    for number, read in enumerate(reads):
        outcome = _evaluate(index, read, iam, facts)
        for grant, users in outcome.groups:
            reached.update(users)
            if len(users) > _NARROW:
                wide.append((number, grant, users))
                continue
            for name in users & iam:
                narrow.setdefault(name, []).append((number, grant))
        dangling.extend(outcome.dangling)
        if outcome.wildcard is not None:
            wildcards.append(outcome.wildcard)
    modes = {r.name: r.mode for r in sorted(facts.values(), key=lambda r: r.name) if r.can_login}
    return AccessMap(
        database=database,
        principals=tuple(r.entry.principal for r in reads),
        dangling=tuple(sorted(dangling, key=lambda d: (d.db_user, d.principal.arn))),
        unreachable=tuple(sorted(iam - reached)),
        wildcards=tuple(wildcards),
        unknowns=(*_STANDING_UNKNOWNS, *authorization.unknowns, *unknowns),
        modes=modes,
        grants=GrantIndex(narrow=narrow, wide=wide),
    )


def pair_outcome(entry: PrincipalPolicies, arn: str, account_id: str) -> Outcome:
    """One principal against one ARN, with :func:`~rdsiamkit.policy.evaluate_policy` alone.

    The naive path the index must agree with (tests and ``bench/bench_access.py``):
    the same variable resolution, then the identity policies and the permissions
    boundary evaluated separately and intersected.
    """
    lookup = variable_lookup(entry, account_id)
    documents = [substitute(p.document, lookup) for p in entry.policies if p.document is not None]
    identity = evaluate_policy(documents, arn).outcome if documents else Outcome.IMPLICIT_DENY
    if entry.boundary is None or identity in (Outcome.EXPLICIT_DENY, Outcome.IMPLICIT_DENY):
        return identity
    if entry.boundary.document is None:
        return Outcome.DEPENDS_ON_CONDITIONS
    bound = evaluate_policy([substitute(entry.boundary.document, lookup)], arn).outcome
    if bound in (Outcome.EXPLICIT_DENY, Outcome.IMPLICIT_DENY):
        return bound
    both = identity is Outcome.ALLOWED and bound is Outcome.ALLOWED
    return Outcome.ALLOWED if both else Outcome.DEPENDS_ON_CONDITIONS
