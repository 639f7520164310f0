"""Helpers more than one check family uses (no checks here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdsiamkit.connection import quote_ident as _q
from rdsiamkit.doctor.facts import Inputs, Target

if TYPE_CHECKING:
    import boto3

    from rdsiamkit._tokeninfo import TokenFacts


def signing_region(inputs: Inputs, target: Target | None, sent: TokenFacts | None) -> str | None:
    """The region tokens are signed for: the given token's, the target's, the session's."""
    if sent is not None:
        return sent.region
    if target is not None and target.region:
        return target.region
    try:
        return inputs.provider.session().region_name
    except Exception:  # no session: no default region
        return None


def aws_config(inputs: Inputs) -> Any:
    """botocore's config for the doctor's calls: its timeout, one attempt."""
    from botocore.config import Config  # noqa: PLC0415 - keep botocore off import

    return Config(
        connect_timeout=inputs.timeout,
        read_timeout=inputs.timeout,
        retries={"max_attempts": 1, "mode": "standard"},
    )


class TimedSession:
    """A boto3 session whose clients default to the given botocore config."""

    def __init__(self, session: boto3.Session, config: Any) -> None:
        self._session = session
        self._config = config

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("config", self._config)
        return self._session.client(service_name, *args, **kwargs)  # type: ignore[call-overload]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def aws_session(inputs: Inputs) -> Any:
    """The signing session, whose clients keep to the doctor's timeout and try once."""
    return TimedSession(inputs.provider.session(), aws_config(inputs))


def grant_fix(user: str) -> str:
    """The fix for a user that should log in with IAM but is not in rds_iam."""
    return f"GRANT rds_iam TO {_q(user)} (rdsiamkit.set_auth_mode(conn, {user!r}, 'iam'))"
