"""Pytest plugin: fail the session if any log record or report shows a token or a secret.

Enable it for a whole suite from ``tests/conftest.py``::

    pytest_plugins = ["secret_scan"]

(or ``pytest -p secret_scan`` with ``tests/`` on ``sys.path``).  For the whole
session it lowers the root logger to DEBUG and keeps every distinct record it
sees (message with its args, exception and stack text; records of loggers that
do not propagate to the root are tapped too), plus what reaches
pytest itself: failure reports, captured output, exceptions of failed tests
and warnings.  At the end of the session every text is checked for

* ``X-Amz-Signature=<hex>``: the signature of an IAM token *is* the credential;
* ``X-Amz-Security-Token=<value>``: an STS session token;
* a JSON Web Token (``eyJ...`` header, payload and signature): the web-identity
  token of EKS IRSA, an SSO OIDC id token or client secret;
* SSO and OAuth tokens: the value of an ``x-amz-sso_bearer_token`` header, of an
  ``accessToken``/``refreshToken``/``idToken``/``clientSecret`` field (any
  spelling: ``access_token``, quoted, ``key: value`` or ``key=value``), an SSO
  cache token (``aoaAAA...``/``aorAAA...``) anywhere, and ``Bearer <token>``;
* every secret registered with :func:`register` (passwords tests use), and the
  ones found automatically: each :class:`~rdsiamkit.testing.FakeCredentials`'
  secret key and session token, the emulator's master password and every
  password given to ``RdsIamEmulator.create_user``.

Any hit makes the session fail (exit status 1) with a report that names where
the text came from and shows it with the secret blanked out: the report never
repeats what it found.  The kit's own redaction placeholder does not count.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import warnings
from collections.abc import Callable, Generator, Iterable
from typing import Any

import attrs
import pytest

__all__ = ["MIN_SECRET_LENGTH", "Finding", "register", "scan_text"]

#: Shorter values would match innocent text; :func:`register` refuses them.
MIN_SECRET_LENGTH = 8
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("X-Amz-Signature value", re.compile(r"X-Amz-Signature=[0-9a-fA-F]{16,}")),
    (
        "X-Amz-Security-Token value",
        re.compile(r"X-Amz-Security-Token=(?!<redacted)[^&\s'\"]{3,}"),
    ),
    # A web-identity token (EKS IRSA), SSO OIDC id token or client secret: header.payload.sig.
    (
        "JSON Web Token",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ),
    # SSO tokens by their context: a header, a JSON field, a dict repr or a form parameter.
    (
        "SSO / OAuth token value",
        re.compile(
            r"(?<![A-Za-z0-9])(?i:sso_bearer_token|access_?token|refresh_?token|id_?token|client_?secret"
            r"|web_?identity_?token)"
            r"""\\?["']?\s*[:=]\s*b?\\?["']?(?!<redacted)[A-Za-z0-9+/=._~-]{16,}"""
        ),
    ),
    # SSO access and refresh tokens as the SSO token cache holds them (aoa..., aor...).
    ("SSO access/refresh token", re.compile(r"(?<![A-Za-z0-9+/])ao[ar]A{3}[A-Za-z0-9+/=_:-]{30,}")),
    ("Bearer credential", re.compile(r"\bBearer\s+(?!<redacted)[A-Za-z0-9._~+/=-]{16,}")),
)
_BLANK = "<SECRET>"
_EXCERPT = 240

_lock = threading.Lock()
_secrets: dict[str, str] = {}  # value -> what it is (never printed together)
_texts: dict[str, str] = {}  # text -> where it was first seen
_state: dict[str, Any] = {}


def register(*values: str | None, label: str = "registered secret") -> None:
    """Add values that must never appear in a log record, report or exception.

    ``None`` is ignored (e.g. the session token of long-term credentials).

    :raises ValueError: a value is shorter than :data:`MIN_SECRET_LENGTH`, so
        scanning for it would fail innocent text; use a longer secret.
    """
    for value in values:
        if value is None:
            continue
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{label}: a secret to scan for needs at least {MIN_SECRET_LENGTH} characters"
            )
        with _lock:
            _secrets.setdefault(value, label)


def _discover(*values: object, label: str) -> None:
    """Register what a test fixture made, skipping values too short to scan for."""
    for value in values:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            register(value, label=label)


@attrs.frozen
class Finding:
    """A text that showed a secret: where it came from, what kind, and a blanked excerpt."""

    where: str
    what: tuple[str, ...]
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {', '.join(self.what)}\n    {self.excerpt}"


def scan_text(text: str, where: str) -> Finding | None:
    """Check one text against the patterns and the registered secrets."""
    with _lock:
        secrets = dict(_secrets)
    what: list[str] = []
    spans: list[tuple[int, int]] = []
    for name, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            what.append(name)
            spans.append(match.span())
    for value, label in secrets.items():
        start = text.find(value)
        while start >= 0:
            what.append(label)
            spans.append((start, start + len(value)))
            start = text.find(value, start + 1)
    if not what:
        return None
    return Finding(where=where, what=tuple(sorted(set(what))), excerpt=_blank(text, spans))


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """The text around the first hit, every hit replaced by a placeholder."""
    out, last = [], 0
    for start, end in sorted(spans):
        if end <= last:
            continue
        out.append(text[last : max(start, last)])
        out.append(_BLANK)
        last = end
    out.append(text[last:])
    blanked = "".join(out)
    first = blanked.find(_BLANK)
    excerpt = blanked[max(0, first - _EXCERPT // 2) :][:_EXCERPT]
    return excerpt.replace("\n", "\\n")


def _keep(text: str, where: str) -> None:
    if text:
        with _lock:
            _texts.setdefault(text, where)


class _Collector(logging.Handler):
    """Keeps every distinct record text; never formats with a user-set formatter."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._plain = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the args
            message = f"{record.msg!r} % {record.args!r}"
        parts = [message]
        if record.exc_info:
            parts.append(self._plain.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        where = f"log record {record.name} {record.levelname} at {record.pathname}:{record.lineno}"
        _keep("\n".join(parts), where)


def _reaches_root(logger: logging.Logger) -> bool:
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:
        if not node.propagate:
            return False
        node = node.parent
    return True


def _install_non_propagating_tap(handler: logging.Handler) -> None:
    """Records of loggers that do not propagate never reach the root: tap them as well."""
    original = logging.Logger.callHandlers

    @functools.wraps(original)
    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if not _reaches_root(self):
            handler.handle(record)
        original(self, record)

    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
    _state.setdefault("restore", []).append((logging.Logger, "callHandlers", original))


def _wrap_init(cls: type, extract: Callable[[Any], Iterable[object]], label: str) -> None:
    """Register what ``extract`` finds on every new instance of ``cls``."""
    original = cls.__init__  # type: ignore[misc]

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _discover(*extract(self), label=label)

    cls.__init__ = init  # type: ignore[misc]
    _state.setdefault("restore", []).append((cls, "__init__", original))


def _wrap_create_user(cls: type) -> None:
    """Register the password of every user an emulator creates."""
    original = cls.create_user  # type: ignore[attr-defined]

    @functools.wraps(original)
    def create_user(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        _discover(kwargs.get("password"), label="password given to create_user")
        return original(self, name, *args, **kwargs)

    cls.create_user = create_user  # type: ignore[attr-defined]
    _state.setdefault("restore", []).append((cls, "create_user", original))


def _install_discovery() -> None:
    """Find the emulator's and fake credentials' secrets as tests make them."""
    try:
        from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
    except ImportError as err:  # the scan still runs on patterns and registered secrets
        warnings.warn(
            f"secret_scan: cannot discover emulator secrets ({err}); "
            "only patterns and register()ed values are checked",
            stacklevel=1,
        )
        return
    _wrap_init(
        FakeCredentials,
        lambda c: (c.secret_access_key, c.session_token),
        "FakeCredentials secret key / session token",
    )
    _wrap_init(RdsIamEmulator, lambda e: (e.master_password,), "emulator master password")
    _wrap_create_user(RdsIamEmulator)


def pytest_configure(config: pytest.Config) -> None:
    """Install the DEBUG root handler and secret discovery for the whole session."""
    if "handler" in _state:
        return
    handler = _Collector()
    root = logging.getLogger()
    _state.update(handler=handler, root_level=root.level, findings=[])
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    _install_non_propagating_tap(handler)
    _install_discovery()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put logging and the wrapped classes back as they were."""
    handler = _state.pop("handler", None)
    if handler is None:
        return
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(_state.pop("root_level"))
    for cls, name, original in reversed(_state.pop("restore", [])):
        setattr(cls, name, original)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep what pytest shows of a test: its exception chain, report and captured output."""
    report = yield
    where = f"{item.nodeid} ({call.when})"
    if call.excinfo is not None:
        error: BaseException | None = call.excinfo.value
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            # psycopg errors of a connection attempt keep its PGconn, password included
            attempt = getattr(error, "pgconn", None)
            _keep(f"{error}\n{error!r}\n{error.args!r}\n{attempt!r}", f"exception of {where}")
            error = error.__cause__ or error.__context__
    if report.longrepr is not None:
        _keep(report.longreprtext, f"failure report of {where}")
    for title, content in report.sections:
        _keep(content, f"{title} of {where}")
    return report


def pytest_warning_recorded(warning_message: warnings.WarningMessage, nodeid: str) -> None:
    """Warnings (and unraisable exceptions, which pytest turns into warnings) count too."""
    _keep(str(warning_message.message), f"warning at {nodeid or 'session'}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan everything kept; any finding fails the session."""
    if "handler" not in _state:
        return
    with _lock:
        texts = list(_texts.items())
    findings = [f for text, where in texts if (f := scan_text(text, where)) is not None]
    _state["findings"] = findings
    _state["scanned"] = len(texts)
    if findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say what was scanned and, on failure, where each secret showed (blanked)."""
    if "findings" not in _state:
        return
    findings: list[Finding] = _state["findings"]
    scanned = _state.get("scanned", 0)
    if not findings:
        terminalreporter.write_line(f"secret scan: {scanned} distinct texts, no secret found")
        return
    terminalreporter.write_sep("=", f"secret scan FAILED: {len(findings)} leak(s)", red=True)
    for finding in findings:
        terminalreporter.write_line(str(finding))
