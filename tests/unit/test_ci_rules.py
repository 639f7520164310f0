"""The suite's own rule: under CI=true a skip or an xfail fails (tests/ci_rules.py)."""

from __future__ import annotations

import pytest

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
BODIES = {
    "skip in a test": "import pytest\ndef test_x():\n    pytest.skip('no server')\n",
    "skip in a fixture": (
        "import pytest\n@pytest.fixture\ndef server():\n    pytest.skip('no server')\n"
        "def test_x(server):\n    pass\n"
    ),
    "skipif": (
        "import pytest\n@pytest.mark.skipif(True, reason='no server')\ndef test_x():\n    pass\n"
    ),
    "xfail": "import pytest\n@pytest.mark.xfail(reason='no server')\ndef test_x():\n    assert 0\n",
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
@pytest.mark.parametrize("ci", ["", "true"])
def test_skips_and_xfails_fail_only_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str, ci: str
) -> None:
    """Locally a skip stays a skip; with CI=true the same test fails."""
    monkeypatch.setenv("CI", ci)
    pytester.makeini(INI)
    pytester.makepyfile(body)
    outcomes = pytester.runpytest("-p", "ci_rules").parseoutcomes()
    failed = outcomes.get("failed", 0) + outcomes.get("errors", 0) + outcomes.get("error", 0)
    assert (failed >= 1) is bool(ci), outcomes


@pytest.mark.parametrize("ci", ["", "true"])
def test_module_level_skip_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    """importorskip at import time skips the module locally and is an error under CI=true."""
    monkeypatch.setenv("CI", ci)
    pytester.makeini(INI)
    pytester.makepyfile("import pytest\npytest.importorskip('no_such_module_x')\n")
    outcomes = pytester.runpytest("-p", "ci_rules").parseoutcomes()
    assert ("error" in outcomes or "errors" in outcomes) is bool(ci), outcomes
