"""Griffe extension: reST cross-reference roles in docstrings become autorefs links.

The kit's docstrings use Sphinx roles (``:func:`diagnose```, ``:class:`~rdsiamkit.Endpoint```).
mkdocstrings renders Markdown, where a role would show as raw text. Once the package is
loaded, every docstring's roles are rewritten to autorefs references (an optional
``<autoref identifier="rdsiamkit.doctor.runner.diagnose">``: a link where the object has
a page, plain code where it exists but is not rendered), resolving a relative name the
way Python would from the documented object (its class, module, the modules above,
imports), and ``~`` to show only the last name.

A role naming something outside the package (``:class:`BaseException```,
``:class:`psycopg.Connection```) becomes plain code: there is no page to link to. A role
that cannot be resolved is left as it is and logged as a warning on the ``mkdocs``
logger, so ``mkdocs build --strict`` fails instead of publishing it raw.
"""

from __future__ import annotations

import builtins
import importlib.util
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import griffe

__all__ = ["ROLE", "RstRoles", "convert"]

# `mkdocs build --strict` counts warnings of the mkdocs logger tree.
log = logging.getLogger("mkdocs.plugins.rdsiamkit.rst_roles")

ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|meth|attr|data|exc|mod|obj|const|type):"
    r"`(?P<target>[^`]+)`"
)
# A role whose name is not one of the above (`:foo:`x``) is a mistake too.
ANY_ROLE = re.compile(r"(?<![\w`]):[a-z]+(?::[a-z]+)?:`[^`]+`")
TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")

# A resolver maps a dotted name to ("link", path), ("code", name), or None (unresolvable).
Resolver = Callable[[str], tuple[str, str] | None]


def convert(text: str, resolve: Resolver) -> tuple[str, list[str]]:
    """Rewrite the roles of one docstring; returns the text and the roles left unresolved."""
    unresolved: list[str] = []

    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        title: str | None = None
        titled = TITLED.match(target)
        if titled:
            title, target = titled["title"], titled["target"].strip()
        no_link = target.startswith("!")
        short = target.startswith("~")
        name = target.lstrip("!~").lstrip(".")
        shown = title or (name.rsplit(".", 1)[-1] if short else name)
        if match["role"] in {"func", "meth"} and not title and not shown.endswith(")"):
            shown += "()"
        if no_link:
            return f"`{shown}`"
        found = resolve(name)
        if found is None:
            unresolved.append(match[0])
            return match[0]
        kind, path = found
        if kind == "code":
            return f"`{shown}`"
        # `optional`: a link when the object has a page; plain code when it exists (the
        # resolver checked) but is not rendered (a private module, an undocumented field).
        return f'<autoref identifier="{path}" optional>`{shown}`</autoref>'

    converted = ROLE.sub(replace, text)
    unresolved.extend(m[0] for m in ANY_ROLE.finditer(converted) if m[0] not in unresolved)
    return converted, unresolved


def _lookup(collection: Any, path: str) -> bool:
    """Whether ``path`` names a loaded object (through aliases)."""
    try:
        collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _inherited(obj: griffe.Object, name: str) -> str | None:
    """The path of ``name`` as a member the nearest enclosing class inherits, if it does."""
    scope: griffe.Object | None = obj
    while scope is not None and not scope.is_class:
        scope = scope.parent
    if scope is None or name not in scope.all_members:  # type: ignore[attr-defined]
        return None
    member = scope.all_members[name]  # type: ignore[attr-defined]
    return str(member.target_path if member.is_alias else member.path)


def resolver_for(obj: griffe.Object, package: str, collection: Any) -> Resolver:
    """Resolve names as seen from ``obj`` (its members, then its parents' scopes)."""

    def resolve(name: str) -> tuple[str, str] | None:
        head, _, rest = name.partition(".")
        if head == package:
            return ("link", name) if _lookup(collection, name) else None
        try:
            resolved = obj.resolve(head)  # members, then each parent's scope and imports
        except griffe.NameResolutionError:
            resolved = _inherited(obj, head)
        if resolved is None:
            # A builtin (`BaseException`) or another library named in full (`typing.TypedDict`).
            external = hasattr(builtins, head) or importlib.util.find_spec(head) is not None
            return ("code", name) if external else None
        path = f"{resolved}.{rest}" if rest else resolved
        if path.split(".", 1)[0] != package:
            return ("code", name)  # another library's object: no page here
        return ("link", path) if _lookup(collection, path) else None

    return resolve


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined in it (aliases, i.e. imports, are skipped)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


class RstRoles(griffe.Extension):
    """Rewrites reST roles once the whole package is loaded (imports resolvable)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is None or ":" not in obj.docstring.value:
                continue
            resolve = resolver_for(obj, pkg.name, loader.modules_collection)
            text, unresolved = convert(obj.docstring.value, resolve)
            obj.docstring.value = text
            for role in unresolved:
                log.warning("%s: cannot turn %s into a link (unknown name)", obj.path, role)
