"""``rdsiamkit emulator``: a standing local emulator for psql, the CLI and other languages.

``start`` runs :mod:`rdsiamkit.testing.standing` as a detached process; the
other actions talk to it through its control socket in the state directory.
Every key and password printed here is FAKE: only this emulator trusts it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rdsiamkit.cli._common import Command, ExitCode, out, print_json
from rdsiamkit.errors import ConfigurationError, EmulatorError

__all__ = ["COMMANDS", "default_state_dir", "shell_exports"]

_DAEMON_MODULE = "rdsiamkit.testing.standing"
#: Variables a shell may hold that would override or spoil the fake keys.
_UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def default_state_dir() -> Path:
    """``$XDG_RUNTIME_DIR/rdsiamkit-emulator``, else ``~/.cache/rdsiamkit/emulator``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "rdsiamkit-emulator"
    return Path.home() / ".cache" / "rdsiamkit" / "emulator"


def _state_dir(args: argparse.Namespace) -> Path:
    chosen: Path | None = args.state_dir
    return (chosen or default_state_dir()).absolute()


# -- the process ----------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaps counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_daemon(pid: int) -> bool:
    """True when ``pid`` is a standing emulator process (pids get reused)."""
    try:
        return _DAEMON_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)


def _running(state_dir: Path) -> dict[str, Any] | None:
    """The live emulator's state, or ``None`` when none answers in ``state_dir``."""
    from rdsiamkit.testing.standing import read_state, request  # noqa: PLC0415

    state = read_state(state_dir)
    if state is None or not _alive(int(state.get("pid", 0))):
        return None
    try:
        answer = request(state_dir, {"op": "ping"}, timeout=10.0)
    except EmulatorError:
        return None
    live: dict[str, Any] = answer["state"]
    return live


def _require(state_dir: Path) -> dict[str, Any]:
    state = _running(state_dir)
    if state is None:
        raise EmulatorError(
            f"no standing emulator runs in {state_dir}: start one with `rdsiamkit emulator start`"
        )
    return state


def _clean(state_dir: Path) -> None:
    """Remove what a dead emulator left (its state file and socket; the log stays)."""
    from rdsiamkit.testing.standing import CONTROL_FILE, STATE_FILE  # noqa: PLC0415

    for name in (STATE_FILE, CONTROL_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()


def _log_tail(state_dir: Path, lines: int = 20) -> str:
    from rdsiamkit.testing.standing import LOG_FILE  # noqa: PLC0415

    try:
        text = (state_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- output ---------------------------------------------------------------------------------


def environment(state: dict[str, Any]) -> dict[str, str]:
    """The variables that point libpq, the AWS SDKs and rdsiamkit at the emulator."""
    return {
        "PGHOST": state["endpoint"],
        "PGHOSTADDR": state["hostaddr"],
        "PGPORT": str(state["port"]),
        "PGDATABASE": "postgres",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": state["ca_file"],
        "AWS_ACCESS_KEY_ID": state["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": state["secret_access_key"],
        "AWS_DEFAULT_REGION": state["region"],
        "RDSIAMKIT_CA_BUNDLE": state["ca_file"],
    }


def shell_exports(state: dict[str, Any]) -> str:
    """``export NAME=value`` lines (values shell-quoted), with comments naming the master user."""
    lines = [
        f"# rdsiamkit emulator, pid {state['pid']}: the AWS keys and passwords below are FAKE,",
        "# trusted only by this local emulator.",
        f"# master user: {state['master_user']}  password: {state['master_password']}",
        f"# rds-db:connect resources: {state['db_user_arn_pattern']}",
        "unset " + " ".join(_UNSET),
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in environment(state).items()]
    return "\n".join(lines)


def _as_json(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "env": environment(state), "unset": list(_UNSET)}


# -- actions --------------------------------------------------------------------------------


def _start(args: argparse.Namespace) -> int:
    from rdsiamkit.testing.standing import LOG_FILE, read_state  # noqa: PLC0415

    state_dir = _state_dir(args)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    live = _running(state_dir)
    if live is not None:
        print(
            f"rdsiamkit emulator start: refused: one already runs in {state_dir} "
            f"(pid {live['pid']}); `rdsiamkit emulator stop` it first",
            file=sys.stderr,
        )
        return ExitCode.REFUSED
    _clean(state_dir)
    log_fd = os.open(state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(log_fd, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [sys.executable, "-m", _DAEMON_MODULE, "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            start_new_session=True,
        )
    deadline = time.monotonic() + args.timeout
    while (state := read_state(state_dir)) is None or state.get("pid") != process.pid:
        if process.poll() is not None:
            raise EmulatorError(
                f"the standing emulator exited with status {process.returncode} before it was "
                f"ready; {state_dir / LOG_FILE} ends with:\n{_log_tail(state_dir)}"
            )
        if time.monotonic() > deadline:
            process.terminate()
            raise EmulatorError(
                f"the standing emulator was not ready after {args.timeout:g} s; "
                f"{state_dir / LOG_FILE} ends with:\n{_log_tail(state_dir)}"
            )
        time.sleep(0.1)
    _show(args, state)
    if not args.json:
        print(
            f'# started in the background; `eval "$(rdsiamkit emulator env)"` sets these, '
            f"`rdsiamkit emulator stop` ends it (state in {state_dir})",
            file=out(args),
        )
    return ExitCode.OK


def _show(args: argparse.Namespace, state: dict[str, Any]) -> None:
    if args.json:
        print_json(args, _as_json(state))
    else:
        print(shell_exports(state), file=out(args))


def _env(args: argparse.Namespace) -> int:
    _show(args, _require(_state_dir(args)))
    return ExitCode.OK


def _stop(args: argparse.Namespace) -> int:
    from rdsiamkit.testing.standing import read_state, request  # noqa: PLC0415

    state_dir = _state_dir(args)
    state = read_state(state_dir)
    pid = int(state.get("pid", 0)) if state else 0
    if not pid or not _alive(pid):
        _clean(state_dir)
        print(f"rdsiamkit emulator stop: no standing emulator runs in {state_dir}", file=sys.stderr)
        return ExitCode.FAILED
    try:
        request(state_dir, {"op": "stop"}, timeout=10.0)
    except EmulatorError:
        if _is_daemon(pid):
            os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, args.timeout):
        if _is_daemon(pid):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10.0):
            raise EmulatorError(f"the standing emulator (pid {pid}) did not stop")
    _clean(state_dir)
    print(f"stopped the standing emulator (pid {pid})", file=out(args))
    return ExitCode.OK


def _add_user(args: argparse.Namespace) -> int:
    from rdsiamkit.testing.standing import request  # noqa: PLC0415

    state_dir = _state_dir(args)
    _require(state_dir)
    password: str | None = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigurationError("--password-stdin: stdin held no password")
    message = {"op": "add_user", "name": args.name, "iam": args.iam, "password": password}
    answer = request(state_dir, message)
    if args.json:
        print_json(args, {k: v for k, v in answer.items() if k != "ok"})
        return ExitCode.OK
    how = "IAM token (member of rds_iam)" if answer["iam"] else "password"
    if not answer["iam"] and password is None:
        how = "nothing yet (no password, not in rds_iam)"
    print(f"created user {answer['name']}: logs in with {how}", file=out(args))
    if answer["iam"]:
        print(f"rds-db:connect resource: {answer['arn']}", file=out(args))
    return ExitCode.OK


def _allow(args: argparse.Namespace) -> int:
    from rdsiamkit.testing.standing import request  # noqa: PLC0415

    state_dir = _state_dir(args)
    _require(state_dir)
    message = {"op": "allow", "access_key_id": args.access_key_id, "patterns": args.patterns}
    answer = request(state_dir, message)
    if args.json:
        print_json(args, {k: v for k, v in answer.items() if k != "ok"})
        return ExitCode.OK
    print(f"access key {answer['access_key_id']} may now connect as:", file=out(args))
    for pattern in answer["patterns"]:
        print(f"  {pattern}", file=out(args))
    return ExitCode.OK


def _add_credentials(args: argparse.Namespace) -> int:
    from rdsiamkit.testing.standing import request  # noqa: PLC0415

    state_dir = _state_dir(args)
    _require(state_dir)
    answer = request(state_dir, {"op": "add_credentials"})
    creds: dict[str, str] = answer["credentials"]
    if args.json:
        print_json(args, {"note": answer["note"], **creds})
        return ExitCode.OK
    print(f"# FAKE key, trusted only by this local emulator ({creds['arn']})", file=out(args))
    exports = {
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
    }
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}", file=out(args))
    return ExitCode.OK


# -- the parser -----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, json: bool = True) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the state file, control socket and log live (default: "
        "$XDG_RUNTIME_DIR/rdsiamkit-emulator, else ~/.cache/rdsiamkit/emulator)",
    )
    if json:
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "A standing local RDS IAM emulator for psql, this CLI and other languages' clients: "
        "start it in the background, print its connection settings and FAKE keys as shell "
        'exports (eval "$(rdsiamkit emulator env)") or JSON, add users and key policies, stop it.'
    )
    actions = parser.add_subparsers(dest="emulator_action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start one in the background and print `env`")
    _common(start)
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    start.set_defaults(emulator_run=_start)
    env = actions.add_parser("env", help="its settings and fake keys as shell exports or JSON")
    _common(env)
    env.set_defaults(emulator_run=_env)
    stop = actions.add_parser("stop", help="stop it and remove its server and files")
    _common(stop, json=False)
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    stop.set_defaults(emulator_run=_stop)
    user = actions.add_parser("add-user", help="create a login role (IAM or password)")
    _common(user)
    user.add_argument("name", metavar="NAME", help="the role name")
    user.add_argument("--iam", action="store_true", help="grant rds_iam (log in with tokens)")
    user.add_argument(
        "--password-stdin", action="store_true", help="read the role's password from stdin"
    )
    user.set_defaults(emulator_run=_add_user)
    allow = actions.add_parser("allow", help="limit a fake key to rds-db:connect resource patterns")
    _common(allow)
    allow.add_argument("access_key_id", metavar="ACCESS_KEY_ID", help="one of its fake keys")
    allow.add_argument(
        "patterns",
        metavar="PATTERN",
        nargs="+",
        help="a full arn:...:rds-db:... pattern, dbuser:RESOURCE_ID/USER (the emulator's "
        "partition, region and account go in front), or a user name pattern such as app_*",
    )
    allow.set_defaults(emulator_run=_allow)
    creds = actions.add_parser("add-credentials", help="mint another fake access key")
    _common(creds)
    creds.set_defaults(emulator_run=_add_credentials)


def _run(args: argparse.Namespace) -> int:
    if not hasattr(args, "json"):
        args.json = False
    code: int = args.emulator_run(args)
    return code


COMMANDS = (
    Command(
        "emulator",
        "a standing local emulator for psql and other clients (start|env|stop|...)",
        _configure,
        _run,
    ),
)
