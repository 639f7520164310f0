"""Write and check the IAM policies that let a principal log in with a token.

RDS never says why it refused an IAM login: a policy that allows
``rds-db:connect`` on ``…/testuser`` but not on ``…/postgres`` looks exactly
like an expired token.  :func:`connect_policy` writes a least-privilege policy
from checked ARNs, and :func:`evaluate_policy` answers offline, from the
policy text alone, whether it allows one login — and if not, which statement
decided and what the allowed resources were.  :func:`simulate_connect` asks
IAM itself (``iam:SimulatePrincipalPolicy``), which also sees every other
policy attached to the principal.

The offline evaluator follows IAM's rules for identity policies: an explicit
``Deny`` beats any ``Allow``, nothing is allowed by default, ``Action`` /
``NotAction`` and ``Resource`` / ``NotResource`` take ``*`` and ``?``
wildcards (actions ignore case, resources do not).  It does not guess
conditions: a statement with a ``Condition`` (or a ``${policy:variable}`` in its
resources) that would change the answer makes the outcome
:attr:`Outcome.DEPENDS_ON_CONDITIONS`.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

import attrs

from rdsiamkit._aws import aws_errors, default_session
from rdsiamkit.arn import DbUserArn
from rdsiamkit.errors import AwsApiError, ConfigurationError, InvalidPolicyError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_iam.type_defs import EvaluationResultTypeDef

__all__ = [
    "CONNECT_ACTION",
    "Outcome",
    "PolicyDecision",
    "PolicyDocument",
    "PolicyStatement",
    "ResourceRule",
    "StatementRef",
    "action_rules",
    "connect_policy",
    "evaluate_policy",
    "resource_pattern",
    "simulate_connect",
]

log = logging.getLogger("rdsiamkit.policy")

#: The one IAM action that IAM database authentication checks.
CONNECT_ACTION = "rds-db:connect"
POLICY_VERSION = "2012-10-17"
_VERSIONS = frozenset({"2012-10-17", "2008-10-17"})
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_SID_RE = re.compile(r"[A-Za-z0-9]*")
# 'service:Name'; tag keys after the prefix may hold spaces and any printable character.
_CONDITION_KEY_RE = re.compile(r"[A-Za-z0-9_.-]+:[^\x00-\x1f\x7f]+")
_BASE_OPERATORS = frozenset(
    {
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "NumericEquals",
        "NumericNotEquals",
        "NumericLessThan",
        "NumericLessThanEquals",
        "NumericGreaterThan",
        "NumericGreaterThanEquals",
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
    }
)
_SET_QUALIFIERS = ("ForAnyValue:", "ForAllValues:")
# A policy variable (or one of the escapes ${*} ${?} ${$}); only Version 2012-10-17 has them.
_POLICY_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
# How many allowed resource patterns a "no statement allows" reason lists.
_MAX_LISTED_RESOURCES = 5

ConditionValue = str | bool | int | float
ConditionBlock = Mapping[str, Mapping[str, ConditionValue | Sequence[ConditionValue]]]
PolicyInput = str | Mapping[str, object]


class _StatementRequired(TypedDict):
    Effect: str
    Action: list[str]
    Resource: list[str]


class PolicyStatement(_StatementRequired, total=False):
    """One statement of a policy :func:`connect_policy` writes."""

    Sid: str
    Condition: dict[str, dict[str, str | list[str]]]


class PolicyDocument(TypedDict):
    """A JSON-serialisable IAM policy document, as :func:`connect_policy` returns it."""

    Version: str
    Statement: list[PolicyStatement]


class Outcome(enum.Enum):
    """How a request fares under a set of policies."""

    #: An Allow matches and no Deny does.
    ALLOWED = "allowed"
    #: A Deny without conditions matches: nothing can allow it.
    EXPLICIT_DENY = "explicit-deny"
    #: No Allow matches: IAM denies by default.
    IMPLICIT_DENY = "implicit-deny"
    #: The answer hinges on a statement's Condition (or policy variable).
    DEPENDS_ON_CONDITIONS = "depends-on-conditions"


@attrs.frozen
class StatementRef:
    """Where a deciding statement is: which policy, which statement, its Sid."""

    #: Index in the list passed to :func:`evaluate_policy`, or IAM's policy id.
    policy: int | str
    #: Index in the policy's ``Statement`` list (``None`` when IAM does not say).
    statement: int | None = None
    sid: str | None = None

    def __str__(self) -> str:
        text = (
            f"policy {self.policy!r}" if isinstance(self.policy, str) else f"policy #{self.policy}"
        )
        if self.statement is not None:
            text += f" statement #{self.statement}"
        if self.sid:
            text += f" (Sid {self.sid!r})"
        return text


@attrs.frozen
class PolicyDecision:
    """Whether ``action`` on ``resource`` is allowed, which statement decided, and why."""

    outcome: Outcome
    action: str
    resource: str
    #: The statement that decided; ``None`` for an implicit deny.
    statement: StatementRef | None
    reason: str

    @property
    def allowed(self) -> bool:
        """True only for :attr:`Outcome.ALLOWED`; a conditional answer is not a yes."""
        return self.outcome is Outcome.ALLOWED

    def __str__(self) -> str:
        verdict = self.outcome.value.replace("-", " ").upper()
        return f"{verdict}: {self.action} on {self.resource}: {self.reason}"


# -- writing ------------------------------------------------------------------


def connect_policy(
    resources: Iterable[str | DbUserArn] | str | DbUserArn,
    *,
    sid: str | None = None,
    conditions: ConditionBlock | None = None,
) -> PolicyDocument:
    """Return a least-privilege policy allowing ``rds-db:connect`` on ``resources``.

    Every resource is validated as an ``rds-db`` ``dbuser`` ARN (patterns such
    as ``…/*`` are allowed); the output is sorted and de-duplicated, so the
    same input always gives the same JSON.  ``conditions`` is an IAM
    ``Condition`` block, for example
    ``{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}``.

    :raises InvalidArnError: a resource is not a valid rds-db ARN.
    :raises InvalidPolicyError: ``sid`` or ``conditions`` would make IAM reject the policy.
    :raises ConfigurationError: ``resources`` is empty.
    """
    items = [resources] if isinstance(resources, (str, DbUserArn)) else list(resources)
    arns = sorted({str(r if isinstance(r, DbUserArn) else DbUserArn.parse(r)) for r in items})
    if not arns:
        raise ConfigurationError(
            "connect_policy() needs at least one rds-db ARN: a policy without "
            "resources allows nothing"
        )
    statement: PolicyStatement = {
        "Effect": "Allow",
        "Action": [CONNECT_ACTION],
        "Resource": arns,
    }
    if sid is not None:
        if not isinstance(sid, str) or not sid or not _SID_RE.fullmatch(sid):
            raise InvalidPolicyError(
                f"invalid Sid {sid!r}: IAM allows only ASCII letters and digits"
            )
        statement = {"Sid": sid, **statement}
    if conditions:
        statement["Condition"] = _normalise_conditions(conditions, "conditions")
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def _normalise_conditions(block: object, where: str) -> dict[str, dict[str, str | list[str]]]:
    """Validate an IAM Condition block; return it with sorted keys and string values."""
    if not isinstance(block, Mapping) or not block:
        raise InvalidPolicyError(
            f"{where}: Condition must be a non-empty object of operator -> {{key: value}}"
        )
    normalised: dict[str, dict[str, str | list[str]]] = {}
    for operator in sorted(block, key=str):
        _check_operator(operator, where)
        entries = block[operator]
        if not isinstance(entries, Mapping) or not entries:
            raise InvalidPolicyError(
                f"{where}: Condition operator {operator!r} needs a non-empty object of "
                "condition key -> value(s)"
            )
        normalised[operator] = {}
        for key in sorted(entries, key=str):
            if not isinstance(key, str) or not _CONDITION_KEY_RE.fullmatch(key):
                raise InvalidPolicyError(
                    f"{where}: invalid condition key {key!r} under {operator!r}: "
                    "expected 'service:Name' such as 'aws:SourceIp'"
                )
            normalised[operator][key] = _condition_values(entries[key], where, operator, key)
    return normalised


def _check_operator(operator: object, where: str) -> None:
    name = operator if isinstance(operator, str) else ""
    for qualifier in _SET_QUALIFIERS:
        name = name.removeprefix(qualifier)
    if name == "Null" or name in _BASE_OPERATORS:
        return
    if name.endswith("IfExists") and name.removesuffix("IfExists") in _BASE_OPERATORS:
        return
    raise InvalidPolicyError(
        f"{where}: unknown Condition operator {operator!r} "
        "(e.g. 'StringEquals', 'IpAddress', 'Bool', 'StringLikeIfExists')"
    )


def _condition_values(value: object, where: str, operator: str, key: str) -> str | list[str]:
    def one(item: object) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, (str, int, float)):
            return str(item)
        raise InvalidPolicyError(
            f"{where}: condition {operator!r} {key!r} has a value of type "
            f"{type(item).__name__}; expected strings, numbers or booleans"
        )

    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidPolicyError(f"{where}: condition {operator!r} {key!r} has no values")
        values = sorted({one(v) for v in value})
        return values[0] if len(values) == 1 else values
    return one(value)


# -- offline evaluation -------------------------------------------------------


@attrs.frozen
class _Statement:
    ref: StatementRef
    allow: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    #: Has a Condition block.
    conditional: bool
    #: Resources may hold policy variables (the policy's Version is 2012-10-17).
    variables: bool
    #: Applies only for callers whose policy variables take the right value.
    depends_on_variables: bool = False
    #: Has a Condition block (``conditional`` also covers policy variables once matched).
    has_condition: bool = False


def evaluate_policy(
    policies: PolicyInput | Sequence[PolicyInput],
    arn: str | DbUserArn,
    *,
    action: str = CONNECT_ACTION,
) -> PolicyDecision:
    """Decide, offline, whether ``policies`` allow ``action`` on ``arn``.

    ``policies`` is one policy document or a list of them, each a mapping or
    JSON text.  Only these policies are considered; :func:`simulate_connect`
    asks IAM about everything attached to a principal.

    :raises InvalidPolicyError: a document is not IAM policy JSON; the message
        says which policy and statement and what is wrong.
    """
    resource = str(arn)
    statements = [s for i, doc in enumerate(_as_list(policies)) for s in _parse_policy(doc, i)]
    matching = [s for s in statements if _action_applies(s, action)]
    applying = []
    for statement in matching:
        match = _resource_match(statement, resource)
        if match is not _Match.NO:
            # A policy variable in a pattern that decides depends on the request.
            firm = match is _Match.YES and not statement.conditional
            applying.append(
                attrs.evolve(
                    statement,
                    conditional=not firm,
                    depends_on_variables=match is _Match.DEPENDS,
                    has_condition=statement.conditional,
                )
            )
    denies = [s for s in applying if not s.allow]
    allows = [s for s in applying if s.allow]

    def decide(outcome: Outcome, statement: _Statement | None, reason: str) -> PolicyDecision:
        decision = PolicyDecision(
            outcome=outcome,
            action=action,
            resource=resource,
            statement=statement.ref if statement else None,
            reason=reason,
        )
        log.debug("evaluate_policy: %s", decision)
        return decision

    firm_deny = next((s for s in denies if not s.conditional), None)
    if firm_deny is not None:
        return decide(Outcome.EXPLICIT_DENY, firm_deny, f"{firm_deny.ref} denies it")
    firm_allow = next((s for s in allows if not s.conditional), None)
    conditional_deny = next((s for s in denies if s.conditional), None)
    if conditional_deny is not None and allows:
        return decide(
            Outcome.DEPENDS_ON_CONDITIONS,
            conditional_deny,
            f"{conditional_deny.ref} denies it {_when(conditional_deny)}; otherwise "
            f"{(firm_allow or allows[0]).ref} allows it",
        )
    if firm_allow is not None:
        return decide(Outcome.ALLOWED, firm_allow, f"{firm_allow.ref} allows it")
    if allows:
        return decide(
            Outcome.DEPENDS_ON_CONDITIONS,
            allows[0],
            f"only {allows[0].ref} allows it, and only {_when(allows[0])}",
        )
    return decide(Outcome.IMPLICIT_DENY, None, _implicit_deny_reason(matching, resource))


def _when(statement: _Statement) -> str:
    """When a statement that applies only sometimes does apply: its Condition block, its
    policy variables (``${aws:username}``: the caller's own name), or both."""
    names = sorted(
        {
            m.group(0)
            for pattern in statement.resources
            for m in _POLICY_VARIABLE_RE.finditer(pattern)
            if m.group(1) not in ("*", "?", "$")
        }
    )
    variables = (
        f"its policy variable{'s' if len(names) > 1 else ''} {', '.join(names)} take the "
        "value that names this resource for the principal who signs (for ${aws:username}: "
        "an IAM user of that name; a role has no aws:username)"
    )
    if statement.depends_on_variables and not statement.has_condition:
        return f"when {variables}"
    if statement.depends_on_variables:
        return f"when its conditions hold and {variables}"
    return "when its conditions hold"


def _implicit_deny_reason(matching: list[_Statement], resource: str) -> str:
    """Explain a default deny, listing what the policies do allow: usually a near miss."""
    allowed = sorted({r for s in matching if s.allow and not s.not_resource for r in s.resources})
    if not allowed:
        return "no statement allows this action"
    listed = ", ".join(allowed[:_MAX_LISTED_RESOURCES])
    if len(allowed) > _MAX_LISTED_RESOURCES:
        listed += f" and {len(allowed) - _MAX_LISTED_RESOURCES} more"
    reason = f"no statement allows this resource; allowed resources are: {listed}"
    if any(
        _arn_glob(pattern, variables=False, ignore_case=True)[0].fullmatch(resource)
        for pattern in allowed
    ):
        reason += (
            " (one matches except for upper/lower case: ARNs and user names are case-sensitive)"
        )
    named = sorted({n for n in map(_identifier_instead_of_id, allowed) if n})
    if named:
        reason += (
            f" ({', '.join(map(repr, named))} in the dbuser ARN "
            f"{'looks' if len(named) == 1 else 'look'} like a cluster or instance identifier: "
            "the ARN names the resource id instead (cluster-... from DbClusterResourceId, db-... "
            "from DbiResourceId, prx-... for a proxy; rdsiamkit.discover() finds it)"
        )
    return reason


def _identifier_instead_of_id(pattern: str) -> str | None:
    """The resource part of a dbuser ARN pattern when it is a DB identifier, not a resource id.

    ``arn:aws:rds-db:us-east-1:123456789012:dbuser:my-cluster/app`` is a common
    mistake: IAM never matches it, since tokens name ``cluster-ABC...``.
    """
    parts = pattern.split(":", 6)
    if len(parts) != 7 or parts[5] != "dbuser":
        return None
    resource_id = parts[6].partition("/")[0]
    if not resource_id or any(c in resource_id for c in "*?$"):
        return None
    if resource_id.startswith(("cluster-", "db-", "prx-")) and resource_id[-1].isalnum():
        looks_like_id = any(ch.isupper() or ch.isdigit() for ch in resource_id.split("-", 1)[1])
        if looks_like_id:
            return None
    return resource_id


def _as_list(policies: PolicyInput | Sequence[PolicyInput]) -> list[PolicyInput]:
    if isinstance(policies, (str, Mapping)):
        return [policies]
    if isinstance(policies, Sequence):
        return list(policies)
    raise InvalidPolicyError(
        f"policies must be a policy document (mapping or JSON text) or a list of them, "
        f"not {type(policies).__name__}"
    )


def _parse_policy(document: object, index: int) -> list[_Statement]:
    where = f"policy #{index}"
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as err:
            raise InvalidPolicyError(f"{where} is not valid JSON: {err}") from err
    if not isinstance(document, Mapping):
        raise InvalidPolicyError(f"{where} must be a JSON object, not {type(document).__name__}")
    unknown = sorted(set(map(str, document)) - {"Version", "Id", "Statement"})
    if unknown:
        raise InvalidPolicyError(f"{where} has unknown top-level key(s): {', '.join(unknown)}")
    version = document.get("Version")
    if version is not None and (not isinstance(version, str) or version not in _VERSIONS):
        raise InvalidPolicyError(
            f"{where} has Version {version!r}; IAM accepts '2012-10-17' (or '2008-10-17')"
        )
    if "Statement" not in document:
        raise InvalidPolicyError(f"{where} has no Statement")
    raw = document["Statement"]
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise InvalidPolicyError(f"{where}: Statement must be an object or a non-empty list")
    # Without Version 2012-10-17, IAM reads ${aws:username} as literal text.
    variables = version == POLICY_VERSION
    return [_parse_statement(item, index, i, variables=variables) for i, item in enumerate(items)]


def _parse_statement(item: object, policy: int, index: int, *, variables: bool) -> _Statement:
    where = f"policy #{policy} statement #{index}"
    if not isinstance(item, Mapping):
        raise InvalidPolicyError(f"{where} must be an object, not {type(item).__name__}")
    keys = set(map(str, item))
    if {"Principal", "NotPrincipal"} & keys:
        raise InvalidPolicyError(
            f"{where} has a Principal: that is a resource policy; rds-db:connect is granted "
            "by identity policies attached to the user or role"
        )
    unknown = sorted(keys - _STATEMENT_KEYS)
    if unknown:
        raise InvalidPolicyError(f"{where} has unknown key(s): {', '.join(unknown)}")
    sid = item.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise InvalidPolicyError(f"{where}: Sid must be a string, not {type(sid).__name__}")
    where = f"{where} (Sid {sid!r})" if sid else where
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise InvalidPolicyError(f"{where}: Effect must be 'Allow' or 'Deny', not {effect!r}")
    actions, not_action = _pair(item, "Action", "NotAction", where)
    resources, not_resource = _pair(item, "Resource", "NotResource", where)
    conditional = "Condition" in item
    if conditional:
        _normalise_conditions(item["Condition"], where)
    return _Statement(
        ref=StatementRef(policy=policy, statement=index, sid=sid or None),
        allow=effect == "Allow",
        actions=actions,
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        conditional=conditional,
        variables=variables,
    )


def _pair(
    item: Mapping[str, object], key: str, not_key: str, where: str
) -> tuple[tuple[str, ...], bool]:
    """Read exactly one of ``key`` / ``not_key`` as a tuple of strings."""
    if (key in item) == (not_key in item):
        raise InvalidPolicyError(f"{where} needs exactly one of {key} or {not_key}")
    name = key if key in item else not_key
    value = item[name]
    values = [value] if isinstance(value, str) else value
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v for v in values)
    ):
        raise InvalidPolicyError(
            f"{where}: {name} must be a non-empty string or a non-empty list of strings, "
            f"not {value!r}"
        )
    return tuple(values), name == not_key


def _action_applies(statement: _Statement, action: str) -> bool:
    hit = any(_glob(p, ignore_case=True).fullmatch(action) for p in statement.actions)
    return hit != statement.not_action


class _Match(enum.Enum):
    YES = "yes"
    NO = "no"
    #: Only a pattern with a policy variable matches: it depends on who asks.
    DEPENDS = "depends"


def _resource_match(statement: _Statement, resource: str) -> _Match:
    """Does ``statement``'s Resource (or NotResource) cover ``resource``?

    A literal pattern decides outright; a pattern with a policy variable can
    only say "perhaps", since the variable's value is the caller's.
    """
    hits = [_arn_glob(p, variables=statement.variables) for p in statement.resources]
    literal = any(regex.fullmatch(resource) for regex, variable in hits if not variable)
    perhaps = any(regex.fullmatch(resource) for regex, variable in hits if variable)
    if statement.not_resource:
        return _Match.NO if literal else _Match.DEPENDS if perhaps else _Match.YES
    return _Match.YES if literal else _Match.DEPENDS if perhaps else _Match.NO


@functools.lru_cache(maxsize=1024)
def _arn_glob(
    pattern: str, *, variables: bool, ignore_case: bool = False
) -> tuple[re.Pattern[str], bool]:
    """Compile an IAM resource pattern; True with it when it holds a policy variable.

    ``*`` matches within an ARN segment, and across colons only as the last
    character of its segment; ``?`` matches one character; a variable matches
    anything, and ``${*}``, ``${?}``, ``${$}`` are the literal characters.
    """
    parts: list[str] = []
    variable = False
    position = 0
    while position < len(pattern):
        found = _POLICY_VARIABLE_RE.match(pattern, position) if variables else None
        if found is not None:
            name = found.group(1)
            if name in ("*", "?", "$"):
                parts.append(re.escape(name))
            else:
                parts.append(".*")
                variable = True
            position = found.end()
            continue
        char = pattern[position]
        if char == "*":
            last = position + 1 == len(pattern) or pattern[position + 1] == ":"
            parts.append(".*" if last else "[^:]*")
        elif char == "?":
            parts.append("[^:]")
        else:
            parts.append(re.escape(char))
        position += 1
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags), variable


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """Compile an IAM action pattern: ``*`` is any run of characters, ``?`` any one."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


# -- indexing helpers ---------------------------------------------------------


@attrs.frozen
class ResourceRule:
    """One statement whose Action (or NotAction) covers an action, as :func:`action_rules` reads it.

    For tools that index statements by resource pattern instead of calling
    :func:`evaluate_policy` once per resource (:mod:`rdsiamkit.access`); the
    decision rules stay :func:`evaluate_policy`'s.
    """

    ref: StatementRef
    allow: bool
    #: The statement's ``Resource`` patterns, or its ``NotResource`` ones.
    resources: tuple[str, ...]
    not_resource: bool
    #: Has a ``Condition`` block: it holds only when its conditions do.
    conditional: bool
    #: ``${...}`` in ``resources`` are policy variables (the policy's Version is 2012-10-17).
    variables: bool


def action_rules(
    policies: PolicyInput | Sequence[PolicyInput], *, action: str = CONNECT_ACTION
) -> list[ResourceRule]:
    """The statements of ``policies`` that apply to ``action``, in order.

    Read and checked exactly as :func:`evaluate_policy` reads them; ``ref.policy``
    is the index in ``policies``.

    :raises InvalidPolicyError: a document is not IAM policy JSON.
    """
    statements = [s for i, doc in enumerate(_as_list(policies)) for s in _parse_policy(doc, i)]
    return [
        ResourceRule(
            ref=s.ref,
            allow=s.allow,
            resources=s.resources,
            not_resource=s.not_resource,
            conditional=s.conditional,
            variables=s.variables,
        )
        for s in statements
        if _action_applies(s, action)
    ]


def resource_pattern(pattern: str, *, variables: bool) -> tuple[re.Pattern[str], bool]:
    """``pattern`` compiled as :func:`evaluate_policy` matches resources; True if it has a variable.

    A policy variable matches anything (its value is the caller's), which the
    evaluator reports as depending on the request.
    """
    return _arn_glob(pattern, variables=variables)


# -- online check -------------------------------------------------------------

_SIMULATION_OUTCOMES = {
    "allowed": Outcome.ALLOWED,
    "explicitDeny": Outcome.EXPLICIT_DENY,
    "implicitDeny": Outcome.IMPLICIT_DENY,
}


def simulate_connect(
    principal_arn: str,
    resource_arns: Iterable[str | DbUserArn] | str | DbUserArn,
    *,
    session: boto3.Session | None = None,
    action: str = CONNECT_ACTION,
) -> list[PolicyDecision]:
    """Ask IAM whether ``principal_arn`` may ``rds-db:connect`` to each resource.

    Uses ``iam:SimulatePrincipalPolicy``, which evaluates every identity policy
    attached to the user or role (and its groups, and its permissions
    boundary), so it also catches a Deny this module never saw.  One decision
    per resource, in the order given.  The caller needs
    ``iam:SimulatePrincipalPolicy`` on the principal.

    :raises InvalidArnError: a resource is not a valid rds-db ARN.
    :raises AccessDeniedError: the caller may not simulate.
    :raises ResourceNotFoundError: the principal does not exist.
    :raises AwsApiError: any other IAM error (``.code`` keeps IAM's code).
    :raises CredentialsError: no AWS credentials.
    """
    items = [resource_arns] if isinstance(resource_arns, (str, DbUserArn)) else resource_arns
    resources = [str(r if isinstance(r, DbUserArn) else DbUserArn.parse(r)) for r in items]
    if not resources:
        return []
    client = (session or default_session()).client("iam")
    results: dict[str, EvaluationResultTypeDef] = {}
    with aws_errors("SimulatePrincipalPolicy", principal_arn):
        paginator = client.get_paginator("simulate_principal_policy")
        for page in paginator.paginate(
            PolicySourceArn=principal_arn,
            ActionNames=[action],
            ResourceArns=sorted(set(resources)),
        ):
            for evaluated in page["EvaluationResults"]:
                results[evaluated.get("EvalResourceName", "")] = evaluated
    decisions = []
    for resource in resources:
        result = results.get(resource)
        if result is None:
            raise AwsApiError(
                f"IAM's simulation returned no result for {resource!r}: cannot decide",
                operation="SimulatePrincipalPolicy",
            )
        decisions.append(_from_simulation(result, action, resource))
    return decisions


def _from_simulation(result: EvaluationResultTypeDef, action: str, resource: str) -> PolicyDecision:
    decision = result["EvalDecision"]
    outcome = _SIMULATION_OUTCOMES[decision]
    missing = sorted(result.get("MissingContextValues", []))
    matched = result.get("MatchedStatements", [])
    ref = None
    if matched:
        ref = StatementRef(policy=matched[0].get("SourcePolicyId", "?"))
    if missing and outcome is not Outcome.EXPLICIT_DENY:
        outcome = Outcome.DEPENDS_ON_CONDITIONS
        reason = (
            f"IAM's simulation says {decision!r} but needs context keys it was not given: "
            f"{', '.join(missing)}"
        )
    elif ref is not None:
        reason = f"IAM's simulation: {decision} by {ref}"
    else:
        reason = f"IAM's simulation: {decision}; no attached policy allows it"
    return PolicyDecision(
        outcome=outcome, action=action, resource=resource, statement=ref, reason=reason
    )
