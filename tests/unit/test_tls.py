"""TLS policy (verify-full only) and the RDS CA bundle: resolution, inspection, refresh."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import rdsiamkit.tls as tls
from rdsiamkit.errors import CABundleError, InsecureTLSError
from rdsiamkit.tls import (
    AMAZON_ROOT_CAS_SHA256,
    BUNDLED_CA_SHA256,
    CA_BUNDLE_ENV,
    TRUSTSTORE_URLS,
    amazon_root_cas_path,
    ca_bundle_path,
    cache_clear,
    check_sslmode,
    full_bundle_path,
    inspect_ca_bundle,
    is_regional_bundle,
    refresh_ca_bundle,
)

BUNDLED = Path(ca_bundle_path(cache_dir=Path("/nonexistent")))


@pytest.fixture(autouse=True)
def _no_env_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tls, "_RECHECK_SECONDS", 0.0)  # files re-checked on every call
    cache_clear()
    yield
    cache_clear()


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

    from rdsiamkit.tls import _https_only_redirects

    handler = _https_only_redirects()()
    request = urllib.request.Request("https://truststore.example/global-bundle.pem")
    headers = http.client.HTTPMessage()
    with pytest.raises(CABundleError, match="not HTTPS"):
        handler.redirect_request(request, io.BytesIO(), 301, "Moved", headers, "http://evil/x")
    moved = handler.redirect_request(
        request, io.BytesIO(), 301, "Moved", headers, "https://mirror.example/bundle.pem"
    )
    assert moved is not None and moved.full_url == "https://mirror.example/bundle.pem"


# -- cached bundles must be vouched for (audit issue 17, item 9b) -----------------------


def _plant(cache: Path, partition: str = "aws", pem: bytes | None = None) -> Path:
    """Put a bundle into the refreshed-bundle slot by hand, as an attacker would."""
    target = cache / "rdsiamkit" / "ca" / f"{partition}-global-bundle.pem"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pem if pem is not None else _make_bundle(["Attacker Root CA"]))
    return target


def _make_bundle(common_names: list[str]) -> bytes:
    """Self-signed CA certificates with the given common names, as one PEM bundle."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    out = b""
    for cn in common_names:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        out += cert.public_bytes(serialization.Encoding.PEM)
    return out


def _subjects(path: str | Path) -> set[str]:
    return {c.subject for c in inspect_ca_bundle(path).certificates}


def test_planted_bundle_without_provenance_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bundle dropped into the cache with no provenance is not used, and a warning names it."""
    planted = _plant(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert Path(ca_bundle_path()) == BUNDLED
    assert str(planted) in caplog.text and "no provenance" in caplog.text


def test_planted_bundle_with_forged_provenance_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A provenance file whose sha256 is not the bundle's (e.g. copied) vouches for nothing."""
    planted = _plant(tmp_path / "cache")
    planted.with_suffix(".json").write_text(
        json.dumps({"url": TRUSTSTORE_URLS["aws"], "fetched_at": "x", "sha256": BUNDLED_CA_SHA256})
    )
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert Path(ca_bundle_path(region="us-east-1")) != planted
        assert Path(full_bundle_path()) == BUNDLED
    assert str(planted) in caplog.text and "recorded at download" in caplog.text


def test_bundle_edited_after_refresh_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Appending a CA to a refreshed bundle breaks its recorded sha256: back to the vendored one."""
    info = refresh_ca_bundle(fetch=lambda url, t: BUNDLED.read_bytes())
    assert ca_bundle_path() == str(info.path)
    with info.path.open("ab") as out:
        out.write(_make_bundle(["Attacker Root CA"]))
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert Path(ca_bundle_path()) == BUNDLED  # noticed without cache_clear()
    assert str(info.path) in caplog.text


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_bundle_writable_by_others_is_refused_even_with_matching_provenance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    """Who can rewrite the bundle can rewrite its provenance: group/other-writable is refused."""
    pem = _make_bundle(["Attacker Root CA"])
    planted = _plant(tmp_path / "cache", pem=pem)
    sha = hashlib.sha256(pem).hexdigest()
    planted.with_suffix(".json").write_text(json.dumps({"sha256": sha, "partition": "aws"}))
    planted.chmod(0o644)
    assert ca_bundle_path() == str(planted)  # vouched for and private: trusted
    planted.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert Path(ca_bundle_path()) == BUNDLED
    assert str(planted) in caplog.text and "writable by group or others" in caplog.text


def test_shared_cache_directory_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache directory others may write (no sticky bit) makes its bundle untrusted."""
    info = refresh_ca_bundle(fetch=lambda url, t: BUNDLED.read_bytes())
    info.path.parent.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert Path(ca_bundle_path()) == BUNDLED
    assert str(info.path.parent) in caplog.text
    with pytest.raises(CABundleError, match="refusing to cache"):
        refresh_ca_bundle(fetch=lambda url, t: BUNDLED.read_bytes())


def test_bundle_owned_by_another_user_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached bundle owned by someone other than this user (or root) is refused, like ssh."""
    import os

    info = refresh_ca_bundle(fetch=lambda url, t: BUNDLED.read_bytes())
    if os.geteuid() == 0:
        os.chown(info.path, 65534, 65534)
    else:  # the file is ours: pretend to be someone else
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        assert Path(ca_bundle_path()) == BUNDLED
    assert "owned by uid" in caplog.text


def test_govcloud_never_falls_back_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused GovCloud bundle is an error (no commercial fallback), after a warning."""
    planted = _plant(tmp_path / "cache", partition="aws-us-gov")
    with (
        caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"),
        pytest.raises(CABundleError, match="ca update --partition aws-us-gov"),
    ):
        ca_bundle_path(region="us-gov-west-1")
    assert str(planted) in caplog.text


# -- a region's certificates (issue 12) -------------------------------------------------

US_EAST_1 = {
    "Amazon RDS us-east-1 Root CA RSA2048 G1",
    "Amazon RDS us-east-1 Root CA RSA4096 G1",
    "Amazon RDS us-east-1 Root CA ECC384 G1",
}


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_region_selects_exactly_its_certificates(region: str) -> None:
    """The regional file holds the region's three G1 roots and nothing else."""
    chosen = ca_bundle_path(region=region)
    assert is_regional_bundle(chosen) and Path(chosen).parent.name == "regional"
    assert _subjects(chosen) == {
        f"Amazon RDS {region} Root CA {kind} G1" for kind in ("RSA2048", "RSA4096", "ECC384")
    }


def test_selection_keeps_unexpired_2019_chain_and_skips_beta() -> None:
    """Before 2024-08 the 2019 CA and its root come along; Beta/Preview never do."""
    from rdsiamkit._cacerts import certificates as _certificates
    from rdsiamkit._cacerts import select_region as _select_region

    pem = BUNDLED.read_bytes()
    before = _select_region(pem, "us-east-1", now=dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
    names = [c.common_name for c in _certificates(before)]
    assert sorted(names) == sorted(
        [*US_EAST_1, "Amazon RDS us-east-1 2019 CA", "Amazon RDS Root 2019 CA"]
    )
    today = _select_region(pem, "us-east-1")
    assert {c.common_name for c in _certificates(today)} == US_EAST_1
    assert len(_certificates(pem)) == 118  # the parser reads every certificate


def test_unknown_region_uses_the_full_bundle() -> None:
    """A region with no certificate in the bundle gets all of it; a malformed one is refused."""
    from rdsiamkit.errors import ConfigurationError

    chosen = ca_bundle_path(region="xx-mars-1")
    assert Path(chosen) == BUNDLED and not is_regional_bundle(chosen)
    with pytest.raises(ConfigurationError, match="invalid AWS region"):
        ca_bundle_path(region="us-east-1/../../etc")


def test_govcloud_region_selects_from_its_refreshed_bundle(tmp_path: Path) -> None:
    """us-gov-west-1 needs the refreshed GovCloud bundle, as before, then gets its own certs."""
    with pytest.raises(CABundleError, match="ca update --partition aws-us-gov"):
        ca_bundle_path(region="us-gov-west-1")
    gov = _make_bundle(
        [
            "Amazon RDS us-gov-west-1 Root CA RSA2048 G1",
            "Amazon RDS us-gov-east-1 Root CA RSA2048 G1",
            "Amazon RDS us-gov-west-1 Root CA ECC384 G1",
        ]
    )
    refresh_ca_bundle(partition="aws-us-gov", fetch=lambda url, t: gov)
    chosen = ca_bundle_path(region="us-gov-west-1")  # partition follows the region
    assert Path(chosen).name == "aws-us-gov-us-gov-west-1-bundle.pem"
    assert _subjects(chosen) == {
        "Amazon RDS us-gov-west-1 Root CA RSA2048 G1",
        "Amazon RDS us-gov-west-1 Root CA ECC384 G1",
    }
    assert full_bundle_path(partition="aws-us-gov").endswith("aws-us-gov-global-bundle.pem")


def test_regional_file_is_written_once_and_reused() -> None:
    """A second resolution, even in a 'new process' (memo cleared), reuses the file as is."""
    first = Path(ca_bundle_path(region="us-east-1"))
    before = first.stat()
    cache_clear()
    assert Path(ca_bundle_path(region="us-east-1")) == first
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert first.stat().st_mode & 0o022 == 0 and first.parent.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("clear", [False, True])
def test_tampered_regional_file_is_regenerated(clear: bool) -> None:
    """A regional file that no longer holds the selection is rewritten before use."""
    chosen = Path(ca_bundle_path(region="us-east-1"))
    good = chosen.read_bytes()
    chosen.write_bytes(good + _make_bundle(["Attacker Root CA"]))
    if clear:
        cache_clear()
    assert ca_bundle_path(region="us-east-1") == str(chosen)
    assert chosen.read_bytes() == good


def test_unusable_cache_directory_falls_back_to_a_private_temp_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regional files go to a private temporary directory when the cache is not private."""
    cache = tmp_path / "cache" / "rdsiamkit" / "ca"
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="rdsiamkit.tls"):
        chosen = Path(ca_bundle_path(region="eu-west-1"))
    assert cache not in chosen.parents and is_regional_bundle(chosen)
    assert chosen.parent.stat().st_mode & 0o077 == 0
    assert str(cache / "regional") in caplog.text
    assert len(_subjects(chosen)) == 3


def test_full_bundle_path_is_the_retry_bundle(tmp_path: Path) -> None:
    """full_bundle_path gives the partition's whole bundle (refreshed one when trusted)."""
    assert Path(full_bundle_path()) == BUNDLED and not is_regional_bundle(full_bundle_path())
    assert ca_bundle_path(region=None) == full_bundle_path()
    info = refresh_ca_bundle(fetch=lambda url, t: BUNDLED.read_bytes())
    assert full_bundle_path() == str(info.path)
    regional = ca_bundle_path(region="us-east-1")
    assert is_regional_bundle(regional) and regional != full_bundle_path()
    assert not is_regional_bundle(None)


def test_explicit_choices_win_over_the_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sslrootcert=, PGSSLROOTCERT and RDSIAMKIT_CA_BUNDLE beat the regional default."""
    mine = tmp_path / "mine.pem"
    mine.write_bytes(BUNDLED.read_bytes())
    assert ca_bundle_path(region="us-east-1", sslrootcert=mine) == str(mine)
    monkeypatch.setenv(CA_BUNDLE_ENV, str(mine))
    assert ca_bundle_path(region="us-east-1") == str(mine)


def test_proxy_endpoints_verify_with_the_amazon_roots() -> None:
    """RDS Proxy's ACM certificates chain to Amazon Root CA 1-4: the small vendored file."""
    chosen = ca_bundle_path(proxy=True, region="us-east-1")
    assert chosen == amazon_root_cas_path() and chosen != str(BUNDLED)
    assert hashlib.sha256(Path(chosen).read_bytes()).hexdigest() == AMAZON_ROOT_CAS_SHA256
    assert _subjects(chosen) == {f"Amazon Root CA {n}" for n in range(1, 5)}
    assert ca_bundle_path(proxy=True, partition="aws-us-gov") == chosen
    assert "Amazon Root CA" in inspect_ca_bundle(chosen).source


def test_china_proxies_keep_the_system_trust_store() -> None:
    """aws-cn proxies are not assumed to chain to Amazon Trust Services: the OS store."""
    from rdsiamkit.tls import _system_trust_store

    assert ca_bundle_path(proxy=True, partition="aws-cn") == _system_trust_store()


def test_resolution_is_remembered_until_an_input_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated calls do not re-resolve; a changed env var or file does."""
    calls: list[str] = []
    real = tls._full_bundle

    def counting(partition: str, cache_dir: Path | None) -> tuple[Path, bytes | None]:
        calls.append(partition)
        return real(partition, cache_dir)

    monkeypatch.setattr(tls, "_full_bundle", counting)
    first = ca_bundle_path(region="us-east-1")
    for _ in range(5):
        assert ca_bundle_path(region="us-east-1") == first
    assert len(calls) == 1
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    moved = ca_bundle_path(region="us-east-1")
    assert moved.startswith(str(tmp_path / "elsewhere")) and len(calls) == 2
    env = tmp_path / "env.pem"
    env.write_bytes(BUNDLED.read_bytes())
    monkeypatch.setenv(CA_BUNDLE_ENV, str(env))
    assert ca_bundle_path(region="us-east-1") == str(env)
    env.unlink()
    with pytest.raises(CABundleError, match="does not exist"):
        ca_bundle_path(region="us-east-1")  # a vanished file is noticed, not remembered


def test_a_refresh_in_another_process_is_noticed(tmp_path: Path) -> None:
    """The refreshed-bundle slot is watched: a bundle cached later is used without a restart."""
    assert Path(ca_bundle_path()) == BUNDLED
    other = tmp_path / "cache" / "rdsiamkit" / "ca"
    pem = BUNDLED.read_bytes()
    other.mkdir(parents=True)
    slot = other / "aws-global-bundle.pem"
    meta = {"sha256": hashlib.sha256(pem).hexdigest(), "partition": "aws"}
    slot.with_suffix(".json").write_text(json.dumps(meta))
    slot.write_bytes(pem)
    assert ca_bundle_path() == str(slot)


def test_import_does_not_load_urllib() -> None:
    """`import rdsiamkit` leaves urllib.request and http.client unloaded (7-9 ms)."""
    import subprocess
    import sys

    code = (
        "import sys, rdsiamkit, rdsiamkit.tls\n"
        "print(sorted(m for m in ('urllib.request', 'http.client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_remembered_files_are_rechecked_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within the re-check interval a lookup does no stat; after it, a changed file is seen."""
    now = [1000.0]
    stats: list[str] = []
    real_signature = tls._signature

    def counting(path: str) -> tls._Signature:
        stats.append(path)
        return real_signature(path)

    monkeypatch.setattr(tls, "_RECHECK_SECONDS", 1.0)
    monkeypatch.setattr(tls, "_clock", lambda: now[0])
    monkeypatch.setattr(tls, "_signature", counting)
    chosen = Path(ca_bundle_path(region="us-east-1"))
    good = chosen.read_bytes()
    stats.clear()
    for _ in range(100):
        assert ca_bundle_path(region="us-east-1") == str(chosen)
    assert stats == []
    chosen.write_bytes(good + b"\n")
    now[0] += 0.5
    ca_bundle_path(region="us-east-1")
    assert stats == [] and chosen.read_bytes() != good  # not yet looked at
    now[0] += 0.6
    assert ca_bundle_path(region="us-east-1") == str(chosen)
    assert chosen.read_bytes() == good and stats  # stat-ed, found changed, rewritten


def test_memo_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new sslrootcert file per connect does not grow the remembered lookups without bound."""
    monkeypatch.setattr(tls, "_MEMO_LIMIT", 3)
    for n in range(10):
        ca = tmp_path / f"ca{n}.pem"
        ca.write_bytes(b"")
        assert ca_bundle_path(sslrootcert=ca) == str(ca)
        assert len(tls._memo) <= 3
