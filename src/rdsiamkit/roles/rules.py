"""The one refusal rule book of auth-mode switches: pure functions of catalog state.

:func:`decide` says, for one role's :class:`~rdsiamkit.roles._catalog.RoleState`
and a wanted mode, whether to switch it, leave it, or refuse (with why and what
to do instead).  :func:`rdsiamkit.authmode.set_auth_mode` asks it before and
again right before its GRANT / REVOKE, :func:`~rdsiamkit.authmode.plan_auth_modes`
asks it for every role (then adds :func:`plan_conflicts`), and
:meth:`~rdsiamkit.AuthModePlan.apply` asks it again through :func:`staleness`.
No I/O here: a new rule is a branch in :func:`decide_password` or
:func:`decide_iam`, a :class:`~rdsiamkit.RefusalReason` if none fits, and unit
tests on hand-built states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from rdsiamkit.errors import (
    ConfigurationError,
    InheritedMembershipError,
    LockoutRefusedError,
    RdsIamError,
    SwitchRefusedError,
    UserNotFoundError,
)
from rdsiamkit.roles._catalog import IAM_ROLE, RoleState
from rdsiamkit.roles._text import ident, printable
from rdsiamkit.roles.models import AuthMode, PlannedSwitch, RefusalReason, kerberos_conflict

__all__ = [
    "REFUSAL_ERRORS",
    "Decision",
    "decide",
    "granting",
    "plan_conflicts",
    "raise_refusal",
    "staleness",
]


@attrs.frozen
class Decision:
    """What to do with one role: switch it, leave it, or refuse (with why)."""

    switch: bool = False
    reason: RefusalReason | None = None
    detail: str = ""


def decide(
    state: RoleState,
    target: AuthMode,
    *,
    verify: bool,
    include_members: bool = False,
    password_ok: bool = False,
) -> Decision:
    """The one rule book for :func:`set_auth_mode`, plans, and re-checks at apply time.

    ``password_ok``: a switch to PASSWORD sets a new password or the caller said
    the role has a working one.
    """
    user = printable(state.name)
    if state.oid is None:
        return Decision(
            reason=RefusalReason.USER_NOT_FOUND, detail=f"role {state.name!r} does not exist"
        )
    if user == IAM_ROLE:
        return Decision(
            reason=RefusalReason.RESERVED_ROLE,
            detail="rds_iam is the role that marks IAM users, not a user to switch",
        )
    if target is AuthMode.PASSWORD:
        return decide_password(state, include_members=include_members, password_ok=password_ok)
    return decide_iam(state, verify=verify)


def decide_password(state: RoleState, *, include_members: bool, password_ok: bool) -> Decision:
    """To PASSWORD: refused when IAM is inherited, for a group with members, or for a
    role that could be left without a working password."""
    user = printable(state.name)
    if state.holders:
        return Decision(reason=RefusalReason.INHERITED_MEMBERSHIP, detail=inherited_detail(state))
    if state.is_iam and state.member_count and not include_members:
        return Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"{user} has {state.member_count} member role(s) below it that would switch "
                "to PASSWORD with it, and any of them without a password would be locked "
                "out; switch it alone with set_auth_mode(..., include_members=True) once "
                "they have passwords"
            ),
        )
    why = guard_reasons(state) if state.is_iam and not password_ok else []
    if why:
        return Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"{user} is {' and '.join(why)}: after REVOKE rds_iam it must log in with "
                "its password, and a role made for IAM often has none, so it could no "
                "longer log in at all. Switch it alone with set_auth_mode(..., "
                "new_password=...) to set one in the same transaction, or with "
                "has_password=True if it has a working password"
            ),
        )
    return Decision(switch=state.is_iam)


def decide_iam(state: RoleState, *, verify: bool) -> Decision:
    """To IAM: refused for a Kerberos user, over admin members, or for an admin (or the
    session's user) unless the switch is verified with an IAM login."""
    user = printable(state.name)
    if state.is_iam:
        return Decision()
    if state.in_rds_ad:
        return Decision(reason=RefusalReason.KERBEROS, detail=kerberos_conflict(state.name))
    if state.guarded_members:
        members = ", ".join(map(printable, state.guarded_members))
        return Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"granting rds_iam to {user} also makes its member role(s) {members} need IAM, "
                "and they are admins or this session's user; switch each of them alone with "
                f"verify=True, or remove them from {user} first"
            ),
        )
    why = guard_reasons(state)
    if why and not verify:
        return Decision(
            reason=RefusalReason.LOCKOUT_GUARD,
            detail=(
                f"{user} is {' and '.join(why)}: if its IAM login does not work (IAM policy, "
                "region, endpoint...) it can no longer log in at all. Switch it alone with "
                "verify=True: that grants, tests an IAM login as "
                f"{user}, and revokes again if the login fails"
            ),
        )
    return Decision(switch=True)


def guard_reasons(state: RoleState) -> list[str]:
    """Why a lockout of this role would hurt, each a phrase; empty: it would not."""
    why = []
    if state.is_session_user:
        why.append("this session's user")
    if state.is_superuser:
        why.append("a superuser")
    elif state.can_create_role:
        why.append("an admin (CREATEROLE)")
    elif state.in_rds_superuser:
        why.append("an admin (member of rds_superuser)")
    return why


def inherited_detail(state: RoleState) -> str:
    """Why a REVOKE cannot switch a role that inherits IAM, and the statements that can."""
    user = ident(state.name)
    vias = state.via
    cuts = [f"REVOKE {', '.join(ident(v) for v in vias)} FROM {user}"] if vias else []
    cuts.append(
        f"REVOKE {ident(IAM_ROLE)} FROM {', '.join(ident(h) for h in state.holders)} "
        f"(switches every member of {', '.join(map(printable, state.holders))})"
    )
    also = " It also has a direct grant, which the switch would revoke." if state.direct else ""
    shown = "; ".join(" -> ".join(map(printable, p)) for p in state.inherited_paths)
    name = printable(state.name)
    through = ", ".join(map(printable, vias or state.holders))
    return (
        f"{name} needs IAM through {through} (shortest paths: {shown or 'through a cycle'}), "
        f"so revoking rds_iam from {name} cannot switch it to PASSWORD.{also} Cut every path "
        f"first, with {' or '.join(cuts)}; then switch it again"
    )


REFUSAL_ERRORS: dict[RefusalReason, type[RdsIamError]] = {
    RefusalReason.USER_NOT_FOUND: UserNotFoundError,
    RefusalReason.RESERVED_ROLE: ConfigurationError,
    RefusalReason.INHERITED_MEMBERSHIP: InheritedMembershipError,
    RefusalReason.LOCKOUT_GUARD: LockoutRefusedError,
    RefusalReason.KERBEROS: SwitchRefusedError,
    RefusalReason.PLAN_CONFLICT: SwitchRefusedError,
}


def raise_refusal(decision: Decision) -> None:
    """Raise the exception of ``decision``'s refusal, if it is one."""
    if decision.reason is not None:
        raise REFUSAL_ERRORS[decision.reason](decision.detail)


def plan_conflicts(
    states: Sequence[RoleState],
    wanted: Mapping[str, AuthMode],
    decisions: Mapping[str, Decision],
) -> dict[str, Decision]:
    """Refuse each GRANT that would switch roles this same plan wants on PASSWORD.

    A GRANT to a group switches its members too, and the per-batch read-back of
    a later batch would not look at a member revoked in an earlier one.
    """
    grants = granting(states, wanted, decisions)
    caught: dict[str, list[str]] = {}
    for state in states:
        if wanted[state.name] is AuthMode.PASSWORD:
            for group in grants.intersection(state.member_of_requested):
                caught.setdefault(group, []).append(state.name)
    return {
        group: Decision(
            reason=RefusalReason.PLAN_CONFLICT,
            detail=(
                f"granting rds_iam to {printable(group)} would also switch its member role(s) "
                f"{', '.join(map(printable, sorted(members)))} to IAM, but this plan wants them "
                f"on PASSWORD; drop one of the two from the plan, or take them out of "
                f"{printable(group)}"
            ),
        )
        for group, members in caught.items()
    }


def granting(
    states: Sequence[RoleState], wanted: Mapping[str, AuthMode], decisions: Mapping[str, Decision]
) -> set[str]:
    """The roles a plan grants ``rds_iam`` to."""
    return {s.name for s in states if wanted[s.name] is AuthMode.IAM and decisions[s.name].switch}


def staleness(state: RoleState, change: PlannedSwitch) -> str:
    """Empty if ``change`` still follows from ``state``; else what changed."""
    if state.oid != change.oid:
        return "dropped" if state.oid is None else "dropped and re-created"
    if change.also_through and state.is_iam:
        # Switched by an earlier batch's GRANT to a group of the plan, as planned:
        # its own GRANT still stands if the rules would still allow it.
        state = attrs.evolve(state, is_iam=False)
    decision = decide(state, change.after, verify=False)
    if decision.reason is not None:
        return f"now refused: {decision.detail}"
    if not decision.switch:
        return f"already {change.after}"
    return ""
