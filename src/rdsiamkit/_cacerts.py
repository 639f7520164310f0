"""Reading the certificates of a PEM bundle without ``cryptography``: enough to pick a region's.

A small DER walk over each certificate gives its subject and issuer (raw DER, to
chain), the subject's common name and ``notAfter``.  Only trusted bundles (the
vendored one, or a refreshed one whose recorded sha256 matched) are read here;
a certificate that does not parse is left out of the selection, never trusted
more.
"""

from __future__ import annotations

import binascii
import datetime as dt
import logging
import re
from collections.abc import Iterator

import attrs

__all__ = ["Cert", "certificates", "select_region"]

log = logging.getLogger("rdsiamkit.tls")

# -- a region's certificates --------------------------------------------------------------

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")
_CN_OID = b"\x55\x04\x03"
_STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x14: "latin-1", 0x16: "ascii", 0x1E: "utf-16-be"}


@attrs.frozen
class Cert:
    """What selecting by region needs of one certificate of a bundle."""

    pem: bytes
    subject: bytes
    issuer: bytes
    common_name: str
    not_after: dt.datetime


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, start, end)`` of the value of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, size, start = data[pos], data[pos + 1], pos + 2
    if size & 0x80:
        count = size & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + size > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + size


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(tag, value start, value end, element start)`` of each element in ``data[start:end]``."""
    pos = start
    while pos < end:
        tag, value_start, value_end = _der(data, pos)
        yield tag, value_start, value_end, pos
        pos = value_end


def _der_time(tag: int, text: bytes) -> dt.datetime:
    layout = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"  # UTCTime, GeneralizedTime
    return dt.datetime.strptime(text.decode("ascii"), layout).replace(tzinfo=dt.timezone.utc)


def _common_name(der: bytes, start: int, end: int) -> str:
    for _, set_start, set_end, _ in _children(der, start, end):  # RDN sets
        for _, pair_start, pair_end, _ in _children(der, set_start, set_end):
            (_, oid_s, oid_e, _), (tag, val_s, val_e, _) = _children(der, pair_start, pair_end)
            if der[oid_s:oid_e] == _CN_OID and tag in _STRING_TAGS:
                return der[val_s:val_e].decode(_STRING_TAGS[tag], errors="replace")
    return ""


def certificates(pem: bytes) -> list[Cert]:
    """The certificates of a PEM bundle, in order; one that does not parse is left out."""
    certs = []
    for match in _PEM_CERT.finditer(pem):
        try:
            der = binascii.a2b_base64(b"".join(match.group(1).split()))
            _, cert_start, _ = _der(der, 0)
            _, tbs_start, tbs_end = _der(der, cert_start)
            fields = list(_children(der, tbs_start, tbs_end))
            if fields[0][0] == 0xA0:  # [0] version
                fields = fields[1:]
            issuer, validity, subject = fields[2], fields[3], fields[4]
            times = list(_children(der, validity[1], validity[2]))
            not_after = _der_time(times[1][0], der[times[1][1] : times[1][2]])
            name = _common_name(der, subject[1], subject[2])
        except (ValueError, IndexError, binascii.Error) as err:
            log.debug("CA bundle: skipping a certificate that does not parse: %s", err)
            continue
        certs.append(
            Cert(
                pem=b"-----BEGIN CERTIFICATE-----"
                + match.group(1)
                + b"-----END CERTIFICATE-----\n",
                subject=der[subject[3] : subject[2]],
                issuer=der[issuer[3] : issuer[2]],
                common_name=name,
                not_after=not_after,
            )
        )
    return certs


def select_region(pem: bytes, region: str, *, now: dt.datetime | None = None) -> bytes:
    """The certificates of bundle ``pem`` for ``region``, as one PEM file (empty if none).

    Like AWS's ``<region>-bundle.pem``: the certificates whose subject common name
    is ``Amazon RDS <region> ...`` (``Root CA RSA2048 G1``, ``RSA4096 G1``,
    ``ECC384 G1``, the 2019 CA), plus their issuers found in the bundle, in bundle
    order.  Certificates already expired at ``now`` are left out: an expired CA
    verifies nothing, and each certificate costs libpq parse time on every connect.
    """
    moment = now or dt.datetime.now(dt.timezone.utc)
    valid = [c for c in certificates(pem) if c.not_after > moment]
    prefix = f"Amazon RDS {region} "
    chosen = [c for c in valid if c.common_name.startswith(prefix)]
    by_subject = {c.subject: c for c in valid}
    for cert in chosen:  # grows while walked: issuers of issuers
        parent = by_subject.get(cert.issuer)
        if parent is not None and parent not in chosen:
            chosen.append(parent)
    return b"".join(c.pem for c in valid if c in chosen)
