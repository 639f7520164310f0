"""``ENGINE: "rdsiamkit.django"``: Django's PostgreSQL backend, logging in with IAM tokens.

:class:`DatabaseWrapper` is Django's own PostgreSQL wrapper (psycopg 3) with one
difference: where Django would call ``psycopg.connect(**params)``, each new
physical connection logs in through :func:`rdsiamkit.connect` (a token from the
process-wide cache, ``sslmode=verify-full`` against the RDS CA bundle, a refused
cached token replaced, transient errors retried, the kit's errors).  So
persistent connections (``CONN_MAX_AGE``), ``CONN_HEALTH_CHECKS``, the test
runner and migrations work as with the stock backend: a token matters only while
a connection opens, and every new one gets a valid token.

With Django 5.1+'s ``OPTIONS["pool"]``, the psycopg_pool pool gets the kit's
connection class (:mod:`rdsiamkit.pool`): every physical connection the pool
opens asks for a token, never one frozen into the pool's arguments.

The kit's options (:class:`~rdsiamkit._options.IamOptions`: ``region``,
``profile``, ``session``, ``token_provider``, ``token_host``, ``token_port``,
``insecure_skip_tls_verify``, ``max_attempts``, ``retry_budget``) are taken out
of ``OPTIONS``; the rest is libpq's and Django's, as for the stock backend.
``PASSWORD`` (and ``OPTIONS["password"]``/``["passfile"]``) is refused.

Connect errors reach Django code as :class:`django.db.OperationalError`, like the
stock backend's; the kit's typed error (:class:`~rdsiamkit.ConnectError` and
subclasses, with its likely causes) is its ``__cause__``.
"""

from __future__ import annotations

from typing import Any

try:
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.db.backends.base.base import NO_DB_ALIAS
    from django.db.backends.postgresql import base as postgresql
    from django.db.backends.postgresql.psycopg_any import is_psycopg3
    from django.utils.asyncio import async_unsafe
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError("rdsiamkit.django needs Django: pip install 'rdsiamkit[django]'") from err

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from rdsiamkit._login import ConnectSpec
from rdsiamkit._options import OPTION_NAMES
from rdsiamkit.connection import connect, login
from rdsiamkit.django._settings import IamConfigurationError, kit_options, refuse_secrets
from rdsiamkit.django.client import DatabaseClient
from rdsiamkit.pool import _iam_class, _IamConnectionPool, _LastFailure

__all__ = ["DatabaseWrapper", "IamConfigurationError"]

#: Django 5.1 added ``OPTIONS["pool"]``.
_HAS_POOL = django.VERSION >= (5, 1)

if not is_psycopg3:  # pragma: no cover - psycopg 3 is a dependency of the kit
    raise ImproperlyConfigured("rdsiamkit.django needs psycopg 3 (psycopg2 is not supported)")


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """Django's PostgreSQL backend whose every new connection is an IAM login."""

    display_name = "PostgreSQL (rdsiamkit IAM)"
    client_class = DatabaseClient

    def get_connection_params(self) -> dict[str, Any]:
        """Django's psycopg keywords without the kit's options (and never a password)."""
        refuse_secrets(self.settings_dict)
        params = super().get_connection_params()
        for name in OPTION_NAMES:
            params.pop(name, None)
        return params

    def login_spec(self, params: dict[str, Any] | None = None) -> ConnectSpec:
        """The resolved login (endpoint, verify-full TLS, what to sign) for these settings."""
        options = kit_options(self.settings_dict)
        kwargs = dict(self.get_connection_params() if params is None else params)
        return ConnectSpec.create("", kwargs, options)

    @async_unsafe  # type: ignore[untyped-decorator, unused-ignore]
    def get_new_connection(self, conn_params: Any) -> Any:
        """A new connection: from the pool if one is configured, else an IAM login."""
        if self.pool:
            return super().get_new_connection(conn_params)
        level = self.settings_dict["OPTIONS"].get("isolation_level")
        self.isolation_level = self._isolation_level(level)
        options = kit_options(self.settings_dict)
        connection = connect(**conn_params, **options.as_kwargs())
        if level is not None:
            connection.isolation_level = self.isolation_level
        return connection

    @staticmethod
    def _isolation_level(value: Any) -> IsolationLevel:
        """Django's reading of ``OPTIONS["isolation_level"]`` (default READ COMMITTED)."""
        if value is None:
            return IsolationLevel.READ_COMMITTED
        try:
            return IsolationLevel(value)
        except ValueError:
            raise ImproperlyConfigured(
                f"Invalid transaction isolation level {value} specified. "
                "Use one of the psycopg.IsolationLevel values."
            ) from None

    @property
    def pool(self) -> Any:
        """Django's psycopg_pool pool (``OPTIONS["pool"]``, Django 5.1+), whose
        connection class logs each physical connection in with a token."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if not _HAS_POOL:
            raise IamConfigurationError("OPTIONS['pool'] needs Django 5.1 or later")
        pools: dict[str, Any] = self._connection_pools  # type: ignore[attr-defined]
        if self.alias not in pools:
            pools.setdefault(
                self.alias, self._new_pool({} if pool_options is True else pool_options)
            )
        return pools[self.alias]

    def _new_pool(self, pool_options: dict[str, Any]) -> Any:
        """Django's pool (same options, checks and configure hook) over IAM logins."""
        if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
        pool_options = dict(pool_options)
        base = pool_options.pop("connection_class", psycopg.Connection)
        spec = self.login_spec()
        provider = kit_options(self.settings_dict).sync_provider()
        check = self.settings_dict["CONN_HEALTH_CHECKS"]
        # The kit's pool (rdsiamkit.pool): its connection class runs the login flow per
        # physical connection; a PoolTimeout names the last failed login.
        failure = _LastFailure()
        return _IamConnectionPool(
            spec.conninfo,
            last_failure=failure,
            connection_class=_iam_class(base, spec, provider, login, failure),
            # Autocommit as Django's own pool: Django sets it later on.
            kwargs={**spec.options, "autocommit": True},
            open=False,  # Django opens it on first use
            configure=self._configure_connection,  # type: ignore[attr-defined]
            check=ConnectionPool.check_connection if check else None,
            **pool_options,
        )
