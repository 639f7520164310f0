"""A client-side bound on a round trip that the network may leave unanswered forever.

A connection whose network path stalls silently (a dropped VPN, a security group
change, a NAT entry that expired) leaves psycopg waiting for an answer that never
comes: TCP keepalives are off by default and a statement timeout is the server's,
which never hears of it.  :class:`RoundTripWatchdog` gives each round trip a
deadline; past it, it shuts the connection's socket down, so the waiting call
fails at once with :class:`psycopg.OperationalError` and whatever transaction was
open is never committed (the server rolls it back when it notices).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

__all__ = ["RoundTripWatchdog"]

log = logging.getLogger("rdsiamkit.authmode")


class RoundTripWatchdog:
    """Shut ``conn``'s socket down when one :meth:`armed` block outlasts :attr:`deadline`.

    ``timeout`` is what the server is told (``statement_timeout``); the client
    waits longer, ``1.5 * timeout + 1`` seconds, so that a slow statement is
    normally cancelled by the server (the connection stays usable) and only a
    silent network makes the client close the connection.
    """

    def __init__(self, conn: psycopg.Connection[Any], timeout: float | None) -> None:
        self.conn = conn
        self.timeout = timeout
        self.deadline = None if timeout is None else 1.5 * timeout + 1.0
        self.fired = False
        #: Whether ``conn`` was outside a transaction (the kit's writes open their own).
        self.own_transaction = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        self._timer: threading.Timer | None = None

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Run the block with the deadline armed; disarmed however the block ends."""
        self.arm()
        try:
            yield
        finally:
            self.disarm()

    def arm(self) -> None:
        """Start (or restart) the deadline; :meth:`disarm` stops it."""
        self.disarm()
        if self.deadline is None:
            return
        self._timer = threading.Timer(self.deadline, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        """Stop the deadline, if one is running."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        try:
            fileno = self.conn.pgconn.socket
        except psycopg.OperationalError:
            return  # already closed
        self.fired = True
        log.warning(
            "no answer from the server within %.1f s: closing the connection (its open "
            "transaction is not committed)",
            self.deadline,
        )
        # A duplicate descriptor of the same socket: shutdown() acts on the socket itself
        # (waking the waiting call) and closing the duplicate leaves psycopg's own alone.
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
