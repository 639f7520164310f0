"""The IAM side of the access map: a GetAccountAuthorizationDetails document.

``aws iam get-account-authorization-details`` prints one JSON document with
every user (its inline policies, attached managed policies, groups and
permissions boundary), group, role and managed policy (every version) of the
account.  :func:`read_authorization` turns it into, per user and role, the
policy documents IAM evaluates for it; :func:`fetch_authorization` asks IAM for
the same document with boto3 (all pages of one paginated call, no call per
principal).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from rdsiamkit._aws import aws_errors, default_session
from rdsiamkit.access._model import Principal, PrincipalKind, Unknown, UnknownKind
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    import boto3

__all__ = [
    "AccountAuthorization",
    "AttachedPolicy",
    "PrincipalPolicies",
    "fetch_authorization",
    "read_authorization",
]

log = logging.getLogger("rdsiamkit.access")

_LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")
# The most entries IAM returns per page of GetAccountAuthorizationDetails.
_PAGE_SIZE = 1000


@attrs.frozen
class AttachedPolicy:
    """One policy document that applies to a principal, and where it comes from."""

    name: str
    #: A managed policy's ARN; ``None`` for an inline one.
    arn: str | None
    #: ``user NAME``, ``group NAME``, ``role NAME`` or ``permissions boundary``.
    attached_to: str
    #: The parsed JSON document; ``None`` when the document does not hold it.
    document: Mapping[str, Any] | None = attrs.field(eq=False)
    #: The document's Resource / NotResource may hold ``${...}`` policy variables.
    has_variables: bool = attrs.field(default=False, eq=False)


@attrs.frozen
class PrincipalPolicies:
    """A user or role with every identity policy IAM evaluates for it."""

    principal: Principal
    #: IAM's unique id (``AIDA…`` / ``AROA…``).
    unique_id: str | None
    tags: Mapping[str, str] = attrs.field(eq=False)
    policies: tuple[AttachedPolicy, ...]
    boundary: AttachedPolicy | None


@attrs.frozen
class AccountAuthorization:
    """Every user and role of an account with its policies, read from one document."""

    principals: tuple[PrincipalPolicies, ...]
    #: The account the principals' ARNs name (``None`` when there are none).
    account_id: str | None
    #: Attached policies the document does not hold, policies that are not JSON.
    unknowns: tuple[Unknown, ...]


def fetch_authorization(session: boto3.Session | None = None) -> dict[str, Any]:
    """Every page of ``iam:GetAccountAuthorizationDetails``, merged into one document.

    Needs ``iam:GetAccountAuthorizationDetails`` (in ``SecurityAudit`` and
    ``ReadOnlyAccess``).  IAM is global: no region is involved.

    :raises AccessDeniedError: the caller may not read the account's authorization details.
    :raises AwsApiError: any other IAM error.
    :raises CredentialsError: no AWS credentials.
    """
    client = (session or default_session()).client("iam")
    merged: dict[str, Any] = {key: [] for key in _LISTS}
    pages = 0
    with aws_errors("GetAccountAuthorizationDetails", "the account"):
        paginator = client.get_paginator("get_account_authorization_details")
        for page in paginator.paginate(PaginationConfig={"PageSize": _PAGE_SIZE}):
            pages += 1
            for key in _LISTS:
                merged[key].extend(page.get(key, []))
    log.debug(
        "GetAccountAuthorizationDetails: %d page(s), %d users, %d roles, %d policies",
        pages,
        len(merged["UserDetailList"]),
        len(merged["RoleDetailList"]),
        len(merged["Policies"]),
    )
    return merged


def read_authorization(document: str | Mapping[str, Any]) -> AccountAuthorization:
    """Read a GetAccountAuthorizationDetails document (parsed, or its JSON text).

    Group policies count for the group's members; a managed policy's default
    version is the one IAM evaluates.  A policy attached but absent from the
    document is named in :attr:`AccountAuthorization.unknowns`.

    :raises ConfigurationError: the text is not JSON or not such a document.
    """
    data = _load(document)
    unknowns: list[Unknown] = []
    managed = _managed_policies(_list(data, "Policies"), unknowns)
    groups: dict[str, list[AttachedPolicy]] = {}
    for group in _list(data, "GroupDetailList"):
        name = _text(group, "GroupName")
        where = f"group {name}"
        groups[name] = [
            *_inline(group.get("GroupPolicyList"), where, unknowns),
            *_attached(group.get("AttachedManagedPolicies"), where, managed, unknowns),
        ]
    principals: list[PrincipalPolicies] = []
    for kind, key, list_key, name_key in (
        (PrincipalKind.USER, "UserDetailList", "UserPolicyList", "UserName"),
        (PrincipalKind.ROLE, "RoleDetailList", "RolePolicyList", "RoleName"),
    ):
        for entry in _list(data, key):
            name = _text(entry, name_key)
            where = f"{kind.value} {name}"
            policies = [
                *_inline(entry.get(list_key), where, unknowns),
                *_attached(entry.get("AttachedManagedPolicies"), where, managed, unknowns),
            ]
            for group_name in entry.get("GroupList") or ():
                policies.extend(groups.get(str(group_name), ()))
            principals.append(
                PrincipalPolicies(
                    principal=Principal(kind=kind, name=name, arn=_text(entry, "Arn")),
                    unique_id=entry.get("UserId") or entry.get("RoleId"),
                    tags=_tags(entry.get("Tags")),
                    policies=tuple(policies),
                    boundary=_boundary(entry.get("PermissionsBoundary"), where, managed, unknowns),
                )
            )
    accounts = {
        p.principal.arn.split(":")[4] for p in principals if p.principal.arn.count(":") >= 5
    }
    return AccountAuthorization(
        principals=tuple(principals),
        account_id=min(accounts) if len(accounts) == 1 else None,
        unknowns=tuple(unknowns),
    )


def _load(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except ValueError as err:
            raise ConfigurationError(
                f"the account authorization document is not JSON: {err}"
            ) from err
    if not isinstance(document, Mapping) or not any(key in document for key in _LISTS):
        raise ConfigurationError(
            "account_authorization must be what `aws iam get-account-authorization-details` "
            f"prints: an object with {', '.join(_LISTS)}"
        )
    return document


def _list(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigurationError(f"the authorization document's {key} must be a list of objects")
    return value


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"an authorization document entry has no {key}: {entry!r:.200}")
    return value


def _policy_json(value: object) -> Mapping[str, Any] | None:
    """A policy document: an object, JSON text, or the URL-encoded JSON the raw API returns."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        for text in (value, urllib.parse.unquote(value)):
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            return parsed if isinstance(parsed, Mapping) else None
    return None


def _policy(
    name: str, arn: str | None, where: str, raw: object, unknowns: list[Unknown]
) -> AttachedPolicy:
    document = _policy_json(raw)
    if document is None:
        owner = f" of {where}" if where else ""
        unknowns.append(
            Unknown(UnknownKind.UNREADABLE_POLICY, f"policy {arn or name!r}{owner} is not JSON")
        )
    return AttachedPolicy(
        name=name,
        arn=arn,
        attached_to=where,
        document=document,
        has_variables=document is not None and _mentions_variables(document),
    )


def _mentions_variables(document: Mapping[str, Any]) -> bool:
    statements = document.get("Statement")
    items = [statements] if isinstance(statements, Mapping) else statements or []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            for key in ("Resource", "NotResource"):
                if "${" in json.dumps(item.get(key, "")):
                    return True
    return False


def _inline(entries: object, where: str, unknowns: list[Unknown]) -> list[AttachedPolicy]:
    if not isinstance(entries, Sequence):
        return []
    return [
        _policy(_text(e, "PolicyName"), None, where, e.get("PolicyDocument"), unknowns)
        for e in entries
        if isinstance(e, Mapping)
    ]


def _managed_policies(
    entries: list[Mapping[str, Any]], unknowns: list[Unknown]
) -> dict[str, AttachedPolicy]:
    """Managed policy ARN -> its default version, read once however often it is attached."""
    out: dict[str, AttachedPolicy] = {}
    for entry in entries:
        versions = [v for v in entry.get("PolicyVersionList") or () if isinstance(v, Mapping)]
        default = next(
            (v for v in versions if v.get("IsDefaultVersion") is True),
            next(
                (v for v in versions if v.get("VersionId") == entry.get("DefaultVersionId")), None
            ),
        )
        arn = _text(entry, "Arn")
        raw = None if default is None else default.get("Document")
        name = entry.get("PolicyName") or arn.rsplit("/", 1)[-1]
        out[arn] = _policy(str(name), arn, "", raw, unknowns)
    return out


def _attached(
    entries: object,
    where: str,
    managed: Mapping[str, AttachedPolicy],
    unknowns: list[Unknown],
) -> list[AttachedPolicy]:
    if not isinstance(entries, Sequence):
        return []
    out = []
    for entry in entries:
        if isinstance(entry, Mapping):
            policy = _managed(_text(entry, "PolicyArn"), where, managed, unknowns)
            if policy is not None:
                out.append(policy)
    return out


def _managed(
    arn: str, where: str, managed: Mapping[str, AttachedPolicy], unknowns: list[Unknown]
) -> AttachedPolicy | None:
    found = managed.get(arn)
    if found is None:
        unknowns.append(
            Unknown(
                UnknownKind.MISSING_POLICY,
                f"managed policy {arn} ({where}) is not in the authorization document: "
                "what it allows or denies is not known",
            )
        )
        return None
    return attrs.evolve(found, attached_to=where)


def _boundary(
    entry: object,
    where: str,
    managed: Mapping[str, AttachedPolicy],
    unknowns: list[Unknown],
) -> AttachedPolicy | None:
    if not isinstance(entry, Mapping) or not entry.get("PermissionsBoundaryArn"):
        return None
    arn = str(entry["PermissionsBoundaryArn"])
    policy = _managed(arn, f"permissions boundary of {where}", managed, unknowns)
    if policy is None:
        # A boundary that cannot be read bounds nothing the map can see: no document.
        return AttachedPolicy(name=arn, arn=arn, attached_to="permissions boundary", document=None)
    return attrs.evolve(policy, attached_to="permissions boundary")


def _tags(entries: object) -> dict[str, str]:
    if not isinstance(entries, Sequence):
        return {}
    return {
        str(e["Key"]): str(e.get("Value", ""))
        for e in entries
        if isinstance(e, Mapping) and "Key" in e
    }
