"""``manage.py dbshell`` for the IAM backend: psql with a token from the kit.

The token never appears on psql's command line or in its environment: it goes
to a private, temporary passfile (``PGPASSFILE``) matching only the endpoint,
removed when psql ends (the CLI's ``rdsiamkit connect`` does the same).  psql
connects with the login's conninfo: verify-full against the RDS CA bundle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db.backends.postgresql.client import DatabaseClient as PostgresClient

from rdsiamkit.cli._proc import passfile_line, run_psql
from rdsiamkit.django._settings import kit_options, refuse_secrets
from rdsiamkit.errors import ConfigurationError

if TYPE_CHECKING:
    from rdsiamkit.django.base import DatabaseWrapper

__all__ = ["DatabaseClient"]


class DatabaseClient(PostgresClient):
    """psql logged in with an IAM token, through a private passfile."""

    connection: DatabaseWrapper

    @classmethod
    def settings_to_cmd_args_env(
        cls, settings_dict: dict[str, Any], parameters: Iterable[str]
    ) -> tuple[list[str], dict[str, str] | None]:
        """psql's arguments and TLS environment for these settings (no secret in either)."""
        refuse_secrets(settings_dict)
        args, env = super().settings_to_cmd_args_env(settings_dict, parameters)
        return args, env

    def runshell(self, parameters: Iterable[str]) -> None:
        """Run psql as the IAM user; a failed psql raises CalledProcessError, as Django's."""
        spec = self.connection.login_spec()
        executable = shutil.which(self.executable_name)
        if executable is None:
            raise ConfigurationError(f"cannot find {self.executable_name!r}: install psql")
        argv = [self.executable_name, f"--dbname={spec.conninfo}", *parameters]
        tls_env = {
            "PGSSLMODE": spec.params["sslmode"],
            "PGSSLROOTCERT": spec.params["sslrootcert"],
        }
        issued = spec.issue(kit_options(self.connection.settings_dict).sync_provider())
        passfile = passfile_line(spec.host, spec.port, spec.user, issued.token)
        code = run_psql(executable, argv, {**os.environ, **tls_env}, passfile_text=passfile)
        if code != 0:
            raise subprocess.CalledProcessError(code, argv)
