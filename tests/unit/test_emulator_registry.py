"""Fake credentials, the live credential registry, and the IAM decision gate (no server)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from rdsiamkit.errors import ConfigurationError
from rdsiamkit.testing.credentials import (
    CredentialRegistry,
    FakeCredentials,
    KeyView,
    arn_matches,
    generate_credentials,
)
from rdsiamkit.testing.sigv4 import AuthFailureReason
from rdsiamkit.testing.verifier import AuthEvent, AuthLog, IamGate

ACCOUNT = "123456789012"
HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
PORT = 5432
RESOURCE = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def arn(user: str) -> str:
    return f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:{RESOURCE}/{user}"


def token(creds: FakeCredentials, user: str) -> str:
    session = botocore.session.Session()
    session.set_credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    client = session.create_client("rds", region_name="us-east-1")
    value: str = client.generate_db_auth_token(HOST, PORT, user)
    return value


@pytest.fixture
def registry() -> CredentialRegistry:
    return CredentialRegistry()


def make_gate(registry: CredentialRegistry, **options: Any) -> IamGate:
    """A gate over ``registry`` with the emulator's defaults."""
    return IamGate(
        region="us-east-1",
        hosts=[HOST],
        port=PORT,
        registry=registry,
        log=AuthLog(),
        arn_prefix=arn(""),
        max_token_age=900.0,
        max_clock_skew=300.0,
        **options,
    )


@pytest.fixture
def gate(registry: CredentialRegistry, tmp_path: Path) -> IamGate:
    gate = make_gate(registry)
    gate.log.attach(tmp_path / "auth.log")
    return gate


def test_long_term_credentials_look_like_iam_user_keys() -> None:
    """AKIA + 16 base32 characters, a 40-character secret, no session token."""
    creds = generate_credentials(account_id=ACCOUNT)
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", creds.access_key_id)
    assert len(creds.secret_access_key) == 40
    assert creds.session_token is None and not creds.temporary
    assert creds.arn.startswith(f"arn:aws:iam::{ACCOUNT}:user/")


def test_temporary_credentials_look_like_sts_keys() -> None:
    """ASIA key with a session token of the asked size, and an assumed-role ARN."""
    creds = generate_credentials(account_id=ACCOUNT, temporary=True, session_token_size=2048)
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", creds.access_key_id)
    assert creds.session_token is not None and len(creds.session_token) == 2048
    assert creds.temporary
    assert ":assumed-role/" in creds.arn
    with pytest.raises(ConfigurationError):
        generate_credentials(account_id=ACCOUNT, temporary=True, session_token_size=4)


def test_credentials_repr_hides_secrets() -> None:
    """repr shows the key id and ARN, never the secret or the session token."""
    creds = generate_credentials(account_id=ACCOUNT, temporary=True)
    assert creds.session_token is not None
    text = repr(creds)
    assert creds.access_key_id in text
    assert creds.secret_access_key not in text and creds.session_token not in text


def test_boto3_session_signs_with_the_credentials() -> None:
    """boto3_session() carries the key, secret, session token and region."""
    creds = generate_credentials(account_id=ACCOUNT, temporary=True)
    session = creds.boto3_session(region="eu-west-1")
    frozen = session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
    )
    assert session.region_name == "eu-west-1"


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        (arn("app"), True),
        (arn("App"), False),
        (arn("ap?"), True),
        (arn("a?"), False),
        (arn("*"), True),
        (f"arn:aws:rds-db:*:{ACCOUNT}:dbuser:*/app", True),
        (f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:cluster-*/ap*", True),
        (f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:db-*/app", False),
        ("arn:aws:rds-db:us-east-1:999999999999:dbuser:*/app", False),
        (arn("[a]pp"), False),
    ],
)
def test_arn_patterns_follow_iam_wildcards(pattern: str, matches: bool) -> None:
    """'*' matches any run, '?' one character, case-sensitively; nothing else is special."""
    assert arn_matches(arn("app"), [pattern]) is matches


def test_registry_lookup_revoke_and_policies(registry: CredentialRegistry) -> None:
    """Registered keys resolve; policies replace and reset; revoked keys vanish."""
    creds = generate_credentials(account_id=ACCOUNT)
    registry.add(creds, allowed_arns=[arn("app")])

    def view() -> KeyView:
        found = registry.view(creds.access_key_id)
        assert found is not None
        return found

    assert view().secret.secret_access_key == creds.secret_access_key
    assert view().allows(arn("app")) and not view().allows(arn("other"))
    registry.set_policy(creds.access_key_id, None)
    assert view().allows(arn("other"))
    registry.set_policy(creds.access_key_id, [])
    assert not view().allows(arn("app"))
    registry.reset_policies()
    snapshot = view()
    registry.set_policy(creds.access_key_id, [])
    assert snapshot.allows(arn("app")), "a view is a snapshot"
    registry.revoke(creds.access_key_id)
    assert registry.view(creds.access_key_id) is None


def test_registry_rejects_unknown_keys_and_string_policies(registry: CredentialRegistry) -> None:
    """Misuse is a ConfigurationError naming the key, not a silent no-op."""
    with pytest.raises(ConfigurationError, match="AKIANOPE"):
        registry.revoke("AKIANOPE")
    with pytest.raises(ConfigurationError, match="AKIANOPE"):
        registry.set_policy("AKIANOPE", None)
    creds = generate_credentials(account_id=ACCOUNT)
    with pytest.raises(ConfigurationError, match="sequence"):
        registry.add(creds, allowed_arns=arn("app"))


def test_gate_accepts_and_refuses_with_reasons(gate: IamGate, registry: CredentialRegistry) -> None:
    """decide() returns and records events: success, policy denial, user mismatch."""
    creds = generate_credentials(account_id=ACCOUNT)
    registry.add(creds)
    assert gate.decide("app", token(creds, "app")).ok
    registry.set_policy(creds.access_key_id, [arn("someone")])
    denied = gate.decide("app", token(creds, "app"))
    assert denied.outcome is AuthFailureReason.NOT_AUTHORIZED
    assert "rds-db:connect" in denied.detail
    assert gate.decide("other", token(creds, "app")).outcome is AuthFailureReason.USER_MISMATCH
    assert [e.outcome for e in gate.log.events()] == [
        None,
        AuthFailureReason.NOT_AUTHORIZED,
        AuthFailureReason.USER_MISMATCH,
    ]


def test_gate_matches_any_user_name_like_iam(gate: IamGate, registry: CredentialRegistry) -> None:
    """Users like 'a/b' or 'sp ' are matched as prefix + name: '*' allows them, 'app' not."""
    creds = generate_credentials(account_id=ACCOUNT)
    registry.add(creds)
    for user in ("a/b", "sp "):
        assert gate.decide(user, token(creds, user)).ok, user
    registry.set_policy(creds.access_key_id, [arn("*")])
    assert gate.decide("a/b", token(creds, "a/b")).ok
    registry.set_policy(creds.access_key_id, [arn("app")])
    assert gate.decide("a/b", token(creds, "a/b")).outcome is AuthFailureReason.NOT_AUTHORIZED


def test_gate_rate_limit_is_a_token_bucket(registry: CredentialRegistry) -> None:
    """At N/s a burst of N passes, the next is rate_limited, 1/N s refills one; None lifts it."""
    creds = generate_credentials(account_id=ACCOUNT)
    registry.add(creds)
    value = token(creds, "app")
    now = [1000.0]
    gate = make_gate(registry, rate_clock=lambda: now[0])
    gate.set_rate_limit(3)
    outcomes = [gate.decide("app", value).outcome for _ in range(4)]
    assert outcomes == [None, None, None, AuthFailureReason.RATE_LIMITED]
    now[0] += 0.34
    outcomes = [gate.decide("app", value).outcome for _ in range(2)]
    assert outcomes == [None, AuthFailureReason.RATE_LIMITED]
    assert gate.log.events()[-1].access_key_id is None  # throttled before parsing
    gate.set_rate_limit(None)
    assert all(gate.decide("app", value).ok for _ in range(20))
    with pytest.raises(ConfigurationError):
        gate.set_rate_limit(0)


def test_gate_knobs_validate_and_apply(gate: IamGate, registry: CredentialRegistry) -> None:
    """max_token_age / max_clock_skew reject nonsense and change the next decision."""
    with pytest.raises(ConfigurationError):
        gate.max_token_age = 0
    with pytest.raises(ConfigurationError):
        gate.max_clock_skew = -1
    creds = generate_credentials(account_id=ACCOUNT)
    registry.add(creds)
    value = token(creds, "app")
    gate.max_token_age = 1e-9
    assert gate.decide("app", value).outcome is AuthFailureReason.EXPIRED
    gate.max_token_age = 900
    assert gate.decide("app", value).ok


def test_gate_is_thread_safe(gate: IamGate, registry: CredentialRegistry) -> None:
    """Concurrent decisions while policies flip never crash and are all recorded."""
    creds = generate_credentials(account_id=ACCOUNT)
    registry.add(creds)
    value = token(creds, "app")
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            for _ in range(50):
                gate.decide("app", value)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=decide) for _ in range(8)]
    for thread in threads:
        thread.start()
    for flip in range(50):
        registry.set_policy(creds.access_key_id, None if flip % 2 else [])
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(gate.log.events()) == 400


def test_auth_log_writes_json_lines(tmp_path: Path) -> None:
    """Each event is one JSON object with time, outcome and reason; clear() keeps the file."""
    log = AuthLog()
    log.attach(tmp_path / "auth.log")
    log.record(AuthEvent(1700000000.25, "app", "AKIAX", HOST, None, PORT, "valid"))
    log.record(AuthEvent(1700000001.0, "app", None, None, AuthFailureReason.MALFORMED))
    log.clear()
    log.close()
    log.record(AuthEvent(1700000002.0, "app", None, None, AuthFailureReason.EXPIRED))
    assert len(log.events()) == 1
    first, second = (json.loads(line) for line in (tmp_path / "auth.log").read_text().splitlines())
    assert first["time"] == "2023-11-14T22:13:20.250Z"
    assert (first["outcome"], first["reason"], first["access_key_id"]) == ("success", None, "AKIAX")
    assert (second["outcome"], second["reason"]) == ("failure", "malformed")
