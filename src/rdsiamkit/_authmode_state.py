"""Former home of the catalog SQL layer, now :mod:`rdsiamkit.roles._catalog`.

Kept so that existing imports (``printable``, ``RoleState``, ``read_states``...)
keep working; new code imports from :mod:`rdsiamkit.roles`.
"""

from __future__ import annotations

from rdsiamkit.roles._catalog import (
    IAM_ROLE,
    KERBEROS_ROLE,
    MAX_NAME_BYTES,
    RoleMode,
    RoleState,
    check_name,
    modes_query,
    names_literal,
    parse_modes,
    parse_states,
    read_modes,
    read_states,
    round_trip,
    state_query,
)
from rdsiamkit.roles._text import printable

__all__ = [
    "IAM_ROLE",
    "KERBEROS_ROLE",
    "MAX_NAME_BYTES",
    "RoleMode",
    "RoleState",
    "check_name",
    "modes_query",
    "names_literal",
    "parse_modes",
    "parse_states",
    "printable",
    "read_modes",
    "read_states",
    "round_trip",
    "state_query",
]
