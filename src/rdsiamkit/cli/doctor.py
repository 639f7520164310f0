"""``rdsiamkit doctor``: why an IAM login fails, and the fix, from the command line."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from typing import Any

import psycopg

from rdsiamkit.cli._common import (
    ADMIN_DBNAME,
    Command,
    ExitCode,
    add_json,
    add_target,
    admin_connection,
    libpq_options,
    out,
    read_text,
    say,
)
from rdsiamkit.errors import RdsIamError

__all__ = ["COMMANDS"]


def _configure_doctor(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Find out why an IAM login fails: checks DNS, TCP, TLS, credentials, region, token "
        "target, IAM auth on the cluster, the policy, rds_iam membership, token age and a real "
        "login, and names the first failing one with its fix. Exit 0: no check failed."
    )
    add_target(parser)
    group = parser.add_argument_group("evidence")
    group.add_argument(
        "--policy", action="append", metavar="FILE", help="policy JSON to evaluate offline"
    )
    group.add_argument("--principal-arn", default=None, help="IAM user/role to simulate")
    group.add_argument("--account-id", default=None, help="account owning the cluster")
    group.add_argument("--resource-id", default=None, help="cluster-… / db-… resource id")
    group.add_argument(
        "--token-stdin",
        action="store_true",
        help="read what the client sends as its password (token or not) from stdin",
    )
    group.add_argument("--admin-user", default=None, help="admin user (password: PGPASSWORD)")
    group.add_argument(
        "--admin-dbname",
        default=None,
        help=f"admin database (default: PGDATABASE, else {ADMIN_DBNAME})",
    )
    group.add_argument("--offline", action="store_true", help="make no AWS API call")
    group.add_argument("--no-login", action="store_true", help="skip the final login")
    group.add_argument("--timeout", type=float, default=5.0, help="seconds per network step")
    add_json(parser)


def _run_doctor(args: argparse.Namespace) -> int:
    from rdsiamkit.doctor import diagnose  # noqa: PLC0415

    options = libpq_options(args)
    token = sys.stdin.read().strip() if args.token_stdin else None
    policies = [read_text(p) for p in args.policy] if args.policy else None
    with ExitStack() as stack:
        admin: psycopg.Connection[Any] | None = None
        admin_error: str | None = None
        if args.admin_user:
            overrides = {"user": args.admin_user, "iam": False, "dbname": args.admin_dbname}
            admin_args = argparse.Namespace(**{**vars(args), **overrides})
            try:
                admin = stack.enter_context(admin_connection(admin_args))
            except (RdsIamError, psycopg.Error) as err:
                # What the doctor exists for (wrong CA, port closed, admin in rds_iam):
                # a finding of its own, and every other check still runs.
                admin_error = str(err)
        diagnosis = diagnose(
            region=args.region,
            profile=args.profile,
            token_host=args.token_host,
            token_port=args.token_port,
            admin_conn=admin,
            admin_error=admin_error,
            policies=policies,
            principal_arn=args.principal_arn,
            account_id=args.account_id,
            resource_id=args.resource_id,
            token=token,
            aws=not args.offline,
            login=not args.no_login,
            timeout=args.timeout,
            **options,
        )
    if args.json:
        print(diagnosis.to_json(), file=out(args))
    else:
        say(args, diagnosis)
    return ExitCode.OK if diagnosis.ok else ExitCode.FAILED


COMMANDS = (Command("doctor", "diagnose a failing IAM login", _configure_doctor, _run_doctor),)
