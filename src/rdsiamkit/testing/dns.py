"""A name table tests control, answering the kit's name lookups instead of the system's.

The kit resolves names itself in two cases only: a global writer endpoint (whose
CNAME leads to the current primary's regional endpoint) and a custom domain with
``resolve_cname=True``.  :class:`FakeDns` answers those lookups from CNAME and
address records the test sets; installed with :meth:`FakeDns.installed` (or the
emulator's :meth:`~rdsiamkit.testing.RdsIamEmulator.resolving`), it replaces the
system resolver through ``rdsiamkit._resolve.set_resolver``.  Names it does not
know fail like NXDOMAIN, so a test never reaches real DNS by accident.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from rdsiamkit._resolve import Lookup, using_resolver
from rdsiamkit.errors import EmulatorError

__all__ = ["FakeDns"]

_MAX_CHAIN = 16


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class FakeDns:
    """CNAME and address records, changeable at any time (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cnames: dict[str, str] = {}
        self._addresses: dict[str, tuple[str, ...]] = {}
        self._failing: set[str] = set()
        #: Every name asked about, in order (to count lookups).
        self.asked: list[str] = []

    def add_cname(self, name: str, target: str) -> None:
        """Make ``name`` a CNAME to ``target`` (replacing what ``name`` was)."""
        name, target = _norm(name), _norm(target)
        if name == target:
            raise EmulatorError(f"a CNAME from {name} to itself would loop")
        with self._lock:
            self._addresses.pop(name, None)
            self._cnames[name] = target

    def add_address(self, name: str, *addresses: str) -> None:
        """Give ``name`` these addresses (an A/AAAA record; replacing a CNAME)."""
        if not addresses:
            raise EmulatorError(f"give {name} at least one address")
        with self._lock:
            self._cnames.pop(_norm(name), None)
            self._addresses[_norm(name)] = tuple(addresses)

    def remove(self, name: str) -> None:
        """Forget every record of ``name``."""
        with self._lock:
            self._cnames.pop(_norm(name), None)
            self._addresses.pop(_norm(name), None)
            self._failing.discard(_norm(name))

    def fail(self, name: str, failing: bool = True) -> None:
        """Make lookups of ``name`` fail (SERVFAIL-like) until ``fail(name, False)``."""
        with self._lock:
            (self._failing.add if failing else self._failing.discard)(_norm(name))

    def clear(self) -> None:
        """Forget every record and every lookup counted."""
        with self._lock:
            self._cnames.clear()
            self._addresses.clear()
            self._failing.clear()
            self.asked.clear()

    def __call__(self, host: str) -> Lookup:
        """Answer like ``gethostbyname_ex``: the CNAME chain and the addresses at its end."""
        name = _norm(host)
        with self._lock:
            self.asked.append(name)
            chain = [name]
            while True:
                if chain[-1] in self._failing:
                    raise socket.gaierror(socket.EAI_AGAIN, f"lookup of {chain[-1]} failed")
                target = self._cnames.get(chain[-1])
                if target is None:
                    break
                if target in chain or len(chain) > _MAX_CHAIN:
                    raise socket.gaierror(socket.EAI_FAIL, f"CNAME loop at {target}")
                chain.append(target)
            addresses = self._addresses.get(chain[-1])
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{chain[-1]}: Name or service not known")
        return Lookup(tuple(chain), addresses)

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeDns]:
        """Answer the kit's lookups inside the block; the previous resolver afterwards."""
        with using_resolver(self):
            yield self
