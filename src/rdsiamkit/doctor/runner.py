"""Run the doctor's checks in the order their facts allow, once each.

Like pytest fixtures: a check is a function whose parameters name the facts it
needs; :func:`check` registers it with the fact it provides.  A fixture
(:func:`fixture`) computes a fact on first need, once.  The runner orders the
checks so that every provider runs before its consumers (ties keep registration
order), runs each, and skips a check whose needed fact is missing, with the reason
its provider declared.  A parameter with a default takes that default instead; one
typed ``Lazy[X] = LAZY`` gets a handle that computes the fact only if the check asks.

A check returns a :class:`~rdsiamkit.doctor.model.Check`, or an :class:`Outcome`
(the check and the fact it provides), or raises :class:`NotCheckedError` to be
skipped.  A check that raises anything else fails with ``check_error``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Generic, TypeVar

import attrs

from rdsiamkit._redact import redact
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding

__all__ = [
    "LAZY",
    "Lazy",
    "NotCheckedError",
    "Outcome",
    "Registry",
    "RunResult",
    "check",
    "fixture",
    "run_checks",
]

log = logging.getLogger("rdsiamkit.doctor")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Facts the runner provides itself.
RUNNER_FACTS = frozenset({"inputs", "secrets"})


class NotCheckedError(Exception):
    """Raised inside a check (or for a missing fact): it cannot run; the message says why."""


@attrs.frozen
class Outcome(Generic[T]):
    """What a check found, with the fact it provides to the checks after it."""

    check: Check
    fact: T


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_REQUIRED: Any = _Marker("required")
#: The default of a parameter typed :class:`Lazy`: the fact is computed only if asked for.
LAZY: Any = _Marker("lazy")


class Lazy(Generic[T]):
    """A fact a check may not need: computed (once per run) only when :meth:`get` is called.

    A missing fact raises :class:`NotCheckedError` from :meth:`get`, skipping the check.
    """

    def __init__(self, get: Callable[[], T]) -> None:
        self._get = get

    def get(self) -> T:
        """The fact, computed now if no check asked for it before."""
        return self._get()


@attrs.frozen
class Need:
    """One parameter of a check or fixture: the fact it names, and its default if optional."""

    name: str
    default: object = _REQUIRED

    @property
    def required(self) -> bool:
        """Without the fact the check cannot run (no default)."""
        return self.default is _REQUIRED

    @property
    def lazy(self) -> bool:
        """The check gets a :class:`Lazy` and computes the fact only if it asks."""
        return self.default is LAZY


def _needs(func: Callable[..., Any]) -> tuple[Need, ...]:
    parameters = inspect.signature(func).parameters.values()
    return tuple(
        Need(p.name) if p.default is inspect.Parameter.empty else Need(p.name, p.default)
        for p in parameters
    )


@attrs.frozen
class CheckSpec:
    """A check: what it is called, what it needs, what it provides and why that may lack."""

    name: CheckName
    run: Callable[..., Check | Outcome[Any]]
    needs: tuple[Need, ...]
    provides: str | None = None
    #: Why a check needing ``provides`` is skipped when this check did not provide it.
    missing: str = ""


@attrs.frozen
class FixtureSpec:
    """A fixture: a fact computed on first need."""

    name: str
    compute: Callable[..., Any]
    needs: tuple[Need, ...]


_SPEC = "__doctor_spec__"


def check(name: CheckName, *, provides: str | None = None, missing: str = "") -> Callable[[F], F]:
    """Mark a function as a check; ``provides`` names its fact, ``missing`` why it may lack."""
    if provides is not None and not missing:
        raise TypeError(f"check {name.value} provides {provides!r}: say why it may not")

    def mark(func: F) -> F:
        setattr(func, _SPEC, CheckSpec(name, func, _needs(func), provides, missing))
        return func

    return mark


def fixture(name: str) -> Callable[[F], F]:
    """Mark a function as computing the fact ``name`` on first need."""

    def mark(func: F) -> F:
        setattr(func, _SPEC, FixtureSpec(name, func, _needs(func)))
        return func

    return mark


@attrs.define
class Registry:
    """Checks and fixtures, in registration order."""

    checks: dict[CheckName, CheckSpec] = attrs.field(factory=dict)
    fixtures: dict[str, FixtureSpec] = attrs.field(factory=dict)

    @classmethod
    def collect(cls, *modules: ModuleType) -> Registry:
        """The checks and fixtures defined in ``modules``: modules in order, then source order."""
        return cls.of(
            *(
                value
                for module in modules
                for value in vars(module).values()
                # imported from elsewhere: registered there
                if getattr(value, "__module__", None) == module.__name__
            )
        )

    @classmethod
    def of(cls, *functions: Callable[..., Any]) -> Registry:
        """The checks and fixtures among ``functions`` (others are ignored), in that order."""
        registry = cls()
        for function in functions:
            spec = getattr(function, _SPEC, None)
            if isinstance(spec, CheckSpec):
                registry.checks[spec.name] = spec
            elif isinstance(spec, FixtureSpec):
                registry.fixtures[spec.name] = spec
        return registry

    def missing(self, fact: str) -> str:
        """Why a check needing ``fact`` is skipped when it is not known."""
        found = (s.missing for s in self.checks.values() if s.provides == fact)
        return next(found, f"needs {fact}")

    def order(self) -> list[CheckSpec]:
        """The checks, each after the providers of the facts it needs (ties: registration)."""
        providers = {s.provides: s.name for s in self.checks.values() if s.provides}
        after = {s.name: self._providers_of(s.needs, providers, ()) for s in self.checks.values()}
        pending = list(self.checks.values())
        ordered: list[CheckSpec] = []
        done: set[CheckName] = set()
        while pending:
            ready = next((s for s in pending if after[s.name] <= done), None)
            if ready is None:
                names = ", ".join(s.name.value for s in pending)
                raise RuntimeError(f"doctor checks need each other's facts in a cycle: {names}")
            pending.remove(ready)
            ordered.append(ready)
            done.add(ready.name)
        return ordered

    def _providers_of(
        self, needs: tuple[Need, ...], providers: Mapping[str, CheckName], seen: tuple[str, ...]
    ) -> set[CheckName]:
        """The checks providing ``needs``, directly or through fixtures."""
        found: set[CheckName] = set()
        for need in needs:
            if need.name in providers:
                found.add(providers[need.name])
            elif need.name in self.fixtures:
                if need.name not in seen:
                    fixture = self.fixtures[need.name]
                    found |= self._providers_of(fixture.needs, providers, (*seen, need.name))
            elif need.name not in RUNNER_FACTS:
                raise RuntimeError(f"no check or fixture provides the fact {need.name!r}")
        return found


@attrs.frozen
class RunResult:
    """The checks in the order they ran, and every fact known at the end."""

    checks: tuple[Check, ...]
    facts: Mapping[str, object]

    def fact(self, name: str) -> object | None:
        """A fact by name, ``None`` if it is not known."""
        return self.facts.get(name)


class _Run:
    """One run: the facts known so far, fixtures computed once (or failed once)."""

    def __init__(self, registry: Registry, facts: Mapping[str, object]) -> None:
        self.registry = registry
        self.values: dict[str, object] = dict(facts)
        self.failures: dict[str, Exception] = {}

    def value(self, name: str) -> object:
        if name in self.values:
            return self.values[name]
        if name in self.failures:
            raise self.failures[name]
        spec = self.registry.fixtures.get(name)
        if spec is None:
            raise NotCheckedError(self.registry.missing(name))
        try:
            value = spec.compute(**self.arguments(spec.needs))
        except Exception as err:
            self.failures[name] = err
            raise
        self.values[name] = value
        return value

    def arguments(self, needs: tuple[Need, ...]) -> dict[str, object]:
        arguments: dict[str, object] = {}
        for need in needs:
            if need.lazy:
                arguments[need.name] = Lazy(functools.partial(self.value, need.name))
                continue
            try:
                arguments[need.name] = self.value(need.name)
            except NotCheckedError:
                if need.required:
                    raise
                arguments[need.name] = need.default
        return arguments

    def run(self, spec: CheckSpec) -> Check:
        try:
            result = spec.run(**self.arguments(spec.needs))
        except NotCheckedError as skip:
            return Check(spec.name, CheckStatus.SKIPPED, str(skip))
        except Exception as err:  # a diagnosis reports a broken check instead of dying
            log.debug("doctor: check %s raised", spec.name.value, exc_info=True)
            return Check(
                spec.name,
                CheckStatus.FAIL,
                f"the check itself failed: {type(err).__name__}: {err}",
                finding=Finding.CHECK_ERROR,
            )
        if isinstance(result, Outcome):
            if spec.provides is None:
                raise TypeError(f"check {spec.name.value} returned a fact it does not provide")
            self.values[spec.provides] = result.fact
            return result.check
        return result


def run_checks(
    registry: Registry, facts: Mapping[str, object], *, scrub: Callable[[str], str]
) -> RunResult:
    """Run every check of ``registry`` in order, starting from the runner's ``facts``.

    ``scrub`` is applied to every reason and fix, after each check (then
    :func:`~rdsiamkit._redact.redact`): no secret a check touched leaves the run.
    """
    state = _Run(registry, facts)
    checks = []
    for spec in registry.order():
        started = time.perf_counter()
        check = state.run(spec)
        check = attrs.evolve(
            check,
            reason=redact(scrub(check.reason)),
            fix=None if check.fix is None else redact(scrub(check.fix)),
            elapsed=time.perf_counter() - started,
        )
        log.debug("doctor: %s %s: %s", check.name.value, check.status.value, check.reason)
        checks.append(check)
    return RunResult(checks=tuple(checks), facts=dict(state.values))
