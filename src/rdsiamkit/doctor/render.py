"""The doctor's report as text (terminals), HTML (notebooks) and JSON (scripts).

Text output passes every reason and fix through :func:`printable`: a role name or
server message holding a terminal escape sequence cannot forge lines or clear the screen.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rdsiamkit._authmode_state import printable
from rdsiamkit.doctor.model import CheckStatus
from rdsiamkit.explore import html_table

if TYPE_CHECKING:
    from rdsiamkit.doctor.model import Check, Diagnosis

__all__ = ["check_to_dict", "diagnosis_to_dict", "to_html", "to_json", "to_text"]


def check_to_dict(check: Check) -> dict[str, object]:
    """One check as plain values, for JSON."""
    return {
        "name": check.name.value,
        "status": check.status.value,
        "finding": None if check.finding is None else check.finding.value,
        "reason": check.reason,
        "fix": check.fix,
        "elapsed": round(check.elapsed, 4),
    }


def diagnosis_to_dict(diagnosis: Diagnosis) -> dict[str, object]:
    """A diagnosis as plain values, for JSON."""
    failed = diagnosis.failed
    return {
        "target": diagnosis.target,
        "ok": diagnosis.ok,
        "failed_check": None if failed is None else failed.name.value,
        "finding": None if diagnosis.finding is None else diagnosis.finding.value,
        "checks": [check_to_dict(c) for c in diagnosis.checks],
    }


def to_json(diagnosis: Diagnosis, *, indent: int | None = 2) -> str:
    """A diagnosis as JSON."""
    return json.dumps(diagnosis_to_dict(diagnosis), indent=indent)


def to_text(diagnosis: Diagnosis) -> str:
    """A diagnosis as lines for a terminal: one per check, then the result and its fix."""
    lines = [f"rdsiamkit doctor: IAM login as {printable(diagnosis.target)}"]
    width = max(len(c.name.value) for c in diagnosis.checks)
    for check in diagnosis.checks:
        lines.append(
            f"  {check.status.value.upper():<7}  {check.name.value:<{width}}  "
            f"{printable(check.reason)}"
        )
        if check.fix and check.status in (CheckStatus.FAIL, CheckStatus.WARN):
            lines.append(f"  {'':<7}  {'':<{width}}  fix: {printable(check.fix)}")
    failed = diagnosis.failed
    if failed is None:
        lines.append("Result: no check failed")
    else:
        finding = f" ({failed.finding.value})" if failed.finding else ""
        lines.append(f"Result: FAILED at {failed.name.value}{finding}: {printable(failed.reason)}")
        if failed.fix:
            lines.append(f"Fix: {printable(failed.fix)}")
    return "\n".join(lines)


def to_html(diagnosis: Diagnosis) -> str:
    """A diagnosis as an HTML table (notebooks)."""
    rows = [[c.status.value.upper(), c.name.value, c.reason, c.fix or ""] for c in diagnosis.checks]
    failed = diagnosis.failed
    caption = f"IAM login as {diagnosis.target}: " + (
        "no check failed" if failed is None else f"failed at {failed.name.value}"
    )
    return html_table(["status", "check", "reason", "fix"], rows, caption=caption)
