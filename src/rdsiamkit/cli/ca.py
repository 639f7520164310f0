"""``rdsiamkit ca``: the RDS CA bundle in use, or a fresh download of it."""

from __future__ import annotations

import argparse

from rdsiamkit.cli._common import Command, ExitCode, add_json, out, pairs, print_json

__all__ = ["COMMANDS"]


def _configure_ca(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show the RDS CA bundle in use, or download the current one."
    sub = parser.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="describe the bundle in use (or --path)")
    show.add_argument("--path", default=None, help="the bundle file to describe")
    add_json(show)
    update = sub.add_parser("update", help="download the official bundle into the user cache")
    update.add_argument("--partition", default="aws", help="aws, aws-cn, aws-us-gov")
    update.add_argument("--url", default=None, help="another https URL to fetch from")
    add_json(update)


def _run_ca(args: argparse.Namespace) -> int:
    from rdsiamkit.tls import inspect_ca_bundle, refresh_ca_bundle  # noqa: PLC0415

    if args.ca_command == "show":
        info = inspect_ca_bundle(args.path)
    else:
        info = refresh_ca_bundle(partition=args.partition, url=args.url)
    expired = info.expired()
    if args.json:
        print_json(
            args,
            {
                "path": str(info.path),
                "source": info.source,
                "sha256": info.sha256,
                "certificates": len(info.certificates),
                "expired": len(expired),
                "latest_expiry": info.latest_expiry.isoformat(),
            },
        )
        return ExitCode.OK
    rows: list[tuple[str, object]] = [
        ("path", info.path),
        ("source", info.source),
        ("sha256", info.sha256),
        ("certificates", f"{len(info.certificates)} ({len(expired)} expired)"),
        ("latest expiry", info.latest_expiry.isoformat()),
    ]
    print(pairs(rows), file=out(args))
    return ExitCode.OK


COMMANDS = (Command("ca", "show or update the RDS CA bundle", _configure_ca, _run_ca),)
