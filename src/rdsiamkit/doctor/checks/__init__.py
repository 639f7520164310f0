"""The doctor's checks, one module per family, and :data:`REGISTRY`, which lists them.

The order of the modules below (then the order of the checks in each) is the
registration order: the runner keeps it wherever the facts a check needs do not
force another, so it is also the order of the report.
"""

from __future__ import annotations

from rdsiamkit.doctor.checks import admin, aws, credentials, endpoint, login, signing, tls, token
from rdsiamkit.doctor.runner import Registry

__all__ = ["REGISTRY"]

REGISTRY = Registry.collect(endpoint, tls, credentials, signing, aws, admin, token, login)
