"""Check 11: the token given is one, whole and not expired; the clocks agree."""

from __future__ import annotations

from rdsiamkit._tokeninfo import TokenFacts, looks_like_token
from rdsiamkit.authmode import AuthMode
from rdsiamkit.doctor.facts import Inputs, Membership, ServerClock, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import NotCheckedError, check, fixture

#: SigV4 accepts a request signed this far in the future (seconds); so does RDS.
MAX_CLOCK_SKEW = 300.0
_SKEW_WARNING = 60.0


@fixture("sent")
def sent_token(*, inputs: Inputs) -> TokenFacts | None:
    """What the token given says about itself; ``None`` if no token (or not one) was given."""
    return None if inputs.token is None else TokenFacts.parse(inputs.token)


def damaged(name: CheckName) -> Check:
    """The token given was cut short or altered: its signature is not 64 hex digits."""
    return Check(
        name,
        CheckStatus.FAIL,
        "the token given is damaged: it begins like a token, but its query is incomplete or "
        "its X-Amz-Signature is not 64 hex digits, so it was cut short or altered on the "
        "way (clients and PAM stacks that cap passwords, e.g. at 511 bytes, truncate the "
        "1.2-2 kB tokens of temporary credentials)",
        fix="pass the whole token; check the client's password length limit",
        finding=Finding.TOKEN_DAMAGED,
    )


def _skew(offset: float | None) -> Check | None:
    """A warning (or failure) if this machine's clock is off from the server's."""
    if offset is None or abs(offset) <= _SKEW_WARNING:
        return None
    return Check(
        CheckName.TOKEN,
        CheckStatus.FAIL if abs(offset) > MAX_CLOCK_SKEW else CheckStatus.WARN,
        f"this machine's clock is {abs(offset):.0f} s "
        f"{'behind' if offset > 0 else 'ahead of'} the server's: tokens are signed "
        "with the local time, and AWS allows 5 minutes",
        fix="sync the clock (NTP / chrony)",
        finding=Finding.CLOCK_SKEW,
    )


def _not_a_token(target: Target, membership: Membership | None) -> Check:
    """The secret given is no token: fine for a password user, refused for an IAM one."""
    mode = None if membership is None else membership.mode
    if mode is AuthMode.PASSWORD:
        return Check(
            CheckName.TOKEN,
            CheckStatus.PASS,
            "the secret given is a password, as a password user needs",
        )
    how = "is in rds_iam" if mode is AuthMode.IAM else "logs in with IAM"
    return Check(
        CheckName.TOKEN,
        CheckStatus.FAIL if mode is AuthMode.IAM else CheckStatus.WARN,
        f"the secret given is not an IAM token (no SigV4 query), but {target.user} "
        f"{how}: the server checks it as a token and refuses it as 'PAM "
        "authentication failed'",
        fix="send a fresh IAM token as the password (rdsiamkit.connect), or switch the user "
        f"back: rdsiamkit.set_auth_mode(conn, {target.user!r}, 'password')",
        finding=Finding.PASSWORD_SENT,
    )


@check(CheckName.TOKEN)
def token(  # noqa: PLR0911 - a return per outcome
    *,
    target: Target,
    inputs: Inputs,
    sent: TokenFacts | None,
    server_clock: ServerClock,
    membership: Membership | None = None,
) -> Check:
    """The token given is a whole, unexpired token; this machine's clock agrees."""
    offset = server_clock.offset
    skew = _skew(offset)
    if inputs.token is None:
        if skew is not None:
            return skew
        if offset is None:
            raise NotCheckedError(
                "no token given (the doctor signs fresh ones), and no admin_conn= "
                "to read the server's clock"
            )
        return Check(
            CheckName.TOKEN,
            CheckStatus.PASS,
            f"no token given; the clocks agree ({offset:+.1f} s from the server's)",
        )
    if sent is None:
        if looks_like_token(inputs.token):
            return damaged(CheckName.TOKEN)
        return _not_a_token(target, membership)
    if not sent.signature_ok:
        return damaged(CheckName.TOKEN)
    age = inputs.clock() + (offset or 0.0) - sent.signed_at.timestamp()
    if age > sent.expires:
        return Check(
            CheckName.TOKEN,
            CheckStatus.FAIL,
            f"the token given was signed {age:.0f} s ago and is valid for {sent.expires} s: "
            "it has expired",
            fix="mint a fresh token for every new connection (rdsiamkit.connect does)",
            finding=Finding.TOKEN_EXPIRED,
        )
    if age < -MAX_CLOCK_SKEW:
        return Check(
            CheckName.TOKEN,
            CheckStatus.FAIL,
            f"the token given is dated {-age:.0f} s in the future: the signing clock is off",
            fix="sync the clock of the machine that signs tokens (NTP / chrony)",
            finding=Finding.CLOCK_SKEW,
        )
    if skew is not None:
        return skew
    return Check(
        CheckName.TOKEN,
        CheckStatus.PASS,
        f"the token given was signed {max(age, 0):.0f} s ago by {sent.access_key_id}, "
        f"valid for {sent.expires} s",
    )
