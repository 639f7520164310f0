"""``rdsiamkit discover``: what AWS says about a cluster, instance or proxy (or all of them)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rdsiamkit._render import text_table
from rdsiamkit.cli._common import Command, ExitCode, add_json, out, pairs, print_json, say

if TYPE_CHECKING:
    from rdsiamkit.discovery import DatabaseResource

__all__ = ["COMMANDS"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Describe the RDS cluster, instance or proxy TARGET names (an endpoint host name, or an "
        "identifier tried as a cluster, an instance, then a proxy): IAM auth, the resource id "
        "rds-db ARNs need, endpoints. Without TARGET, list every one in the region."
    )
    parser.add_argument("target", nargs="?", metavar="TARGET", help="endpoint or identifier")
    parser.add_argument("--region", default=None, help="AWS region (default: the endpoint's)")
    parser.add_argument("--profile", default=None, help="AWS profile to ask with")
    add_json(parser)


def resource_dict(resource: DatabaseResource) -> dict[str, object]:
    """Plain values of one resource, for JSON."""
    return {
        "kind": resource.kind.value,
        "identifier": resource.identifier,
        "arn": resource.arn,
        "resource_id": resource.resource_id,
        "iam_resource_id": resource.iam_resource_id,
        "account_id": resource.account_id,
        "region": resource.region,
        "partition": resource.partition,
        "port": resource.port,
        "iam_auth_enabled": resource.iam_auth_enabled,
        "engine": resource.engine,
        "engine_version": resource.engine_version,
        "status": resource.status,
        "cluster_identifier": resource.cluster_identifier,
        "endpoints": [
            {"kind": e.kind.value, "host": e.host, "port": e.port} for e in resource.endpoints
        ],
        "pending_modifications": list(resource.pending_modifications),
        "db_user_arn_pattern": resource.db_user_arn("*"),
    }


def _iam(resource: DatabaseResource) -> str:
    state = "enabled" if resource.iam_auth_enabled else "DISABLED"
    if "IAMDatabaseAuthenticationEnabled" in resource.pending_modifications:
        state += " (change pending)"
    return state


def _facts(resource: DatabaseResource) -> str:
    rows: list[tuple[str, object]] = [
        ("resource", f"{resource.kind.value} {resource.identifier}"),
        ("arn", resource.arn),
        ("IAM database auth", _iam(resource)),
        ("resource id for rds-db ARNs", resource.iam_resource_id),
        ("rds-db:connect ARN", resource.db_user_arn("<db user>")),
        ("engine", " ".join(x for x in (resource.engine, resource.engine_version) if x) or None),
        ("status", resource.status),
    ]
    if resource.cluster_identifier:
        rows.append(("member of cluster", resource.cluster_identifier))
    for e in resource.endpoints:
        port = e.port if e.port is not None else resource.port
        rows.append((f"endpoint ({e.kind.value})", e.host if port is None else f"{e.host}:{port}"))
    return pairs(rows)


def _listing(resources: list[DatabaseResource]) -> str:
    rows = [
        [
            r.kind.value,
            r.identifier,
            _iam(r),
            r.iam_resource_id,
            " ".join(x for x in (r.engine, r.engine_version) if x) or "-",
            r.status or "-",
            r.endpoints[0].host if r.endpoints else "-",
        ]
        for r in resources
    ]
    headers = ["kind", "identifier", "iam auth", "resource id", "engine", "status", "endpoint"]
    return f"{len(resources)} database resource(s)\n" + text_table(headers, rows)


def _run(args: argparse.Namespace) -> int:
    from rdsiamkit._aws import boto3_session, core_session  # noqa: PLC0415 - boto3 off --help
    from rdsiamkit.discovery import discover, list_databases  # noqa: PLC0415

    session = boto3_session(core_session(profile=args.profile, region=args.region))
    if args.target:
        resource = discover(args.target, session=session, region=args.region)
        if args.json:
            print_json(args, resource_dict(resource))
        else:
            print(_facts(resource), file=out(args))
        return ExitCode.OK
    resources = list_databases(session=session, region=args.region)
    if args.json:
        print_json(args, [resource_dict(r) for r in resources])
    else:
        say(args, _listing(resources))
    return ExitCode.OK


COMMANDS = (
    Command("discover", "what AWS says about a database (IAM auth, resource id)", _configure, _run),
)
