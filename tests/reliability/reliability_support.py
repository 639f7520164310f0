"""Helpers the reliability tests share (a module, not a conftest, so imports are unambiguous)."""

from __future__ import annotations

from typing import Any

from rdsiamkit.testing import RdsIamEmulator


def kit_options(emu: RdsIamEmulator, user: str) -> dict[str, Any]:
    """Libpq keywords for the kit: endpoint name, 127.0.0.1, the emulator's CA; no sslmode."""
    info: dict[str, Any] = dict(emu.conninfo(user))
    info.pop("sslmode")  # the kit chooses verify-full itself
    return info
