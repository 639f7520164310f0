"""Reading ``DATABASES`` entries for the IAM backend: what is refused, the kit's options."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from rdsiamkit._options import ConnectOptions
from rdsiamkit.errors import ConfigurationError

__all__ = ["IamConfigurationError", "kit_options", "refuse_secrets"]

#: Keys of ``OPTIONS`` that would carry a secret to libpq.
_SECRET_OPTIONS = ("password", "passfile")


class IamConfigurationError(ConfigurationError, ImproperlyConfigured):
    """A database setting the IAM backend refuses; both the kit's and Django's error."""


def refuse_secrets(settings_dict: dict[str, Any]) -> None:
    """Refuse a password in the settings: this backend logs in with IAM tokens only."""
    options = settings_dict.get("OPTIONS") or {}
    given = [name for name in _SECRET_OPTIONS if options.get(name)]
    if settings_dict.get("PASSWORD"):
        given.insert(0, "PASSWORD")
    if given:
        raise IamConfigurationError(
            f"DATABASES[...] sets {', '.join(given)}, but ENGINE 'rdsiamkit.django' logs in "
            "with IAM tokens only: remove it (use 'django.db.backends.postgresql' for "
            "password logins)"
        )


def kit_options(settings_dict: dict[str, Any]) -> ConnectOptions:
    """The kit's options named in ``OPTIONS`` (checked; the rest is left alone)."""
    try:
        return ConnectOptions.from_kwargs(dict(settings_dict.get("OPTIONS") or {}))
    except ConfigurationError as err:
        raise IamConfigurationError(f"DATABASES[...]['OPTIONS']: {err}") from None
