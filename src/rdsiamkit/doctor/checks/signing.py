"""Checks 6-7: tokens are signed for the endpoint's region, and name its host and port."""

from __future__ import annotations

import ipaddress

from rdsiamkit._tokeninfo import TokenFacts
from rdsiamkit.doctor.checks._shared import signing_region
from rdsiamkit.doctor.facts import Inputs, ResourceLookup, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import LAZY, Lazy, NotCheckedError, check
from rdsiamkit.endpoints import Endpoint


@check(CheckName.REGION)
def region(
    *, target: Target, inputs: Inputs, sent: TokenFacts | None, endpoint: Endpoint | None
) -> Check:
    """The token is signed for the endpoint's region."""
    signing = signing_region(inputs, target, sent)
    whose = "the token given is" if sent is not None else "tokens are"
    if signing is None:
        return Check(
            CheckName.REGION,
            CheckStatus.FAIL,
            f"no region to sign for: {target.token_host} is not an RDS endpoint name and "
            "no region is configured",
            fix="pass region=",
            finding=Finding.NO_REGION,
        )
    if endpoint is None:
        return Check(
            CheckName.REGION,
            CheckStatus.WARN,
            f"{whose} signed for {signing}; {target.token_host} is not an RDS endpoint name, "
            "so its region cannot be checked",
            fix="sign for the endpoint name (token_host=) so the region can be read from it",
        )
    if signing != endpoint.region:
        return Check(
            CheckName.REGION,
            CheckStatus.FAIL,
            f"{whose} signed for region {signing}, but {endpoint.host} is in "
            f"{endpoint.region}: RDS refuses the signature",
            fix=f"sign for {endpoint.region}: drop region= or pass region={endpoint.region!r}",
            finding=Finding.WRONG_REGION,
        )
    return Check(
        CheckName.REGION, CheckStatus.PASS, f"{whose} signed for {signing}, the endpoint's"
    )


def _sent_target(target: Target, sent: TokenFacts) -> Check | None:
    """A failed check if the token given names another host, port or user."""
    if (sent.host, sent.port) != (target.token_host, target.token_port):
        return Check(
            CheckName.TOKEN_TARGET,
            CheckStatus.FAIL,
            f"the token given was signed for {sent.host}:{sent.port}, but the login "
            f"goes to {target.token_host}:{target.token_port}",
            fix=f"sign the token for {target.token_host}:{target.token_port} (behind a "
            "tunnel: the endpoint and its port, not the local ones)",
            finding=Finding.TOKEN_TARGET_MISMATCH,
        )
    if sent.user != target.user:
        return Check(
            CheckName.TOKEN_TARGET,
            CheckStatus.FAIL,
            f"the token given is for user {sent.user!r}, not {target.user!r}",
            fix=f"sign the token for DBUser={target.user!r}",
            finding=Finding.TOKEN_FOR_OTHER_USER,
        )
    return None


@check(CheckName.TOKEN_TARGET)
def token_target(
    *,
    target: Target,
    inputs: Inputs,
    sent: TokenFacts | None,
    resource: Lazy[ResourceLookup] = LAZY,
) -> Check:
    """Tokens name the endpoint and port RDS listens on (not a tunnel's)."""
    if sent is not None:
        mismatch = _sent_target(target, sent)
        if mismatch is not None:
            return mismatch
    elif inputs.token is not None:
        raise NotCheckedError("the secret given is not an IAM token (see token)")
    where = f"{target.token_host}:{target.token_port}"
    if _is_local_name(target.token_host):
        return Check(
            CheckName.TOKEN_TARGET,
            CheckStatus.FAIL,
            f"tokens are signed for {where}, which is not the database's endpoint: "
            "RDS refuses them (a tunnel or port forward?)",
            fix="keep host= as the endpoint name and dial the tunnel with hostaddr=, or "
            "pass token_host=<endpoint> token_port=<its port>",
            finding=Finding.TOKEN_TARGET_MISMATCH,
        )
    found = resource.get().resource
    if found is not None and found.port and found.port != target.token_port:
        return Check(
            CheckName.TOKEN_TARGET,
            CheckStatus.FAIL,
            f"tokens are signed for port {target.token_port}, but "
            f"{found.identifier} listens on {found.port}",
            fix=f"pass token_port={found.port} (the port dialled may differ: a tunnel)",
            finding=Finding.TOKEN_TARGET_MISMATCH,
        )
    via = ""
    if (target.host.lower(), target.port) != (target.token_host, target.token_port):
        via = f" while dialling {target.host}:{target.port}"
    elif target.params.get("hostaddr"):
        via = f" (dialled at {target.params['hostaddr']})"
    return Check(CheckName.TOKEN_TARGET, CheckStatus.PASS, f"tokens name {where}{via}")


def _is_local_name(host: str) -> bool:
    """localhost or a loopback / literal IP: never a name RDS signs for."""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
