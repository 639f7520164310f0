"""Checks 8-9: IAM authentication is on for the database, and a policy allows the login.

Both ask AWS (RDS, IAM's policy simulator) unless told not to; the policy check can
instead evaluate the documents given, offline.
"""

from __future__ import annotations

import logging
from typing import Any

from rdsiamkit._tokeninfo import TokenFacts
from rdsiamkit.doctor.checks._shared import aws_session
from rdsiamkit.doctor.facts import NO_CREDENTIALS, Credentials, Inputs, ResourceLookup, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import LAZY, Lazy, NotCheckedError, check, fixture
from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import (
    AccessDeniedError,
    AwsApiError,
    CredentialsError,
    InvalidPolicyError,
    RdsIamError,
    ResourceNotFoundError,
)
from rdsiamkit.policy import Outcome as PolicyOutcome
from rdsiamkit.policy import PolicyDecision, evaluate_policy

log = logging.getLogger("rdsiamkit.doctor")


@fixture("resource")
def lookup_resource(
    *,
    target: Target,
    inputs: Inputs,
    endpoint: Endpoint | None,
    credentials: Credentials = NO_CREDENTIALS,
) -> ResourceLookup:
    """The cluster / instance / proxy behind the endpoint, asked of AWS once."""
    if not inputs.aws:
        return ResourceLookup(None, "AWS calls are disabled")
    if not credentials.aws_reachable:
        return ResourceLookup(None, "AWS is not reachable (see credentials)")
    if endpoint is None:
        return ResourceLookup(None, "the token host is not an RDS endpoint name")
    from rdsiamkit.discovery import discover  # noqa: PLC0415 - keeps boto3 off import

    try:
        return ResourceLookup(discover(endpoint.host, session=aws_session(inputs)))
    except RdsIamError as err:
        return ResourceLookup(None, err)


@check(CheckName.IAM_ENABLED)
def iam_enabled(*, target: Target, resource: ResourceLookup) -> Check:
    """IAM database authentication is enabled on the cluster or instance (AWS API)."""
    found = resource.resource
    if found is None:
        error = resource.error
        if isinstance(error, ResourceNotFoundError):
            return Check(
                CheckName.IAM_ENABLED,
                CheckStatus.WARN,
                f"AWS does not know the database: {error}",
                fix="sign with credentials of the account and region that own the cluster",
                finding=Finding.RESOURCE_NOT_FOUND,
            )
        if isinstance(error, (AccessDeniedError, AwsApiError, CredentialsError)):
            return Check(
                CheckName.IAM_ENABLED,
                CheckStatus.WARN,
                f"cannot ask AWS: {error}",
                fix="allow rds:DescribeDBClusters / rds:DescribeDBInstances to this identity",
                finding=Finding.AWS_UNAVAILABLE,
            )
        raise NotCheckedError(f"not checked: {error}")
    what = f"{found.kind.value} {found.identifier}"
    kind = "cluster" if found.kind.value == "cluster" else "instance"
    if not found.iam_auth_enabled:
        pending = "IAMDatabaseAuthenticationEnabled" in found.pending_modifications
        return Check(
            CheckName.IAM_ENABLED,
            CheckStatus.FAIL,
            f"IAM database authentication is disabled on {what}"
            + (" (enabling is pending: it applies in the maintenance window)" if pending else ""),
            fix=f"rdsiamkit.enable_iam_auth({found.identifier!r}, apply_immediately=True) "
            f"(aws rds modify-db-{kind} --enable-iam-database-authentication "
            "--apply-immediately)",
            finding=Finding.IAM_AUTH_DISABLED,
        )
    return Check(
        CheckName.IAM_ENABLED,
        CheckStatus.PASS,
        f"IAM database authentication is enabled on {what} ({found.engine} {found.engine_version})",
    )


def _user_arn(
    target: Target,
    inputs: Inputs,
    endpoint: Endpoint | None,
    credentials: Credentials,
    resource: Lazy[ResourceLookup],
) -> str:
    """The ``rds-db`` ARN of the user, from the ids given or learnt from AWS."""
    from rdsiamkit.arn import db_user_arn  # noqa: PLC0415 - only the doctor needs it here

    found = None
    if inputs.account_id is None or inputs.resource_id is None:
        found = resource.get().resource
    account = inputs.account_id or (found.account_id if found else credentials.account_id)
    resource_id = inputs.resource_id or (found.iam_resource_id if found else None)
    region = endpoint.region if endpoint else target.region
    if account is None or resource_id is None or region is None:
        raise NotCheckedError(
            "the user's ARN needs the account and the cluster's resource id: pass "
            "account_id= and resource_id= or let the doctor ask AWS"
        )
    return db_user_arn(
        partition=target.partition,
        region=region,
        account_id=account,
        resource_id=resource_id,
        db_user=target.user,
    )


def _own_principal_if_it_signed(sent: TokenFacts | None, credentials: Credentials) -> str | None:
    """STS's answer names who signs, unless the token given was signed by another key."""
    own = credentials.access_key_id
    if sent is not None and own is not None and sent.access_key_id != own:
        raise NotCheckedError(
            f"the token given was signed by {sent.access_key_id}, not by {own} that STS "
            "named; pass principal_arn= for the token's signer, or policies= to evaluate "
            "offline"
        )
    return credentials.principal_arn


@check(CheckName.POLICY)
def policy(
    *,
    target: Target,
    inputs: Inputs,
    sent: TokenFacts | None,
    endpoint: Endpoint | None,
    credentials: Credentials = NO_CREDENTIALS,
    resource: Lazy[ResourceLookup] = LAZY,
) -> Check:
    """A policy allows ``rds-db:connect`` on the user's ARN (documents given, or IAM asked)."""
    if inputs.token is not None and sent is None:
        raise NotCheckedError("the secret given is not an IAM token (see token)")
    if inputs.policies is None and not inputs.aws:
        raise NotCheckedError("give the policy documents (policies=) or allow AWS calls")
    arn = _user_arn(target, inputs, endpoint, credentials, resource)
    if inputs.policies is not None:
        try:
            decision = evaluate_policy(inputs.policies, arn)
        except InvalidPolicyError as err:
            return Check(
                CheckName.POLICY,
                CheckStatus.FAIL,
                str(err),
                fix="give valid IAM policy JSON",
                finding=Finding.INVALID_POLICY,
            )
        return _policy_check(decision, arn, "the policies given")
    principal = inputs.principal_arn or _own_principal_if_it_signed(sent, credentials)
    if principal is None:
        raise NotCheckedError("no principal to ask IAM about (STS did not say who signs)")
    from rdsiamkit.policy import simulate_connect  # noqa: PLC0415

    try:
        session = aws_session(inputs)
        (decision,) = simulate_connect(
            _simulation_principal(principal, session), arn, session=session
        )
    except RdsIamError as err:
        return Check(
            CheckName.POLICY,
            CheckStatus.WARN,
            f"cannot simulate {principal}'s policies: {err}",
            fix="give the policy documents (policies=) to evaluate offline",
            finding=Finding.AWS_UNAVAILABLE,
        )
    return _policy_check(decision, arn, f"IAM's simulation for {principal}")


def _policy_check(decision: PolicyDecision, arn: str, source: str) -> Check:
    if decision.allowed:
        return Check(CheckName.POLICY, CheckStatus.PASS, f"{source} allow it: {decision.reason}")
    if decision.outcome is PolicyOutcome.DEPENDS_ON_CONDITIONS:
        return Check(
            CheckName.POLICY,
            CheckStatus.WARN,
            f"{source}: {decision}",
            fix="make sure the request meets the statement's conditions",
            finding=Finding.POLICY_CONDITIONAL,
        )
    return Check(
        CheckName.POLICY,
        CheckStatus.FAIL,
        f"{source} do not allow rds-db:connect on {arn}: {decision.reason}",
        fix=f"attach a policy allowing rds-db:connect on {arn} (rdsiamkit policy build {arn})",
        finding=Finding.POLICY_DENIES,
    )


def _simulation_principal(arn: str, session: Any = None) -> str:
    """IAM simulates users and roles: an assumed-role session ARN names its role.

    The session ARN drops the role's path (SSO roles live under
    ``aws-reserved/sso.amazonaws.com/``), so the role's real ARN is asked of IAM
    when ``session`` may; without that permission the path-less ARN is the guess.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "sts" or not parts[5].startswith("assumed-role/"):
        return arn
    role = parts[5].split("/")[1]
    if session is not None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            real: str = session.client("iam").get_role(RoleName=role)["Role"]["Arn"]
        except (BotoCoreError, ClientError):  # no iam:GetRole, no network: guess
            log.debug("cannot read role %s from IAM; simulating its path-less ARN", role)
        else:
            return real
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
