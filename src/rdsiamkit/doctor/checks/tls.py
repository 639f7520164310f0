"""Check 4: PostgreSQL's SSLRequest, then a handshake verifying the server certificate.

Wrong CA, host name mismatch, expired certificate and TLS refused are told apart.
"""

from __future__ import annotations

import socket
import ssl
import struct

from rdsiamkit.doctor.facts import Address, Inputs, Target, TlsSession
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import Outcome, check

# PostgreSQL's SSLRequest: length 8, code 1234.5679.
_SSL_REQUEST = struct.pack("!II", 8, 80877103)
# OpenSSL verify codes (X509_V_ERR_*) that mean "not signed by a CA you trust".
_UNTRUSTED_CODES = frozenset({2, 18, 19, 20, 21})
# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH (host= is an address).
_HOSTNAME_MISMATCH = frozenset({62, 64})
_CERT_EXPIRED = 10


def _ssl_context(target: Target) -> ssl.SSLContext:
    rootcert = target.params["sslrootcert"]
    context = ssl.create_default_context(cafile=None if rootcert == "system" else rootcert)
    if target.params["sslmode"] != "verify-full":
        # libpq verifies the CA for require too when a root certificate is given, and
        # the kit always gives one; only the host name goes unchecked.
        context.check_hostname = False
    return context


def _fail(reason: str, fix: str | None, finding: Finding) -> Check:
    return Check(CheckName.TLS, CheckStatus.FAIL, reason, fix=fix, finding=finding)


def _ssl_request(raw: socket.socket) -> Check | None:
    """Ask for TLS the way libpq does; a failed check unless the server says ``S``."""
    try:
        raw.sendall(_SSL_REQUEST)
        answer = raw.recv(1)
    except ConnectionError:
        answer = b""  # reset before any answer: the same as closed, below
    except OSError as err:
        return _fail(
            f"no answer to PostgreSQL's SSLRequest: {err}",
            "check that the port is PostgreSQL's (RDS: the endpoint's port)",
            Finding.TLS_FAILED,
        )
    if not answer:
        return _fail(
            "the connection was closed before any answer to PostgreSQL's SSLRequest",
            "a tunnel or port forward whose far end cannot connect does this (check "
            "it), or the port is not PostgreSQL's",
            Finding.TLS_FAILED,
        )
    if answer != b"S":
        what = "refused TLS" if answer == b"N" else f"answered {answer!r} to SSLRequest"
        return _fail(
            f"the server {what}: IAM tokens must never travel without TLS",
            "this is not an RDS endpoint, or a proxy in between terminates TLS",
            Finding.TLS_OFF,
        )
    return None


@check(CheckName.TLS, provides="tls", missing="not attempted: TLS did not pass (see tls)")
def tls(*, target: Target, address: Address, inputs: Inputs) -> Check | Outcome[TlsSession]:
    """TLS is offered and the certificate verifies for the endpoint name as sslmode asks."""
    rootcert = target.params["sslrootcert"]
    try:
        raw_socket = socket.create_connection((address.host, address.port), timeout=inputs.timeout)
    except OSError as err:
        return _fail(
            f"cannot open TCP to {address.host}:{address.port} again: {err}",
            "the server stopped answering during the diagnosis: check it and retry",
            Finding.UNREACHABLE,
        )
    with raw_socket as raw:
        refused = _ssl_request(raw)
        if refused is not None:
            return refused
        try:
            with _ssl_context(target).wrap_socket(raw, server_hostname=target.host) as stream:
                version = stream.version()
                cert = stream.getpeercert()
        except ssl.SSLCertVerificationError as err:
            return _verify_failure(err, target.host, rootcert)
        except (ssl.SSLError, OSError) as err:
            return _fail(
                f"TLS handshake with {target.host} failed: {err}",
                "check that the port is PostgreSQL's and nothing in between breaks TLS",
                Finding.TLS_FAILED,
            )
    session = TlsSession(version)
    mode = target.params["sslmode"]
    if mode != "verify-full":
        return Outcome(
            Check(
                CheckName.TLS,
                CheckStatus.WARN,
                f"{version} with sslmode={mode}: the server's identity is not fully verified",
                fix="use sslmode=verify-full (drop insecure_skip_tls_verify)",
            ),
            session,
        )
    until = ""
    if cert and cert.get("notAfter"):
        until = f", certificate valid until {cert['notAfter']}"
    return Outcome(
        Check(
            CheckName.TLS,
            CheckStatus.PASS,
            f"{version}, certificate for {target.host} verified against {rootcert}{until}",
        ),
        session,
    )


def _verify_failure(err: ssl.SSLCertVerificationError, host: str, rootcert: str) -> Check:
    code = err.verify_code
    detail = err.verify_message or str(err)
    if code in _HOSTNAME_MISMATCH:
        return _fail(
            f"the server certificate is not for {host}: {detail}",
            "host= must be the endpoint name in the certificate; to dial another address "
            "(tunnel, IP) keep host=<endpoint> and pass hostaddr=<ip>",
            Finding.HOSTNAME_MISMATCH,
        )
    if code == _CERT_EXPIRED:
        return _fail(
            f"the server certificate has expired: {detail}",
            "rotate the server certificate (modify-db-instance --ca-certificate-identifier)",
            Finding.CERTIFICATE_EXPIRED,
        )
    if code in _UNTRUSTED_CODES:
        return _fail(
            f"the server certificate is not signed by a CA in {rootcert}: {detail}",
            "use the RDS CA bundle: drop sslrootcert=, refresh it "
            "(rdsiamkit.refresh_ca_bundle()) or point sslrootcert= at the right bundle "
            "(RDS Proxy: Amazon Root CA, in the OS store)",
            Finding.WRONG_CA,
        )
    return _fail(f"the server certificate failed verification: {detail}", None, Finding.TLS_FAILED)
