"""The secret-scan plugin can fail: leaks in records, exceptions and reports are caught."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import secret_scan

TESTS_DIR = Path(secret_scan.__file__).parent
SIGNATURE = "ab12" * 16
TOKEN = (
    "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app"
    f"&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature={SIGNATURE}"
)


def run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a test file in a fresh pytest with only the secret-scan plugin added."""
    (tmp_path / "test_leak.py").write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *sys.path]))
    return subprocess.run(
        # No tracebacks or short summary: all that may show a secret is the plugin's report.
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "secret_scan",
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=no",
            "-rN",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_clean_session_passes_and_says_what_it_scanned(tmp_path: Path) -> None:
    """Ordinary and redacted records pass: exit 0 and a one-line all-clear."""
    result = run_pytest(
        tmp_path,
        """
        import logging

        def test_quiet():
            log = logging.getLogger("rdsiamkit.connection")
            log.debug("connecting as %s", "app_user")
            log.debug("token %s", "X-Amz-Signature=<redacted by rdsiamkit>")
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no secret found" in result.stdout


def test_leaked_token_in_a_debug_record_fails_the_session(tmp_path: Path) -> None:
    """A token passed as a log argument at DEBUG makes a passing session exit 1."""
    result = run_pytest(
        tmp_path,
        f"""
        import logging

        def test_leaks():
            logging.getLogger("some.library").debug("connecting with %s", {TOKEN!r})
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "secret scan FAILED" in result.stdout
    assert "X-Amz-Signature value" in result.stdout
    assert "X-Amz-Security-Token value" in result.stdout
    assert "log record some.library DEBUG" in result.stdout
    assert SIGNATURE not in result.stdout + result.stderr
    assert "FwoGZXIvYXdzEXAMPLE" not in result.stdout + result.stderr


def test_registered_secret_in_a_logged_exception_fails(tmp_path: Path) -> None:
    """A register()ed password inside a logged exception's message is found."""
    result = run_pytest(
        tmp_path,
        """
        import logging
        import secret_scan

        def test_leaks():
            secret_scan.register("hunter2-hunter2", label="test password")
            try:
                raise RuntimeError("login failed with password hunter2-hunter2")
            except RuntimeError:
                logging.getLogger("app").exception("login failed")
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "test password" in result.stdout
    assert "hunter2-hunter2" not in result.stdout + result.stderr


def test_secret_in_a_failing_tests_exception_is_found(tmp_path: Path) -> None:
    """An exception that carries a token out of a test is scanned, not only log records."""
    result = run_pytest(
        tmp_path,
        f"""
        def test_raises():
            raise ValueError({TOKEN!r})
        """,
    )
    assert result.returncode == 1
    assert "exception of test_leak.py::test_raises (call)" in result.stdout
    assert SIGNATURE not in result.stdout + result.stderr


def test_fake_credentials_are_discovered_without_registering(tmp_path: Path) -> None:
    """A FakeCredentials secret key that reaches a non-propagating logger is found unasked."""
    result = run_pytest(
        tmp_path,
        """
        import logging
        from rdsiamkit.testing import FakeCredentials

        def test_leaks():
            creds = FakeCredentials(
                access_key_id="AKIAEXAMPLEEXAMPLE",
                secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                session_token=None,
                arn="arn:aws:iam::123456789012:user/x",
            )
            log = logging.getLogger("isolated")
            log.propagate = False
            log.warning("credentials %s/%s", creds.access_key_id, creds.secret_access_key)
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FakeCredentials secret key / session token" in result.stdout
    assert "log record isolated WARNING" in result.stdout
    assert "bPxRfiCYEXAMPLEKEY" not in result.stdout + result.stderr


def test_scan_text_blanks_every_hit() -> None:
    """A finding's excerpt shows where the secret was, never the secret."""
    finding = secret_scan.scan_text(f"dsn host=x password=x {TOKEN} tail", "unit")
    assert finding is not None
    assert finding.what == ("X-Amz-Security-Token value", "X-Amz-Signature value")
    assert SIGNATURE not in str(finding) and "<SECRET>" in finding.excerpt
    assert secret_scan.scan_text("X-Amz-Signature=<redacted by rdsiamkit>", "unit") is None


def test_too_short_secrets_are_refused() -> None:
    """register() refuses values so short that scanning for them would flag innocent text."""
    with pytest.raises(ValueError, match="at least 8 characters"):
        secret_scan.register("pw", label="short")
    secret_scan.register(None)
