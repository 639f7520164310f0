"""Tests leave nothing behind outside the project's own ignored build folder."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reliability_figures_go_under_build() -> None:
    """The reliability figures default to build/reliability in the project, not /tmp."""
    spec = importlib.util.spec_from_file_location(
        "reliability_support_probe", ROOT / "tests" / "reliability" / "reliability_support.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DEFAULT_RESULTS_DIR == ROOT / "build" / "reliability"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "build/reliability/x.json"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0


def test_test_script_removes_its_docs_site(tmp_path: Path) -> None:
    """scripts/test.sh builds the docs site into a temp dir it removes on exit."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    docs_lines = [line for line in script.splitlines() if "mkdocs build" in line]
    assert docs_lines and all("$(mktemp -d)" not in line for line in docs_lines)
    # The cleanup idiom the script uses, run for real: the directory is gone afterwards.
    block = script[script.index("site_dir=$(mktemp -d)") : script.index("step .venv/bin/mkdocs")]
    probe = f'set -eu\n{block}\necho "$site_dir"\n'
    made = subprocess.run(
        ["bash", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert made.startswith(str(tmp_path)) and not Path(made).exists()
