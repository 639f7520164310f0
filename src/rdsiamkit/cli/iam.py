"""``rdsiamkit arn`` and ``rdsiamkit policy``: the rds-db ARN and the policy that allows it."""

from __future__ import annotations

import argparse

from rdsiamkit.cli._common import Command, ExitCode, add_json, out, pairs, print_json, read_text
from rdsiamkit.cli._messages import to_cli

__all__ = ["COMMANDS"]


# -- arn -----------------------------------------------------------------------------------


def _configure_arn(parser: argparse.ArgumentParser) -> None:
    parser.description = "Build or parse the rds-db ARN an IAM policy must allow."
    sub = parser.add_subparsers(dest="arn_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build the ARN for a user")
    build.add_argument("--region", required=True)
    build.add_argument("--account-id", required=True)
    build.add_argument("--resource-id", required=True, help="cluster-… / db-… / prx-… or *")
    build.add_argument("--user", "-U", required=True, help="database user (or a pattern)")
    build.add_argument("--partition", default=None, help="default: the region's")
    add_json(build)
    parse = sub.add_parser("parse", help="split an ARN into its parts")
    parse.add_argument("arn", metavar="ARN")
    add_json(parse)


def _run_arn(args: argparse.Namespace) -> int:
    from rdsiamkit.arn import DbUserArn  # noqa: PLC0415

    if args.arn_command == "build":
        options = {
            "region": args.region,
            "account_id": args.account_id,
            "resource_id": args.resource_id,
            "db_user": args.user,
        }
        if args.partition:
            options["partition"] = args.partition
        arn = DbUserArn(**options)
    else:
        arn = DbUserArn.parse(args.arn)
    parts = {
        "arn": str(arn),
        "partition": arn.partition,
        "region": arn.region,
        "account_id": arn.account_id,
        "resource_id": arn.resource_id,
        "db_user": arn.db_user,
        "resource_kind": None if arn.resource_kind is None else arn.resource_kind.value,
        "is_pattern": arn.is_pattern,
    }
    if args.json:
        print_json(args, parts)
    elif args.arn_command == "build":
        print(str(arn), file=out(args))
    else:
        print(pairs(list(parts.items())), file=out(args))
    return ExitCode.OK


# -- policy --------------------------------------------------------------------------------


def _configure_policy(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write a least-privilege rds-db:connect policy, or check one offline."
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="print a policy allowing rds-db:connect on ARNs")
    build.add_argument("arns", nargs="+", metavar="ARN")
    build.add_argument("--sid", default=None)
    add_json(build)
    check = sub.add_parser("check", help="does a policy allow rds-db:connect on ARN? (exit 0/1)")
    check.add_argument("arn", metavar="ARN")
    check.add_argument(
        "--policy", action="append", required=True, metavar="FILE", help="JSON file ('-': stdin)"
    )
    add_json(check)


def _run_policy(args: argparse.Namespace) -> int:
    from rdsiamkit.policy import connect_policy, evaluate_policy  # noqa: PLC0415

    if args.policy_command == "build":
        print_json(args, connect_policy(args.arns, sid=args.sid))
        return ExitCode.OK
    decision = evaluate_policy([read_text(p) for p in args.policy], args.arn)
    if args.json:
        print_json(
            args,
            {
                "allowed": decision.allowed,
                "outcome": decision.outcome.value,
                "action": decision.action,
                "resource": decision.resource,
                "statement": None if decision.statement is None else str(decision.statement),
                "reason": decision.reason,
            },
        )
    else:
        print(to_cli(str(decision)), file=out(args))
    return ExitCode.OK if decision.allowed else ExitCode.FAILED


COMMANDS = (
    Command("arn", "build or parse rds-db ARNs", _configure_arn, _run_arn),
    Command("policy", "write or check rds-db:connect policies", _configure_policy, _run_policy),
)
