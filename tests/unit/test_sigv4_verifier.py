"""The emulator's SigV4 token verifier against tokens botocore generates."""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdsiamkit.testing import sigv4
from rdsiamkit.testing.credentials import FakeCredentials, generate_credentials
from rdsiamkit.testing.sigv4 import (
    PAYLOAD_HASH,
    AuthFailureReason,
    SigningSecret,
    Verdict,
    canonical_request,
    parse_token,
    verify_token,
)

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
READER = "demo.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
PORT = 5432
REGION = "us-east-1"
ACCOUNT = "123456789012"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

LONG_TERM = generate_credentials(account_id=ACCOUNT)
TEMPORARY = generate_credentials(account_id=ACCOUNT, temporary=True)
BIG_SESSION = generate_credentials(account_id=ACCOUNT, temporary=True, session_token_size=4096)
REGISTRY = {c.access_key_id: c for c in (LONG_TERM, TEMPORARY, BIG_SESSION)}


def lookup(access_key_id: str) -> SigningSecret | None:
    creds = REGISTRY.get(access_key_id)
    return None if creds is None else SigningSecret(creds.secret_access_key, creds.session_token)


@functools.cache
def _client(key: str, secret: str, session_token: str | None, region: str) -> Any:
    session = botocore.session.Session()
    session.set_credentials(key, secret, session_token)
    return session.create_client("rds", region_name=region)


def make_token(
    creds: FakeCredentials = LONG_TERM,
    *,
    user: str = "app_user",
    host: str = HOST,
    port: int = PORT,
    region: str = REGION,
    secret: str | None = None,
    session_token: str | None = None,
) -> str:
    """A token from botocore's generate_db_auth_token, optionally signed with other secrets."""
    client = _client(
        creds.access_key_id,
        secret or creds.secret_access_key,
        session_token or creds.session_token,
        region,
    )
    token: str = client.generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=region
    )
    return token


def check(
    token: str, *, user: str = "app_user", now: float | None = None, **options: object
) -> Verdict:
    kwargs: dict[str, object] = {
        "region": REGION,
        "hosts": (HOST, READER),
        "port": PORT,
        "lookup": lookup,
        **options,
    }
    return verify_token(token, user=user, now=now, **kwargs)  # type: ignore[arg-type]  # options vary per test


def with_param(token: str, name: str, value: str) -> str:
    """The token with one query parameter replaced (signature untouched)."""
    head, _, query = token.partition("/?")
    pairs = [p.split("=", 1) for p in query.split("&")]
    replaced = [(k, quote(value, safe="-_.~") if k == name else v) for k, v in pairs]
    return head + "/?" + "&".join(f"{k}={v}" for k, v in replaced)


def test_long_term_token_verifies() -> None:
    """A botocore token from AKIA keys is accepted and names key, host and port."""
    verdict = check(make_token())
    assert verdict.ok and verdict.outcome is None
    assert (verdict.access_key_id, verdict.host, verdict.port) == (
        LONG_TERM.access_key_id,
        HOST,
        PORT,
    )


def test_temporary_token_over_1_2_kb_verifies() -> None:
    """A token from ASIA keys with a 1.5 kB session token (> 1.2 kB in all) is accepted."""
    token = make_token(TEMPORARY)
    assert len(token) > 1200
    assert check(token).ok


def test_token_with_4kb_session_token_verifies() -> None:
    """A session token of 4 kB makes a > 4 kB auth token, still accepted."""
    token = make_token(BIG_SESSION)
    assert len(token) > 4096
    assert check(token).ok


def test_reader_endpoint_and_host_case_are_accepted() -> None:
    """Any endpoint of the server works, and host names compare case-insensitively."""
    assert check(make_token(host=READER)).ok
    assert check(make_token(host=HOST.upper())).ok


def test_port_443_is_left_out_of_the_signed_host_like_botocore() -> None:
    """botocore signs 'host' without :443 (https default) but keeps it in the token text."""
    token = make_token(port=443)
    assert token.startswith(f"{HOST}:443/?")
    assert parse_token(token).host_header == HOST
    assert check(token, port=443).ok


def test_botocore_signs_the_empty_payload_hash() -> None:
    """botocore presigns rds-db with SHA-256(''), not UNSIGNED-PAYLOAD; only that verifies."""
    token = make_token()
    assert PAYLOAD_HASH == EMPTY_SHA256
    assert canonical_request(parse_token(token)).endswith("\n" + PAYLOAD_HASH)
    assert check(token).ok


def test_unsigned_payload_would_not_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """The payload hash is part of what is signed: S3's UNSIGNED-PAYLOAD breaks verification."""
    monkeypatch.setattr(sigv4, "PAYLOAD_HASH", "UNSIGNED-PAYLOAD")
    assert check(make_token()).outcome is AuthFailureReason.INVALID_SIGNATURE


def test_tampered_signature_is_refused() -> None:
    """Changing one hex digit of X-Amz-Signature gives invalid_signature."""
    token = make_token()
    signature = parse_token(token).params["X-Amz-Signature"]
    flipped = ("0" if signature[-1] != "0" else "1").join(token.rsplit(signature[-1], 1))
    assert check(flipped).outcome is AuthFailureReason.INVALID_SIGNATURE


def test_tampered_user_is_refused_even_when_login_user_matches() -> None:
    """DBUser is signed: rewriting it to the login user gives invalid_signature."""
    token = with_param(make_token(user="app_user"), "DBUser", "admin")
    assert check(token, user="admin").outcome is AuthFailureReason.INVALID_SIGNATURE


def test_wrong_secret_is_refused() -> None:
    """A token signed with another secret under a registered key id is refused."""
    token = make_token(secret="not-the-registered-secret")
    assert check(token).outcome is AuthFailureReason.INVALID_SIGNATURE


def test_wrong_user_is_refused() -> None:
    """A token for app_user cannot log in as someone else."""
    assert check(make_token(user="app_user"), user="other").outcome is (
        AuthFailureReason.USER_MISMATCH
    )


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com", PORT),
        (HOST, 15432),
        ("127.0.0.1", PORT),
    ],
)
def test_wrong_host_or_port_is_refused(host: str, port: int) -> None:
    """A token signed for another host, or for a tunnel's port, gives endpoint_mismatch."""
    verdict = check(make_token(host=host, port=port))
    assert verdict.outcome is AuthFailureReason.ENDPOINT_MISMATCH
    assert (verdict.host, verdict.port) == (host, port)


def test_expiry_follows_x_amz_expires_with_an_injected_clock() -> None:
    """Valid until X-Amz-Date + 900 s, expired just after."""
    token = make_token()
    signed = parse_token(token).signed_at
    assert check(token, now=signed + 899).ok
    assert check(token, now=signed + 901).outcome is AuthFailureReason.EXPIRED


def test_max_token_age_shortens_the_lifetime() -> None:
    """A server-side max age below 900 s expires tokens sooner."""
    token = make_token()
    signed = parse_token(token).signed_at
    assert check(token, now=signed + 1.5, max_token_age=2.0).ok
    assert check(token, now=signed + 2.5, max_token_age=2.0).outcome is AuthFailureReason.EXPIRED


def test_future_dated_token_is_refused_beyond_the_skew() -> None:
    """X-Amz-Date more than max_clock_skew ahead of the clock gives not_yet_valid."""
    token = make_token()
    signed = parse_token(token).signed_at
    assert check(token, now=signed - 299).ok
    assert check(token, now=signed - 301).outcome is AuthFailureReason.NOT_YET_VALID
    assert check(token, now=signed - 5, max_clock_skew=1.0).outcome is (
        AuthFailureReason.NOT_YET_VALID
    )


def test_unknown_key_is_refused() -> None:
    """Credentials the registry does not know give unknown_key."""
    stranger = generate_credentials(account_id=ACCOUNT)
    assert check(make_token(stranger)).outcome is AuthFailureReason.UNKNOWN_KEY


def test_wrong_session_token_is_refused() -> None:
    """An ASIA key signed with a session token other than its own is refused."""
    token = make_token(TEMPORARY, session_token="forged-session-token")
    assert check(token).outcome is AuthFailureReason.INVALID_SESSION_TOKEN


def test_missing_session_token_is_refused() -> None:
    """An ASIA key without its session token is refused."""
    head, _, query = make_token(TEMPORARY).partition("/?")
    query = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Security-Token="))
    assert check(head + "/?" + query).outcome is AuthFailureReason.INVALID_SESSION_TOKEN


def test_long_term_key_with_a_session_token_is_refused() -> None:
    """An AKIA key does not come with a session token; adding one is refused."""
    token = make_token(LONG_TERM, session_token="unexpected")
    assert check(token).outcome is AuthFailureReason.INVALID_SESSION_TOKEN


def test_wrong_region_is_refused() -> None:
    """A token signed for eu-west-1 does not work on a us-east-1 server."""
    assert check(make_token(region="eu-west-1")).outcome is AuthFailureReason.WRONG_REGION


def test_wrong_service_is_refused() -> None:
    """A credential scope for another service than rds-db is refused."""
    token = make_token()
    scope = parse_token(token).params["X-Amz-Credential"].replace("/rds-db/", "/rds/")
    assert check(with_param(token, "X-Amz-Credential", scope)).outcome is (
        AuthFailureReason.WRONG_SERVICE
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "",
        lambda t: "correct horse battery staple",
        lambda t: t.replace("/?", "?", 1),
        lambda t: t.split("&X-Amz-Signature=")[0],
        lambda t: t + "&DBUser=app_user",
        lambda t: t.replace("Action=connect", "Action=c%zznnect"),
        lambda t: t.replace("Action=connect", "Action=%FF"),
        lambda t: t.replace("Action=connect", "Action"),
        lambda t: t.replace(":5432/", ":99999/"),
        lambda t: t.replace(":5432/", ":54 32/"),
        lambda t: t[:-64] + t[-64:].upper(),
        lambda t: with_param(t, "X-Amz-Date", "2026-11-29T10:00:00Z"),
        lambda t: with_param(t, "X-Amz-Date", "20260231T100000Z"),
        lambda t: with_param(t, "X-Amz-Expires", "3600"),
        lambda t: with_param(t, "X-Amz-Expires", "0"),
        lambda t: with_param(t, "X-Amz-Expires", "soon"),
        lambda t: with_param(t, "Action", "connectx"),
        lambda t: with_param(t, "X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
        lambda t: with_param(t, "X-Amz-SignedHeaders", "host;x-amz-date"),
        lambda t: with_param(t, "X-Amz-Credential", "AKIAONLYKEY000000000"),
        lambda t: t + "&pad=" + "x" * 70000,
    ],
)
def test_malformed_tokens_are_refused(mangle: Callable[[str], str]) -> None:
    """Strings that are not well-formed presigned connect URLs give malformed."""
    token = mangle(make_token())
    assert check(token).outcome is AuthFailureReason.MALFORMED


def test_scope_date_must_match_x_amz_date() -> None:
    """A credential scope dated another day than X-Amz-Date is malformed."""
    token = make_token()
    key, date, rest = parse_token(token).params["X-Amz-Credential"].split("/", 2)
    other = f"{key}/{int(date) - 1}/{rest}"
    assert check(with_param(token, "X-Amz-Credential", other)).outcome is (
        AuthFailureReason.MALFORMED
    )


def test_verdicts_never_carry_the_signature_or_secrets() -> None:
    """Verdict text and repr are safe to log: no signature, secret or session token."""
    token = make_token(TEMPORARY)
    signature = parse_token(token).params["X-Amz-Signature"]
    assert TEMPORARY.session_token is not None
    for verdict in (check(token), check(token, user="x"), check(token, now=0.0)):
        text = repr(verdict) + verdict.detail
        for secret in (signature, TEMPORARY.secret_access_key, TEMPORARY.session_token[:40]):
            assert secret not in text
    assert "X-Amz-Signature" not in repr(parse_token(token))


@settings(max_examples=60, deadline=None)
@given(
    user=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    )
)
def test_any_user_name_round_trips(user: str) -> None:
    """Whatever the role name (spaces, '&', '=', '+', unicode), botocore's encoding verifies."""
    token = make_token(user=user)
    assert check(token, user=user).ok
    assert parse_token(token).params["DBUser"] == user


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=string.printable + "%é", max_size=300))
def test_arbitrary_text_is_refused_without_raising(text: str) -> None:
    """verify_token never raises on junk; junk is never accepted."""
    verdict = check(text)
    assert not verdict.ok


@pytest.mark.parametrize("password", ["x/?Summer-Pass=1&Summer-Pass=2", "Tr0ub4dor/?Horse=%zz"])
def test_refusals_of_a_password_do_not_echo_its_pieces(password: str) -> None:
    """A password sent instead of a token is refused without quoting its 'query keys'."""
    verdict = check(password)
    assert verdict.outcome is AuthFailureReason.MALFORMED
    assert "Summer" not in verdict.detail and "Horse" not in verdict.detail
