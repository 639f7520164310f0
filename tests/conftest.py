"""Suite-wide rules: under CI=true nothing may skip; no secret may reach a log or report."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# Every test runs with all loggers at DEBUG; the session fails if a token or secret shows up.
pytest_plugins = ["secret_scan"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Turn every skip into a failure when CI=true: a missing server is a broken CI."""
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"
    return report
