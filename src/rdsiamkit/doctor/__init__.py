"""Why does my IAM login fail?  Check each cause in turn and name the one that does.

RDS answers every refused IAM login with the same line,
``FATAL: PAM authentication failed for user "X"``, and logs the reason where
the client cannot see it.  :func:`diagnose` checks the causes one by one, in
the order a login meets them, from the outside in:

1. ``configuration``: the options make a valid target (verify-full TLS, CA bundle);
2. ``dns`` and ``reachability``: the endpoint resolves (or ``hostaddr`` is dialled) and
   accepts TCP;
3. ``tls``: PostgreSQL's ``SSLRequest``, then a handshake verifying the server
   certificate against the CA bundle for the endpoint name (wrong CA, hostname
   mismatch and TLS refused are told apart);
4. ``credentials``: AWS credentials exist, have not expired, and STS knows them;
5. ``region``: the token is signed for the endpoint's region;
6. ``token_target``: the token names the endpoint and port RDS listens on (not a tunnel);
7. ``iam_enabled``: IAM database authentication is on for the cluster (AWS API);
8. ``policy``: an IAM policy allows ``rds-db:connect`` on the user's ARN (the
   documents given, evaluated offline, or IAM's policy simulator);
9. ``rds_iam_membership``: the user is in ``rds_iam`` (with an admin connection);
10. ``token``: the token given is one, whole (not ``token_damaged``), and not
    expired; the clocks agree;
11. ``login``: finally, a real IAM login.

Each check passes, fails, warns or is skipped with a reason and a fix; the
first failure is the diagnosis.  Nothing returned, logged or raised contains a
token, a password or a secret key.

Layout: ``model.py`` (the report), ``render.py`` (text, HTML, JSON),
``checks/`` (one module per family of checks), ``runner.py`` (orders the checks
by the facts they need and provide, and runs them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rdsiamkit._options import ConnectOptions, with_options_signature
from rdsiamkit._tokeninfo import TokenFacts
from rdsiamkit.doctor.checks import REGISTRY
from rdsiamkit.doctor.checks.login import outranked_by_login
from rdsiamkit.doctor.facts import Inputs, Secrets, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Diagnosis, Finding
from rdsiamkit.doctor.runner import run_checks
from rdsiamkit.errors import ConfigurationError
from rdsiamkit.tokens import TokenProvider

if TYPE_CHECKING:
    import psycopg

    from rdsiamkit.policy import PolicyInput

__all__ = ["Check", "CheckName", "CheckStatus", "Diagnosis", "Finding", "TokenFacts", "diagnose"]


@with_options_signature(leave_out=("max_attempts", "retry_budget"))
def diagnose(
    conninfo: str = "",
    *,
    admin_conn: psycopg.Connection[Any] | None = None,
    admin_error: str | BaseException | None = None,
    policies: PolicyInput | Sequence[PolicyInput] | None = None,
    principal_arn: str | None = None,
    account_id: str | None = None,
    resource_id: str | None = None,
    token: str | None = None,
    aws: bool = True,
    login: bool = True,
    timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
    **kwargs: Any,
) -> Diagnosis:
    """Check, in order, everything an IAM login as ``user`` to ``host`` needs.

    Takes the same connection options as :func:`rdsiamkit.connect` (libpq
    keywords such as ``host``, ``port``, ``user``, ``dbname``, ``hostaddr``,
    ``sslrootcert``; ``region``, ``session``/``profile``/``token_provider``,
    ``token_host``/``token_port``).  Optional evidence sharpens the answer:

    * ``admin_conn``: an admin connection, to read the user's ``rds_iam``
      membership and the server's clock; ``admin_error``: why opening one failed
      instead (reported as a warning naming it; the other checks still run);
    * ``policies``: the IAM policy documents of the signing identity, evaluated
      offline (else, with ``aws``, IAM's simulator is asked for ``principal_arn``
      or the identity STS reports, unless ``token`` was signed by another key);
    * ``account_id`` / ``resource_id``: to build the user's ARN without AWS;
    * ``token``: what the client sends as its password (a token, or not), to
      check that instead of a fresh one.

    ``aws=False`` makes no AWS API call (STS, RDS, IAM): credentials that only
    such a call resolves (an assumed role, SSO) are then not resolved, and the
    fresh login is skipped; boto3's chain may still read a container's or
    instance's metadata endpoint for their credentials.  ``login=False`` skips the final login.
    ``timeout`` (seconds, > 0) bounds each network step.
    """
    if not timeout > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    kwargs = dict(kwargs)
    options = ConnectOptions.from_kwargs(kwargs)  # the kit's options, checked once
    inputs = Inputs(
        conninfo=conninfo,
        kwargs=kwargs,
        region=options.region,
        token_host=options.token_host,
        token_port=options.token_port,
        insecure=options.insecure_skip_tls_verify,
        admin_conn=admin_conn,
        admin_error=None if admin_error is None else str(admin_error),
        policies=policies,
        principal_arn=principal_arn,
        account_id=account_id,
        resource_id=resource_id,
        token=token,
        aws=aws,
        login=login,
        timeout=timeout,
        clock=clock,
        # A provider of its own: a cached token must not hide what a fresh one would do.
        provider=options.sync_provider()
        if options.token_provider is not None
        else TokenProvider(session=options.session, profile=options.profile),
    )
    secrets = Secrets([token] if token else [])
    result = run_checks(REGISTRY, {"inputs": inputs, "secrets": secrets}, scrub=secrets.scrub)
    target = result.fact("target")
    if isinstance(target, Target):
        where = target.describe()
    else:
        where = (
            f"{kwargs.get('user') or '?'}@{kwargs.get('host') or '?'}:{kwargs.get('port') or 5432}"
        )
    return Diagnosis(target=where, checks=outranked_by_login(result.checks))
