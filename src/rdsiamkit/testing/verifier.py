"""The emulator's IAM decision point: token checks, policy, throttle, audit log, socket server.

PostgreSQL hands every login of an ``rds_iam`` member to the PAM module
``pam_rdsiamkit.so``, which forwards user and password over a Unix socket to
the :class:`VerifierServer` running in the emulator's Python process.  The
server asks :class:`IamGate` for a decision and answers ``OK`` or ``NO``; the
reason goes to the audit log (memory and JSON lines, like RDS's
``iam-db-auth-error`` log export) and never to the client.

Wire format, both directions: frames of a 4-byte big-endian length and that
many bytes.  The module sends two frames (user, password); the server answers
one frame, ``OK`` or ``NO``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socketserver
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import IO

import attrs

from rdsiamkit.errors import ConfigurationError, EmulatorError
from rdsiamkit.testing.credentials import CredentialRegistry, KeyView
from rdsiamkit.testing.sigv4 import MAX_TOKEN_LENGTH, AuthFailureReason, SigningSecret, verify_token

__all__ = ["AuthEvent", "AuthLog", "IamGate", "VerifierServer"]

logger = logging.getLogger("rdsiamkit.testing.verifier")

_LENGTH = struct.Struct(">I")
#: PostgreSQL role names are at most 63 bytes; leave room for multibyte slop.
_MAX_USER_BYTES = 1024
_REQUEST_TIMEOUT = 5.0
# An acceptance decided later than this is recorded (and answered) as a refusal: the PAM
# module stops waiting after _REQUEST_TIMEOUT, so the client would not have been let in.
_ANSWER_DEADLINE = _REQUEST_TIMEOUT - 1.0
_MAX_EVENTS = 100_000
ACCEPT = b"OK"
REFUSE = b"NO"
#: The role the emulator logs in as at start-up to prove PostgreSQL -> PAM -> verifier works.
PROBE_USER = "rdsiamkit_pam_probe"


@attrs.frozen
class AuthEvent:
    """One IAM login decision; holds no token or secret."""

    time: float
    user: str
    access_key_id: str | None
    host: str | None
    outcome: AuthFailureReason | None
    port: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the login was accepted."""
        return self.outcome is None

    def as_json(self) -> str:
        """One line of the JSON-lines audit log."""
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time))
                + f".{int(self.time % 1 * 1000):03d}Z",
                "epoch": self.time,
                "outcome": "success" if self.ok else "failure",
                "reason": None if self.outcome is None else self.outcome.value,
                "user": self.user,
                "access_key_id": self.access_key_id,
                "host": self.host,
                "port": self.port,
                "detail": self.detail,
            },
            ensure_ascii=False,
        )


class AuthLog:
    """Decisions in memory (newest last, bounded) and, once attached, in a JSON-lines file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: deque[AuthEvent] = deque(maxlen=_MAX_EVENTS)
        self._file: IO[str] | None = None
        self.path: Path | None = None

    def attach(self, path: Path) -> None:
        """Append every later event to ``path`` (flushed per line)."""
        handle = path.open("a", encoding="utf-8")
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self.path = handle, path

    def record(self, event: AuthEvent) -> None:
        """Keep ``event`` and write it out."""
        line = event.as_json()
        with self._lock:
            self._events.append(event)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def events(self) -> list[AuthEvent]:
        """A snapshot of the recorded events, oldest first."""
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        """Forget the in-memory events; the file keeps its history."""
        with self._lock:
            self._events.clear()

    def close(self) -> None:
        """Stop writing to the file; later events are kept in memory only."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class _RateLimiter:
    """Token bucket: ``rate`` logins per second, bursts up to ``max(1, rate)``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._stamp = 0.0

    def set(self, rate: float | None) -> None:
        if rate is not None and not rate > 0:
            raise ConfigurationError(f"IAM rate limit must be > 0 or None, got {rate!r}")
        with self._lock:
            self._rate = rate
            self._tokens = 0.0 if rate is None else max(1.0, rate)
            self._stamp = self._clock()

    def acquire(self) -> bool:
        with self._lock:
            if self._rate is None:
                return True
            now = self._clock()
            burst = max(1.0, self._rate)
            self._tokens = min(burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class IamGate:
    """Decides IAM logins for one emulator; every knob is live and thread-safe."""

    def __init__(
        self,
        *,
        region: str,
        hosts: Collection[str],
        port: int,
        registry: CredentialRegistry,
        log: AuthLog,
        arn_prefix: str,
        max_token_age: float,
        max_clock_skew: float,
        rate_clock: Callable[[], float] = time.monotonic,
        host_regions: Mapping[str, str] | None = None,
        arn_prefixes: Mapping[str, str] | None = None,
    ) -> None:
        self.region = region
        self.hosts = frozenset(h.lower() for h in hosts)
        #: Hosts whose tokens must be signed for another region than :attr:`region`
        #: (another region's cluster, a global writer's current primary).  Replaced
        #: whole, never mutated, so a login in flight sees one consistent map.
        self.host_regions: Mapping[str, str] = dict(host_regions or {})
        #: ``arn:…:dbuser:RESOURCE_ID/`` per signing region (each member cluster of a
        #: global database has its own resource id); ``arn_prefix`` for the others.
        self.arn_prefixes: Mapping[str, str] = dict(arn_prefixes or {})
        #: The port tokens must be signed for; the emulator sets it before serving.
        self.port = port
        self.registry = registry
        self.log = log
        #: ``arn:…:dbuser:RESOURCE_ID/``: IAM matches ``prefix + user`` whatever the user's name.
        self._arn_prefix = arn_prefix
        self._limiter = _RateLimiter(rate_clock)
        self._probed = threading.Event()
        self._max_token_age = _positive("max_token_age", max_token_age)
        self._max_clock_skew = _non_negative("max_clock_skew", max_clock_skew)

    @property
    def max_token_age(self) -> float:
        """Seconds a token stays valid after ``X-Amz-Date`` (capped by ``X-Amz-Expires``)."""
        return self._max_token_age

    @max_token_age.setter
    def max_token_age(self, seconds: float) -> None:
        self._max_token_age = _positive("max_token_age", seconds)

    @property
    def max_clock_skew(self) -> float:
        """Seconds ``X-Amz-Date`` may lie in the future."""
        return self._max_clock_skew

    @max_clock_skew.setter
    def max_clock_skew(self, seconds: float) -> None:
        self._max_clock_skew = _non_negative("max_clock_skew", seconds)

    def set_rate_limit(self, per_second: float | None) -> None:
        """Refuse IAM logins above ``per_second`` (``rate_limited``); None lifts the limit."""
        self._limiter.set(per_second)

    def begin_probe(self) -> None:
        """Expect a start-up login as :data:`PROBE_USER`."""
        self._probed.clear()

    def probe_arrived(self) -> bool:
        """True once the probe login reached the gate (it is refused, and not recorded)."""
        return self._probed.is_set()

    def decide(self, user: str, token: str) -> AuthEvent:
        """Check one login, record it and return the event."""
        event = self.judge(user, token)
        self.record(event)
        return event

    def judge(self, user: str, token: str) -> AuthEvent:
        """Check one login without recording it (see :meth:`record`)."""
        if user == PROBE_USER:
            self._probed.set()
            return AuthEvent(time.time(), user, None, None, AuthFailureReason.MALFORMED)
        if not self._limiter.acquire():
            event = AuthEvent(
                time.time(), user, None, None, AuthFailureReason.RATE_LIMITED, None, "throttled"
            )
        else:
            now = time.time()
            views: dict[str, KeyView] = {}

            def lookup(access_key_id: str) -> SigningSecret | None:
                view = self.registry.view(access_key_id)
                if view is None:
                    return None
                views[access_key_id] = view
                return view.secret

            verdict = verify_token(
                token,
                user=user,
                region=self.region,
                hosts=self.hosts,
                port=self.port,
                lookup=lookup,
                now=now,
                max_token_age=self._max_token_age,
                max_clock_skew=self._max_clock_skew,
                regions=self.host_regions,
            )
            outcome, detail = verdict.outcome, verdict.detail
            if verdict.ok and verdict.access_key_id is not None:
                signed_for = self.host_regions.get(verdict.host or "", self.region)
                arn = self.arn_prefixes.get(signed_for, self._arn_prefix) + user
                if not views[verdict.access_key_id].allows(arn):
                    outcome = AuthFailureReason.NOT_AUTHORIZED
                    detail = f"no policy of the key allows rds-db:connect on {arn!r}"
            event = AuthEvent(
                now, user, verdict.access_key_id, verdict.host, outcome, verdict.port, detail
            )
        return event

    def record(self, event: AuthEvent) -> None:
        """Add ``event`` to the log (and the audit file); the start-up probe is not logged."""
        if event.user == PROBE_USER:
            return
        self.log.record(event)
        logger.log(
            logging.DEBUG if event.ok else logging.INFO,
            "IAM login user=%s key=%s host=%s: %s (%s)",
            event.user,
            event.access_key_id,
            event.host,
            "accepted" if event.ok else event.outcome,
            event.detail,
        )


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


def _non_negative(name: str, value: float) -> float:
    if not value >= 0:
        raise ConfigurationError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def _read_exact(sock_file: io.BufferedIOBase, size: int) -> bytes:
    data = sock_file.read(size)
    if data is None or len(data) != size:
        raise ConnectionError("peer closed mid-frame")
    return data


def _read_frame(sock_file: io.BufferedIOBase, limit: int) -> bytes:
    (size,) = _LENGTH.unpack(_read_exact(sock_file, _LENGTH.size))
    if size > limit:
        raise ConnectionError(f"frame of {size} bytes exceeds {limit}")
    return _read_exact(sock_file, size)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = _REQUEST_TIMEOUT

    def handle(self) -> None:
        started = time.monotonic()
        try:
            user = _read_frame(self.rfile, _MAX_USER_BYTES).decode("utf-8")
            token = _read_frame(self.rfile, MAX_TOKEN_LENGTH + 1).decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            logger.warning("dropping a malformed PAM request: %s", err)
            return
        gate = self.server.gate
        try:
            event: AuthEvent | None = gate.judge(user, token)
        except Exception:
            logger.exception("IAM decision failed; refusing the login")
            event = None
        late = time.monotonic() - started
        if event is not None and event.ok and late > _ANSWER_DEADLINE:
            # The PAM module has given up (or is about to): the client was refused.
            event = attrs.evolve(
                event,
                outcome=AuthFailureReason.TIMEOUT,
                detail=f"decided after {late:.1f} s; the PAM module waits {_REQUEST_TIMEOUT} s",
            )
        # Recorded before answering: once the client has its answer, the event is there.
        if event is not None:
            gate.record(event)
        answer = ACCEPT if event is not None and event.ok else REFUSE
        try:
            self.wfile.write(_LENGTH.pack(len(answer)) + answer)
        except OSError as err:
            logger.warning("could not answer the PAM module: %s", err)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    # Handler threads are joined on close; each is bounded by _REQUEST_TIMEOUT.
    daemon_threads = False
    block_on_close = True

    def __init__(self, path: str, gate: IamGate) -> None:
        self.gate = gate
        super().__init__(path, _Handler)


class VerifierServer:
    """A threaded Unix-socket server answering the PAM module; one per emulator."""

    def __init__(self, path: Path, gate: IamGate, *, owner: tuple[int, int] | None = None) -> None:
        """Bind ``path``; ``owner`` (uid, gid) is who may connect (the postgres OS user)."""
        self.path = path
        try:
            path.unlink(missing_ok=True)
            self._server = _Server(str(path), gate)
            os.chmod(path, 0o600)
            if owner is not None:
                os.chown(path, *owner)
        except OSError as err:
            raise EmulatorError(f"cannot listen on verifier socket {path}: {err}") from err
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"rdsiamkit-verifier-{path.parent.name}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving, wait for in-flight requests, remove the socket file."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.path.unlink(missing_ok=True)
