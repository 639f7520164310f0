"""Reading how roles log in: one user's mode or status, or every role of a cluster.

Each read is one catalog round trip (:mod:`rdsiamkit.roles._catalog`), the same
walk pg_hba's ``+rds_iam`` takes, so what it says is what the server will do.
"""

from __future__ import annotations

from typing import TypeVar

import psycopg

from rdsiamkit.errors import UserNotFoundError
from rdsiamkit.roles._catalog import (
    RoleState,
    check_name,
    read_all_states,
    read_modes,
    read_states,
)
from rdsiamkit.roles.models import AuthMode, AuthStatus, mode_of

__all__ = ["auth_status", "get_auth_mode", "list_states"]

_R = TypeVar("_R")


def get_auth_mode(conn: psycopg.Connection[_R], user: str) -> AuthMode:
    """How ``user`` logs in: IAM iff it reaches ``rds_iam`` as pg_hba's ``+rds_iam`` sees it."""
    (mode,) = read_modes(conn, [check_name(user)])
    if mode.oid is None:
        raise UserNotFoundError(f"role {user!r} does not exist")
    return mode_of(mode.is_iam)


def auth_status(conn: psycopg.Connection[_R], user: str) -> AuthStatus:
    """Mode, paths to ``rds_iam``, admin rights and conflicts of ``user``, in one round trip."""
    (state,) = read_states(conn, [check_name(user)])
    if state.oid is None:
        raise UserNotFoundError(f"role {user!r} does not exist")
    return AuthStatus._from_state(state)


def list_states(conn: psycopg.Connection[_R], *, include_nologin: bool) -> list[RoleState]:
    """Every login role (``include_nologin``: every role but ``rds_iam``), sorted by name.

    The server lists the roles and walks ``pg_auth_members`` for all of them in
    a single simple-protocol round trip: no query per user.
    """
    return read_all_states(conn, include_nologin=include_nologin)
