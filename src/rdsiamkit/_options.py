"""The kit's own connection options, declared, documented and validated once.

Every entry point (:func:`rdsiamkit.connect`, the pools, the SQLAlchemy engines, the
auth-mode switch's verification login, the doctor) takes the same keywords for what
is not libpq's: where the credentials come from, what the token is signed for, how
TLS may be relaxed and how often a login is retried.  They are declared here twice
over, side by side, and nowhere else:

* :class:`IamOptions`, a :class:`~typing.TypedDict`: their names, types and meaning,
  for ``**options: Unpack[IamOptions]`` signatures (PEP 692);
* :class:`ConnectOptions`, a frozen value that checks them once (types, ranges, the
  pairs that exclude each other) and picks the token provider.

``tests/unit/test_options.py`` holds the two to the same names, annotations and
defaults.  Adding an option: declare it in both, use it, test it, document it.

Entry points that also take libpq keywords (``**kwargs``) pull the kit's options out
with :meth:`ConnectOptions.from_kwargs`; :func:`with_options_signature` shows them in
the entry point's runtime signature (``help()``, IPython completion), read from here.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import attrs

from rdsiamkit.errors import ConfigurationError
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

if TYPE_CHECKING:
    import boto3
    from typing_extensions import Unpack

__all__ = [
    "OPTION_NAMES",
    "ConnectOptions",
    "IamOptions",
    "async_provider",
    "default_provider",
    "parse_port",
    "sync_provider",
    "with_options_signature",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class IamOptions(TypedDict, total=False):
    """The kit's connection options: every entry point takes them as keywords."""

    region: str | None
    """AWS region to sign the token for; default: the endpoint's region, else the
    credentials' (``AWS_REGION``, the profile's ``region``)."""
    session: boto3.Session | None
    """A :class:`boto3.Session` whose credentials sign the tokens."""
    profile: str | None
    """A named AWS profile whose credentials sign the tokens (not with ``session``)."""
    token_provider: TokenProvider | AsyncTokenProvider | None
    """A provider to share a token cache between entry points (not with
    ``session``/``profile``); async entry points also take a :class:`TokenProvider`."""
    token_host: str | None
    """The endpoint name the token is signed for, when the dialled host differs (tunnel)."""
    token_port: int | None
    """The port the token is signed for, when the dialled port differs (tunnel)."""
    insecure_skip_tls_verify: bool
    """Allow ``sslmode=require``/``verify-ca`` (logged loudly); never ``disable``."""
    max_attempts: int
    """Logins tried before giving up (transient network errors and PAM refusals)."""
    retry_budget: float
    """Seconds after which no further login is tried."""


#: The keyword names of :class:`IamOptions`, in declaration order.
OPTION_NAMES: tuple[str, ...] = tuple(IamOptions.__annotations__)


def parse_port(value: object, name: str) -> int:
    """``value`` as a TCP port number (an int or its decimal text), else a ConfigurationError."""
    port = -1
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value)
    if not 0 < port < 65536:
        raise ConfigurationError(f"{name} must be a TCP port number, got {value!r}")
    return port


def _optional_port(value: object) -> int | None:
    return None if value is None else parse_port(value, "token_port")


def _optional_text(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")

    return check


def _check_bool(_instance: Any, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{attribute.name} must be True or False, got {value!r}")


def _check_attempts(_instance: Any, _attribute: Any, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {value!r}")


def _budget(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"retry_budget must be seconds (0 or more), got {value!r}")
    return float(value)


def _check_provider(_instance: Any, _attribute: Any, value: object) -> None:
    if value is not None and not isinstance(value, TokenProvider | AsyncTokenProvider):
        raise ConfigurationError(
            f"token_provider must be a TokenProvider or AsyncTokenProvider, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class ConnectOptions:
    """The kit's options (see :class:`IamOptions`), checked once when built."""

    region: str | None = attrs.field(default=None, validator=_optional_text("region"))
    session: boto3.Session | None = attrs.field(default=None, repr=False)
    profile: str | None = attrs.field(default=None, validator=_optional_text("profile"))
    token_provider: TokenProvider | AsyncTokenProvider | None = attrs.field(
        default=None, validator=_check_provider
    )
    token_host: str | None = attrs.field(default=None, validator=_optional_text("token_host"))
    token_port: int | None = attrs.field(default=None, converter=_optional_port)
    insecure_skip_tls_verify: bool = attrs.field(default=False, validator=_check_bool)
    max_attempts: int = attrs.field(default=3, validator=_check_attempts)
    retry_budget: float = attrs.field(default=10.0, converter=_budget)

    def __attrs_post_init__(self) -> None:
        if self.session is not None and self.profile is not None:
            raise ConfigurationError("pass either session= or profile=, not both")
        if self.token_provider is not None and (
            self.session is not None or self.profile is not None
        ):
            raise ConfigurationError("pass either token_provider= or session=/profile=, not both")

    @classmethod
    def of(cls, **options: Unpack[IamOptions]) -> ConnectOptions:
        """The options from keywords typed by :class:`IamOptions` (``None`` means default)."""
        return cls(**{k: v for k, v in options.items() if v is not None})  # type: ignore[arg-type]

    @classmethod
    def from_kwargs(cls, kwargs: MutableMapping[str, Any]) -> ConnectOptions:
        """Take the kit's options out of ``kwargs`` (the rest is libpq's and psycopg's)."""
        given = {name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs}
        return cls.of(**given)

    def as_kwargs(self) -> IamOptions:
        """The options that differ from the defaults, as keywords for another entry point."""
        fields = attrs.fields(ConnectOptions)
        return {  # type: ignore[return-value]
            f.name: getattr(self, f.name) for f in fields if getattr(self, f.name) != f.default
        }

    def sync_provider(self) -> TokenProvider:
        """The provider that signs for a sync entry point."""
        if isinstance(self.token_provider, AsyncTokenProvider):
            raise ConfigurationError(
                "an AsyncTokenProvider serves the asyncio entry points; pass its .sync "
                "provider (or a TokenProvider) here"
            )
        if self.token_provider is not None:
            return self.token_provider
        return default_provider(session=self.session, profile=self.profile)

    def async_provider(self) -> AsyncTokenProvider:
        """The provider for an asyncio entry point: given, or the async face of the sync one."""
        if isinstance(self.token_provider, AsyncTokenProvider):
            return self.token_provider
        sync = self.sync_provider()
        with _defaults_lock:
            provider: AsyncTokenProvider | None = getattr(sync, _ASYNC_FACE, None)
            if provider is None:
                provider = AsyncTokenProvider(sync)
                setattr(sync, _ASYNC_FACE, provider)
            return provider


_defaults_lock = threading.Lock()
_by_profile: dict[str | None, TokenProvider] = {}
# A session's provider lives on the session (the provider holds the session, so a
# weak-keyed registry would keep both forever); the pair is freed with the session.
_SESSION_PROVIDER = "_rdsiamkit_token_provider"
_ASYNC_FACE = "_rdsiamkit_async_face"


def default_provider(
    *, session: boto3.Session | None = None, profile: str | None = None
) -> TokenProvider:
    """The process-wide provider for a session or profile, so tokens are reused across calls."""
    if session is not None and profile is not None:
        ConnectOptions(session=session, profile=profile)  # raises: names the conflict once
    with _defaults_lock:
        if session is not None:
            provider: TokenProvider | None = getattr(session, _SESSION_PROVIDER, None)
            if provider is None:
                provider = TokenProvider(session=session)
                setattr(session, _SESSION_PROVIDER, provider)
            return provider
        provider = _by_profile.get(profile)
        if provider is None:
            provider = _by_profile[profile] = TokenProvider(profile=profile)
        return provider


def sync_provider(
    token_provider: TokenProvider | None,
    session: boto3.Session | None,
    profile: str | None,
) -> TokenProvider:
    """The sync provider to use: given, or the default for the session/profile."""
    return ConnectOptions.of(
        token_provider=token_provider, session=session, profile=profile
    ).sync_provider()


def async_provider(
    token_provider: AsyncTokenProvider | TokenProvider | None,
    session: boto3.Session | None,
    profile: str | None,
) -> AsyncTokenProvider:
    """The async provider to use: given, or the async face of the sync default."""
    return ConnectOptions.of(
        token_provider=token_provider, session=session, profile=profile
    ).async_provider()


def _annotation(name: str) -> str:
    hint = IamOptions.__annotations__[name]
    return str(getattr(hint, "__forward_arg__", hint))


def with_options_signature(
    *, leave_out: Iterable[str] = (), extra: Iterable[inspect.Parameter] = ()
) -> Callable[[_F], _F]:
    """Show the kit's options (and ``extra`` keywords) in a function's runtime signature.

    The function itself takes ``(conninfo="", **kwargs)``; ``help()``, IPython and
    ``inspect.signature`` then list every option with its type and default, read
    from :class:`IamOptions` and :class:`ConnectOptions`, before ``**kwargs``.
    """
    skipped = set(leave_out)
    defaults = {f.name: f.default for f in attrs.fields(ConnectOptions)}
    options = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=defaults[name],
            annotation=_annotation(name),
        )
        for name in OPTION_NAMES
        if name not in skipped
    ]

    def decorate(func: _F) -> _F:
        own = inspect.signature(func)
        params = list(own.parameters.values())
        head = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        tail = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        func.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[*head, *options, *extra, *tail]
        )
        return func

    return decorate
