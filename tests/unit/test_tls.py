"""TLS policy (verify-full only) and the RDS CA bundle: resolution, inspection, refresh."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from pathlib import Path

import pytest

from rdsiamkit.errors import CABundleError, InsecureTLSError
from rdsiamkit.tls import (
    BUNDLED_CA_SHA256,
    CA_BUNDLE_ENV,
    ca_bundle_path,
    check_sslmode,
    inspect_ca_bundle,
    refresh_ca_bundle,
)

BUNDLED = Path(ca_bundle_path(cache_dir=Path("/nonexistent")))


@pytest.fixture(autouse=True)
def _no_env_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_vendored_bundle_is_the_recorded_snapshot() -> None:
    """The packaged bundle is byte-identical to the recorded AWS snapshot."""
    assert hashlib.sha256(BUNDLED.read_bytes()).hexdigest() == BUNDLED_CA_SHA256


def test_inspect_reports_certificates_and_expiry() -> None:
    """Inspection lists 118 CAs, flags the expired 2019 roots, and the latest expiry."""
    info = inspect_ca_bundle(BUNDLED)
    assert len(info.certificates) == 118
    assert info.latest_expiry.year >= 2060
    now = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
    expired = info.expired(now)
    assert expired and all(c.not_after < now for c in expired)
    assert any(
        "rds-ca-rsa2048-g1" in c.subject or "RSA2048" in c.subject for c in info.certificates
    )
    assert "vendored" in info.source


def test_default_is_the_vendored_bundle_for_aws() -> None:
    """With nothing configured, the commercial partition uses the vendored bundle."""
    assert Path(ca_bundle_path()) == BUNDLED


def test_explicit_sslrootcert_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sslrootcert= beats the environment variable, which beats the default."""
    mine = tmp_path / "mine.pem"
    mine.write_bytes(BUNDLED.read_bytes())
    env = tmp_path / "env.pem"
    env.write_bytes(BUNDLED.read_bytes())
    monkeypatch.setenv(CA_BUNDLE_ENV, str(env))
    assert ca_bundle_path() == str(env)
    assert ca_bundle_path(sslrootcert=mine) == str(mine)
    assert ca_bundle_path(sslrootcert="system") == "system"


def test_missing_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing sslrootcert or env bundle is an error naming the path."""
    with pytest.raises(CABundleError, match="nope.pem"):
        ca_bundle_path(sslrootcert=tmp_path / "nope.pem")
    monkeypatch.setenv(CA_BUNDLE_ENV, str(tmp_path / "gone.pem"))
    with pytest.raises(CABundleError, match=CA_BUNDLE_ENV):
        ca_bundle_path()


@pytest.mark.parametrize("partition", ["aws-us-gov", "aws-cn"])
def test_other_partitions_need_their_own_bundle(partition: str) -> None:
    """GovCloud and China are not silently verified with the commercial bundle."""
    with pytest.raises(CABundleError, match=f"ca update --partition {partition}"):
        ca_bundle_path(partition=partition)


def test_refresh_validates_and_caches_with_provenance(tmp_path: Path) -> None:
    """A refreshed bundle is validated, cached atomically with provenance, then preferred."""
    urls: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        urls.append(url)
        return BUNDLED.read_bytes()

    info = refresh_ca_bundle(partition="aws-us-gov", cache_dir=tmp_path, fetch=fetch)
    assert urls == [
        "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem"
    ]
    assert info.path.is_file() and len(info.certificates) == 118
    meta = json.loads(info.path.with_suffix(".json").read_text())
    assert meta["sha256"] == BUNDLED_CA_SHA256 and meta["url"] == urls[0]
    assert ca_bundle_path(partition="aws-us-gov", cache_dir=tmp_path) == str(info.path)
    assert "fetched" in inspect_ca_bundle(info.path).source


def test_refresh_refuses_garbage_and_keeps_the_old_copy(tmp_path: Path) -> None:
    """A download that is not a PEM bundle is refused and the cached bundle is untouched."""
    good = refresh_ca_bundle(cache_dir=tmp_path, fetch=lambda url, t: BUNDLED.read_bytes())
    before = good.path.read_bytes()
    with pytest.raises(CABundleError, match="not a PEM bundle|no CA certificate"):
        refresh_ca_bundle(cache_dir=tmp_path, fetch=lambda url, t: b"<html>captive portal</html>")
    assert good.path.read_bytes() == before


def test_refresh_refuses_plain_http_and_unknown_partitions(tmp_path: Path) -> None:
    """Only HTTPS URLs are fetched; an unknown partition needs an explicit URL."""
    with pytest.raises(CABundleError, match="non-HTTPS"):
        refresh_ca_bundle(url="http://example.invalid/b.pem", cache_dir=tmp_path)
    with pytest.raises(CABundleError, match="no known truststore URL"):
        refresh_ca_bundle(partition="aws-iso", cache_dir=tmp_path)


def test_refresh_reports_network_failure(tmp_path: Path) -> None:
    """A download failure is a CABundleError naming the URL."""

    def fetch(url: str, timeout: float) -> bytes:
        raise OSError("network unreachable")

    with pytest.raises(CABundleError, match="truststore.pki.rds.amazonaws.com"):
        refresh_ca_bundle(cache_dir=tmp_path, fetch=fetch)


def test_verify_full_is_the_default_and_accepted() -> None:
    """No sslmode, or verify-full in any case, resolves to verify-full."""
    assert check_sslmode(None, insecure_skip_tls_verify=False) == "verify-full"
    assert check_sslmode("VERIFY-FULL", insecure_skip_tls_verify=False) == "verify-full"


@pytest.mark.parametrize("mode", ["require", "verify-ca"])
def test_weaker_encrypting_modes_need_the_loud_opt_out(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """require/verify-ca are refused unless insecure_skip_tls_verify=True, then logged."""
    with pytest.raises(InsecureTLSError, match="insecure_skip_tls_verify"):
        check_sslmode(mode, insecure_skip_tls_verify=False)
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert check_sslmode(mode, insecure_skip_tls_verify=True) == mode
    assert "does not verify" in caplog.text


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "bogus"])
def test_cleartext_modes_are_always_refused(mode: str) -> None:
    """Modes that may send the token without TLS are refused even with the opt-out."""
    with pytest.raises(InsecureTLSError, match="never allows|requires"):
        check_sslmode(mode, insecure_skip_tls_verify=True)


def test_pgsslrootcert_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's PGSSLROOTCERT counts as an explicit CA choice, as it does for psql."""
    ca = tmp_path / "pg.pem"
    ca.write_bytes(BUNDLED.read_bytes())
    monkeypatch.setenv("PGSSLROOTCERT", str(ca))
    assert ca_bundle_path() == str(ca)
    assert ca_bundle_path(sslrootcert="system") == "system"


def test_proxy_endpoints_verify_with_the_system_trust_store() -> None:
    """RDS Proxy's ACM certificates chain to Amazon Root CA: the OS store, not the RDS bundle."""
    from rdsiamkit.tls import _system_trust_store

    chosen = ca_bundle_path(proxy=True)
    assert chosen != str(BUNDLED) and chosen == _system_trust_store()
    assert chosen == "system" or Path(chosen).is_file()


def test_explicit_choice_still_wins_for_proxies(tmp_path: Path) -> None:
    """sslrootcert= overrides the proxy default like any other."""
    ca = tmp_path / "amazon-root-ca-1.pem"
    ca.write_bytes(BUNDLED.read_bytes())
    assert ca_bundle_path(proxy=True, sslrootcert=ca) == str(ca)


def test_damaged_provenance_does_not_break_inspection(tmp_path: Path) -> None:
    """A corrupt provenance file next to a cached bundle is reported, not raised."""
    info = refresh_ca_bundle(cache_dir=tmp_path, fetch=lambda url, t: BUNDLED.read_bytes())
    info.path.with_suffix(".json").write_text("{not json")
    described = inspect_ca_bundle(info.path)
    assert "unreadable" in described.source
    assert len(described.certificates) == 118


def test_ca_download_never_follows_a_redirect_to_http() -> None:
    """An https download redirected to http:// is refused: the bundle could be swapped."""
    import http.client
    import urllib.request

    from rdsiamkit.errors import CABundleError
    from rdsiamkit.tls import _HttpsOnlyRedirects

    handler = _HttpsOnlyRedirects()
    request = urllib.request.Request("https://truststore.example/global-bundle.pem")
    headers = http.client.HTTPMessage()
    with pytest.raises(CABundleError, match="not HTTPS"):
        handler.redirect_request(request, io.BytesIO(), 301, "Moved", headers, "http://evil/x")
    moved = handler.redirect_request(
        request, io.BytesIO(), 301, "Moved", headers, "https://mirror.example/bundle.pem"
    )
    assert moved is not None and moved.full_url == "https://mirror.example/bundle.pem"
