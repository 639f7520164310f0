"""Read and switch database users between PASSWORD and IAM login, safely.

On RDS / Aurora PostgreSQL a role that reaches ``rds_iam`` through
``pg_auth_members`` (directly or through nested roles) must log in with an IAM
token; ``REVOKE rds_iam`` gives it its password back.  This module reads that
exactly as pg_hba's ``+rds_iam`` does (superusers are *not* members unless
granted), and switches it with guard rails:

* a membership inherited through another role cannot be revoked from the user,
  so the switch is refused with the statement that would work;
* switching an admin (superuser, CREATEROLE, ``rds_superuser`` member) or the
  session's own user to IAM is refused unless ``verify=True``, which tests an
  IAM login and rolls the grant back if it fails;
* thousands of users switch through :func:`plan_auth_modes` and
  :meth:`AuthModePlan.apply` in batches, each batch one round trip, with the
  plan re-checked in that same round trip.

Transactions: reads run on ``conn`` as-is, like any psycopg query (in a
non-autocommit connection they join or start its transaction).  Writes run in
``conn.transaction()``: committed at once when ``conn`` is in autocommit mode or
idle, or a savepoint inside the caller's open transaction, which the caller
then commits or rolls back.  Writes need READ COMMITTED (PostgreSQL's default):
each re-checks the catalogs right before its GRANT / REVOKE, which a REPEATABLE
READ or SERIALIZABLE snapshot would show as they were, so those are refused with
:class:`~rdsiamkit.ConfigurationError`.  ``verify=True`` must commit before it
can test a login, so it needs ``conn`` outside a transaction.

This module is the public face of :mod:`rdsiamkit.roles`, where the code lives
by layer: the catalog SQL, the value objects, the refusal rule book, switching,
verification and reading.
"""

from __future__ import annotations

from rdsiamkit.errors import StalePlanError
from rdsiamkit.roles.inventory import auth_status, get_auth_mode
from rdsiamkit.roles.models import (
    DEFAULT_APPLY_TIMEOUT,
    DEFAULT_BATCH_SIZE,
    ApplyResult,
    AuthMode,
    AuthModeChange,
    AuthModePlan,
    AuthStatus,
    PlannedSwitch,
    Refusal,
    RefusalReason,
    UnchangedRole,
)
from rdsiamkit.roles.rules import decide as _decide
from rdsiamkit.roles.switch import (
    _REDACTED,
    _not_switched,
    _password_statement,
    _switch_statement,
    plan_auth_modes,
    set_auth_mode,
)
from rdsiamkit.roles.verify import VERIFY_CONNECT_TIMEOUT
from rdsiamkit.roles.verify import check_can_verify as _check_can_verify
from rdsiamkit.roles.verify import iam_login_params as _iam_login_params

__all__ = [
    "ApplyResult",
    "AuthMode",
    "AuthModeChange",
    "AuthModePlan",
    "AuthStatus",
    "PlannedSwitch",
    "Refusal",
    "RefusalReason",
    "StalePlanError",
    "UnchangedRole",
    "auth_status",
    "get_auth_mode",
    "plan_auth_modes",
    "set_auth_mode",
]

# Not public, kept importable for the kit's tests and older callers.
_PRIVATE = (
    DEFAULT_APPLY_TIMEOUT,
    DEFAULT_BATCH_SIZE,
    VERIFY_CONNECT_TIMEOUT,
    _REDACTED,
    _check_can_verify,
    _decide,
    _iam_login_params,
    _not_switched,
    _password_statement,
    _switch_statement,
)
