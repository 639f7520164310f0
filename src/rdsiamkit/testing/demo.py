"""``rdsiamkit demo``: the IAM-auth round trip, end to end, on the local RDS emulator.

The scenario is the one every RDS team walks once: a user logs in with a
password; an admin switches it to IAM (``GRANT rds_iam``); the password now
fails with ``PAM authentication failed``; a token signed with AWS credentials
works; switching back (``REVOKE rds_iam``) restores the password.  Each step
is a method of :class:`_Demo`, so swapping one for the public API is local.
Switching and the IAM login go through the public API (``set_auth_mode``,
``get_auth_mode``, ``connect``); the password logins use plain psycopg, as an
application without the kit would.  Secrets are never printed.

It lives in :mod:`rdsiamkit.testing`, beside the emulator it starts, so the
library never imports the testing package; ``rdsiamkit demo`` (the CLI) runs it.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from typing import Any, TextIO

import psycopg
from psycopg.conninfo import make_conninfo

from rdsiamkit.authmode import AuthMode, get_auth_mode, set_auth_mode
from rdsiamkit.connection import connect
from rdsiamkit.errors import EmulatorError, RdsIamError
from rdsiamkit.testing.emulator import RdsIamEmulator
from rdsiamkit.tokens import TokenProvider

__all__ = ["run_demo"]

USER = "app_user"


class DemoStepError(Exception):
    """A step saw something other than what RDS would do."""


def _server_message(err: psycopg.Error) -> str:
    """The server's ``FATAL:`` line of a failed login, else the whole message."""
    text = str(err).strip()
    _, found, fatal = text.rpartition("FATAL:")
    return fatal.strip() if found else text


class _Demo:
    def __init__(self, emulator: RdsIamEmulator) -> None:
        self.emu = emulator
        self.password = secrets.token_urlsafe(18)

    def _login(self, password: str) -> tuple[str, str]:
        conninfo = make_conninfo(**self.emu.conninfo(USER, password=password))
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT current_database(), current_user").fetchone()
        if row is None:
            raise DemoStepError("SELECT current_database(), current_user returned no row")
        return str(row[0]), str(row[1])

    def start(self) -> str:
        self.emu.start()
        return (
            f"writer {self.emu.endpoint}:{self.emu.port} (dialled at {self.emu.hostaddr}), "
            f"TLS verify-full, started in {self.emu.startup_seconds:.2f} s"
        )

    def create_user(self) -> str:
        self.emu.create_user(USER, password=self.password)
        return f"master user {self.emu.master_user!r} created {USER!r} with a random password"

    def password_works(self) -> str:
        database, user = self._login(self.password)
        return f"logged in with the password: current_database={database}, current_user={user}"

    def _switch(self, mode: AuthMode) -> str:
        with self.emu.connect_admin() as admin:
            change = set_auth_mode(admin, USER, mode)
            now = get_auth_mode(admin, USER)
        if now is not mode:
            raise DemoStepError(f"set_auth_mode reported {change}, but the mode is {now}")
        return f"{change} (as {self.emu.master_user}); get_auth_mode says {now}"

    def switch_to_iam(self) -> str:
        return self._switch(AuthMode.IAM)

    def password_refused(self) -> str:
        try:
            self._login(self.password)
        except psycopg.OperationalError as err:
            message = _server_message(err)
            if "PAM authentication failed" not in message:
                raise DemoStepError(f"refused, but not by PAM: {message}") from err
            return f"refused as on RDS: {message}"
        raise DemoStepError("the password still works although the user is in rds_iam")

    def token_works(self) -> str:
        credentials = self.emu.add_credentials()
        provider = TokenProvider(session=credentials.boto3_session(region=self.emu.region))
        params: dict[str, Any] = dict(self.emu.conninfo(USER))
        del params["sslmode"]  # rdsiamkit.connect always uses verify-full
        with connect(**params, token_provider=provider) as conn:
            row = conn.execute("SELECT current_database(), current_user").fetchone()
            tls = conn.info.get_parameters().get("sslmode")
        if row is None or row[1] != USER:
            raise DemoStepError(f"logged in as {row!r}, expected {USER!r}")
        return (
            f"rdsiamkit.connect signed {provider.mint_count} token with key "
            f"{provider.identity} (sslmode={tls}): current_database={row[0]}, current_user={row[1]}"
        )

    def switch_back(self) -> str:
        return self._switch(AuthMode.PASSWORD)

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("Start the local RDS IAM emulator", self.start),
            (f"Create user {USER} with a password", self.create_user),
            ("Log in with the password", self.password_works),
            ("Switch the user to IAM authentication", self.switch_to_iam),
            ("Log in with the password again: must be refused", self.password_refused),
            ("Log in with an IAM auth token", self.token_works),
            ("Switch the user back to password authentication", self.switch_back),
            ("Log in with the password again: must work", self.password_works),
        ]


def run_demo(*, out: TextIO = sys.stdout) -> int:
    """Walk the scenario, printing each step; 0 when every step behaved like RDS."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say("rdsiamkit demo: switching a PostgreSQL user between password and IAM authentication")
    emulator = RdsIamEmulator()
    demo = _Demo(emulator)
    steps = demo.steps()
    try:
        for number, (title, step) in enumerate(steps, 1):
            say(f"[{number}/{len(steps)}] {title}")
            try:
                say(f"      ok: {step()}")
            except EmulatorError as err:
                say(f"      FAILED: the emulator cannot run here: {err}")
                return 2
            except (DemoStepError, RdsIamError, psycopg.Error) as err:
                detail = _server_message(err) if isinstance(err, psycopg.Error) else str(err)
                say(f"      FAILED: {detail}")
                return 1
    finally:
        emulator.stop()
    say("demo: every step behaved as on RDS")
    return 0
