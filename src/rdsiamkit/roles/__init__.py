"""Auth modes by layer: database users between PASSWORD and IAM login.

The public names are re-exported by :mod:`rdsiamkit.authmode` (and
:mod:`rdsiamkit`); the modules here are where they live, one layer each, and
imports go one way, down this list:

* :mod:`~rdsiamkit.roles.switch` — :func:`set_auth_mode`, plans and their
  application in batches (round trips bounded by a watchdog);
* :mod:`~rdsiamkit.roles.verify` — ``verify=True``: the IAM login as the switched
  user, and undoing the grant when it fails;
* :mod:`~rdsiamkit.roles.inventory` — reads: one user's mode or status, every role;
* :mod:`~rdsiamkit.roles.rules` — the one refusal rule book, pure;
* :mod:`~rdsiamkit.roles.models` — the value objects (no I/O);
* ``_catalog`` — the catalog SQL (the walk pg_hba's ``+rds_iam`` takes) and the
  GRANT / REVOKE statements; ``_text`` — names escaped for text output.
"""
