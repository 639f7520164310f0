"""A local TCP forwarder standing in for an SSH or SSM port-forwarding tunnel.

Clients dial ``127.0.0.1:<tunnel.port>`` but the IAM token must still be
signed for the real ``endpoint:port``: that mismatch is the classic tunnel
mistake, and this helper lets tests reproduce it against the emulator.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from types import TracebackType

from rdsiamkit.errors import ConfigurationError, EmulatorError

__all__ = ["TcpTunnel"]

logger = logging.getLogger("rdsiamkit.testing.tunnel")

_CHUNK = 65536


class TcpTunnel:
    """Forward ``listen_host:<free port>`` to ``target_host:target_port``.

    Listens as soon as it is created; at most ``max_connections`` are relayed
    at once (more are closed on arrival).  :meth:`close` (or leaving the
    ``with`` block) stops listening, cuts every relayed connection and joins
    its threads.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        max_connections: int = 64,
        connect_timeout: float = 5.0,
    ) -> None:
        if max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1, got {max_connections}")
        self.target = (target_host, target_port)
        self._connect_timeout = connect_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = threading.Event()
        self.connections_total = 0
        try:
            self._listener = socket.create_server((listen_host, 0))
        except OSError as err:
            raise EmulatorError(f"cannot listen on {listen_host}: {err}") from err
        self._listener.settimeout(0.1)
        self.host: str = listen_host
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"rdsiamkit-tunnel-{self.port}", daemon=True
        )
        self._acceptor.start()

    def __repr__(self) -> str:
        return f"<TcpTunnel {self.host}:{self.port} -> {self.target[0]}:{self.target[1]}>"

    def __enter__(self) -> TcpTunnel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if not self._slots.acquire(blocking=False):
                logger.warning("tunnel %s: connection limit reached, dropping one", self.port)
                client.close()
                continue
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            with self._lock:
                self.connections_total += 1
                self._threads.add(thread)
            thread.start()

    def _relay(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = socket.create_connection(self.target, timeout=self._connect_timeout)
            with self._lock:
                self._sockets.update((client, upstream))
            if self._closed.is_set():
                return
            self._pump(client, upstream)
        except OSError as err:
            logger.debug("tunnel %s: relay ended: %s", self.port, err)
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()
            with self._lock:
                self._sockets.difference_update((client, upstream))
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        for sock in peers:
            sock.settimeout(None)
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(_CHUNK)
                    if not data:
                        return
                    peers[source].sendall(data)

    def close(self) -> None:
        """Stop listening, cut relayed connections, and wait for the threads."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.close()
        self._acceptor.join()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)
