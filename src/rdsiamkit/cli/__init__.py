"""The ``rdsiamkit`` command line.

One module per command group (:mod:`~rdsiamkit.cli.token_connect`,
:mod:`~rdsiamkit.cli.admin`, :mod:`~rdsiamkit.cli.iam`,
:mod:`~rdsiamkit.cli.doctor`, :mod:`~rdsiamkit.cli.ca`,
:mod:`~rdsiamkit.cli.demo`), each listing its commands in ``COMMANDS``;
``main`` dispatches.  Every command but ``demo`` takes ``--json``.  Only
``token`` ever prints a secret.  The library speaks Python (``region=``,
``verify=True``); text this CLI prints for people says the same in flags
(``--region``, ``--verify``): see :mod:`rdsiamkit.cli._messages`.

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

from rdsiamkit.cli._app import build_parser, main
from rdsiamkit.cli._common import ExitCode, exit_code_for
from rdsiamkit.cli._common import admin_connection as _admin_connection  # noqa: F401
from rdsiamkit.cli._planfile import read_plan_file
from rdsiamkit.cli.admin import Progress as _Progress  # noqa: F401 - private names tests use

__all__ = ["ExitCode", "build_parser", "exit_code_for", "main", "read_plan_file"]
