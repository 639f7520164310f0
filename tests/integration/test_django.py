"""The rdsiamkit.django backend against the RDS IAM emulator: a real Django project."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError as DjangoOperationalError
from django.db.utils import ConnectionHandler
from psycopg import sql

import rdsiamkit
from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider

PROJECT = Path(__file__).resolve().parent / "django_project"


def _configure_django() -> None:
    """Django's settings for in-process tests: the project's app; databases come per test."""
    if not settings.configured:
        sys.path.insert(0, str(PROJECT))
        settings.configure(
            INSTALLED_APPS=["notes"],
            USE_TZ=True,
            DATABASES={},
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()


_configure_django()


class IamDatabase:
    """An IAM user with CREATEDB and a database it owns, on the emulator."""

    def __init__(self, emu: RdsIamEmulator, creds: FakeCredentials) -> None:
        self.emu = emu
        self.user = f"dj_{uuid.uuid4().hex[:8]}"
        self.name = f"djdb_{uuid.uuid4().hex[:8]}"
        self._provider = TokenProvider(session=creds.boto3_session(region=emu.region))
        emu.create_user(self.user, iam=True)
        with emu.connect_admin() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(self.user)))
        # The user creates its own database (the master user is no superuser, as on RDS).
        self._as_user(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def _as_user(self, statement: sql.Composable) -> None:
        info = {k: v for k, v in self.emu.conninfo(self.user).items() if k != "sslmode"}
        with rdsiamkit.connect(**info, token_provider=self._provider, autocommit=True) as conn:
            conn.execute(statement)

    def drop(self) -> None:
        for name in (self.name, f"test_{self.name}"):
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            self._as_user(drop.format(sql.Identifier(name)))
        self.emu.drop_user(self.user)

    def settings_dict(self, provider: TokenProvider, **extra: Any) -> dict[str, Any]:
        """A DATABASES entry for the backend, the kit's provider in OPTIONS."""
        options = {
            "hostaddr": self.emu.hostaddr,
            "sslrootcert": str(self.emu.ca_file),
            "token_provider": provider,
            **extra.pop("OPTIONS", {}),
        }
        return {
            "ENGINE": "rdsiamkit.django",
            "HOST": self.emu.endpoint,
            "PORT": self.emu.port,
            "NAME": self.name,
            "USER": self.user,
            "OPTIONS": options,
            **extra,
        }

    def env(self, creds: FakeCredentials, tmp_path: Path) -> dict[str, str]:
        """What a deployment sets: the project's variables and AWS credentials (no password)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
        env |= {
            "RDSIAMKIT_DJANGO_HOST": self.emu.endpoint,
            "RDSIAMKIT_DJANGO_HOSTADDR": self.emu.hostaddr,
            "RDSIAMKIT_DJANGO_PORT": str(self.emu.port),
            "RDSIAMKIT_DJANGO_NAME": self.name,
            "RDSIAMKIT_DJANGO_USER": self.user,
            "RDSIAMKIT_DJANGO_SSLROOTCERT": str(self.emu.ca_file),
            "RDSIAMKIT_DJANGO_REGION": self.emu.region,
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(PROJECT),
        }
        return env


@pytest.fixture
def db(rds_emulator: RdsIamEmulator) -> Iterator[IamDatabase]:
    database = IamDatabase(rds_emulator, rds_emulator.add_credentials())
    yield database
    database.drop()


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    return rds_emulator.add_credentials()


@pytest.fixture
def provider(rds_emulator: RdsIamEmulator, creds: FakeCredentials) -> TokenProvider:
    return TokenProvider(session=creds.boto3_session(region=rds_emulator.region))


def handler(entry: dict[str, Any]) -> ConnectionHandler:
    """A connection handler of its own (thread-local wrappers): not django.db.connections."""
    return ConnectionHandler({"default": entry})


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the test project's manage.py."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def current(wrapper: Any) -> tuple[str, bool, str]:
    """current_user, TLS in use, and the libpq sslmode of a Django connection."""
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        user, ssl = cursor.fetchone()
    return user, ssl, wrapper.connection.info.get_parameters()["sslmode"]


def test_import_rdsiamkit_does_not_import_django() -> None:
    """`import rdsiamkit` (and `import rdsiamkit.django`) load no Django module."""
    code = (
        "import sys, rdsiamkit, rdsiamkit.django; "
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_new_connection_is_an_iam_login_over_verify_full(
    db: IamDatabase, provider: TokenProvider
) -> None:
    """A connection logs in with a token over verify-full; the kit's options never reach psycopg."""
    wrapper = handler(db.settings_dict(provider, OPTIONS={"region": db.emu.region}))["default"]
    try:
        params = wrapper.get_connection_params()
        assert not {"region", "token_provider", "password"} & params.keys()
        assert current(wrapper) == (db.user, True, "verify-full")
        assert "X-Amz-Signature=" in (wrapper.connection.info.password or "")
        assert "X-Amz" not in wrapper.connection.info.dsn
        assert "X-Amz" not in repr(wrapper) + repr(wrapper.connection)
    finally:
        wrapper.close()
    assert provider.mint_count == 1


@pytest.mark.parametrize(
    "entry",
    [{"PASSWORD": "hunter2-not-used"}, {"OPTIONS": {"passfile": "/tmp/pgpass"}}],
    ids=["PASSWORD", "passfile"],
)
def test_password_settings_are_refused(
    db: IamDatabase, provider: TokenProvider, entry: dict[str, Any]
) -> None:
    """PASSWORD (or a passfile) is refused before any login: IAM logins only."""
    db.emu.clear_auth_events()
    wrapper = handler(db.settings_dict(provider, **entry))["default"]
    with pytest.raises(rdsiamkit.ConfigurationError, match="IAM tokens only") as caught:
        wrapper.ensure_connection()
    assert isinstance(caught.value, ImproperlyConfigured)
    assert db.emu.auth_events() == []


def test_bad_kit_option_is_a_configuration_error(db: IamDatabase, provider: TokenProvider) -> None:
    """A kit option with a wrong value is refused with both the kit's and Django's error."""
    wrapper = handler(db.settings_dict(provider, OPTIONS={"max_attempts": 0}))["default"]
    with pytest.raises(ImproperlyConfigured, match="max_attempts"):
        wrapper.ensure_connection()


def test_refused_login_is_djangos_error_caused_by_the_kits(
    db: IamDatabase, rds_emulator: RdsIamEmulator, creds: FakeCredentials
) -> None:
    """A refused login raises django.db.OperationalError from the kit's typed error, no token."""
    rds_emulator.revoke_credentials(creds.access_key_id)
    provider = TokenProvider(session=creds.boto3_session(region=rds_emulator.region))
    wrapper = handler(db.settings_dict(provider, OPTIONS={"max_attempts": 1}))["default"]
    with pytest.raises(DjangoOperationalError) as caught:
        wrapper.ensure_connection()
    assert isinstance(caught.value.__cause__, rdsiamkit.IamAuthenticationError)
    assert "X-Amz" not in str(caught.value) + str(caught.value.__cause__)


def test_migrate_round_trip_and_test_runner(
    db: IamDatabase, creds: FakeCredentials, tmp_path: Path
) -> None:
    """manage.py migrate and Django's test runner work; the ORM round-trips in-process."""
    env = db.env(creds, tmp_path)
    migrate = manage(env, "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying notes.0001_initial... OK" in migrate.stdout

    from django.db import connections
    from notes.models import Note

    provider = TokenProvider(session=creds.boto3_session(region=db.emu.region))
    connections["default"] = handler(db.settings_dict(provider))["default"]
    try:
        Note.objects.create(text="round trip")
        assert list(Note.objects.values_list("text", flat=True)) == ["round trip"]
        assert connections["default"].connection.info.get_parameters()["sslmode"] == "verify-full"
    finally:
        connections["default"].close()
        del connections["default"]
    assert provider.mint_count == 1

    tests = manage(env, "test", "notes", "--noinput", "-v", "2")
    assert tests.returncode == 0, tests.stderr
    assert "Ran 1 test" in tests.stderr and "OK" in tests.stderr
    assert f"Destroying test database for alias 'default' ('test_{db.name}')" in tests.stderr


def test_dbshell_logs_in_with_a_token(
    db: IamDatabase, creds: FakeCredentials, tmp_path: Path
) -> None:
    """manage.py dbshell runs psql as the IAM user over verify-full; no token in its argv/env."""
    env = db.env(creds, tmp_path)
    query = "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    result = manage(env, "dbshell", "--", "-tAc", query)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{db.user}|t"
    assert db.emu.auth_events()[-1].ok


def test_conn_max_age_through_token_expiries(
    db: IamDatabase, rds_emulator: RdsIamEmulator, creds: FakeCredentials
) -> None:
    """CONN_MAX_AGE=1 with 5 s tokens and killed backends: 0 failed requests, many logins."""
    rds_emulator.max_token_age = 5.0
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5
    )
    wrapper = handler(db.settings_dict(provider, CONN_MAX_AGE=1, CONN_HEALTH_CHECKS=True))[
        "default"
    ]
    rds_emulator.clear_auth_events()
    failures = requests = 0
    deadline = time.monotonic() + 9.0
    try:
        while time.monotonic() < deadline:
            wrapper.close_if_unusable_or_obsolete()  # request_started
            try:
                with wrapper.cursor() as cursor:
                    cursor.execute("SELECT 1")
                requests += 1
            except Exception:
                failures += 1
            wrapper.close_if_unusable_or_obsolete()  # request_finished
            if requests % 100 == 50:  # the server drops the session: health checks see it
                with rds_emulator.connect_admin() as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                        [db.user],
                    )
            time.sleep(0.02)
    finally:
        wrapper.close()
    events = rds_emulator.auth_events()
    assert failures == 0 and requests > 100
    assert provider.mint_count >= 3  # re-minted as tokens aged past the reuse window
    assert len(events) >= 8 and all(e.ok for e in events)


def test_64_threads_open_connections_with_one_mint(
    db: IamDatabase, provider: TokenProvider
) -> None:
    """64 threads opening Django connections at once (cold cache) cause exactly one mint."""
    connections = handler(db.settings_dict(provider))
    barrier = threading.Barrier(64)
    users: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        wrapper = connections["default"]
        barrier.wait()
        try:
            users.append(current(wrapper)[0])
        except BaseException as err:
            errors.append(err)
        finally:
            wrapper.close()

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert users == [db.user] * 64
    assert provider.mint_count == 1


@pytest.mark.skipif(django.VERSION < (5, 1), reason="OPTIONS['pool'] arrived in Django 5.1")
def test_pool_option_logs_each_physical_connection_in(
    db: IamDatabase, rds_emulator: RdsIamEmulator, creds: FakeCredentials
) -> None:
    """OPTIONS['pool']: psycopg_pool opens every connection with a valid token (0 failures)."""
    rds_emulator.max_token_age = 5.0
    provider = TokenProvider(
        session=creds.boto3_session(region=rds_emulator.region), reuse_window=1.5
    )
    pool_options = {"min_size": 2, "max_size": 2, "max_lifetime": 1.0, "max_idle": 1.0}
    entry = db.settings_dict(provider, CONN_HEALTH_CHECKS=True, OPTIONS={"pool": pool_options})
    wrapper = handler(entry)["default"]
    rds_emulator.clear_auth_events()
    failures = requests = 0
    try:
        pool = wrapper.pool
        assert "X-Amz" not in pool.conninfo and "password" not in str(pool.kwargs)
        assert "sslmode=verify-full" in pool.conninfo
        deadline = time.monotonic() + 7.0
        while time.monotonic() < deadline:
            try:
                assert current(wrapper) == (db.user, True, "verify-full")
                requests += 1
            except Exception:
                failures += 1
            wrapper.close()  # back to the pool
            time.sleep(0.02)
    finally:
        wrapper.close_pool()
    events = rds_emulator.auth_events()
    assert failures == 0 and requests > 50
    assert provider.mint_count >= 3
    assert len(events) >= 6 and all(e.ok for e in events)


def test_example_settings_connect(
    db: IamDatabase, creds: FakeCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/django_settings.py's DATABASES entry (read from PG* variables) logs in over IAM."""
    env = {
        "PGHOST": db.emu.endpoint,
        "PGPORT": str(db.emu.port),
        "PGHOSTADDR": db.emu.hostaddr,
        "PGDATABASE": db.name,
        "PGUSER": db.user,
        "PGSSLROOTCERT": str(db.emu.ca_file),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    example = runpy.run_path(str(PROJECT.parents[2] / "examples" / "django_settings.py"))
    entry = example["DATABASES"]["default"]
    assert "PASSWORD" not in entry
    # This test's own provider: the process-wide one may hold an earlier test's credentials.
    entry["OPTIONS"]["token_provider"] = TokenProvider(
        session=creds.boto3_session(region=db.emu.region)
    )
    wrapper = handler(entry)["default"]
    try:
        assert current(wrapper) == (db.user, True, "verify-full")
    finally:
        wrapper.close()
