"""Fuzzing what the kit hands libpq: conninfo quoting, the TLS floor, and token redaction.

A user name or database name with a space, quote, backslash or ``=`` must
reach libpq as that one value: if it could split into extra keywords, a
hostile name could switch ``sslmode`` off and send the token in clear text.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from rdsiamkit._redact import REDACTED, redact
from rdsiamkit.connection import ConnectSpec
from rdsiamkit.errors import CABundleError, ConfigurationError, InsecureTLSError
from rdsiamkit.tls import check_sslmode

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"
# libpq values cannot hold NUL; everything else must survive quoting.
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)
hostile = st.sampled_from(
    [
        "x sslmode=disable",
        "x' sslmode='disable",
        "a\\' host=evil",
        "=",
        "'",
        " lead and trail ",
        "ü'ñ\\\"",
        "tab\there\nnewline",
    ]
)
MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full", "", "VERIFY-FULL"]


@given(user=st.one_of(values, hostile), dbname=st.one_of(values, hostile))
@example(user="app sslmode=disable", dbname="postgres' sslmode='allow")
def test_hostile_names_reach_libpq_as_single_values(user: str, dbname: str) -> None:
    """User and database names survive conninfo quoting and can never lower sslmode."""
    target = ConnectSpec.build("", {"host": HOST, "user": user, "dbname": dbname})
    parsed = conninfo_to_dict(target.conninfo)
    assert parsed["user"] == user and parsed["dbname"] == dbname
    assert parsed["sslmode"] == "verify-full" and parsed["host"] == HOST
    assert "password" not in parsed
    assert target.user == user


@given(
    mode=st.sampled_from(MODES),
    upper=st.booleans(),
    pad=st.sampled_from(["", " ", "\t"]),
    opt_out=st.booleans(),
)
def test_nothing_below_verify_full_passes_without_the_opt_out(
    mode: str, upper: bool, pad: str, opt_out: bool
) -> None:
    """Any spelling of any sslmode yields verify-full, an encrypting mode with the opt-out, or
    InsecureTLSError; cleartext-capable modes never pass."""
    spelled = pad + (mode.upper() if upper else mode) + pad
    try:
        chosen = check_sslmode(spelled or None, insecure_skip_tls_verify=opt_out)
    except InsecureTLSError:
        assert spelled.strip().lower() != "verify-full"
        return
    assert chosen in ({"verify-full", "require", "verify-ca"} if opt_out else {"verify-full"})
    target = ConnectSpec.build(
        "", {"host": HOST, "user": "u", "sslmode": spelled}, insecure_skip_tls_verify=opt_out
    )
    assert conninfo_to_dict(target.conninfo)["sslmode"] == chosen


# Conninfo strings libpq can parse, around the endpoint: most of them must build a ConnectSpec.
_pair_values = st.sampled_from(["app", "'a b'", "0", "5432", "verify-full", "require", "''", "x=y"])
_pairs = st.lists(
    st.tuples(
        st.sampled_from(["dbname", "application_name", "connect_timeout", "port", "sslmode"]),
        _pair_values,
    ),
    max_size=4,
)
well_formed = _pairs.map(lambda ps: " ".join([f"host={HOST}", *(f"{k}={v}" for k, v in ps)]))


@given(conninfo=st.one_of(st.text(max_size=60), well_formed), user=st.one_of(st.none(), values))
@example(conninfo=f"host={HOST} dbname=app application_name='a b'", user="u")
@example(conninfo="host=a port=0x10", user="u")
@example(conninfo=f"host={HOST} port=99999", user="u")
@example(conninfo=f"host={HOST} password=secret", user="u")
@example(conninfo=f"host={HOST},{HOST}", user="u")
def test_arbitrary_conninfo_builds_or_raises_configuration_errors(
    conninfo: str, user: str | None, monkeypatch_env: None
) -> None:
    """Any conninfo text builds a verify-full ConnectSpec or raises a kit configuration error."""
    try:
        target = ConnectSpec.build(conninfo, {"user": user})
    except (ConfigurationError, CABundleError):
        return
    parsed = conninfo_to_dict(target.conninfo)
    assert parsed["sslmode"] == "verify-full" and "password" not in target.params
    assert parsed["host"] == target.host and parsed["user"] == target.user


@pytest.fixture(scope="module")
def monkeypatch_env() -> Any:
    """Keep libpq environment defaults out of the fuzzed conninfo (module-wide)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PGHOST", "PGUSER", "PGPORT", "PGSSLMODE", "RDSIAMKIT_CA_BUNDLE"):
            patch.delenv(name, raising=False)
        yield


@given(
    signature=st.text("0123456789abcdef", min_size=64, max_size=64),
    session_token=st.binary(min_size=16, max_size=64).map(lambda b: b.hex()),
    layout=st.sampled_from(["plain", "quoted", "repr", "suffix"]),
)
def test_redact_removes_every_grant(signature: str, session_token: str, layout: str) -> None:
    """redact() leaves no signature, session token or credential scope, in any surrounding."""
    key = "ASIA" + secrets.token_hex(8).upper()
    token = (
        f"{HOST}:5432/?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={key}%2F20250101%2Fus-east-1%2Frds-db%2Faws4_request"
        f"&X-Amz-Security-Token={session_token}&X-Amz-Signature={signature}"
    )
    text = {
        "plain": token,
        "quoted": f"password='{token}'",
        "repr": repr({"password": token}),
        "suffix": f"{token} and more",
    }[layout]
    cleaned = redact(text)
    for secret in (signature, session_token, key):
        assert secret not in cleaned
    assert cleaned.count(REDACTED) == 3


@given(signature=st.text("0123456789abcdef", min_size=64, max_size=64))
def test_redact_is_idempotent(signature: str) -> None:
    """Redacting already-redacted text changes nothing (layers of logging may both redact)."""
    once = redact(f"{HOST}:5432/?Action=connect&X-Amz-Signature={signature}")
    assert redact(once) == once
