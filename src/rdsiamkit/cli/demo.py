"""``rdsiamkit demo``: the password -> IAM -> password round trip on the local emulator.

The scenario lives in :mod:`rdsiamkit.testing.demo`, beside the emulator it
starts; the library itself never imports :mod:`rdsiamkit.testing`.
"""

from __future__ import annotations

import argparse
import sys

from rdsiamkit.cli._common import Command

__all__ = ["COMMANDS"]


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the local RDS IAM emulator and walk a user from password to IAM "
        "authentication and back, printing each step."
    )


def _run_demo(args: argparse.Namespace) -> int:
    from rdsiamkit.testing.demo import run_demo  # noqa: PLC0415 - only this command needs it

    return run_demo(out=sys.stdout)


COMMANDS = (
    Command(
        name="demo",
        help="password -> IAM -> password round trip on the local emulator",
        configure=_configure_demo,
        run=_run_demo,
    ),
)
