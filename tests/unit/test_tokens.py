"""TokenProvider / AsyncTokenProvider: minting, caching, identity keys, single-flight."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import boto3
import botocore.credentials
import botocore.session
import pytest

from rdsiamkit.errors import ConfigurationError, CredentialsError
from rdsiamkit.tokens import AsyncTokenProvider, TokenCache, TokenProvider

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def static_session(key: str = "AKIAEXAMPLEKEY000001", secret: str = "s3cr3t") -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
    )


@pytest.fixture(autouse=True)
def _no_ambient_aws(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(clock: FakeClock) -> TokenProvider:
    return TokenProvider(session=static_session(), clock=clock)


def test_token_is_a_presigned_connect_url_for_the_endpoint(provider: TokenProvider) -> None:
    """A minted token is botocore's presigned rds-db connect URL for host:port and user."""
    token = provider.get_token(HOST, 5432, "app")
    assert token.startswith(f"{HOST}:5432/?Action=connect&DBUser=app&")
    assert "X-Amz-Credential=AKIAEXAMPLEKEY000001%2F" in token
    assert "%2Fus-east-1%2Frds-db%2Faws4_request" in token
    assert provider.identity == "AKIAEXAMPLEKEY000001"


def test_cache_hit_reuses_the_token_without_minting(provider: TokenProvider) -> None:
    """A second request for the same target is served from the cache."""
    first = provider.issue(HOST, 5432, "app")
    second = provider.issue(HOST, 5432, "app")
    assert (first.from_cache, second.from_cache) == (False, True)
    assert first.token == second.token
    assert provider.mint_count == 1


def test_distinct_targets_get_distinct_tokens(provider: TokenProvider) -> None:
    """User, port and host are all part of the cache key."""
    tokens = {
        provider.get_token(HOST, 5432, "app"),
        provider.get_token(HOST, 5433, "app"),
        provider.get_token(HOST, 5432, "other"),
        provider.get_token(HOST.replace("cluster-", "cluster-ro-"), 5432, "app"),
    }
    assert len(tokens) == 4
    assert provider.mint_count == 4


def test_token_is_reminted_after_the_reuse_window(clock: FakeClock) -> None:
    """Past reuse_window seconds (monotonic) a fresh token is minted."""
    provider = TokenProvider(session=static_session(), reuse_window=300.0, clock=clock)
    provider.get_token(HOST, 5432, "app")
    clock.now += 299.0
    assert provider.issue(HOST, 5432, "app").from_cache
    clock.now += 2.0
    assert not provider.issue(HOST, 5432, "app").from_cache
    assert provider.mint_count == 2


def test_zero_reuse_window_mints_every_time(clock: FakeClock) -> None:
    """reuse_window=0 disables reuse: every request mints."""
    provider = TokenProvider(session=static_session(), reuse_window=0.0, clock=clock)
    for _ in range(3):
        provider.get_token(HOST, 5432, "app")
    assert provider.mint_count == 3


@pytest.mark.parametrize("window", [-1.0, 900.0, 1e6])
def test_reuse_window_must_be_below_token_lifetime(window: float) -> None:
    """A reuse window outside [0, 900) is a configuration error."""
    with pytest.raises(ConfigurationError, match="reuse_window"):
        TokenProvider(session=static_session(), reuse_window=window)


def test_shared_cache_is_keyed_by_signing_identity(clock: FakeClock) -> None:
    """Two identities sharing one cache never receive each other's tokens."""
    cache = TokenCache()
    alice = TokenProvider(session=static_session("AKIAALICE00000000001"), cache=cache, clock=clock)
    bob = TokenProvider(session=static_session("AKIABOB0000000000001"), cache=cache, clock=clock)
    a = alice.issue(HOST, 5432, "app")
    b = bob.issue(HOST, 5432, "app")
    assert not b.from_cache
    assert a.key.identity == "AKIAALICE00000000001"
    assert b.key.identity == "AKIABOB0000000000001"
    assert "AKIABOB0000000000001" in b.token and "AKIAALICE" not in b.token
    assert len(cache) == 2


def test_invalidate_drops_only_the_refused_token(provider: TokenProvider) -> None:
    """invalidate() forgets the refused token; a stale invalidate keeps the newer one."""
    old = provider.issue(HOST, 5432, "app")
    provider.invalidate(old)
    new = provider.issue(HOST, 5432, "app")
    assert not new.from_cache
    provider.invalidate(attrs.evolve(new, token="an older token"))  # late report
    assert provider.issue(HOST, 5432, "app").from_cache


def test_64_threads_on_a_cold_cache_mint_exactly_once(provider: TokenProvider) -> None:
    """Single-flight: 64 threads asking at the same moment cause one mint."""
    barrier = threading.Barrier(64)
    tokens: list[str] = []

    def worker() -> None:
        barrier.wait()
        tokens.append(provider.get_token(HOST, 5432, "app"))

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 64 and len(set(tokens)) == 1
    assert provider.mint_count == 1


async def test_64_tasks_on_a_cold_cache_mint_exactly_once(provider: TokenProvider) -> None:
    """Single-flight for asyncio: 64 concurrent tasks cause one mint."""
    aprovider = AsyncTokenProvider(provider)
    tokens = await asyncio.gather(*(aprovider.get_token(HOST, 5432, "app") for _ in range(64)))
    assert len(set(tokens)) == 1
    assert aprovider.mint_count == 1


async def test_async_mint_runs_off_the_event_loop(provider: TokenProvider) -> None:
    """Credential resolution and signing happen in a worker thread, not the loop's."""
    seen: list[threading.Thread] = []
    original = provider._credentials

    def spy() -> tuple[object, object, str]:
        seen.append(threading.current_thread())
        return original()

    provider._credentials = spy  # type: ignore[method-assign]
    await AsyncTokenProvider(provider).get_token(HOST, 5432, "app")
    assert seen and threading.main_thread() not in seen


def test_reprs_never_show_the_token(provider: TokenProvider) -> None:
    """Neither IssuedToken nor the provider repr contains token material."""
    issued = provider.issue(HOST, 5432, "app")
    signature = issued.token.rsplit("X-Amz-Signature=", 1)[1]
    assert signature not in repr(issued)
    assert signature not in repr(provider)
    assert "X-Amz" not in repr(issued)


def test_non_rds_host_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that is not an RDS name, with no region anywhere, is a clear error."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    session = boto3.Session(aws_access_key_id="AKIAX", aws_secret_access_key="y")
    provider = TokenProvider(session=session)
    with pytest.raises(ConfigurationError, match="region"):
        provider.get_token("db.internal.example", 5432, "app")
    assert "us-west-2" in provider.get_token("db.internal.example", 5432, "app", region="us-west-2")


def test_region_comes_from_the_endpoint_name(provider: TokenProvider) -> None:
    """The signing region is parsed from the RDS hostname."""
    host = "db1.c9z8y7x6w5v4.eu-west-1.rds.amazonaws.com"
    assert "%2Feu-west-1%2Frds-db%2F" in provider.get_token(host, 5432, "app")


def test_missing_credentials_raise_credentials_error() -> None:
    """With no credentials anywhere the provider says so, naming where it looked."""
    provider = TokenProvider(session=boto3.Session(region_name="us-east-1"))
    with pytest.raises(CredentialsError, match="no AWS credentials"):
        provider.get_token(HOST, 5432, "app")


def _session_with(credentials: botocore.credentials.Credentials) -> boto3.Session:
    class Fixed(botocore.credentials.CredentialProvider):
        METHOD = "fixed"

        def load(self) -> botocore.credentials.Credentials:
            return credentials

    core = botocore.session.get_session()
    core.get_component("credential_provider").insert_before("env", Fixed())
    return boto3.Session(botocore_session=core, region_name="us-east-1")


def test_reuse_stops_before_temporary_credentials_expire(clock: FakeClock) -> None:
    """Credentials expiring in 11 minutes cap an 800 s reuse window at about 10 minutes."""
    expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=660)
    metadata = {
        "access_key": "ASIATEMPORARY0000001",
        "secret_key": "temp-secret",
        "token": "session-token",
        "expiry_time": expiry.isoformat(),
    }
    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=metadata, refresh_using=lambda: metadata, method="test"
    )
    provider = TokenProvider(session=_session_with(credentials), reuse_window=800.0, clock=clock)
    first = provider.issue(HOST, 5432, "app")
    assert "X-Amz-Security-Token=session-token" in first.token
    clock.now += 580.0
    assert provider.issue(HOST, 5432, "app").from_cache
    clock.now += 30.0
    assert not provider.issue(HOST, 5432, "app").from_cache


def test_identity_change_rebuilds_the_signing_client(clock: FakeClock) -> None:
    """When the session's credentials rotate, the new key signs (client keyed by identity)."""
    session = static_session("AKIAFIRST00000000001")
    provider = TokenProvider(session=session, clock=clock)
    assert "AKIAFIRST" in provider.get_token(HOST, 5432, "app")
    session._session.set_credentials("AKIASECOND0000000001", "other-secret")
    clock.now += 2.0  # past the identity re-check interval
    token = provider.get_token(HOST, 5432, "app")
    assert "AKIASECOND0000000001" in token
    assert provider.identity == "AKIASECOND0000000001"


def test_assume_role_signs_with_the_role_credentials() -> None:
    """role_arn= (with external_id) signs with temporary credentials from STS (moto)."""
    from moto import mock_aws

    with mock_aws():
        base = boto3.Session(
            aws_access_key_id="AKIABASE000000000001",
            aws_secret_access_key="base-secret",
            region_name="us-east-1",
        )
        provider = TokenProvider(
            session=base,
            role_arn="arn:aws:iam::123456789012:role/db-connect",
            external_id="ext-123",
        )
        token = provider.get_token(HOST, 5432, "app")
    assert provider.identity is not None and provider.identity.startswith("ASIA")
    assert "X-Amz-Security-Token=" in token
    assert "AKIABASE" not in token


def test_session_and_profile_are_exclusive() -> None:
    """session= and profile= together are refused."""
    with pytest.raises(ConfigurationError):
        TokenProvider(session=static_session(), profile="x")


def test_botocore_signing_debug_records_are_redacted(
    provider: TokenProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """botocore's DEBUG signature/canonical-request records no longer carry the secret."""
    import logging

    with caplog.at_level(logging.DEBUG):
        token = provider.get_token(HOST, 5432, "app")
    signature = token.rsplit("X-Amz-Signature=", 1)[1]
    auth_records = [r for r in caplog.records if r.name == "botocore.auth"]
    assert any("Signature" in r.getMessage() for r in auth_records)
    assert all(signature not in r.getMessage() for r in caplog.records)
    assert all("X-Amz-Credential=" not in r.getMessage() for r in auth_records)


def test_redact_masks_sigv4_secrets() -> None:
    """redact() masks signature, security token and credential values."""
    from rdsiamkit._redact import redact

    text = (
        "h:5432/?Action=connect&X-Amz-Credential=AKIA%2Fx"
        "&X-Amz-Security-Token=tok&X-Amz-Signature=abc"
    )
    masked = redact(text)
    assert "abc" not in masked and "tok" not in masked and "AKIA" not in masked
    assert masked.count("<redacted by rdsiamkit>") == 3


def test_botocore_request_and_response_logs_keep_no_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At DEBUG, boto3 calls (moto STS) log no session token, signature or returned secret."""
    import logging

    from moto import mock_aws

    import rdsiamkit.tokens  # noqa: F401 (installs the filters)

    session_token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789"
    with mock_aws(), caplog.at_level(logging.DEBUG):
        session = boto3.Session(
            aws_access_key_id="ASIAEXAMPLE000000001",
            aws_secret_access_key="example-secret-key-0001",
            aws_session_token=session_token,
            region_name="us-east-1",
        )
        sts = session.client("sts")
        sts.get_caller_identity()
        assumed = sts.assume_role(
            RoleArn="arn:aws:iam::123456789012:role/r", RoleSessionName="rdsiamkit-test"
        )
    returned = assumed["Credentials"]
    texts = [r.getMessage() for r in caplog.records]
    assert any("Sending http request" in t for t in texts)
    for secret in (session_token, returned["SecretAccessKey"], returned["SessionToken"]):
        assert all(secret not in t for t in texts)


def test_async_provider_keeps_no_finished_event_loop(provider: TokenProvider) -> None:
    """Per-loop lock entries go away with their waiters: asyncio.run() per job does not leak."""
    import gc

    aprovider = AsyncTokenProvider(provider)

    async def burst() -> None:
        await asyncio.gather(*(aprovider.issue(HOST, 5432, f"u{i % 3}") for i in range(6)))

    for _ in range(5):
        asyncio.run(burst())
    gc.collect()
    assert len(aprovider._locks) == 0


def test_unknown_profile_is_a_credentials_error() -> None:
    """A named profile that does not exist is a CredentialsError, not a botocore traceback."""
    provider = TokenProvider(profile="no-such-profile-rdsiamkit")
    with pytest.raises(CredentialsError, match="no-such-profile-rdsiamkit"):
        provider.get_token("db.internal.example", 5432, "app")


def test_rotating_identities_leave_no_stale_tokens_behind(clock: FakeClock) -> None:
    """Fifty credential rotations keep one live token per target, not fifty."""
    session = static_session("AKIAROTATE0000000000")
    provider = TokenProvider(session=session, clock=clock)
    for n in range(50):
        session._session.set_credentials(f"AKIAROTATE{n:010d}", "secret")
        clock.now += 3600.0
        assert f"AKIAROTATE{n:010d}" in provider.get_token(HOST, 5432, "app")
        provider.get_token(HOST, 5433, "app")
    assert len(provider.cache) == 2
    assert provider.mint_count == 100


def test_default_providers_are_freed_with_their_session() -> None:
    """The provider kept for a session= (and its async face) goes away with the session."""
    import gc
    import weakref

    from rdsiamkit.connection import async_provider, default_provider

    session = static_session()
    provider = default_provider(session=session)
    assert default_provider(session=session) is provider
    face = async_provider(None, session, None)
    assert async_provider(None, session, None) is face and face.sync is provider
    gone = [weakref.ref(obj) for obj in (session, provider, face)]
    del session, provider, face
    gc.collect()
    assert [ref() for ref in gone] == [None, None, None]


# -- signing without an RDS client ---------------------------------------------------------

_FIXED_NOW = dt.datetime(2025, 3, 14, 15, 9, 26)


@pytest.mark.parametrize(
    ("user", "session_token"),
    [("app", None), ("app", "FwoGZXIvYXdzE+/=token"), ("odd user+@é", "tok")],
)
def test_token_is_byte_for_byte_what_generate_db_auth_token_returns(
    user: str, session_token: str | None
) -> None:
    """Same credentials, same clock: the kit's token equals botocore's generate_db_auth_token."""
    from unittest import mock

    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLEKEY000001",
        aws_secret_access_key="s3cr3t/key+",
        aws_session_token=session_token,
        region_name="us-east-1",
    )
    provider = TokenProvider(session=session)
    client = session.client("rds", region_name="us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=_FIXED_NOW):
        ours = provider.get_token(HOST, 5432, user, region="eu-west-1")
        theirs = client.generate_db_auth_token(HOST, 5432, user, Region="eu-west-1")
    assert ours == theirs
    assert "X-Amz-Date=20250314T150926Z" in ours


def test_minting_imports_botocore_only_then_and_never_boto3(tmp_path: Path) -> None:
    """No botocore on import; a first token from a profile imports botocore, not boto3."""
    (tmp_path / "credentials").write_text(
        "[app]\naws_access_key_id = AKIAPROFILE000000001\naws_secret_access_key = x\n"
    )
    probe = (
        "import sys\n"
        "from rdsiamkit.tokens import TokenProvider\n"
        "before = sorted(m for m in ('boto3', 'botocore') if m in sys.modules)\n"
        "p = TokenProvider(profile='app')\n"
        f"token = p.get_token({HOST!r}, 5432, 'app')\n"
        "print(before, 'boto3' in sys.modules, 'botocore' in sys.modules, p.identity)\n"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CONFIG_FILE"
    }
    env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["[]", "False", "True", "AKIAPROFILE000000001"]


def test_session_wraps_the_credentials_that_sign(provider: TokenProvider) -> None:
    """Without session=, session() is a boto3 session resolving the same credentials."""
    import botocore.credentials as core_credentials

    credentials = core_credentials.Credentials("AKIAWRAPPED000000001", "secret")
    plain = TokenProvider(session=_session_with(credentials), role_arn=None)
    assert plain.session().get_credentials() is credentials
    provider.get_token(HOST, 5432, "app")
    frozen = provider.session().get_credentials()
    assert frozen is not None and frozen.access_key == provider.identity


def test_profile_provider_session_is_over_the_signing_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """profile=: the token and provider.session() use the profile's key and region."""
    (tmp_path / "credentials").write_text(
        "[ops]\naws_access_key_id = AKIAOPSPROFILE000001\naws_secret_access_key = x\n"
    )
    (tmp_path / "config").write_text("[profile ops]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    provider = TokenProvider(profile="ops")
    token = provider.get_token("db.internal.example", 5432, "app")
    assert "AKIAOPSPROFILE000001%2F" in token and "%2Fap-south-1%2Frds-db%2F" in token
    assert provider.session().region_name == "ap-south-1"
    assert provider.session().profile_name == "ops"


def test_assume_role_without_a_session_uses_the_default_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """role_arn= with environment credentials signs with the role's (moto STS)."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVBASE000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with mock_aws():
        provider = TokenProvider(role_arn="arn:aws:iam::123456789012:role/db-connect")
        token = provider.get_token(HOST, 5432, "app")
        assert provider.session().get_credentials().access_key == provider.identity
    assert provider.identity is not None and provider.identity.startswith("ASIA")
    assert "AKIAENVBASE" not in token and "X-Amz-Security-Token=" in token


def test_discovery_keeps_the_moved_aws_helpers() -> None:
    """aws_errors and default_session still import from rdsiamkit.discovery (now in _aws)."""
    from rdsiamkit import _aws, discovery
    from rdsiamkit.errors import ResourceNotFoundError

    assert discovery.aws_errors is _aws.aws_errors
    assert discovery.default_session is _aws.default_session
    from botocore.exceptions import ClientError

    error = {"Error": {"Code": "DBClusterNotFoundFault", "Message": "gone"}}
    with pytest.raises(ResourceNotFoundError, match="gone"), discovery.aws_errors("X", "t"):
        raise ClientError(error, "DescribeDBClusters")  # type: ignore[arg-type]


# -- nothing grows with the number of targets -------------------------------------------------


def test_mint_lock_is_shared_while_held_and_freed_after() -> None:
    """A held mint lock is handed to every asker; nobody holding it, it is gone."""
    import gc

    cache = TokenCache()
    lock = cache.mint_lock(HOST, 5432, "app", "us-east-1")
    assert cache.mint_lock(HOST, 5432, "app", "us-east-1") is lock
    assert cache.mint_lock(HOST, 5432, "other", "us-east-1") is not lock
    gc.collect()
    assert len(cache._locks) == 1
    del lock
    gc.collect()
    assert len(cache._locks) == 0


def test_storms_on_one_target_mint_once_each_and_leave_no_lock(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten 64-thread storms, one per reuse window, with a slow signer: one mint per storm."""
    import gc

    from rdsiamkit import _aws

    real = _aws.db_auth_token

    def slow(*args: object, **kwargs: object) -> str:
        time.sleep(0.005)  # waiters pile up on the lock while it is held
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_aws, "db_auth_token", slow)
    provider = TokenProvider(session=static_session(), reuse_window=60.0, clock=clock)
    for storm in range(1, 11):
        clock.now += 61.0
        barrier = threading.Barrier(64)
        tokens: list[str] = []

        def worker(barrier: threading.Barrier = barrier, tokens: list[str] = tokens) -> None:
            barrier.wait()
            tokens.append(provider.get_token(HOST, 5432, "app"))

        threads = [threading.Thread(target=worker) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(tokens) == 64 and len(set(tokens)) == 1
        assert provider.mint_count == storm
        gc.collect()
        assert len(provider.cache._locks) == 0


def test_put_prunes_expired_entries_but_keeps_a_re_put_one() -> None:
    """Pruning drops what expired; a key discarded and stored again keeps its new token."""
    from rdsiamkit.tokens import TokenKey

    cache = TokenCache()
    a = TokenKey("AKIA1", HOST, 5432, "a", "us-east-1")
    b = TokenKey("AKIA1", HOST, 5432, "b", "us-east-1")
    cache.put(a, "old-a", fresh_until=100.0, now=0.0)
    cache.put(b, "b", fresh_until=50.0, now=0.0)
    cache.discard(a)
    cache.put(a, "new-a", fresh_until=300.0, now=10.0)
    cache.put(TokenKey("AKIA1", HOST, 5432, "c", "us-east-1"), "c", fresh_until=400.0, now=150.0)
    assert cache.get(a, 150.0) == "new-a"
    assert cache.get(b, 40.0) is None  # pruned at 150, not merely stale
    assert len(cache) == 2 and len(cache._expiry) == 2


def _fake_signer(credentials: object, *, host: str, port: int, user: str, region: str) -> str:
    key = getattr(credentials, "access_key", "")
    return f"{host}:{port}/?Action=connect&DBUser={user}&X-Amz-Credential={key}%2F{region}"


def test_20000_targets_leave_small_maps_once_expired(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 hosts, then expiry and one mint: tokens, heap, locks, regions back to small."""
    import gc
    import logging
    import tracemalloc

    from rdsiamkit import _aws
    from rdsiamkit.tokens import _REGIONS_KEPT

    monkeypatch.setattr(_aws, "db_auth_token", _fake_signer)
    # The suite's secret scan keeps every log text: keep 20,000 of them out of the figure.
    monkeypatch.setattr(logging.getLogger("rdsiamkit.tokens"), "disabled", True)
    provider = TokenProvider(session=static_session(), reuse_window=300.0, clock=clock)
    provider.get_token(HOST, 5432, "app")  # set-up costs out of the measurement
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for n in range(20_000):
        provider.get_token(f"db{n}.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com", 5432, f"u{n}")
    clock.now += 301.0
    provider.get_token(HOST, 5432, "app")
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    cache = provider.cache
    assert (len(cache), len(cache._expiry), len(cache._locks)) == (1, 1, 0)
    assert len(provider._regions) <= _REGIONS_KEPT
    assert retained < 128 * 1024, f"{retained} bytes retained"
