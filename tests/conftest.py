"""Suite-wide rules: under CI=true nothing may skip; no secret may reach a log or report."""

from __future__ import annotations

# Every test runs with all loggers at DEBUG; the session fails if a token or secret shows up.
# Under CI=true nothing may skip or xfail (ci_rules).
pytest_plugins = ["ci_rules", "pytester", "secret_scan"]
