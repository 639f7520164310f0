"""``rdsiamkit access``: who can log in as whom (IAM principals against database users)."""

from __future__ import annotations

import argparse

from rdsiamkit.cli._common import (
    Command,
    ExitCode,
    add_admin,
    add_json,
    admin_connection,
    out,
    read_text,
    say,
)

__all__ = ["COMMANDS"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Map which IAM users and roles may log in as which database users, and report where "
        "the two sides disagree: dangling grants (a policy allows a user that is not IAM or "
        "does not exist), unreachable IAM users (no policy allows them), wildcard grants. "
        "Read-only. Exits 1 when anything is dangling or unreachable."
    )
    parser.add_argument(
        "--authorization",
        metavar="FILE",
        default=None,
        help="saved `aws iam get-account-authorization-details` JSON ('-': stdin); "
        "default: fetch it (needs iam:GetAccountAuthorizationDetails)",
    )
    parser.add_argument("--account-id", default=None, help="account of the rds-db ARNs")
    parser.add_argument(
        "--resource-id", default=None, help="resource id of the rds-db ARNs (default: discover)"
    )
    add_admin(parser)
    add_json(parser)


def _run(args: argparse.Namespace) -> int:
    from rdsiamkit.access import access_map  # noqa: PLC0415 - keeps it off --help

    document = None if args.authorization is None else read_text(args.authorization)
    session = None
    if document is None or args.resource_id is None:
        from rdsiamkit._aws import boto3_session, core_session  # noqa: PLC0415

        session = boto3_session(core_session(profile=args.profile, region=args.region))
    with admin_connection(args) as conn:
        amap = access_map(
            conn,
            account_authorization=document,
            session=session,
            region=args.region,
            account_id=args.account_id,
            resource_id=args.resource_id,
        )
    if args.json:
        print(amap.to_json(), file=out(args))
    else:
        say(args, amap)
    return ExitCode.OK if amap.clean else ExitCode.FAILED


COMMANDS = (
    Command("access", "who can log in as whom (IAM against the database)", _configure, _run),
)
