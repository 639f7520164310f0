"""Run a throw-away PostgreSQL server for the emulator, fast and without leaks.

``initdb`` runs once per PostgreSQL build into a cached template; each
emulator copies it (tens of milliseconds) instead of re-running ``initdb``
(over a second).  PostgreSQL refuses to run as root, so when we are root the
server runs as the ``postgres`` OS user and the files it needs are handed to it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from rdsiamkit.errors import EmulatorError

__all__ = [
    "BINDIR_ENV",
    "PgBinaries",
    "PgServer",
    "cache_dir",
    "chown_tree",
    "copy_template",
    "ensure_template",
    "server_os_user",
]

logger = logging.getLogger("rdsiamkit.testing.postgres")

BINDIR_ENV = "RDSIAMKIT_PG_BINDIR"
CACHE_ENV = "RDSIAMKIT_CACHE_DIR"
BOOTSTRAP_USER = "rdsadmin"
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_VERSION_RE = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
_INITDB_ARGS = (
    f"--username={BOOTSTRAP_USER}",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--wal-segsize=1",
)
#: What PostgreSQL releases the emulator can mimic RDS on.  From 16 on,
#: granting a role needs ADMIN OPTION on it, which would make the master user
#: a member of rds_iam (and so an IAM-only user) — RDS patches the server for
#: that, a stock build cannot.
# 12 and 13 read a password message of at most 1,000 bytes (PostgreSQL 14 lifted that), so
# no temporary-credential token (1.2-2 kB) could log in; RDS patched it, stock servers not.
SUPPORTED_MAJORS = range(14, 16)


def cache_dir() -> Path:
    """Where templates and the built PAM module are cached (``$RDSIAMKIT_CACHE_DIR``...)."""
    if configured := os.environ.get(CACHE_ENV):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rdsiamkit"


def server_os_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as err:
        raise EmulatorError(
            "running as root, but there is no 'postgres' OS user to run PostgreSQL as "
            "(PostgreSQL refuses to run as root): install the postgresql package"
        ) from err
    return entry.pw_uid, entry.pw_gid


def chown_tree(root: Path, owner: tuple[int, int]) -> None:
    """Hand ``root`` and everything under it to ``owner`` (uid, gid)."""
    os.chown(root, *owner)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, entry), *owner, follow_symlinks=False)


def _uid(owner: tuple[int, int] | None) -> int | None:
    return None if owner is None else owner[0]


def _gid(owner: tuple[int, int] | None) -> int | None:
    return None if owner is None else owner[1]


def _groups(owner: tuple[int, int] | None) -> list[int] | None:
    return None if owner is None else []


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    return env


@attrs.frozen
class PgBinaries:
    """One PostgreSQL build: its ``bin`` directory and major version."""

    bindir: Path
    major: int
    version: str

    @classmethod
    def find(cls, bindir: str | os.PathLike[str] | None = None) -> PgBinaries:
        """Use ``bindir``, else ``$RDSIAMKIT_PG_BINDIR``, else the newest supported Debian build.

        :raises EmulatorError: no usable ``initdb`` / ``postgres`` pair was found.
        """
        chosen = bindir or os.environ.get(BINDIR_ENV)
        if chosen:
            return cls._probe(Path(chosen))
        candidates = sorted(
            (p for p in _DEBIAN_ROOT.glob("*/bin") if p.parent.name.isdigit()),
            key=lambda p: int(p.parent.name),
            reverse=True,
        )
        if not candidates:
            raise EmulatorError(
                f"no PostgreSQL server binaries under {_DEBIAN_ROOT}/*/bin: install the "
                f"postgresql package or set {BINDIR_ENV}"
            )
        supported = [p for p in candidates if int(p.parent.name) in SUPPORTED_MAJORS]
        if not supported:
            found = ", ".join(p.parent.name for p in candidates)
            raise EmulatorError(
                f"PostgreSQL {found} found, but the emulator needs major version "
                f"{SUPPORTED_MAJORS.start}-{SUPPORTED_MAJORS.stop - 1}: from 16 on a stock "
                f"server cannot let the master user grant rds_iam without being a member"
            )
        return cls._probe(supported[0])

    @classmethod
    def _probe(cls, bindir: Path) -> PgBinaries:
        for tool in ("initdb", "postgres"):
            if not os.access(bindir / tool, os.X_OK):
                raise EmulatorError(f"{bindir / tool} is missing or not executable")
        try:
            out = subprocess.run(  # noqa: S603 - fixed argv
                [str(bindir / "postgres"), "--version"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout
        except (OSError, subprocess.SubprocessError) as err:
            raise EmulatorError(f"cannot run {bindir / 'postgres'} --version: {err}") from err
        match = _VERSION_RE.search(out)
        if match is None:
            raise EmulatorError(f"unrecognised postgres --version output: {out.strip()!r}")
        major = int(match.group(1))
        if major not in SUPPORTED_MAJORS:
            raise EmulatorError(
                f"{bindir} is PostgreSQL {major}; the emulator supports "
                f"{SUPPORTED_MAJORS.start}-{SUPPORTED_MAJORS.stop - 1}"
            )
        return cls(bindir=bindir, major=major, version=out.strip())


def ensure_template(binaries: PgBinaries, cache: Path, owner: tuple[int, int] | None) -> Path:
    """Return a cached ``initdb`` result for ``binaries``, creating it the first time.

    Safe when several processes race: each builds in a scratch directory and
    the first rename wins.
    """
    key = hashlib.sha256(
        "\0".join([binaries.version, str(binaries.bindir), *_INITDB_ARGS]).encode()
    ).hexdigest()[:12]
    template = cache / "templates" / f"pg{binaries.major}-{key}"
    if (template / "PG_VERSION").is_file():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    # initdb runs as the server user, who may not reach the cache: build under /tmp.
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"rdsiamkit-initdb-{secrets.token_hex(6)}"  # noqa: S108
    scratch.mkdir(mode=0o700)
    try:
        if owner is not None:
            os.chown(scratch, *owner)
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - fixed argv
            [str(binaries.bindir / "initdb"), "-D", str(scratch / "data"), *_INITDB_ARGS],
            capture_output=True,
            text=True,
            check=False,
            cwd=scratch,
            env=_server_env(),
            timeout=300,
            user=_uid(owner),
            group=_gid(owner),
            extra_groups=_groups(owner),
        )
        if result.returncode != 0:
            raise EmulatorError(
                f"initdb failed ({binaries.bindir}):\n{result.stderr.strip()[-2000:]}"
            )
        logger.info(
            "created PostgreSQL %s template in %.2f s", binaries.major, time.monotonic() - started
        )
        staged = template.parent / f".{template.name}-{secrets.token_hex(4)}"
        shutil.copytree(scratch / "data", staged, symlinks=True)
        try:
            os.rename(staged, template)
        except OSError:
            if not (template / "PG_VERSION").is_file():
                raise
            shutil.rmtree(staged, ignore_errors=True)  # another process won the race
    except OSError as err:
        raise EmulatorError(f"cannot create the PostgreSQL template in {cache}: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return template


def copy_template(template: Path, data_dir: Path, owner: tuple[int, int] | None) -> None:
    """Copy the template to ``data_dir`` (mode 0700) and hand it to ``owner``."""
    try:
        shutil.copytree(template, data_dir, symlinks=True)
        data_dir.chmod(0o700)
        if owner is not None:
            chown_tree(data_dir, owner)
    except OSError as err:
        raise EmulatorError(f"cannot copy the PostgreSQL template to {data_dir}: {err}") from err


class PortInUseError(EmulatorError):
    """The server could not bind its port (someone took it); pick another."""


class PgServer:
    """One ``postgres`` process on a data directory; start, stop, restart on one port."""

    def __init__(
        self,
        binaries: PgBinaries,
        data_dir: Path,
        *,
        socket_dir: Path,
        log_file: Path,
        owner: tuple[int, int] | None,
        settings: Mapping[str, str],
    ) -> None:
        self.binaries = binaries
        self.data_dir = data_dir
        self.socket_dir = socket_dir
        self.log_file = log_file
        self.owner = owner
        self.settings = dict(settings)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the postmaster process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running."""
        return self._process.pid if self.running and self._process else None

    def _argv(self, port: int) -> Sequence[str]:
        argv = [str(self.binaries.bindir / "postgres"), "-D", str(self.data_dir)]
        settings = {**self.settings, "port": str(port)}
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def start(self, port: int, *, timeout: float = 30.0) -> None:
        """Start on ``port`` and wait until it accepts connections.

        :raises PortInUseError: the port was taken meanwhile.
        :raises EmulatorError: the server did not come up; the message has its log tail.
        """
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            if self.owner is not None:
                os.chown(self.log_file, *self.owner)
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv
                self._argv(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir.parent,
                env=_server_env(),
                start_new_session=True,  # a Ctrl-C in the terminal is the emulator's to handle
                user=_uid(self.owner),
                group=_gid(self.owner),
                extra_groups=_groups(self.owner),
            )
        deadline = time.monotonic() + timeout
        pid_file = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self._log_since(offset)
                self._process = None
                if "could not bind" in tail or "Address already in use" in tail:
                    raise PortInUseError(f"port {port} is in use")
                raise EmulatorError(f"PostgreSQL exited while starting:\n{tail}")
            try:
                lines = pid_file.read_text(encoding="utf-8").splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.005)
        self.stop()
        raise EmulatorError(
            f"PostgreSQL did not become ready in {timeout:g} s:\n{self._log_since(offset)}"
        )

    def stop(self, *, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT: abort sessions, checkpoint); escalate if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                process.send_signal(sig)
                process.wait(wait)
            except subprocess.TimeoutExpired:
                logger.warning("PostgreSQL pid %s ignored %s; escalating", process.pid, sig.name)
                continue
            except ProcessLookupError:
                break
            return

    def log_tail(self) -> str:
        """The end of the server log, for error messages."""
        return self._log_since(0)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return log.read()[-4000:].decode("utf-8", "replace").strip()
        except OSError as err:
            return f"(log unreadable: {err})"
