"""Library log records and the CLI's own output for them (issue 13 item 8)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from rdsiamkit.cli._logging import CliLogHandler, cli_logging, repeats, restore_logging

EXPLANATION = "login refused\nLikely causes:\n  - one\n  - two\n  - pass region= to fix"


def test_library_warning_without_logging_config_is_silent() -> None:
    """A library warning with no logging configured prints nothing (no last-resort handler)."""
    code = (
        "import logging, rdsiamkit\n"
        "logging.getLogger('rdsiamkit.tls').warning('careful: %s', 'x')\n"
        "logging.getLogger('rdsiamkit').error('bad')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_application_logging_still_receives_library_records() -> None:
    """An application that configures logging still sees the library's warnings."""
    code = (
        "import logging, rdsiamkit\n"
        "logging.basicConfig(format='%(name)s %(message)s')\n"
        "logging.getLogger('rdsiamkit.tls').warning('careful')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stderr == "rdsiamkit.tls careful\n"


def test_one_line_record_is_printed_at_once_in_cli_flags() -> None:
    """A one-line warning is written immediately, prefixed, in the CLI's flags."""
    stream = io.StringIO()
    handler = CliLogHandler(stream)
    logger = logging.getLogger("rdsiamkit.test_cli_logging")
    logger.addHandler(handler)
    try:
        logger.warning("pass region= %s", "eu-west-1")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "rdsiamkit: pass --region eu-west-1\n"


def test_held_explanation_dropped_when_the_error_repeats_it() -> None:
    """A multi-line record the final error already carries is not printed."""
    stream = io.StringIO()
    handler = CliLogHandler(stream)
    handler.emit(logging.makeLogRecord({"msg": "undoing (%s)", "args": (EXPLANATION,)}))
    assert stream.getvalue() == ""
    handler.finish("rolled back: " + EXPLANATION.replace("region=", "--region"))
    assert stream.getvalue() == ""


def test_held_explanation_printed_when_the_command_succeeds() -> None:
    """A multi-line record is printed at the end when no error explains it."""
    stream = io.StringIO()
    handler = CliLogHandler(stream)
    handler.emit(logging.makeLogRecord({"msg": EXPLANATION}))
    handler.finish(None)
    assert stream.getvalue().startswith("rdsiamkit: login refused\nLikely causes:")
    assert stream.getvalue().count("Likely causes") == 1


def test_repeats_needs_the_details_not_only_the_first_line() -> None:
    """An unrelated error does not swallow a held warning."""
    assert repeats(EXPLANATION, EXPLANATION)
    assert not repeats(EXPLANATION, "login refused")
    assert not repeats("one line only", "one line only")


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_logging_is_restored(verbose: bool) -> None:
    """The CLI's handler and level are removed again after a run (main() in tests)."""
    package = logging.getLogger("rdsiamkit")
    before = (list(package.handlers), package.level, package.propagate)
    handler, saved = cli_logging(verbose=verbose)
    assert handler in package.handlers
    assert package.level == (logging.INFO if verbose else logging.WARNING)
    restore_logging(handler, saved)
    assert (list(package.handlers), package.level, package.propagate) == before
