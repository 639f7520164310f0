"""A secret that keeps out of reprs, logs and the frame locals error reporters capture.

Error reporters (Sentry, Rollbar, ``traceback.TracebackException(capture_locals=True)``)
record the ``repr()`` of every local variable of every frame in a traceback.  A
plain-text password held in a local of a frame that raises ends up in them; a
:class:`Secret` shows only ``Secret(<redacted>)``.  Code that needs the value
calls :meth:`Secret.reveal` inline, so the plain text is never bound to a name
in a frame that can raise.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["Secret"]


class Secret:
    """A str whose repr and str hide it; ``reveal()`` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain text: use it inline, never keep it in a local variable."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")
