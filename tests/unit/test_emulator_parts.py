"""Emulator parts that need no PostgreSQL server: socket protocol, PAM files, TLS, set-up."""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

import rdsiamkit.testing
from rdsiamkit.cli import build_parser, main
from rdsiamkit.errors import ConfigurationError, EmulatorError, InvalidArnError
from rdsiamkit.testing.certs import write_tls_files
from rdsiamkit.testing.credentials import CredentialRegistry
from rdsiamkit.testing.emulator import RdsIamEmulator
from rdsiamkit.testing.pam import PamService, build_module, sweep_stale_services
from rdsiamkit.testing.postgres import BINDIR_ENV, PgBinaries
from rdsiamkit.testing.sigv4 import AuthFailureReason
from rdsiamkit.testing.tunnel import TcpTunnel
from rdsiamkit.testing.verifier import AuthEvent, AuthLog, IamGate, VerifierServer


def frame(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def ask(path: Path, payload: bytes) -> bytes:
    """Send raw bytes to the verifier socket, return everything it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


class RecordingGate(IamGate):
    """A gate that accepts exactly one password, to test the socket protocol alone."""

    def __init__(self) -> None:
        super().__init__(
            region="us-east-1",
            hosts=["h"],
            port=1,
            registry=CredentialRegistry(),
            log=AuthLog(),
            arn_prefix="arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-X/",
            max_token_age=900.0,
            max_clock_skew=300.0,
        )
        self.seen: list[tuple[str, int]] = []
        self.delay = 0.0

    def judge(self, user: str, token: str) -> AuthEvent:
        self.seen.append((user, len(token)))
        time.sleep(self.delay)
        outcome = None if token == "open-sesame" else AuthFailureReason.MALFORMED
        return AuthEvent(0.0, user, None, None, outcome)


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[tuple[VerifierServer, RecordingGate]]:
    gate = RecordingGate()
    server = VerifierServer(tmp_path / "v.sock", gate)
    yield server, gate
    server.close()


def test_verifier_socket_answers_ok_only_for_accepted_logins(
    verifier: tuple[VerifierServer, RecordingGate],
) -> None:
    """Two frames in (user, password), one frame out: OK or NO; 60 kB passwords arrive whole."""
    server, gate = verifier
    assert ask(server.path, frame(b"app") + frame(b"open-sesame")) == frame(b"OK")
    assert ask(server.path, frame(b"app") + frame(b"wrong")) == frame(b"NO")
    assert ask(server.path, frame("ünï".encode()) + frame(b"x" * 60000)) == frame(b"NO")
    assert gate.seen == [("app", 11), ("app", 5), ("ünï", 60000)]
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        frame(b"app"),
        frame(b"app") + struct.pack(">I", 100) + b"short",
        struct.pack(">I", 2**31) + b"x",
        frame(b"\xff\xfe") + frame(b"open-sesame"),
        frame(b"u" * 2000) + frame(b"open-sesame"),
    ],
    ids=["empty", "no-password", "truncated", "huge-length", "bad-utf8", "user-too-long"],
)
def test_verifier_socket_drops_malformed_requests(
    verifier: tuple[VerifierServer, RecordingGate], payload: bytes
) -> None:
    """Broken or oversized frames get no answer at all (the module then fails closed)."""
    server, gate = verifier
    assert ask(server.path, payload) == b""
    assert gate.seen == []


def test_verifier_records_what_the_client_got(
    verifier: tuple[VerifierServer, RecordingGate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are recorded after answering; an acceptance past the deadline is a refusal."""
    from rdsiamkit.testing import verifier as verifier_module

    server, gate = verifier
    assert ask(server.path, frame(b"app") + frame(b"open-sesame")) == frame(b"OK")
    assert gate.log.events()[-1].ok
    monkeypatch.setattr(verifier_module, "_ANSWER_DEADLINE", 0.05)
    gate.delay = 0.1
    assert ask(server.path, frame(b"app") + frame(b"open-sesame")) == frame(b"NO")
    late = gate.log.events()[-1]
    assert late.outcome is AuthFailureReason.TIMEOUT and "decided after" in late.detail


def test_verifier_close_removes_the_socket(tmp_path: Path) -> None:
    """close() stops serving and deletes the socket file."""
    server = VerifierServer(tmp_path / "v.sock", RecordingGate())
    server.close()
    assert not server.path.exists()


def test_pam_service_file_names_module_socket_and_owner(tmp_path: Path) -> None:
    """The service has auth and account lines with absolute paths and the owner's pid."""
    module, sock = tmp_path / "pam.so", tmp_path / "v.sock"
    service = PamService.install(module=module, socket=sock, pam_dir=tmp_path)
    text = service.path.read_text()
    assert service.name.startswith("rdsiamkit-") and service.path.parent == tmp_path
    assert f"auth    required {module} socket={sock} timeout=5" in text
    assert f"account required {module}" in text
    assert f"pid={os.getpid()}" in text
    service.remove()
    service.remove()
    assert not service.path.exists()


def test_pam_service_refuses_relative_or_spaced_paths(tmp_path: Path) -> None:
    """PAM arguments split on spaces and need absolute paths; anything else is refused."""
    with pytest.raises(EmulatorError, match="absolute path"):
        PamService.install(module=Path("pam.so"), socket=tmp_path / "s", pam_dir=tmp_path)
    with pytest.raises(EmulatorError, match="absolute path"):
        PamService.install(module=tmp_path / "a b.so", socket=tmp_path / "s", pam_dir=tmp_path)


def test_sweep_removes_only_files_of_dead_emulators(tmp_path: Path) -> None:
    """Services whose owner process is gone are deleted; live and foreign files stay."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "rdsiamkit-dead").write_text(f"# rdsiamkit emulator pid={dead.pid}\n")
    live = PamService.install(module=tmp_path / "m.so", socket=tmp_path / "s", pam_dir=tmp_path)
    (tmp_path / "rdsiamkit-foreign").write_text("auth required pam_deny.so\n")
    (tmp_path / "login").write_text(f"# rdsiamkit emulator pid={dead.pid}\n")
    removed = sweep_stale_services(tmp_path)
    assert removed == [tmp_path / "rdsiamkit-dead"]
    assert live.path.exists() and (tmp_path / "rdsiamkit-foreign").exists()
    assert (tmp_path / "login").exists()


def test_pam_module_source_compiles_without_warnings() -> None:
    """The C module is clean under -Wall -Wextra -Werror (the runtime build omits -Werror)."""
    source = Path(rdsiamkit.testing.__file__).with_name("pam_rdsiamkit.c")
    result = subprocess.run(
        ["cc", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-std=gnu11", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_pam_module_is_built_once_per_source(tmp_path: Path) -> None:
    """build_module caches the shared object by source and flags; it exports the PAM hooks."""
    first = build_module(tmp_path)
    assert build_module(tmp_path) == first
    nm = subprocess.run(["nm", "-D", str(first)], capture_output=True, text=True, check=True)
    symbols = nm.stdout
    for hook in ("pam_sm_authenticate", "pam_sm_acct_mgmt", "pam_sm_setcred"):
        assert f" T {hook}" in symbols


def test_tls_files_have_endpoint_sans_and_private_key(tmp_path: Path) -> None:
    """Server cert: DNS SANs for each endpoint, no IP SAN, issued by the CA; key is 0600."""
    hosts = ["a.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com", "b.example"]
    files = write_tls_files(tmp_path, hosts)
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    decoy = x509.load_pem_x509_certificate(files.untrusted_ca_file.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == hosts
    assert sans.get_values_for_type(x509.IPAddress) == []
    assert cert.issuer == ca.subject and decoy.subject != ca.subject
    cert.verify_directly_issued_by(ca)
    with pytest.raises(ValueError, match="does not match"):
        cert.verify_directly_issued_by(decoy)
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600


def test_missing_bindir_is_a_clear_emulator_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bindir without initdb/postgres names the missing program."""
    with pytest.raises(EmulatorError, match="initdb"):
        PgBinaries.find(tmp_path)
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(EmulatorError, match="nowhere"):
        PgBinaries.find()


def test_emulator_names_and_arns_before_start() -> None:
    """Endpoints, resource id and ARNs are known before start; port is not."""
    emu = RdsIamEmulator(cluster_id="shop", region="eu-west-1", dns_hash="abcdef012345")
    assert emu.endpoints == (
        "shop.cluster-abcdef012345.eu-west-1.rds.amazonaws.com",
        "shop.cluster-ro-abcdef012345.eu-west-1.rds.amazonaws.com",
        "shop-instance-1.abcdef012345.eu-west-1.rds.amazonaws.com",
    )
    assert emu.resource_id.startswith("cluster-") and len(emu.resource_id) == 34
    assert emu.resource_id == RdsIamEmulator(cluster_id="shop", region="eu-west-1").resource_id
    assert emu.db_user_arn("app") == (
        f"arn:aws:rds-db:eu-west-1:123456789012:dbuser:{emu.resource_id}/app"
    )
    assert RdsIamEmulator(region="cn-north-1").endpoint.endswith(".amazonaws.com.cn")
    assert emu.master_password not in repr(emu)
    with pytest.raises(EmulatorError, match="start"):
        _ = emu.port


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"cluster_id": "Not_Valid"}, ConfigurationError),
        ({"dns_hash": "x"}, ConfigurationError),
        ({"region": "mars"}, ConfigurationError),
        ({"account_id": "12345"}, InvalidArnError),
        ({"resource_id": "my-cluster"}, InvalidArnError),
        ({"max_token_age": 0}, ConfigurationError),
    ],
)
def test_emulator_rejects_invalid_options(options: dict[str, object], error: type) -> None:
    """Bad names, ids or knobs fail at construction with a ConfigurationError."""
    with pytest.raises(error):
        RdsIamEmulator(**options)  # type: ignore[arg-type]


def test_tunnel_forwards_both_ways_and_closes_cleanly() -> None:
    """Bytes go through in both directions; close() cuts live relays and stops listening."""
    upstream = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = upstream.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    tunnel = TcpTunnel("127.0.0.1", upstream.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", tunnel.port), timeout=5)
    client.sendall(b"hello")
    assert client.recv(1024) == b"HELLO"
    assert tunnel.connections_total == 1
    tunnel.close()
    assert client.recv(1024) == b""  # relay was cut
    client.close()
    thread.join(timeout=5)
    upstream.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tunnel.port), timeout=1)


def test_tunnel_bounds_concurrent_connections() -> None:
    """Beyond max_connections, new clients are closed at once."""
    upstream = socket.create_server(("127.0.0.1", 0))
    with TcpTunnel("127.0.0.1", upstream.getsockname()[1], max_connections=1) as tunnel:
        first = socket.create_connection(("127.0.0.1", tunnel.port), timeout=5)
        held, _ = upstream.accept()
        second = socket.create_connection(("127.0.0.1", tunnel.port), timeout=5)
        assert second.recv(1) == b""
        for sock in (first, second, held):
            sock.close()
    upstream.close()
    with pytest.raises(ConfigurationError):
        TcpTunnel("127.0.0.1", 1, max_connections=0)


def test_cli_has_a_demo_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    """'rdsiamkit demo' parses and is listed in --help; no subcommand is a usage error."""
    assert build_parser().parse_args(["demo"]).command == "demo"
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


PLUGIN_TEST = """
def test_needs_emulator(rds_emulator):
    assert rds_emulator.port
"""


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "errors")])
def test_fixture_skips_or_fails_when_the_emulator_cannot_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    """Without a server: skip with the reason locally, fail under CI=true."""
    monkeypatch.setenv(BINDIR_ENV, "/nonexistent/pg/bin")
    monkeypatch.setenv("CI", ci)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*emulator cannot start*nonexistent*"])
