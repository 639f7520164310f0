"""Under CI=true a skip (test, fixture or module level) or an xfail is a failure.

A test that skips because the emulator or a server is missing would hide a broken
CI; the rule is read at hook time, so pytester runs can switch it.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from rdsiamkit.testing.pytest_plugin import in_ci


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI=true a skip or an xfail is a failure: a missing server is a broken CI."""
    report = yield
    if in_ci() and (report.skipped or hasattr(report, "wasxfail")):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped or xfailed under CI=true, which counts as a failure: {report.longrepr}"
        )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Module-level skips (importorskip at import time) fail under CI=true too."""
    report = yield
    if in_ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"module skipped under CI=true, which counts as a failure: {report.longrepr}"
        )
    return report
