"""``rdsiamkit token`` and ``rdsiamkit connect``: an IAM token for a client, or psql with one."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from rdsiamkit.cli._common import (
    Command,
    ExitCode,
    add_json,
    add_target,
    out,
    print_json,
    provider,
    target,
)
from rdsiamkit.cli._proc import passfile_line, run_psql
from rdsiamkit.errors import ConfigurationError

__all__ = ["COMMANDS"]


# -- token ---------------------------------------------------------------------------------


def _configure_token(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print an IAM auth token for psql or another client (the only command that prints a "
        "secret). Valid for 15 minutes: PGPASSWORD=$(rdsiamkit token ...) psql ..."
    )
    add_target(parser)
    add_json(parser)


def _run_token(args: argparse.Namespace) -> int:
    issued = target(args).issue(provider(args))
    if args.json:
        print_json(
            args,
            {
                "token": issued.token,
                "host": issued.key.host,
                "port": issued.key.port,
                "user": issued.key.user,
                "region": issued.key.region,
                "identity": issued.key.identity,
                "expires_in": 900,
            },
        )
    else:
        print(issued.token, file=out(args))  # the secret itself: printed as it is
    return ExitCode.OK


# -- connect -------------------------------------------------------------------------------


def _configure_connect(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run psql with a fresh IAM token (in a private temporary PGPASSFILE that names only "
        "this endpoint and user, removed when psql ends; never on the command line or in the "
        "environment), sslmode=verify-full and the RDS CA bundle. Arguments after -- go to psql."
    )
    add_target(parser)
    parser.add_argument("--psql", default="psql", help="the psql executable")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the psql command (without the token)"
    )
    parser.add_argument("psql_args", nargs=argparse.REMAINDER, help="-- then psql arguments")
    add_json(parser)


# psql options naming where to connect, and the long and short options that take a value.
_PSQL_TARGET = {"dbname": "d", "host": "h", "port": "p", "username": "U"}
_PSQL_LONG_WITH_VALUE = frozenset(
    {"command", "dbname", "field-separator", "file", "host", "log-file", "output", "port", "pset"}
    | {"record-separator", "set", "table-attr", "username", "variable"}
)
_PSQL_SHORT_WITH_VALUE = frozenset("cdfFhLopPRTUv")


def _psql_target_option(arguments: Sequence[str]) -> str | None:
    """The first psql argument that would choose another server, database or user.

    ``-d`` would replace the conninfo (host, verify-full) while psql still sends
    PGPASSWORD, the token; the others are ignored by psql and misleading.
    """
    values = iter(arguments)
    for argument in values:
        if argument == "--":
            break  # the rest is positional: psql ignores it beside --dbname=<conninfo>
        if not argument.startswith("-") or argument == "-":
            continue
        if argument.startswith("--"):
            name, has_value, _ = argument[2:].partition("=")
            # getopt_long takes any unambiguous prefix: --db=x is --dbname=x.
            if name and any(option.startswith(name) for option in _PSQL_TARGET):
                return argument
            if name in _PSQL_LONG_WITH_VALUE and not has_value:
                next(values, None)
            continue
        for index, letter in enumerate(argument[1:], 1):
            if letter in _PSQL_TARGET.values():
                return argument
            if letter in _PSQL_SHORT_WITH_VALUE:
                if index == len(argument) - 1:
                    next(values, None)
                break
    return None


#: psql's exit code when the connection to the server failed or went bad.
_PSQL_CONNECTION_FAILED = 2
#: psql's exit code when a script stopped on an error (ON_ERROR_STOP).
_PSQL_SCRIPT_STOPPED = 3


def _run_connect(args: argparse.Namespace) -> int:
    if args.json and not args.dry_run:
        raise ConfigurationError("--json applies to --dry-run (connect hands over to psql)")
    spec = target(args)
    extra = list(args.psql_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    redirect = _psql_target_option(extra)
    if redirect is not None:
        raise ConfigurationError(
            f"psql argument {redirect!r} would connect elsewhere than the endpoint the token "
            "is signed for: use --host/--port/--user/--dbname of rdsiamkit connect instead"
        )
    argv = [args.psql, f"--dbname={spec.conninfo}", *extra]
    # PGPASSWORD reaches every server psql talks to (\connect too): keep all of them verified.
    tls_env = {"PGSSLMODE": spec.params["sslmode"], "PGSSLROOTCERT": spec.params["sslrootcert"]}
    if args.dry_run:
        _print_dry_run(args, spec, argv, tls_env)
        return ExitCode.OK
    executable = shutil.which(args.psql)
    if executable is None:
        raise ConfigurationError(f"cannot find {args.psql!r}: install psql or pass --psql PATH")
    issued = spec.issue(provider(args))
    sys.stdout.flush()
    sys.stderr.flush()
    passfile = passfile_line(spec.host, spec.port, spec.user, issued.token)
    code = run_psql(executable, argv, {**os.environ, **tls_env}, passfile_text=passfile)
    return _exit_code(code, spec)


def _exit_code(psql: int, spec: Any) -> int:
    """psql's exit code said in the kit's table (psql's 2 is the kit's usage error), explained.

    psql exits 0 when all went well, 1 on a fatal error of its own (a file not found), 2
    when the connection failed or went bad, 3 when a script stopped on an error
    (``ON_ERROR_STOP``); a negative code is the signal that ended it.
    """
    if psql == 0:
        return ExitCode.OK
    if psql < 0:
        return 128 - psql
    if psql == _PSQL_CONNECTION_FAILED:
        print(
            f"rdsiamkit connect: psql could not connect as {spec.describe()}, or lost the "
            f"connection (psql exit code 2; exit {int(ExitCode.CONNECT)}: a connection "
            f"failure). Run `{spec.doctor_command()}` to find out why.",
            file=sys.stderr,
        )
        return ExitCode.CONNECT
    what = (
        "a script error stopped it (ON_ERROR_STOP)" if psql == _PSQL_SCRIPT_STOPPED else "it failed"
    )
    print(f"rdsiamkit connect: psql exited {psql}: {what}", file=sys.stderr)
    return ExitCode.FAILED


def _print_dry_run(
    args: argparse.Namespace, spec: Any, argv: list[str], tls_env: dict[str, str]
) -> None:
    """The psql command line, the token replaced by the ``rdsiamkit token`` that mints it."""
    token_command = ["rdsiamkit", "token", "--host", spec.token_host]
    token_command += ["--port", str(spec.token_port), "--user", spec.user]
    if spec.region:
        token_command += ["--region", spec.region]
    if args.profile:
        token_command += ["--profile", args.profile]
    if args.json:
        print_json(args, {"argv": argv, "env": {"PGPASSWORD": "<IAM token>", **tls_env}})
    else:
        password = f'PGPASSWORD="$({shlex.join(token_command)})"'
        tls = " ".join(f"{k}={shlex.quote(v)}" for k, v in tls_env.items())
        print(f"{password} {tls} {shlex.join(argv)}", file=out(args))


COMMANDS = (
    Command(
        "token",
        "print an IAM auth token (the only command printing a secret)",
        _configure_token,
        _run_token,
    ),
    Command(
        "connect",
        "run psql with a fresh IAM token over verify-full TLS",
        _configure_connect,
        _run_connect,
    ),
)
