"""The command table, the parser, and ``main``: run a command, turn its error into an exit code."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

import psycopg

from rdsiamkit.cli import (
    access,
    admin,
    ca,
    demo,
    discover,
    doctor,
    emulator,
    iam,
    token_connect,
)
from rdsiamkit.cli._common import ExitCode, exit_code_for
from rdsiamkit.cli._logging import cli_logging, restore_logging
from rdsiamkit.cli._messages import to_cli
from rdsiamkit.cli._proc import Terminated
from rdsiamkit.errors import RdsIamError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = (
    *token_connect.COMMANDS,
    *admin.COMMANDS,
    *iam.COMMANDS,
    *discover.COMMANDS,
    *access.COMMANDS,
    *doctor.COMMANDS,
    *ca.COMMANDS,
    *demo.COMMANDS,
    *emulator.COMMANDS,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rdsiamkit",
        description="Amazon RDS / Aurora PostgreSQL IAM database authentication toolkit.",
        epilog="exit codes: 0 ok, 1 check failed / problem found, 2 usage error, "
        "3 refused by a safety rule, 4 cannot connect or authenticate, 130 interrupted",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the library's progress messages (log level INFO) on stderr",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    # The library only has a NullHandler: the CLI shows its warnings, once, here.
    handler, saved = cli_logging(verbose=args.verbose)
    error: list[str] = []
    try:
        return _run(args, error)
    finally:
        handler.finish(error[0] if error else None)
        restore_logging(handler, saved)


def _run(args: argparse.Namespace, error: list[str]) -> int:
    """Run the chosen command; an error's printed text is appended to ``error``."""
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        print("rdsiamkit: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Terminated as stop:
        print(f"rdsiamkit: stopped by {stop}", file=sys.stderr)
        return stop.exit_code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's final
        # flush of stdout from failing again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, sys.stdout.fileno())
            finally:
                os.close(devnull)
        # `rdsiamkit ... | head` is a normal way to read the start of a listing: success.
        return ExitCode.OK
    except (RdsIamError, psycopg.Error) as err:
        code = exit_code_for(err)
        # The library's message speaks Python (verify=True); say it in this CLI's flags.
        message = to_cli(str(err))
        error.append(message)
        print(f"rdsiamkit {args.command}: error: {message}", file=sys.stderr)
        return code
