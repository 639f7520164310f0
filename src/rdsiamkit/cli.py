"""The ``rdsiamkit`` command line.

Each subcommand is a function registered in :data:`_COMMANDS` with its
argparse set-up; ``main`` dispatches.  Every command but ``demo`` takes
``--json``.  Only ``token`` ever prints a secret.

Exit codes, for scripts:

====  ===========================================================================
0     success (doctor: no check failed; policy check: allowed)
1     the command ran and found a problem (a check failed, a policy denies, a
      verified switch failed and was rolled back, a stale plan, an AWS error)
2     usage error: bad arguments or options, missing file, invalid input
3     refused by a safety rule (SwitchRefusedError: lockout guard, inherited
      membership, Kerberos user), or a plan with refused roles (dry run, or
      ``--apply`` without ``--skip-refused``)
4     cannot connect or authenticate (database login, TLS, credentials, a CA
      bundle download)
130   interrupted (Ctrl-C)
====  ===========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import os
import shlex
import shutil
import sys
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

import attrs
import psycopg

from rdsiamkit._cliproc import Terminated, passfile_line, run_psql, terminations_interrupt
from rdsiamkit._planfile import read_plan_file
from rdsiamkit._secret import Secret
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

__all__ = ["ExitCode", "build_parser", "main"]


class ExitCode(enum.IntEnum):
    """What ``rdsiamkit`` exits with; scripts may rely on these numbers."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    CONNECT = 4
    INTERRUPTED = 130


@attrs.frozen
class _Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# -- output --------------------------------------------------------------------------------


def _out(args: argparse.Namespace) -> TextIO:
    stream: TextIO = getattr(args, "stdout", None) or sys.stdout
    return stream


def _print_json(args: argparse.Namespace, value: object) -> None:
    print(json.dumps(value, indent=2, default=str), file=_out(args))


def _pairs(rows: Sequence[tuple[str, object]]) -> str:
    """``key  value`` lines, keys aligned."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in rows)


# -- shared options ------------------------------------------------------------------------


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _add_target(parser: argparse.ArgumentParser) -> None:
    """libpq-style options for where to log in (the IAM login of token/connect/doctor)."""
    group = parser.add_argument_group("database")
    group.add_argument("--host", "-H", default=os.environ.get("PGHOST"), help="endpoint name")
    group.add_argument("--port", "-p", type=int, default=None, help="port (default 5432)")
    group.add_argument("--user", "-U", default=os.environ.get("PGUSER"), help="database user")
    group.add_argument("--dbname", "-d", default=None, help="database name")
    group.add_argument("--hostaddr", default=None, help="IP address to dial (tunnels, no DNS)")
    group.add_argument("--sslrootcert", default=None, help="CA bundle (default: RDS bundle)")
    _add_aws(parser)


def _add_aws(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS")
    group.add_argument("--region", default=None, help="AWS region (default: from the endpoint)")
    group.add_argument("--profile", default=None, help="AWS profile to sign with")
    group.add_argument("--token-host", default=None, help="endpoint the token names (tunnels)")
    group.add_argument("--token-port", type=int, default=None, help="port the token names")


def _add_admin(parser: argparse.ArgumentParser) -> None:
    """libpq-style options for the admin connection (status / switch / plan)."""
    group = parser.add_argument_group(
        "admin connection",
        "password from PGPASSWORD (or ~/.pgpass), or --iam to log in with a token",
    )
    group.add_argument("--host", "-H", default=os.environ.get("PGHOST"), help="endpoint name")
    group.add_argument("--port", "-p", type=int, default=None, help="port (default 5432)")
    group.add_argument("--user", "-U", default=os.environ.get("PGUSER"), help="admin user")
    group.add_argument("--dbname", "-d", default=None, help="database name")
    group.add_argument("--hostaddr", default=None, help="IP address to dial (tunnels, no DNS)")
    group.add_argument("--sslrootcert", default=None, help="CA bundle (default: RDS bundle)")
    group.add_argument("--iam", action="store_true", help="log in with an IAM token")
    _add_aws(parser)


def _libpq(args: argparse.Namespace) -> dict[str, Any]:
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


def _target(args: argparse.Namespace) -> Any:
    from rdsiamkit.connection import Target  # noqa: PLC0415

    return Target.build(
        "",
        _libpq(args),
        region=args.region,
        token_host=args.token_host,
        token_port=args.token_port,
    )


def _provider(args: argparse.Namespace) -> Any:
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
def _admin_connection(args: argparse.Namespace) -> Iterator[psycopg.Connection[Any]]:
    """The admin connection: verify-full TLS, password from libpq's PGPASSWORD, or --iam."""
    from rdsiamkit.connection import Target  # noqa: PLC0415

    # A silent network must not hold an admin session (and its open transaction) forever.
    options = {**_libpq(args), **_ADMIN_KEEPALIVES}
    if args.iam:
        from rdsiamkit.connection import connect  # noqa: PLC0415

        conn = connect(
            autocommit=True,
            token_provider=_provider(args),
            region=args.region,
            token_host=args.token_host,
            token_port=args.token_port,
            **options,
        )
    else:
        target = Target.build("", options, region=args.region)
        try:
            conn = psycopg.connect(autocommit=True, **target.params)
        except psycopg.OperationalError as err:
            raise ConnectError(
                f"cannot log in as {target.user}@{target.host}:{target.port} with a password "
                f"(PGPASSWORD): {str(err).strip()}",
                host=target.host,
                port=target.port,
                user=target.user,
            ) from err
    with conn:
        yield conn


# -- token ---------------------------------------------------------------------------------


def _configure_token(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print an IAM auth token for psql or another client (the only command that prints a "
        "secret). Valid for 15 minutes: PGPASSWORD=$(rdsiamkit token ...) psql ..."
    )
    _add_target(parser)
    _add_json(parser)


def _run_token(args: argparse.Namespace) -> int:
    target = _target(args)
    issued = target.issue(_provider(args))
    if args.json:
        _print_json(
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
        print(issued.token, file=_out(args))
    return ExitCode.OK


# -- connect -------------------------------------------------------------------------------


def _configure_connect(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run psql with a fresh IAM token (in a private temporary PGPASSFILE that names only "
        "this endpoint and user, removed when psql ends; never on the command line or in the "
        "environment), sslmode=verify-full and the RDS CA bundle. Arguments after -- go to psql."
    )
    _add_target(parser)
    parser.add_argument("--psql", default="psql", help="the psql executable")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the psql command (without the token)"
    )
    parser.add_argument("psql_args", nargs=argparse.REMAINDER, help="-- then psql arguments")
    _add_json(parser)


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


def _run_connect(args: argparse.Namespace) -> int:
    if args.json and not args.dry_run:
        raise ConfigurationError("--json applies to --dry-run (connect hands over to psql)")
    target = _target(args)
    extra = list(args.psql_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    redirect = _psql_target_option(extra)
    if redirect is not None:
        raise ConfigurationError(
            f"psql argument {redirect!r} would connect elsewhere than the endpoint the token "
            "is signed for: use --host/--port/--user/--dbname of rdsiamkit connect instead"
        )
    argv = [args.psql, f"--dbname={target.conninfo}", *extra]
    # PGPASSWORD reaches every server psql talks to (\connect too): keep all of them verified.
    tls_env = {"PGSSLMODE": target.params["sslmode"], "PGSSLROOTCERT": target.params["sslrootcert"]}
    if args.dry_run:
        token_command = ["rdsiamkit", "token", "--host", target.token_host]
        token_command += ["--port", str(target.token_port), "--user", target.user]
        if target.region:
            token_command += ["--region", target.region]
        if args.profile:
            token_command += ["--profile", args.profile]
        if args.json:
            _print_json(args, {"argv": argv, "env": {"PGPASSWORD": "<IAM token>", **tls_env}})
        else:
            password = f'PGPASSWORD="$({shlex.join(token_command)})"'
            tls = " ".join(f"{k}={shlex.quote(v)}" for k, v in tls_env.items())
            print(f"{password} {tls} {shlex.join(argv)}", file=_out(args))
        return ExitCode.OK
    executable = shutil.which(args.psql)
    if executable is None:
        raise ConfigurationError(f"cannot find {args.psql!r}: install psql or pass --psql PATH")
    issued = target.issue(_provider(args))
    sys.stdout.flush()
    sys.stderr.flush()
    passfile = passfile_line(target.host, target.port, target.user, issued.token)
    return run_psql(executable, argv, {**os.environ, **tls_env}, passfile_text=passfile)


# -- status --------------------------------------------------------------------------------


def _configure_status(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show how users log in (IAM or password, following pg_hba's +rds_iam), with admin "
        "flags; with --aws also what AWS says about the cluster."
    )
    parser.add_argument("users", nargs="*", metavar="USER", help="only these users")
    parser.add_argument("--all-roles", action="store_true", help="include NOLOGIN roles")
    parser.add_argument("--aws", action="store_true", help="add the AWS view (discover)")
    _add_admin(parser)
    _add_json(parser)


def _run_status(args: argparse.Namespace) -> int:
    from rdsiamkit.authmode import auth_status  # noqa: PLC0415
    from rdsiamkit.explore import list_users, summarize  # noqa: PLC0415

    if args.users and (args.aws or args.all_roles):
        raise ConfigurationError("--aws and --all-roles list every user: give no USER with them")
    with _admin_connection(args) as conn:
        if args.users:
            statuses = [auth_status(conn, user) for user in args.users]
            if args.json:
                _print_json(args, [_status_dict(s) for s in statuses])
            else:
                print("\n".join(str(s) for s in statuses), file=_out(args))
            return ExitCode.OK
        if args.aws:
            session = _provider(args).session()
            summary = summarize(
                conn,
                session=session,
                region=args.region,
                target=args.host,
                include_nologin=args.all_roles,
            )
            if args.json:
                _print_json(args, {**summary.to_dict(), "users": summary.users.to_dicts()})
            else:
                print(summary, file=_out(args))
            return ExitCode.OK
        table = list_users(conn, include_nologin=args.all_roles)
    if args.json:
        _print_json(args, table.to_dicts())
    else:
        print(table, file=_out(args))
    return ExitCode.OK


def _status_dict(status: Any) -> dict[str, object]:
    return {
        "user": status.user,
        "mode": status.mode.value,
        "direct": status.direct,
        "paths": [list(p) for p in status.paths],
        "holders": list(status.holders),
        "can_login": status.can_login,
        "superuser": status.is_superuser,
        "admin": status.is_admin,
        "session_user": status.is_session_user,
        "conflicts": list(status.conflicts),
        "connection_limit": status.connection_limit,
        "valid_until": None if status.valid_until is None else status.valid_until.isoformat(),
    }


# -- switch --------------------------------------------------------------------------------


def _configure_switch(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Switch USER to IAM (GRANT rds_iam) or back to its password (REVOKE rds_iam), with "
        "set_auth_mode's safety rules: admins and your own user need --verify, which tests an "
        "IAM login and rolls the grant back if it fails."
    )
    parser.add_argument("target_user", metavar="USER", help="the user to switch")
    parser.add_argument("mode", choices=["iam", "password"], type=str.lower, help="new mode")
    parser.add_argument("--verify", action="store_true", help="test an IAM login; undo on fail")
    parser.add_argument(
        "--has-password",
        action="store_true",
        help="(to password) USER has a working password: allow it for an admin or yourself",
    )
    parser.add_argument(
        "--new-password-stdin",
        action="store_true",
        help="(to password) set a new password, read from the first line of stdin",
    )
    parser.add_argument("--dry-run", action="store_true", help="check and show, change nothing")
    _add_admin(parser)
    _add_json(parser)


def _run_switch(args: argparse.Namespace) -> int:
    from rdsiamkit.authmode import set_auth_mode  # noqa: PLC0415

    new_password = _read_new_password() if args.new_password_stdin else None
    # SIGTERM / SIGHUP (`timeout`, a closed terminal) must not end a verified switch between
    # its GRANT and the rollback of a failed verification: they raise, and the grant is undone.
    with terminations_interrupt(), _admin_connection(args) as conn:
        provider = _provider(args) if args.verify else None
        change = set_auth_mode(
            conn,
            args.target_user,
            args.mode,
            verify=args.verify,
            dry_run=args.dry_run,
            new_password=None if new_password is None else new_password.reveal(),
            has_password=args.has_password,
            token_provider=provider,
            region=args.region,
            token_host=args.token_host,
            token_port=args.token_port,
        )
    if args.json:
        _print_json(args, attrs.asdict(change, value_serializer=_plain))
    else:
        print(change.message, file=_out(args))
        for statement in change.statements:
            print(f"  {statement}", file=_out(args))
    return ExitCode.OK


def _read_new_password() -> Secret:
    """The first line of stdin, without its line end, kept in a Secret."""
    line = sys.stdin.readline()
    if not line.strip("\r\n"):
        raise ConfigurationError("--new-password-stdin: stdin's first line is empty")
    return Secret(line.rstrip("\r\n"))


def _plain(_: object, __: object, value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


# -- plan ----------------------------------------------------------------------------------


def _configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Plan (and with --apply, apply) auth modes for many users from FILE: CSV or text lines "
        '\'user,mode\' (or \'user mode\'), or JSON ({"user": "mode"} or [{"user": .., '
        "\"mode\": ..}]). '-' reads stdin. A dry run by default."
    )
    parser.add_argument("file", metavar="FILE", help="the user,mode list ('-': stdin)")
    parser.add_argument("--apply", action="store_true", help="apply the plan (default: dry run)")
    parser.add_argument(
        "--skip-refused",
        action="store_true",
        help="with --apply, switch the others even if some users are refused",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="roles per round trip")
    _add_admin(parser)
    _add_json(parser)


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per batch elsewhere."""

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        end = "" if self.tty and done < total else "\n"
        prefix = "\r" if self.tty else ""
        self.stream.write(f"{prefix}applying [{bar}] {done}/{total}{end}")
        self.stream.flush()


def _run_plan(args: argparse.Namespace) -> int:
    from rdsiamkit.authmode import plan_auth_modes  # noqa: PLC0415

    name = "<stdin>" if args.file == "-" else args.file
    wanted = read_plan_file(_read_text(args.file), name=name)
    if not wanted:
        raise ConfigurationError(f"{name}: no 'user,mode' lines")
    with _admin_connection(args) as conn:
        plan = plan_auth_modes(conn, wanted)
        result = None
        refused_block = bool(plan.refused) and not args.skip_refused
        if args.apply and not refused_block:
            stderr = getattr(args, "stderr", None) or sys.stderr
            result = plan.apply(conn, batch_size=args.batch_size, progress=_Progress(stderr))
    if args.json:
        _print_json(
            args,
            {
                "applied": result is not None,
                "changes": plan.to_dicts(),
                "result": None if result is None else attrs.asdict(result),
            },
        )
    else:
        print(plan, file=_out(args))
        if result is not None:
            print(result, file=_out(args))
        elif args.apply:
            print(
                f"not applied: {len(plan.refused)} user(s) refused; fix them, or pass "
                "--skip-refused to switch the others",
                file=_out(args),
            )
        else:
            print("dry run: nothing changed (pass --apply to apply)", file=_out(args))
    if plan.refused and (refused_block or not args.apply):
        return ExitCode.REFUSED
    return ExitCode.OK


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
    _add_json(build)
    parse = sub.add_parser("parse", help="split an ARN into its parts")
    parse.add_argument("arn", metavar="ARN")
    _add_json(parse)


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
        _print_json(args, parts)
    elif args.arn_command == "build":
        print(str(arn), file=_out(args))
    else:
        print(_pairs(list(parts.items())), file=_out(args))
    return ExitCode.OK


# -- policy --------------------------------------------------------------------------------


def _configure_policy(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write a least-privilege rds-db:connect policy, or check one offline."
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="print a policy allowing rds-db:connect on ARNs")
    build.add_argument("arns", nargs="+", metavar="ARN")
    build.add_argument("--sid", default=None)
    _add_json(build)
    check = sub.add_parser("check", help="does a policy allow rds-db:connect on ARN? (exit 0/1)")
    check.add_argument("arn", metavar="ARN")
    check.add_argument(
        "--policy", action="append", required=True, metavar="FILE", help="JSON file ('-': stdin)"
    )
    _add_json(check)


def _read_text(path: str) -> str:
    """A UTF-8 text file (``-``: stdin), without the byte-order mark Excel and others add."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigurationError(f"cannot read {path}: it is not UTF-8 text ({err})") from err
    except OSError as err:
        raise ConfigurationError(f"cannot read {path}: {err}") from err
    return text.removeprefix("\ufeff")


def _run_policy(args: argparse.Namespace) -> int:
    from rdsiamkit.policy import connect_policy, evaluate_policy  # noqa: PLC0415

    if args.policy_command == "build":
        _print_json(args, connect_policy(args.arns, sid=args.sid))
        return ExitCode.OK
    decision = evaluate_policy([_read_text(p) for p in args.policy], args.arn)
    if args.json:
        _print_json(
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
        print(decision, file=_out(args))
    return ExitCode.OK if decision.allowed else ExitCode.FAILED


# -- doctor --------------------------------------------------------------------------------


def _configure_doctor(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Find out why an IAM login fails: checks DNS, TCP, TLS, credentials, region, token "
        "target, IAM auth on the cluster, the policy, rds_iam membership, token age and a real "
        "login, and names the first failing one with its fix. Exit 0: no check failed."
    )
    _add_target(parser)
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
    group.add_argument("--admin-dbname", default=None, help="admin database")
    group.add_argument("--offline", action="store_true", help="make no AWS API call")
    group.add_argument("--no-login", action="store_true", help="skip the final login")
    group.add_argument("--timeout", type=float, default=5.0, help="seconds per network step")
    _add_json(parser)


def _run_doctor(args: argparse.Namespace) -> int:
    from rdsiamkit.doctor import diagnose  # noqa: PLC0415

    options = _libpq(args)
    token = sys.stdin.read().strip() if args.token_stdin else None
    policies = [_read_text(p) for p in args.policy] if args.policy else None
    with ExitStack() as stack:
        admin: psycopg.Connection[Any] | None = None
        if args.admin_user:
            overrides = {"user": args.admin_user, "iam": False, "dbname": args.admin_dbname}
            admin_args = argparse.Namespace(**{**vars(args), **overrides})
            admin = stack.enter_context(_admin_connection(admin_args))
        diagnosis = diagnose(
            region=args.region,
            profile=args.profile,
            token_host=args.token_host,
            token_port=args.token_port,
            admin_conn=admin,
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
        print(diagnosis.to_json(), file=_out(args))
    else:
        print(diagnosis, file=_out(args))
    return ExitCode.OK if diagnosis.ok else ExitCode.FAILED


# -- ca ------------------------------------------------------------------------------------


def _configure_ca(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show the RDS CA bundle in use, or download the current one."
    sub = parser.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="describe the bundle in use (or --path)")
    show.add_argument("--path", default=None, help="the bundle file to describe")
    _add_json(show)
    update = sub.add_parser("update", help="download the official bundle into the user cache")
    update.add_argument("--partition", default="aws", help="aws, aws-cn, aws-us-gov")
    update.add_argument("--url", default=None, help="another https URL to fetch from")
    _add_json(update)


def _run_ca(args: argparse.Namespace) -> int:
    from rdsiamkit.tls import inspect_ca_bundle, refresh_ca_bundle  # noqa: PLC0415

    if args.ca_command == "show":
        info = inspect_ca_bundle(args.path)
    else:
        info = refresh_ca_bundle(partition=args.partition, url=args.url)
    expired = info.expired()
    if args.json:
        _print_json(
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
    print(_pairs(rows), file=_out(args))
    return ExitCode.OK


# -- demo ----------------------------------------------------------------------------------


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
        "token",
        "print an IAM auth token (the only command printing a secret)",
        _configure_token,
        _run_token,
    ),
    _Command(
        "connect",
        "run psql with a fresh IAM token over verify-full TLS",
        _configure_connect,
        _run_connect,
    ),
    _Command(
        "status", "users and their auth modes (IAM / password)", _configure_status, _run_status
    ),
    _Command(
        "switch", "switch one user to IAM or password, safely", _configure_switch, _run_switch
    ),
    _Command(
        "plan", "plan / apply auth modes for many users from a file", _configure_plan, _run_plan
    ),
    _Command("arn", "build or parse rds-db ARNs", _configure_arn, _run_arn),
    _Command("policy", "write or check rds-db:connect policies", _configure_policy, _run_policy),
    _Command("doctor", "diagnose a failing IAM login", _configure_doctor, _run_doctor),
    _Command("ca", "show or update the RDS CA bundle", _configure_ca, _run_ca),
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
        epilog="exit codes: 0 ok, 1 check failed / problem found, 2 usage error, "
        "3 refused by a safety rule, 4 cannot connect or authenticate, 130 interrupted",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
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
        return ExitCode.FAILED
    except (RdsIamError, psycopg.Error) as err:
        code = exit_code_for(err)
        print(f"rdsiamkit {args.command}: error: {err}", file=sys.stderr)
        return code
