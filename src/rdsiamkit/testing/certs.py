"""Throw-away TLS material for the emulator: a CA, a server certificate, a decoy CA.

The server certificate names the emulator's fake RDS endpoints as DNS SANs
(no IP SAN, like RDS), so clients reach it with ``host=<endpoint>
hostaddr=127.0.0.1 sslmode=verify-full`` and hostname checks are real.  EC
P-256 keys make generation take milliseconds.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from rdsiamkit.errors import EmulatorError

__all__ = ["TlsFiles", "write_tls_files"]

_VALIDITY = datetime.timedelta(days=30)
_BACKDATE = datetime.timedelta(hours=1)


@attrs.frozen
class TlsFiles:
    """Where the PEM files are."""

    ca_file: Path
    untrusted_ca_file: Path
    cert_file: Path
    key_file: Path


def write_tls_files(
    directory: Path, hostnames: Sequence[str], *, owner: tuple[int, int] | None = None
) -> TlsFiles:
    """Create a CA, a server cert for ``hostnames`` signed by it, and an unrelated CA.

    The server key is written 0600 and, when ``owner`` (uid, gid) is given,
    handed to that user, since PostgreSQL refuses a key others can read.
    """
    try:
        from cryptography import x509  # noqa: PLC0415 - optional 'testing' extra
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    except ImportError as err:
        raise EmulatorError(
            "the emulator needs the 'cryptography' package: pip install 'rdsiamkit[testing]'"
        ) from err

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rdsiamkit emulator"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    def make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cert, key

    ca_cert, ca_key = make_ca("rdsiamkit emulator CA")
    decoy_cert, _ = make_ca("rdsiamkit untrusted CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(name(hostnames[0]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        untrusted_ca_file=directory / "untrusted-ca.pem",
        cert_file=directory / "server.crt",
        key_file=directory / "server.key",
    )
    try:
        files.ca_file.write_bytes(ca_cert.public_bytes(pem))
        files.untrusted_ca_file.write_bytes(decoy_cert.public_bytes(pem))
        files.cert_file.write_bytes(server_cert.public_bytes(pem))
        fd = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                server_key.private_bytes(
                    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        if owner is not None:
            for path in (files.cert_file, files.key_file):
                os.chown(path, *owner)
    except OSError as err:
        raise EmulatorError(f"cannot write TLS files to {directory}: {err}") from err
    return files
