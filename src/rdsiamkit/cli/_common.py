"""What every command shares: exit codes, output, shared options, the admin connection.

Text a command prints for people goes through :func:`say`, which translates
the library's Python phrases (``region=``, ``verify=True``) into this command
line's flags (see :mod:`rdsiamkit.cli._messages`); JSON and secrets are
printed as they are.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import attrs
import psycopg

from rdsiamkit._libpq import PAM_REFUSED, password_refused_by_pam, server_line
from rdsiamkit.cli._messages import to_cli
from rdsiamkit.errors import (
    AuthModeError,
    AwsApiError,
    CABundleError,
    ConfigurationError,
    ConnectError,
    CredentialsError,
    RdsIamError,
    SwitchRefusedError,
    VerificationFailedError,
)

__all__ = [
    "ADMIN_DBNAME",
    "Command",
    "ExitCode",
    "add_admin",
    "add_json",
    "add_target",
    "admin_connection",
    "exit_code_for",
    "libpq_options",
    "out",
    "pairs",
    "print_json",
    "provider",
    "read_text",
    "say",
    "target",
]


class ExitCode(enum.IntEnum):
    """What ``rdsiamkit`` exits with; scripts may rely on these numbers."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    CONNECT = 4
    INTERRUPTED = 130


@attrs.frozen
class Command:
    """One subcommand: its name, help line, argparse set-up and what runs it."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# -- output --------------------------------------------------------------------------------


def out(args: argparse.Namespace) -> TextIO:
    """Where a command's result goes (``args.stdout`` in tests, else stdout)."""
    stream: TextIO = getattr(args, "stdout", None) or sys.stdout
    return stream


def print_json(args: argparse.Namespace, value: object) -> None:
    """``value`` as indented JSON, exactly as the library gave it (no translation)."""
    print(json.dumps(value, indent=2, default=str), file=out(args))


def say(args: argparse.Namespace, text: object) -> None:
    """Text for people, with the library's keyword phrases said as this CLI's flags."""
    print(to_cli(str(text)), file=out(args))


def pairs(rows: Sequence[tuple[str, object]]) -> str:
    """``key  value`` lines, keys aligned."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in rows)


def read_text(path: str) -> str:
    """A UTF-8 text file (``-``: stdin), without the byte-order mark Excel and others add."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigurationError(f"cannot read {path}: it is not UTF-8 text ({err})") from err
    except OSError as err:
        raise ConfigurationError(f"cannot read {path}: {err}") from err
    return text.removeprefix("\ufeff")


# -- shared options ------------------------------------------------------------------------


def add_json(parser: argparse.ArgumentParser) -> None:
    """``--json``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


#: The database admin commands log in to unless told otherwise: it exists on every RDS
#: instance, where libpq's default (a database named like the user) usually does not.
ADMIN_DBNAME = "postgres"


def _add_endpoint(
    group: argparse._ArgumentGroup, *, user_help: str, dbname_help: str = "database name"
) -> None:
    group.add_argument("--host", "-H", default=os.environ.get("PGHOST"), help="endpoint name")
    group.add_argument("--port", "-p", type=int, default=None, help="port (default 5432)")
    group.add_argument("--user", "-U", default=os.environ.get("PGUSER"), help=user_help)
    group.add_argument("--dbname", "-d", default=None, help=dbname_help)
    group.add_argument("--hostaddr", default=None, help="IP address to dial (tunnels, no DNS)")
    group.add_argument("--sslrootcert", default=None, help="CA bundle (default: RDS bundle)")


def add_target(parser: argparse.ArgumentParser) -> None:
    """libpq-style options for where to log in (the IAM login of token/connect/doctor)."""
    _add_endpoint(parser.add_argument_group("database"), user_help="database user")
    _add_aws(parser)


def _add_aws(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS")
    group.add_argument("--region", default=None, help="AWS region (default: from the endpoint)")
    group.add_argument("--profile", default=None, help="AWS profile to sign with")
    group.add_argument("--token-host", default=None, help="endpoint the token names (tunnels)")
    group.add_argument("--token-port", type=int, default=None, help="port the token names")


def add_admin(parser: argparse.ArgumentParser) -> None:
    """libpq-style options for the admin connection (status / switch / plan)."""
    group = parser.add_argument_group(
        "admin connection",
        "password from PGPASSWORD (or ~/.pgpass), or --iam to log in with a token",
    )
    _add_endpoint(
        group,
        user_help="admin user",
        dbname_help=f"database name (default: PGDATABASE, else {ADMIN_DBNAME})",
    )
    group.add_argument("--iam", action="store_true", help="log in with an IAM token")
    _add_aws(parser)


def libpq_options(args: argparse.Namespace) -> dict[str, Any]:
    """The libpq keywords given on the command line (no password, ever)."""
    if not args.host:
        raise ConfigurationError("--host is required (or set PGHOST): the endpoint name")
    if not args.user:
        raise ConfigurationError("--user is required (or set PGUSER)")
    options: dict[str, Any] = {"host": args.host, "user": args.user}
    for key in ("port", "dbname", "hostaddr", "sslrootcert"):
        value = getattr(args, key)
        if value is not None:
            options[key] = str(value)
    return options


def target(args: argparse.Namespace) -> Any:
    """The connection spec the options name (a ``rdsiamkit.connection.ConnectSpec``)."""
    from rdsiamkit.connection import ConnectSpec  # noqa: PLC0415

    return ConnectSpec.build(
        "",
        libpq_options(args),
        region=args.region,
        token_host=args.token_host,
        token_port=args.token_port,
    )


def provider(args: argparse.Namespace) -> Any:
    """A token provider for ``--profile`` / ``--region``."""
    from rdsiamkit.tokens import TokenProvider  # noqa: PLC0415 - keeps boto3 off --help

    return TokenProvider(profile=args.profile, region=args.region)


# TCP keepalives and a user timeout (ms) for the admin connection the CLI opens: a dead
# path is noticed within about a minute instead of the system's two hours.
_ADMIN_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}


@contextmanager
def admin_connection(args: argparse.Namespace) -> Iterator[psycopg.Connection[Any]]:
    """The admin connection: verify-full TLS, password from libpq's PGPASSWORD, or --iam."""
    from rdsiamkit.connection import ConnectSpec  # noqa: PLC0415

    # A silent network must not hold an admin session (and its open transaction) forever.
    options = {**libpq_options(args), **_ADMIN_KEEPALIVES}
    if args.dbname is None and not os.environ.get("PGDATABASE"):
        options["dbname"] = ADMIN_DBNAME  # libpq's default (the user name) rarely exists
    if args.iam:
        from rdsiamkit.connection import connect  # noqa: PLC0415

        conn = connect(
            autocommit=True,
            token_provider=provider(args),
            region=args.region,
            token_host=args.token_host,
            token_port=args.token_port,
            **options,
        )
    else:
        spec = ConnectSpec.build("", options, region=args.region)
        try:
            conn = psycopg.connect(autocommit=True, **spec.params)
        except psycopg.OperationalError as err:
            message = server_line(err)
            if PAM_REFUSED in message:
                message += ". " + password_refused_by_pam(spec.user)
            raise ConnectError(
                f"cannot log in as {spec.user}@{spec.host}:{spec.port} with a password "
                f"(PGPASSWORD): {message}",
                host=spec.host,
                port=spec.port,
                user=spec.user,
            ) from err
    with conn:
        yield conn


# -- exit codes ----------------------------------------------------------------------------

# Most specific first: the first class an error is an instance of decides the exit code.
_EXIT_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (SwitchRefusedError, ExitCode.REFUSED),
    (VerificationFailedError, ExitCode.FAILED),
    (ConfigurationError, ExitCode.USAGE),
    (CABundleError, ExitCode.USAGE),
    (ConnectError, ExitCode.CONNECT),
    (CredentialsError, ExitCode.CONNECT),
    (AwsApiError, ExitCode.FAILED),
    (AuthModeError, ExitCode.FAILED),
    (RdsIamError, ExitCode.FAILED),
    (psycopg.OperationalError, ExitCode.CONNECT),
    (psycopg.Error, ExitCode.FAILED),
)


# What a failed download of the CA bundle is caused by (a missing file is a usage error).
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError)


def exit_code_for(err: BaseException) -> ExitCode:
    """The documented exit code for an error a command raised."""
    if isinstance(err, CABundleError) and isinstance(err.__cause__, _NETWORK_ERRORS):
        return ExitCode.CONNECT
    for cls, code in _EXIT_CODES:
        if isinstance(err, cls):
            return code
    return ExitCode.FAILED
