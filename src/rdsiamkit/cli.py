"""The ``rdsiamkit`` command line.

Each subcommand is a function registered in :data:`_COMMANDS` with its
argparse set-up; ``main`` dispatches.  Exit codes: 0 success, 1 the command
found a problem, 2 it could not run (usage error, missing prerequisite).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import attrs

__all__ = ["main"]


@attrs.frozen
class _Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the local RDS IAM emulator and walk a user from password to IAM "
        "authentication and back, printing each step."
    )


def _run_demo(args: argparse.Namespace) -> int:
    from rdsiamkit.demo import run_demo  # noqa: PLC0415 - only this command needs it

    return run_demo(out=sys.stdout)


_COMMANDS = (
    _Command(
        name="demo",
        help="password -> IAM -> password round trip on the local emulator",
        configure=_configure_demo,
        run=_run_demo,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rdsiamkit",
        description="Amazon RDS / Aurora PostgreSQL IAM database authentication toolkit.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)
