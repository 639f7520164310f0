"""Check 5: AWS credentials exist, have not expired, and STS knows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from rdsiamkit._tokeninfo import TokenFacts
from rdsiamkit.doctor.checks._shared import aws_config, signing_region
from rdsiamkit.doctor.facts import Credentials, Inputs, Secrets, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import NotCheckedError, Outcome, check
from rdsiamkit.tokens import _seconds_left

if TYPE_CHECKING:
    import boto3

_STS_ERRORS: dict[str, tuple[Finding, str]] = {
    "InvalidClientTokenId": (
        Finding.UNKNOWN_ACCESS_KEY,
        "AWS does not know access key {key}: it was deleted or deactivated, belongs to "
        "another partition, or is a typo",
    ),
    "SignatureDoesNotMatch": (
        Finding.BAD_SECRET_KEY,
        "the secret access key does not belong to access key {key}",
    ),
    "ExpiredToken": (Finding.CREDENTIALS_EXPIRED, "the session token of {key} has expired"),
    "ExpiredTokenException": (
        Finding.CREDENTIALS_EXPIRED,
        "the session token of {key} has expired",
    ),
    "RequestExpired": (
        Finding.CLOCK_SKEW,
        "STS says the request expired: the local clock is off",
    ),
}


def _needs_aws_call(credentials: object) -> bool:
    """Credentials botocore fetches on first use (assumed roles, SSO) and has not yet."""
    from botocore.credentials import DeferredRefreshableCredentials  # noqa: PLC0415

    return (
        isinstance(credentials, DeferredRefreshableCredentials)
        and getattr(credentials, "_frozen_credentials", None) is None
    )


@check(
    CheckName.CREDENTIALS,
    provides="credentials",
    missing="needs the signing identity (see credentials)",
)
def credentials(
    *,
    inputs: Inputs,
    secrets: Secrets,
    sent: TokenFacts | None,
    target: Target | None = None,
) -> Check | Outcome[Credentials]:
    """Credentials to sign with exist, have not expired, and (with AWS calls) STS knows them."""
    missing_status = CheckStatus.WARN if inputs.token is not None else CheckStatus.FAIL
    try:
        session = inputs.provider.session()
        found = session.get_credentials()
        if not inputs.aws and _needs_aws_call(found):
            unresolved = getattr(found, "method", None) or "a provider"
            skipped = Check(
                CheckName.CREDENTIALS,
                CheckStatus.SKIPPED,
                f"credentials from {unresolved} come from an AWS call (STS, SSO), which "
                "aws=False rules out",
            )
            return Outcome(skipped, Credentials(unresolved=unresolved))
        frozen = found.get_frozen_credentials() if found is not None else None
    except Exception as err:  # botocore raises many kinds here
        return Check(
            CheckName.CREDENTIALS,
            missing_status,
            f"cannot resolve AWS credentials: {err}",
            fix="fix the profile / environment named above",
            finding=Finding.NO_CREDENTIALS,
        )
    if frozen is None or not frozen.access_key:
        if inputs.token is not None and sent is None:
            raise NotCheckedError("no AWS credentials, and the secret given is not an IAM token")
        return Check(
            CheckName.CREDENTIALS,
            missing_status,
            "no AWS credentials found (environment, shared config/credentials files, "
            "container or instance role)",
            fix="export AWS_PROFILE=..., run `aws sso login`, or pass session=/profile=",
            finding=Finding.NO_CREDENTIALS,
        )
    key = frozen.access_key
    secrets.add(frozen.secret_key, frozen.token)
    source = getattr(found, "method", None) or "unknown source"
    left = _seconds_left(found)
    learnt = Credentials(ok=left is None or left > 0, access_key_id=key)
    if left is not None and left <= 0:
        # Only this machine's problem when the token being checked is not theirs.
        theirs = sent is None or sent.access_key_id == key
        expired = Check(
            CheckName.CREDENTIALS,
            CheckStatus.FAIL if theirs else CheckStatus.WARN,
            f"the credentials of {key} ({source}) expired {-left:.0f} s ago",
            fix="refresh them (aws sso login, re-assume the role)",
            finding=Finding.CREDENTIALS_EXPIRED,
        )
        return Outcome(expired, learnt)
    if not inputs.aws:
        offline = Check(
            CheckName.CREDENTIALS,
            CheckStatus.PASS,
            f"access key {key} from {source}; not confirmed with STS (AWS calls disabled)",
        )
        return Outcome(offline, learnt)
    region = signing_region(inputs, target, sent) or "us-east-1"
    return _ask_sts(session, inputs, region, source, learnt)


def _ask_sts(
    session: boto3.Session, inputs: Inputs, region: str, source: str, learnt: Credentials
) -> Outcome[Credentials]:
    """Ask STS who signs; its errors name what is wrong with the key."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    key = learnt.access_key_id
    try:
        client = session.client("sts", region_name=region, config=aws_config(inputs))
        identity = client.get_caller_identity()
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "Unknown")
        message = err.response.get("Error", {}).get("Message", "")
        known = _STS_ERRORS.get(code)
        if known is None:
            unconfirmed = Check(
                CheckName.CREDENTIALS,
                CheckStatus.WARN,
                f"STS GetCallerIdentity failed ({code}: {message}); {key} is not confirmed",
                finding=Finding.STS_UNCONFIRMED,
            )
            return Outcome(unconfirmed, learnt)
        finding, text = known
        refused = Check(
            CheckName.CREDENTIALS,
            CheckStatus.FAIL,
            f"{text.format(key=key)} (STS: {code})",
            fix="use current credentials: check AWS_PROFILE / AWS_ACCESS_KEY_ID, rotate or "
            "re-create the key, or sync the clock",
            finding=finding,
        )
        return Outcome(refused, learnt)
    except BotoCoreError as err:
        unreachable = Check(
            CheckName.CREDENTIALS,
            CheckStatus.WARN,
            f"access key {key} from {source}; STS not reachable ({err}), so not confirmed",
            fix="allow HTTPS to sts.amazonaws.com (or a VPC endpoint), or pass aws=False",
            finding=Finding.STS_UNCONFIRMED,
        )
        return Outcome(unreachable, attrs.evolve(learnt, aws_reachable=False))
    confirmed = Check(
        CheckName.CREDENTIALS,
        CheckStatus.PASS,
        f"access key {key} ({source}) is {identity['Arn']}",
    )
    return Outcome(
        confirmed,
        attrs.evolve(learnt, principal_arn=identity["Arn"], account_id=identity["Account"]),
    )
