"""Build the emulator's PAM module and manage its per-instance ``/etc/pam.d`` service.

PostgreSQL's ``pam`` method can only name a PAM *service*, and PAM reads
services from ``/etc/pam.d``; so each emulator writes its own service file
pointing at the module (absolute path) and at its own verifier socket, and
removes it on stop.  Files left behind by a killed process are swept at the
next start: each names the process that owns it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import platform
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import attrs

from rdsiamkit.errors import EmulatorError

__all__ = ["PAM_DIR", "PamService", "build_module", "sweep_stale_services"]

logger = logging.getLogger("rdsiamkit.testing.pam")

PAM_DIR = Path("/etc/pam.d")
SERVICE_PREFIX = "rdsiamkit-"
_OWNER_RE = re.compile(r"^# rdsiamkit emulator pid=(\d+)$", re.MULTILINE)
_SOURCE = "pam_rdsiamkit.c"


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise EmulatorError(
        "no C compiler found (tried $CC, cc, gcc, clang); the emulator builds its PAM "
        "module at start-up: install gcc (apt-get install gcc libc6-dev libpam0g-dev)"
    )


def build_module(cache_dir: Path) -> Path:
    """Compile ``pam_rdsiamkit.c`` once per source/compiler/machine; return the ``.so`` path."""
    source = importlib.resources.files("rdsiamkit.testing").joinpath(_SOURCE).read_bytes()
    compiler = _compiler()
    # -Werror stays out: a newer compiler's new warning must not stop the emulator.
    command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", "module.so", _SOURCE, "-lpam"]
    digest = hashlib.sha256(
        b"\0".join([source, platform.machine().encode(), *(a.encode() for a in command)])
    ).hexdigest()[:16]
    target = cache_dir / "pam" / f"pam_rdsiamkit-{digest}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".build-{os.getpid()}-{secrets.token_hex(4)}"
    scratch.mkdir()
    try:
        (scratch / _SOURCE).write_bytes(source)
        result = subprocess.run(  # noqa: S603 - fixed argv, compiler from PATH
            command, cwd=scratch, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            hint = (
                "PAM development headers are missing: apt-get install libpam0g-dev"
                if "security/pam" in result.stderr or "-lpam" in result.stderr
                else "see the compiler output"
            )
            raise EmulatorError(
                f"building the PAM module with {compiler} failed ({hint}):\n"
                f"{result.stderr.strip()[-2000:]}"
            )
        os.replace(scratch / "module.so", target)
    except OSError as err:
        raise EmulatorError(f"cannot build the PAM module under {cache_dir}: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.debug("built PAM module %s", target)
    return target


def _owner_alive(text: str) -> bool:
    match = _OWNER_RE.search(text)
    if match is None:
        return True  # not ours to judge
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_services(pam_dir: Path = PAM_DIR) -> list[Path]:
    """Remove service files of emulators whose process is gone; return what was removed."""
    removed: list[Path] = []
    for path in pam_dir.glob(SERVICE_PREFIX + "*"):
        try:
            if not _owner_alive(path.read_text(encoding="utf-8")):
                path.unlink()
                removed.append(path)
        except OSError as err:
            logger.debug("cannot sweep %s: %s", path, err)
    if removed:
        logger.info("removed %d stale PAM service file(s) of dead emulators", len(removed))
    return removed


@attrs.frozen
class PamService:
    """One installed ``/etc/pam.d/rdsiamkit-…`` service; :meth:`remove` deletes it."""

    name: str
    path: Path

    @classmethod
    def install(
        cls, *, module: Path, socket: Path, timeout: int = 5, pam_dir: Path = PAM_DIR
    ) -> PamService:
        """Write a service whose ``auth`` asks the verifier at ``socket``."""
        for path in (module, socket):
            if not path.is_absolute() or any(c.isspace() for c in str(path)):
                raise EmulatorError(f"PAM needs an absolute path without spaces, got {path}")
        if not os.access(pam_dir, os.W_OK):
            raise EmulatorError(
                f"cannot write a PAM service to {pam_dir}: the emulator must run as root "
                f"(PostgreSQL's pam method only reads services from there)"
            )
        name = SERVICE_PREFIX + secrets.token_hex(6)
        path = pam_dir / name
        text = (
            f"# rdsiamkit emulator pid={os.getpid()}\n"
            "# Removed when that emulator stops; swept by the next one if the process died.\n"
            f"auth    required {module} socket={socket} timeout={timeout}\n"
            f"account required {module}\n"
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as err:
            raise EmulatorError(f"cannot write PAM service {path}: {err}") from err
        return cls(name=name, path=path)

    def remove(self) -> None:
        """Delete the service file (no error if it is already gone)."""
        self.path.unlink(missing_ok=True)
