"""A local stand-in for an RDS / Aurora PostgreSQL cluster with IAM database authentication.

:class:`RdsIamEmulator` runs a real PostgreSQL server on 127.0.0.1 that
authenticates the way RDS does:

* TLS only (``hostnossl ... reject``), with a certificate for fake RDS endpoint
  names, so clients use ``host=<endpoint> hostaddr=127.0.0.1 sslmode=verify-full``;
* members of ``rds_iam`` (directly or through other roles) log in only with a
  valid IAM auth token, checked by a PAM module that asks the emulator's own
  SigV4 verifier; everything wrong looks alike to the client
  (``PAM authentication failed for user "…"``) while the reason is logged;
* everyone else logs in with a SCRAM password;
* RDS's roles: ``rds_superuser``, ``rds_iam``, ``rds_ad``, ``rds_password``,
  ``rds_replication``, and a master user that is *not* a superuser.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from rdsiamkit.arn import db_user_arn
from rdsiamkit.endpoints import Endpoint, dns_suffix_for_partition, partition_for_region
from rdsiamkit.errors import EmulatorError
from rdsiamkit.testing.certs import write_tls_files
from rdsiamkit.testing.credentials import (
    DEFAULT_SESSION_TOKEN_SIZE,
    CredentialRegistry,
    FakeCredentials,
    generate_credentials,
)
from rdsiamkit.testing.dns import FakeDns
from rdsiamkit.testing.pam import PAM_DIR, PamService, build_module, sweep_stale_services
from rdsiamkit.testing.postgres import (
    BOOTSTRAP_USER,
    PgBinaries,
    PgServer,
    PortInUseError,
    cache_dir,
    copy_template,
    ensure_template,
    server_os_user,
)
from rdsiamkit.testing.topology import Topology, default_resource_id, secondary_region_for
from rdsiamkit.testing.verifier import PROBE_USER, AuthEvent, AuthLog, IamGate, VerifierServer

__all__ = ["RdsIamEmulator"]

logger = logging.getLogger("rdsiamkit.testing.emulator")

HOSTADDR = "127.0.0.1"
RDS_ROLES = ("rds_superuser", "rds_iam", "rds_ad", "rds_password", "rds_replication")
_INSTANCE_PREFIX = "rdsiamkit-emu-"
_OWNER_FILE = "owner.pid"
_PORT_ATTEMPTS = 5
PAM_FAILURE = "PAM authentication failed"
_MAX_SOCKET_DIR = 80  # unix socket paths are limited to 107 bytes
EMULATOR_DIR_ENV = "RDSIAMKIT_EMULATOR_DIR"
_RAM_DIR = Path("/dev/shm")  # noqa: S108 - instance dirs in it come from mkdtemp (0700)
_MIN_RAM_FREE = 512 * 1024 * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOSTADDR, 0))
        port: int = probe.getsockname()[1]
        return port


def _usable_root(path: Path, *, min_free: int = 0) -> bool:
    """Writable, short enough for socket paths, executable (the PAM module loads from it)."""
    try:
        info = os.statvfs(path)
    except OSError:
        return False
    return (
        os.access(path, os.W_OK | os.X_OK)
        and len(str(path)) <= _MAX_SOCKET_DIR - 30
        and not info.f_flag & os.ST_NOEXEC
        and info.f_bavail * info.f_frsize >= min_free
    )


def instance_roots() -> list[Path]:
    """Where emulator directories may live, preferred first.

    ``$RDSIAMKIT_EMULATOR_DIR`` if set; else ``/dev/shm`` when it is an
    executable tmpfs with room (copying the data directory to RAM takes
    tens of milliseconds instead of most of a second on a busy disk); else
    the temp directory, or ``/tmp`` if that path is too long for sockets.
    """
    if configured := os.environ.get(EMULATOR_DIR_ENV):
        return [Path(configured)]
    candidates = [(_RAM_DIR, _MIN_RAM_FREE), (Path(tempfile.gettempdir()), 0), (Path("/tmp"), 0)]  # noqa: S108
    roots: list[Path] = []
    for path, min_free in candidates:
        if path not in roots and _usable_root(path, min_free=min_free):
            roots.append(path)
    return roots


def _instance_root() -> Path:
    roots = instance_roots()
    if not roots or not _usable_root(roots[0]):
        raise EmulatorError(
            f"no directory for the emulator's files: set {EMULATOR_DIR_ENV} to a short, "
            "writable path on a filesystem not mounted noexec"
        )
    return roots[0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_instances() -> None:
    """Stop servers and delete directories left by emulator processes that died."""
    bases = (base for root in instance_roots() for base in root.glob(_INSTANCE_PREFIX + "*"))
    for base in bases:
        try:
            owner = int((base / _OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((base / "data" / "postmaster.pid").read_text().split()[0])
            # Only the postmaster of that data directory: the pid may have been reused.
            if str(base / "data").encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGQUIT)
                logger.info("stopped PostgreSQL pid %s of a dead emulator (pid %s)", pid, owner)
        shutil.rmtree(base, ignore_errors=True)


_live: set[RdsIamEmulator] = set()
_live_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """Safety net: stop every emulator still running when the interpreter exits."""
    with _live_lock:
        running = list(_live)
    for emulator in running:
        with contextlib.suppress(Exception):
            emulator.stop()


@attrs.define
class _Running:
    base: Path
    port: int
    ca_file: Path
    untrusted_ca_file: Path
    server: PgServer
    cleanup: contextlib.ExitStack
    started_in: float


class RdsIamEmulator:
    """A local RDS / Aurora PostgreSQL endpoint with IAM database authentication.

    Use it as a context manager or call :meth:`start` / :meth:`stop`.  Needs
    root (to install a PAM service in ``/etc/pam.d``), PostgreSQL server
    binaries (14-15) and a C compiler with the PAM headers.  Credentials,
    policies, token age, clock skew and the IAM rate limit can be changed at
    any time and apply to the next login.
    """

    def __init__(
        self,
        *,
        cluster_id: str = "demo",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        max_token_age: float = 900.0,
        max_clock_skew: float = 300.0,
        pg_bindir: str | os.PathLike[str] | None = None,
        dns_hash: str = "c1a2b3c4d5e6",
        resource_id: str | None = None,
        master_user: str = "postgres",
        cache_dir: str | os.PathLike[str] | None = None,
        secondary_region: str | None = None,
        global_cluster_id: str | None = None,
    ) -> None:
        suffix = dns_suffix_for_partition(partition_for_region(region))
        self.region = region
        self.account_id = account_id
        self.endpoint = f"{cluster_id}.cluster-{dns_hash}.{region}.rds.{suffix}"
        self.reader_endpoint = f"{cluster_id}.cluster-ro-{dns_hash}.{region}.rds.{suffix}"
        self.instance_endpoint = f"{cluster_id}-instance-1.{dns_hash}.{region}.rds.{suffix}"
        for host in self.endpoints:
            Endpoint.parse(host)  # cluster id and hash must make real endpoint names
        self.resource_id = resource_id or default_resource_id(account_id, region, cluster_id)
        #: The global database, shard group and secondary cluster names (see topology.py).
        self.topology = Topology(
            account_id=account_id,
            cluster_id=cluster_id,
            region=region,
            secondary_region=secondary_region or secondary_region_for(region),
            dns_hash=dns_hash,
            global_cluster_id=global_cluster_id or f"{cluster_id}-global",
            resource_id=self.resource_id,
        )
        self._primary_region = region
        #: Name records the kit consults in tests (:meth:`resolving`): every endpoint
        #: resolves to 127.0.0.1, the global writer is a CNAME to the current primary.
        self.dns = FakeDns()
        self._reset_dns()
        self.master_user = master_user
        self.master_password = secrets.token_urlsafe(24)
        # Account and resource id must make a valid ARN; IAM checks "prefix + user".
        arn_prefix = self.db_user_arn("probe").removesuffix("probe")
        self._pg_bindir = pg_bindir
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._defaults = (float(max_token_age), float(max_clock_skew))
        self._registry = CredentialRegistry()
        self._log = AuthLog()
        self._gate = IamGate(
            region=region,
            hosts=self.all_endpoints,
            port=0,
            registry=self._registry,
            log=self._log,
            arn_prefix=arn_prefix,
            max_token_age=max_token_age,
            max_clock_skew=max_clock_skew,
            host_regions=self.topology.host_regions(region),
            arn_prefixes={
                member: self.db_user_arn("probe", region=member).removesuffix("probe")
                for member in (region, self.topology.secondary_region)
            },
        )
        self._lock = threading.RLock()
        self._running: _Running | None = None

    # -- identity -----------------------------------------------------------------

    hostaddr = HOSTADDR

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Writer, reader and instance endpoint names, all in the server certificate."""
        return (self.endpoint, self.reader_endpoint, self.instance_endpoint)

    @property
    def global_endpoint(self) -> str:
        """The Aurora Global Database writer endpoint: no region in the name; tokens are
        accepted when signed for :attr:`primary_region`."""
        return self.topology.global_endpoint

    @property
    def shard_group_endpoint(self) -> str:
        """An Aurora Limitless shard group endpoint in :attr:`region`."""
        return self.topology.shard_group_endpoint

    @property
    def secondary_endpoint(self) -> str:
        """The secondary cluster's writer endpoint, in ``topology.secondary_region``."""
        return self.topology.secondary_endpoint

    @property
    def all_endpoints(self) -> tuple[str, ...]:
        """Every name the server certificate holds and tokens may be signed for."""
        return self.endpoints + self.topology.extra_endpoints()

    @property
    def primary_region(self) -> str:
        """The region of the global database's current primary cluster."""
        return self._primary_region

    def switch_primary(self, region: str | None = None) -> str:
        """Switch the global database over to ``region`` (default: the other one).

        From the next login on, the global writer accepts only tokens signed for the
        new primary's region (its ARN too), and :attr:`dns` points it there.  Returns
        the new primary region.
        """
        with self._lock:
            if region is None:
                topology = self.topology
                region = (
                    topology.secondary_region
                    if self._primary_region == topology.region
                    else topology.region
                )
            self._gate.host_regions = self.topology.host_regions(region)
            self._primary_region = region
            self.dns.add_cname(self.global_endpoint, self.topology.cluster_endpoint(region))
        logger.info("global database switched over: primary now in %s", region)
        return region

    def describe_global_clusters(self) -> dict[str, Any]:
        """What ``rds:DescribeGlobalClusters`` answers now (for botocore's Stubber)."""
        return self.topology.describe_global_clusters(self._primary_region)

    def add_custom_domain(self, name: str, target: str | None = None) -> str:
        """Make ``name`` a CNAME in :attr:`dns` to ``target`` (default: the writer endpoint).

        A ``target`` that :attr:`dns` does not know yet (``ec2-....amazonaws.com``)
        gets the emulator's address.  The server certificate never names ``name``,
        as RDS's does not.  Returns ``name``.
        """
        target = target or self.endpoint
        try:
            self.dns(target)
        except OSError:
            self.dns.add_address(target, HOSTADDR)
        self.dns.add_cname(name, target)
        return name

    def resolving(self) -> contextlib.AbstractContextManager[FakeDns]:
        """A context manager in which the kit resolves names with :attr:`dns`."""
        return self.dns.installed()

    def _reset_dns(self) -> None:
        self.dns.clear()
        for name in (*self.endpoints, self.secondary_endpoint, self.shard_group_endpoint):
            self.dns.add_address(name, HOSTADDR)
        target = self.topology.cluster_endpoint(self._primary_region)
        self.dns.add_cname(self.global_endpoint, target)

    def db_user_arn(self, user: str, *, region: str | None = None) -> str:
        """``arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER`` for ``user``.

        ``region`` picks a member cluster of the global database (each has its own
        resource id); default: :attr:`region`'s cluster.
        """
        region = region or self.region
        return db_user_arn(
            partition=self.topology.partition,
            region=region,
            account_id=self.account_id,
            resource_id=self.topology.member_resource_id(region),
            db_user=user,
        )

    def __repr__(self) -> str:
        state = f"port {self._running.port}" if self._running else "stopped"
        return f"<RdsIamEmulator {self.endpoint} ({state})>"

    # -- lifecycle ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running is not None

    @property
    def startup_seconds(self) -> float:
        """How long the last :meth:`start` took."""
        return self._require().started_in

    def _require(self) -> _Running:
        running = self._running
        if running is None:
            raise EmulatorError("the emulator is not running: call start() first")
        return running

    def __enter__(self) -> RdsIamEmulator:
        if not self.started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Set up and start the server; raises :class:`EmulatorError` naming what is missing."""
        with self._lock:
            if self._running is not None:
                raise EmulatorError("the emulator is already running")
            began = time.perf_counter()
            with contextlib.ExitStack() as cleanup:
                try:
                    running = self._start(cleanup)
                except (OSError, psycopg.Error) as err:
                    raise EmulatorError(f"the emulator could not start: {err}") from err
                running.started_in = time.perf_counter() - began
                running.cleanup = cleanup.pop_all()
            self._running = running
            with _live_lock:
                _live.add(self)
        logger.info(
            "emulator %s listening on %s:%s (started in %.2f s)",
            self.endpoint,
            HOSTADDR,
            running.port,
            running.started_in,
        )

    def _start(self, cleanup: contextlib.ExitStack) -> _Running:
        binaries = PgBinaries.find(self._pg_bindir)
        owner = server_os_user()
        if not os.access(PAM_DIR, os.W_OK):
            raise EmulatorError(
                f"cannot write to {PAM_DIR}: the emulator must run as root, since "
                "PostgreSQL's pam method only reads services from there"
            )
        sweep_stale_services()
        _sweep_stale_instances()
        cache = self._cache_dir or cache_dir()
        module = build_module(cache)
        template = ensure_template(binaries, cache, owner)

        base = Path(tempfile.mkdtemp(prefix=_INSTANCE_PREFIX, dir=_instance_root()))
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        (base / _OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
        copy_template(template, base / "data", owner)
        tls = write_tls_files(base, self.all_endpoints, owner=owner)
        shutil.copyfile(module, base / "pam_rdsiamkit.so")
        if owner is not None:
            os.chown(base, *owner)

        self._log.attach(base / "iam-db-auth.jsonl")
        cleanup.callback(self._log.close)
        verifier = VerifierServer(base / "verifier.sock", self._gate, owner=owner)
        cleanup.callback(verifier.close)
        service = PamService.install(module=base / "pam_rdsiamkit.so", socket=verifier.path)
        cleanup.callback(service.remove)
        (base / "pg_hba.conf").write_text(_hba(service.name), encoding="utf-8")

        server = PgServer(
            binaries,
            base / "data",
            socket_dir=base,
            log_file=base / "postgresql.log",
            owner=owner,
            settings=_settings(base, tls.cert_file, tls.key_file),
        )
        port = self._listen(server)
        cleanup.callback(server.stop)
        running = _Running(
            base=base,
            port=port,
            ca_file=tls.ca_file,
            untrusted_ca_file=tls.untrusted_ca_file,
            server=server,
            cleanup=cleanup,
            started_in=0.0,
        )
        self._bootstrap(running)
        return running

    def _listen(self, server: PgServer) -> int:
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            self._gate.port = port
            try:
                server.start(port)
            except PortInUseError:
                continue
            return port
        raise EmulatorError(f"no free TCP port on {HOSTADDR} after {_PORT_ATTEMPTS} attempts")

    def _bootstrap(self, running: _Running) -> None:
        """Create RDS's roles and the master user, as the bootstrap superuser."""
        master = sql.Identifier(self.master_user)
        statements: list[sql.SQL | sql.Composed] = [
            *(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(r)) for r in RDS_ROLES),
            sql.SQL(
                "GRANT pg_monitor, pg_signal_backend, rds_password, rds_replication "
                "TO rds_superuser"
            ),
            sql.SQL(
                "CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {} IN ROLE rds_superuser"
            ).format(master, sql.Literal(self.master_password)),
            sql.SQL("ALTER DATABASE postgres OWNER TO {}").format(master),
        ]
        with self._superuser(running) as conn:
            for statement in statements:
                conn.execute(statement)
            self._probe_pam(conn, running)

    def _probe_pam(self, conn: psycopg.Connection[TupleRow], running: _Running) -> None:
        """Log in once as an rds_iam member: proves TLS, pg_hba, PAM, module and verifier.

        A module PostgreSQL cannot load (``/tmp`` mounted noexec, say) would
        otherwise make every IAM login fail with the same bland message.
        """
        probe = sql.Identifier(PROBE_USER)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE rds_iam").format(probe))
        self._gate.begin_probe()
        try:
            psycopg.connect(
                host=self.endpoint,
                hostaddr=HOSTADDR,
                port=running.port,
                user=PROBE_USER,
                password="start-up probe",  # noqa: S106 - not a credential, refused on purpose
                dbname="postgres",
                sslmode="verify-full",
                sslrootcert=str(running.ca_file),
                connect_timeout=15,
            ).close()
        except psycopg.OperationalError as err:
            refusal = str(err)
        else:
            refusal = "the probe logged in without a token"
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(probe))
        if not self._gate.probe_arrived() or PAM_FAILURE not in refusal:
            raise EmulatorError(
                "PostgreSQL did not consult the emulator's verifier through PAM "
                f"(client saw: {refusal.strip()}); is {running.base} on a noexec mount? "
                f"Server log:\n{running.server.log_tail()}"
            )

    @contextlib.contextmanager
    def _superuser(self, running: _Running | None = None) -> Iterator[psycopg.Connection[TupleRow]]:
        state = running or self._require()
        try:
            conn = psycopg.connect(
                host=str(state.base),
                port=state.port,
                user=BOOTSTRAP_USER,
                dbname="postgres",
                autocommit=True,
                connect_timeout=10,
            )
        except psycopg.Error as err:
            raise EmulatorError(
                f"cannot reach the emulator's server as {BOOTSTRAP_USER}: {err}"
            ) from err
        with conn:
            yield conn

    def stop(self) -> None:
        """Stop the server (fast shutdown), the verifier, and remove every file it made."""
        with self._lock:
            running, self._running = self._running, None
            if running is None:
                return
            with _live_lock:
                _live.discard(self)
            running.cleanup.close()
        logger.info("emulator %s stopped", self.endpoint)

    def restart(self) -> None:
        """Restart PostgreSQL only: same data, port, certificates, credentials and knobs."""
        with self._lock:
            running = self._require()
            running.server.stop()
            try:
                running.server.start(running.port)
            except PortInUseError as err:
                raise EmulatorError(
                    f"port {running.port} was taken while the emulator restarted"
                ) from err

    # -- connecting ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 (tokens must be signed for ``endpoint:port``)."""
        return self._require().port

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that signed the server certificate (use as ``sslrootcert``)."""
        return self._require().ca_file

    @property
    def untrusted_ca_file(self) -> Path:
        """PEM file of an unrelated CA, for wrong-CA tests."""
        return self._require().untrusted_ca_file

    @property
    def auth_log_file(self) -> Path:
        """The JSON-lines log of IAM login decisions (like RDS's ``iam-db-auth-error``)."""
        path = self._log.path
        if path is None:
            raise EmulatorError("the emulator has not been started: no auth log file yet")
        return path

    def conninfo(
        self,
        user: str | None = None,
        *,
        password: str | None = None,
        dbname: str = "postgres",
        host: str | None = None,
    ) -> dict[str, str]:
        """libpq keywords reaching the emulator by endpoint name (default: the writer).

        ``user`` defaults to the master user; ``password`` is included only if given.
        """
        info = {
            "host": host or self.endpoint,
            "hostaddr": HOSTADDR,
            "port": str(self.port),
            "dbname": dbname,
            "user": user or self.master_user,
            "sslmode": "verify-full",
            "sslrootcert": str(self.ca_file),
        }
        if password is not None:
            info["password"] = password
        return info

    def connect_admin(self, *, autocommit: bool = True) -> psycopg.Connection[TupleRow]:
        """Connect as the master user over TLS with its password, like an RDS admin."""
        conninfo = self.conninfo(self.master_user, password=self.master_password)
        return psycopg.connect(make_conninfo(**conninfo), autocommit=autocommit)

    # -- users --------------------------------------------------------------------

    def create_user(self, name: str, *, password: str | None = None, iam: bool = False) -> str:
        """Create LOGIN role ``name`` (with ``password`` if given); ``iam`` grants rds_iam.

        Returns ``name``.
        """
        role = sql.Identifier(name)
        create = sql.SQL("CREATE ROLE {} LOGIN").format(role)
        if password is not None:
            create = sql.SQL("{} PASSWORD {}").format(create, sql.Literal(password))
        try:
            with self._superuser() as conn, conn.transaction():
                conn.execute(create)
                if iam:
                    conn.execute(sql.SQL("GRANT rds_iam TO {}").format(role))
        except psycopg.Error as err:
            raise EmulatorError(f"cannot create user {name!r}: {err.diag.message_primary}") from err
        return name

    def drop_user(self, name: str) -> None:
        """End ``name``'s sessions, drop what it owns in ``postgres`` and drop the role.

        Dropping a role that does not exist is not an error.
        """
        role = sql.Identifier(name)
        try:
            with self._superuser() as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", [name]
                ).fetchone()
                if exists is None:
                    return
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    [name],
                )
                with conn.transaction():
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
                    conn.execute(sql.SQL("DROP ROLE {}").format(role))
        except psycopg.Error as err:
            raise EmulatorError(f"cannot drop user {name!r}: {err.diag.message_primary}") from err

    # -- IAM side -----------------------------------------------------------------

    def add_credentials(
        self,
        *,
        temporary: bool = False,
        arn: str | None = None,
        allowed_arns: Sequence[str] | None = None,
        session_token_size: int = DEFAULT_SESSION_TOKEN_SIZE,
    ) -> FakeCredentials:
        """Mint and trust new credentials: ``AKIA…`` keys, or ``ASIA…`` + session token.

        ``allowed_arns`` (IAM ``*`` / ``?`` patterns of :meth:`db_user_arn` ARNs)
        limits whom the key may connect as; ``None`` allows everyone.
        """
        credentials = generate_credentials(
            account_id=self.account_id,
            temporary=temporary,
            arn=arn,
            session_token_size=session_token_size,
        )
        self._registry.add(credentials, allowed_arns=allowed_arns)
        return credentials

    def revoke_credentials(self, access_key_id: str) -> None:
        """Stop trusting a key: its tokens then fail with ``unknown_key``."""
        self._registry.revoke(access_key_id)

    def set_policy(self, access_key_id: str, allowed_arns: Sequence[str] | None) -> None:
        """Replace what a key may connect as (``None``: no policy check)."""
        self._registry.set_policy(access_key_id, allowed_arns)

    @property
    def max_token_age(self) -> float:
        """Seconds a token is accepted after ``X-Amz-Date`` (at most its 900 s expiry)."""
        return self._gate.max_token_age

    @max_token_age.setter
    def max_token_age(self, seconds: float) -> None:
        self._gate.max_token_age = seconds

    @property
    def max_clock_skew(self) -> float:
        """Seconds ``X-Amz-Date`` may be ahead of the emulator's clock."""
        return self._gate.max_clock_skew

    @max_clock_skew.setter
    def max_clock_skew(self, seconds: float) -> None:
        self._gate.max_clock_skew = seconds

    def set_iam_rate_limit(self, per_second: float | None) -> None:
        """Refuse IAM logins above ``per_second`` with ``rate_limited`` (RDS: ~200/s)."""
        self._gate.set_rate_limit(per_second)

    def auth_events(self) -> list[AuthEvent]:
        """IAM login decisions so far, oldest first (password logins are not included)."""
        return self._log.events()

    def clear_auth_events(self) -> None:
        """Forget the recorded decisions (the log file keeps them)."""
        self._log.clear()

    def reset(self) -> None:
        """Restore the knobs (token age, skew, rate limit, per-key policies, the global
        database's primary, :attr:`dns`); clear events."""
        with self._lock:
            self._primary_region = self.region
            self._gate.host_regions = self.topology.host_regions(self.region)
            self._reset_dns()
        max_token_age, max_clock_skew = self._defaults
        self._gate.max_token_age = max_token_age
        self._gate.max_clock_skew = max_clock_skew
        self._gate.set_rate_limit(None)
        self._registry.reset_policies()
        self._log.clear()


def _hba(pam_service: str) -> str:
    """RDS's rules: TLS only; rds_iam members by PAM (IAM token); others by SCRAM."""
    return (
        "# TYPE    DATABASE USER       ADDRESS        METHOD\n"
        f"local     all      {BOOTSTRAP_USER}                   trust\n"
        "local     all      all                       reject\n"
        "hostnossl all      all        0.0.0.0/0      reject\n"
        f"hostssl   all      {BOOTSTRAP_USER}   0.0.0.0/0      reject\n"
        f"hostssl   all      +rds_iam   127.0.0.1/32   pam pamservice={pam_service}\n"
        "hostssl   all      all        127.0.0.1/32   scram-sha-256\n"
    )


def _settings(base: Path, cert_file: Path, key_file: Path) -> dict[str, str]:
    return {
        "listen_addresses": HOSTADDR,
        "unix_socket_directories": str(base),
        "unix_socket_permissions": "0700",
        "hba_file": str(base / "pg_hba.conf"),
        "ssl": "on",
        "ssl_cert_file": str(cert_file),
        "ssl_key_file": str(key_file),
        "password_encryption": "scram-sha-256",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "32MB",
        "lc_messages": "C",
        "log_min_messages": "warning",
        # A failing statement may carry a password literal: never echo statements.
        "log_min_error_statement": "panic",
        "authentication_timeout": "20s",
    }
