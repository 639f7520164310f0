"""``rdsiamkit status``, ``switch`` and ``plan``: how users log in, and changing it safely."""

from __future__ import annotations

import argparse
import enum
import sys
from typing import Any, TextIO

import attrs

from rdsiamkit._secret import Secret
from rdsiamkit.cli._common import (
    Command,
    ExitCode,
    add_admin,
    add_json,
    admin_connection,
    out,
    print_json,
    provider,
    read_text,
    say,
)
from rdsiamkit.cli._planfile import read_plan_file
from rdsiamkit.cli._proc import terminations_interrupt
from rdsiamkit.errors import ConfigurationError

__all__ = ["COMMANDS", "Progress"]


# -- status --------------------------------------------------------------------------------


def _configure_status(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show how users log in (IAM or password, following pg_hba's +rds_iam), with admin "
        "flags; with --aws also what AWS says about the cluster."
    )
    parser.add_argument("users", nargs="*", metavar="USER", help="only these users")
    parser.add_argument("--all-roles", action="store_true", help="include NOLOGIN roles")
    parser.add_argument("--aws", action="store_true", help="add the AWS view (discover)")
    add_admin(parser)
    add_json(parser)


def _run_status(args: argparse.Namespace) -> int:
    from rdsiamkit.authmode import auth_status  # noqa: PLC0415
    from rdsiamkit.explore import list_users, summarize  # noqa: PLC0415

    if args.users and (args.aws or args.all_roles):
        raise ConfigurationError("--aws and --all-roles list every user: give no USER with them")
    with admin_connection(args) as conn:
        if args.users:
            statuses = [auth_status(conn, user) for user in args.users]
            if args.json:
                print_json(args, [_status_dict(s) for s in statuses])
            else:
                print("\n".join(str(s) for s in statuses), file=out(args))
            return ExitCode.OK
        if args.aws:
            session = provider(args).session()
            summary = summarize(
                conn,
                session=session,
                region=args.region,
                target=args.host,
                include_nologin=args.all_roles,
            )
            if args.json:
                print_json(args, {**summary.to_dict(), "users": summary.users.to_dicts()})
            else:
                say(args, summary)  # its aws_error may name a keyword (region=)
            return ExitCode.OK
        table = list_users(conn, include_nologin=args.all_roles)
    if args.json:
        print_json(args, table.to_dicts())
    else:
        print(table, file=out(args))
    return ExitCode.OK


def _status_dict(status: Any) -> dict[str, object]:
    return {
        "user": status.user,
        "mode": status.mode.value,
        "direct": status.direct,
        "paths": [list(p) for p in status.paths],
        "holders": list(status.holders),
        "can_login": status.can_login,
        "superuser": status.is_superuser,
        "admin": status.is_admin,
        "session_user": status.is_session_user,
        "conflicts": list(status.conflicts),
        "connection_limit": status.connection_limit,
        "valid_until": None if status.valid_until is None else status.valid_until.isoformat(),
    }


# -- switch --------------------------------------------------------------------------------


def _configure_switch(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Switch USER to IAM (GRANT rds_iam) or back to its password (REVOKE rds_iam), with "
        "set_auth_mode's safety rules: admins and your own user need --verify, which tests an "
        "IAM login and rolls the grant back if it fails."
    )
    parser.add_argument("target_user", metavar="USER", help="the user to switch")
    parser.add_argument("mode", choices=["iam", "password"], type=str.lower, help="new mode")
    parser.add_argument("--verify", action="store_true", help="test an IAM login; undo on fail")
    parser.add_argument(
        "--has-password",
        action="store_true",
        help="(to password) USER has a working password: allow it for an admin or yourself",
    )
    parser.add_argument(
        "--new-password-stdin",
        action="store_true",
        help="(to password) set a new password, read from the first line of stdin",
    )
    parser.add_argument("--dry-run", action="store_true", help="check and show, change nothing")
    add_admin(parser)
    add_json(parser)


def _run_switch(args: argparse.Namespace) -> int:
    from rdsiamkit.authmode import set_auth_mode  # noqa: PLC0415

    new_password = _read_new_password() if args.new_password_stdin else None
    # SIGTERM / SIGHUP (`timeout`, a closed terminal) must not end a verified switch between
    # its GRANT and the rollback of a failed verification: they raise, and the grant is undone.
    with terminations_interrupt(), admin_connection(args) as conn:
        token_provider = provider(args) if args.verify else None
        change = set_auth_mode(
            conn,
            args.target_user,
            args.mode,
            verify=args.verify,
            dry_run=args.dry_run,
            new_password=None if new_password is None else new_password.reveal(),
            has_password=args.has_password,
            token_provider=token_provider,
            region=args.region,
            token_host=args.token_host,
            token_port=args.token_port,
        )
    if args.json:
        print_json(args, attrs.asdict(change, value_serializer=_plain))
    else:
        say(args, change.message)
        for statement in change.statements:  # SQL: printed as it is
            print(f"  {statement}", file=out(args))
    return ExitCode.OK


def _read_new_password() -> Secret:
    """The first line of stdin, without its line end, kept in a Secret."""
    line = sys.stdin.readline()
    if not line.strip("\r\n"):
        raise ConfigurationError("--new-password-stdin: stdin's first line is empty")
    return Secret(line.rstrip("\r\n"))


def _plain(_: object, __: object, value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


# -- plan ----------------------------------------------------------------------------------


def _configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Plan (and with --apply, apply) auth modes for many users from FILE: CSV or text lines "
        '\'user,mode\' (or \'user mode\'), or JSON ({"user": "mode"} or [{"user": .., '
        "\"mode\": ..}]). '-' reads stdin. A dry run by default."
    )
    parser.add_argument("file", metavar="FILE", help="the user,mode list ('-': stdin)")
    parser.add_argument("--apply", action="store_true", help="apply the plan (default: dry run)")
    parser.add_argument(
        "--skip-refused",
        action="store_true",
        help="with --apply, switch the others even if some users are refused",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="roles per round trip")
    parser.add_argument(
        "--summary",
        action="store_true",
        help="counts by change and refusal reason, and the first rows only (for large plans)",
    )
    add_admin(parser)
    add_json(parser)


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per batch elsewhere."""

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        end = "" if self.tty and done < total else "\n"
        prefix = "\r" if self.tty else ""
        self.stream.write(f"{prefix}applying [{bar}] {done}/{total}{end}")
        self.stream.flush()


def _run_plan(args: argparse.Namespace) -> int:
    from rdsiamkit.authmode import plan_auth_modes  # noqa: PLC0415

    name = "<stdin>" if args.file == "-" else args.file
    wanted = read_plan_file(read_text(args.file), name=name)
    if not wanted:
        raise ConfigurationError(f"{name}: no 'user,mode' lines")
    with admin_connection(args) as conn:
        plan = plan_auth_modes(conn, wanted)
        result = None
        refused_block = bool(plan.refused) and not args.skip_refused
        if args.apply and not refused_block:
            stderr = getattr(args, "stderr", None) or sys.stderr
            result = plan.apply(conn, batch_size=args.batch_size, progress=Progress(stderr))
    if args.json:
        rows = plan.to_dicts()
        shown: dict[str, object] = {"changes": rows}
        if args.summary:
            shown = {"counts": _plan_counts(plan), "first": rows[:SUMMARY_ROWS]}
        print_json(
            args,
            {
                "applied": result is not None,
                **shown,
                "result": None if result is None else attrs.asdict(result),
            },
        )
    else:
        say(args, plan.summary(rows=SUMMARY_ROWS) if args.summary else plan)
        if result is not None:
            say(args, result)
        elif args.apply:
            say(
                args,
                f"not applied: {len(plan.refused)} user(s) refused; fix them, or pass "
                "--skip-refused to switch the others",
            )
        else:
            say(args, "dry run: nothing changed (pass --apply to apply)")
    if plan.refused and (refused_block or not args.apply):
        return ExitCode.REFUSED
    return ExitCode.OK


#: Rows `plan --summary` shows after the counts.
SUMMARY_ROWS = 10


def _plan_counts(plan: Any) -> dict[str, object]:
    """``plan --summary --json``: how many roles per change, and refusals by reason."""
    reasons: dict[str, int] = {}
    for refusal in plan.refused:
        reasons[refusal.reason.value] = reasons.get(refusal.reason.value, 0) + 1
    return {
        "grant": len(plan.to_grant),
        "revoke": len(plan.to_revoke),
        "unchanged": len(plan.unchanged),
        "refused": len(plan.refused),
        "refused_by_reason": dict(sorted(reasons.items())),
    }


COMMANDS = (
    Command(
        "status", "users and their auth modes (IAM / password)", _configure_status, _run_status
    ),
    Command("switch", "switch one user to IAM or password, safely", _configure_switch, _run_switch),
    Command(
        "plan", "plan / apply auth modes for many users from a file", _configure_plan, _run_plan
    ),
)
