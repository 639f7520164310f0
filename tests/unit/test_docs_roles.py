"""reST roles in docstrings become links in the API reference (issue 13 item 22)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "docs" / "_griffe" / "rst_roles.py"

pytest.importorskip("griffe")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rst_roles", EXTENSION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


roles = _load()

KNOWN = {
    "diagnose": ("link", "rdsiamkit.doctor.runner.diagnose"),
    "rdsiamkit.Endpoint": ("link", "rdsiamkit.endpoints.Endpoint"),
    "AuthMode.IAM": ("link", "rdsiamkit.roles.models.AuthMode.IAM"),
    "BaseException": ("code", "BaseException"),
}


def fake_resolve(name: str) -> tuple[str, str] | None:
    return KNOWN.get(name)


def test_func_role_becomes_an_optional_autoref_with_parentheses() -> None:
    """`:func:` names the resolved path and shows the name as code with ()."""
    text, unresolved = roles.convert("See :func:`diagnose` first.", fake_resolve)
    link = '<autoref identifier="rdsiamkit.doctor.runner.diagnose" optional>`diagnose()`</autoref>'
    assert text == f"See {link} first."
    assert unresolved == []


def test_tilde_shows_the_last_name_and_dots_resolve() -> None:
    """`~` shows only the last component; a dotted member keeps its whole path."""
    text, _ = roles.convert(":class:`~rdsiamkit.Endpoint` or :attr:`AuthMode.IAM`", fake_resolve)
    assert (
        '<autoref identifier="rdsiamkit.endpoints.Endpoint" optional>`Endpoint`</autoref>' in text
    )
    member = "rdsiamkit.roles.models.AuthMode.IAM"
    assert f'<autoref identifier="{member}" optional>`AuthMode.IAM`</autoref>' in text
    assert ":class:" not in text and ":attr:" not in text


def test_external_and_no_link_roles_become_plain_code() -> None:
    """A builtin and a `!`-prefixed role render as code, with no link."""
    text, unresolved = roles.convert(":class:`BaseException` and :class:`!Anything`", fake_resolve)
    assert text == "`BaseException` and `Anything`"
    assert unresolved == []


def test_unknown_names_and_roles_are_reported() -> None:
    """A name that resolves to nothing, or an unknown role, is left and reported."""
    text, unresolved = roles.convert(":func:`nowhere` and :foo:`bar`", fake_resolve)
    assert unresolved == [":func:`nowhere`", ":foo:`bar`"]
    assert ":func:`nowhere`" in text


def test_resolver_follows_imports_members_and_builtins() -> None:
    """Against the real package: imports, class members, inheritance, externals."""
    import griffe

    loader = griffe.GriffeLoader(search_paths=[str(ROOT / "src")])
    pkg = loader.load("rdsiamkit")
    loader.resolve_aliases(implicit=False, external=False)
    doctor = pkg["doctor"]
    resolve = roles.resolver_for(doctor, "rdsiamkit", loader.modules_collection)
    kind, path = resolve("diagnose")
    assert kind == "link" and path.endswith(".diagnose") and path.startswith("rdsiamkit.doctor")
    assert resolve("BaseException") == ("code", "BaseException")
    assert resolve("typing.TypedDict") == ("code", "typing.TypedDict")
    assert resolve("no_such_name_anywhere") is None
    assert resolve("rdsiamkit.no_such_module") is None


@pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
    reason="mkdocs not installed",
)
def test_strict_docs_build_renders_links_on_the_doctor_page(tmp_path: Path) -> None:
    """The strict build passes; the doctor page shows no raw role and links `diagnose`."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "reference" / "doctor" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert not re.search(r":(func|class|meth|attr|data|exc|mod):", text)
    assert re.search(
        r'<a class="autorefs autorefs-internal"[^>]*><code>diagnose\(\)</code></a>', html
    )


@pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
    reason="mkdocs not installed",
)
def test_strict_build_fails_on_a_role_naming_nothing(tmp_path: Path) -> None:
    """A docstring role that resolves to nothing makes `mkdocs build --strict` fail."""
    (tmp_path / "src" / "pkgx").mkdir(parents=True)
    (tmp_path / "src" / "pkgx" / "__init__.py").write_text(
        '"""Pkg."""\n\n\ndef f() -> None:\n    """Calls :func:`nowhere_at_all`."""\n'
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# X\n\n::: pkgx\n")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: x\n"
        "plugins:\n"
        "  - mkdocstrings:\n"
        "      handlers:\n"
        "        python:\n"
        "          paths: [src]\n"
        "          options:\n"
        f"            extensions: ['{EXTENSION}:RstRoles']\n"
        "            docstring_style: sphinx\n"
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict"],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "pkgx.f: cannot turn :func:`nowhere_at_all` into a link" in result.stderr
