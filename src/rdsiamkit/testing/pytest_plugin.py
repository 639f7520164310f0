"""pytest fixtures for the RDS IAM emulator (registered through the ``pytest11`` entry point).

``rds_emulator_session`` starts one emulator for the whole session;
``rds_emulator`` hands the same emulator to a test and calls
:meth:`~rdsiamkit.testing.RdsIamEmulator.reset` afterwards, so knobs a test
turns (token age, policies, rate limit) do not leak into the next one.

If the emulator cannot start (not root, no PostgreSQL, no compiler...), the
tests that need it fail with the reason under ``CI=true`` and skip otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rdsiamkit.testing.emulator import RdsIamEmulator

__all__ = ["in_ci", "rds_emulator", "rds_emulator_session"]


def in_ci() -> bool:
    """True under ``CI`` = 1/true/yes/on: there a missing emulator is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _start(emulator: RdsIamEmulator) -> None:
    """Start, or fail (CI) / skip (elsewhere) the requesting test with the reason."""
    from rdsiamkit.errors import EmulatorError  # noqa: PLC0415 - keep plugin load light

    try:
        emulator.start()
    except EmulatorError as err:
        message = f"the RDS IAM emulator cannot start: {err}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def rds_emulator_session() -> Iterator[RdsIamEmulator]:
    """One running emulator shared by the whole test session."""
    from rdsiamkit.testing.emulator import RdsIamEmulator  # noqa: PLC0415

    emulator = RdsIamEmulator()
    _start(emulator)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def rds_emulator(rds_emulator_session: RdsIamEmulator) -> Iterator[RdsIamEmulator]:
    """The session's emulator, reset (knobs, policies, events) after the test.

    If an earlier test stopped it, it is started again (new port and data).
    """
    if not rds_emulator_session.started:
        _start(rds_emulator_session)
    try:
        yield rds_emulator_session
    finally:
        rds_emulator_session.reset()
