"""Check 12: a real IAM login; when refused, what the refusal and a fresh token tell."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import psycopg
from psycopg.rows import tuple_row

from rdsiamkit._authmode_state import printable
from rdsiamkit._libpq import (
    PAM_REFUSED,
    PASSWORD_REFUSED,
    is_auth_failure,
    missing_database,
    server_line,
)
from rdsiamkit._tokeninfo import TokenFacts, looks_like_token
from rdsiamkit.connection import quote_ident as _q
from rdsiamkit.doctor.checks._shared import grant_fix
from rdsiamkit.doctor.checks.token import damaged
from rdsiamkit.doctor.facts import (
    NO_CREDENTIALS,
    Credentials,
    Inputs,
    Secrets,
    ServerClock,
    Target,
    TlsSession,
)
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import NotCheckedError, check
from rdsiamkit.errors import ConfigurationError, CredentialsError
from rdsiamkit.tokens import IssuedToken


@attrs.frozen
class _Login:
    """What a login attempt needs: where, how long to wait, and where secrets go."""

    target: Target
    inputs: Inputs
    secrets: Secrets

    @contextmanager
    def _open(self, password: str) -> Iterator[str]:
        params = dict(self.target.params)
        params.setdefault("connect_timeout", str(max(1, int(self.inputs.timeout))))
        with (
            psycopg.connect(password=password, autocommit=True, **params) as conn,
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            row = cur.execute("SELECT current_user").fetchone()
            yield "?" if row is None else printable(str(row[0]))

    def attempt(self, password: str) -> tuple[str | None, psycopg.Error | None]:
        """Log in with ``password``: the user logged in as, or the error."""
        try:
            with self._open(password) as user:
                return user, None
        except psycopg.Error as err:
            return None, err

    def fresh(self) -> IssuedToken:
        """A freshly signed token for the target (remembered as a secret)."""
        issued = self.target.issue(self.inputs.provider)
        self.secrets.add(issued.token)
        return issued


@check(CheckName.LOGIN)
def login(
    *,
    target: Target,
    inputs: Inputs,
    secrets: Secrets,
    sent: TokenFacts | None,
    server_clock: ServerClock,
    tls: TlsSession | None = None,
    credentials: Credentials = NO_CREDENTIALS,
) -> Check:
    """Log in for real: with the secret given, else with a fresh token."""
    if not inputs.login:
        raise NotCheckedError("not attempted (login=False)")
    if tls is None:
        raise NotCheckedError("not attempted: TLS did not pass (see tls)")
    attempt = _Login(target, inputs, secrets)
    if inputs.token is not None:
        if sent is None:
            return _with_password(attempt, inputs.token)
        return _with_sent(attempt, inputs.token, sent, credentials, server_clock)
    if credentials.unresolved is not None:
        raise NotCheckedError(
            f"not attempted: signing needs the credentials from {credentials.unresolved}, "
            "which only an AWS call resolves (aws=False)"
        )
    try:
        issued = attempt.fresh()
    except (CredentialsError, ConfigurationError) as err:
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"cannot sign a token: {err}",
            fix="see credentials and region",
            finding=Finding.NO_CREDENTIALS,
        )
    user, failure = attempt.attempt(issued.token)
    if failure is None:
        return Check(
            CheckName.LOGIN,
            CheckStatus.PASS,
            f"logged in as {user} with a token signed by {issued.key.identity}",
        )
    return _refused(target, failure, issued)


def _with_password(attempt: _Login, secret: str) -> Check:
    """The secret given is not a token: log in with it and read the refusal."""
    user, err = attempt.attempt(secret)
    if err is None:
        return Check(
            CheckName.LOGIN, CheckStatus.PASS, f"logged in as {user} with the secret given"
        )
    if looks_like_token(secret):
        return damaged(CheckName.LOGIN)
    message = server_line(err)
    if PAM_REFUSED in message:
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"refused: {message}. The server authenticated {attempt.target.user} with PAM, "
            "so it is an IAM user, and the secret given is not an IAM token",
            fix="send a fresh IAM token as the password (rdsiamkit.connect)",
            finding=Finding.PASSWORD_SENT,
        )
    return Check(
        CheckName.LOGIN, CheckStatus.FAIL, f"refused: {message}", finding=Finding.LOGIN_REFUSED
    )


def _not_a_refusal(target: Target, err: psycopg.Error, message: str) -> Check | None:
    """A failed check unless the server refused the token (PAM): password checked, or other."""
    if PASSWORD_REFUSED in message:
        return _password_checked(target, message)
    if not isinstance(err, psycopg.OperationalError) or not is_auth_failure(err):
        return _cannot_log_in(message)
    return None


def _cannot_log_in(message: str) -> Check:
    """The login failed, but not on its credentials (a missing database, TLS, network)."""
    database = missing_database(message)
    if database is not None:
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"the IAM login itself worked (the server accepted the token), then: {message} "
            "(libpq names the database after the user unless dbname= is given)",
            fix="name a database that exists: dbname='postgres' is on every RDS instance",
            finding=Finding.DATABASE_NOT_FOUND,
        )
    return Check(
        CheckName.LOGIN, CheckStatus.FAIL, f"cannot log in: {message}", finding=Finding.LOGIN_FAILED
    )


def _with_sent(
    attempt: _Login,
    secret: str,
    sent: TokenFacts,
    credentials: Credentials,
    server_clock: ServerClock,
) -> Check:
    """Log in with the token given; if refused, compare with a fresh token to name why."""
    target = attempt.target
    user, err = attempt.attempt(secret)
    if err is None:
        return Check(
            CheckName.LOGIN, CheckStatus.PASS, f"logged in as {user} with the secret given"
        )
    message = server_line(err)
    other = _not_a_refusal(target, err, message)
    if other is not None:
        return other
    if not sent.signature_ok:
        return damaged(CheckName.LOGIN)
    if not credentials.ok:
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"the token given was refused: {message}",
            fix="compare with a fresh token: run the doctor without token= and with credentials",
            finding=Finding.LOGIN_REFUSED,
        )
    return _against_fresh(attempt, sent, message, server_clock)


def _against_fresh(
    attempt: _Login, sent: TokenFacts, message: str, server_clock: ServerClock
) -> Check:
    """The token given was refused: log in with a fresh one and name the difference."""
    target = attempt.target
    fresh = attempt.fresh()
    _, fresh_err = attempt.attempt(fresh.token)
    if fresh_err is not None and missing_database(fresh_err) is None:
        return _refused(target, fresh_err, fresh, also="the token given and ")
    found = _fresh_works(attempt.inputs, sent, fresh, message, server_clock)
    if fresh_err is None:
        return found
    # The fresh token authenticated; only the database it then asked for is missing.
    return attrs.evolve(
        found,
        reason=f"{found.reason} (it authenticates; then: {server_line(fresh_err)}, a "
        "problem of its own: name an existing database with dbname=)",
    )


def _fresh_works(
    inputs: Inputs, sent: TokenFacts, fresh: IssuedToken, message: str, clock: ServerClock
) -> Check:
    """The token given was refused and a fresh one logs in: name the difference."""
    key = fresh.key
    if (sent.host, sent.port, sent.user, sent.region) != (key.host, key.port, key.user, key.region):
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"the token given was refused ({message}): it was signed for "
            f"{sent.user}@{sent.host}:{sent.port} in {sent.region}, while a fresh one for "
            f"{key.user}@{key.host}:{key.port} in {key.region} logs in",
            fix="sign the token for the endpoint, port, user and region of this login "
            "(see token_target and region)",
            finding=Finding.TOKEN_TARGET_MISMATCH,
        )
    if sent.access_key_id == key.identity:
        age = inputs.clock() + (clock.offset or 0.0) - sent.signed_at.timestamp()
        return Check(
            CheckName.LOGIN,
            CheckStatus.FAIL,
            f"the token given was refused ({message}) while a fresh one for the same "
            f"target, signed by the same key {sent.access_key_id}, logs in: the token given "
            f"is stale (signed {age:.0f} s ago) or was altered; the server no longer "
            "accepts it",
            fix="mint a fresh token for every new connection (rdsiamkit.connect does); "
            "never store tokens",
            finding=Finding.TOKEN_EXPIRED,
        )
    return Check(
        CheckName.LOGIN,
        CheckStatus.FAIL,
        f"the token given, signed by {sent.access_key_id}, was refused ({message}); a "
        f"fresh one signed by {key.identity} logs in: {sent.access_key_id} is unknown "
        "to AWS or revoked, or its policy does not allow this user",
        fix=f"sign with the credentials of {key.identity}, or fix {sent.access_key_id}",
        finding=Finding.LOGIN_REFUSED,
    )


def _refused(target: Target, err: psycopg.Error, issued: IssuedToken, *, also: str = "") -> Check:
    """A fresh token was refused: the likely causes, as connect errors list them."""
    message = server_line(err)
    other = _not_a_refusal(target, err, message)
    if other is not None or not isinstance(err, psycopg.OperationalError):
        return other if other is not None else _cannot_log_in(message)
    explained = target.explain(err, issued)
    return Check(
        CheckName.LOGIN,
        CheckStatus.FAIL,
        f"{also}a fresh token signed by {issued.key.identity} was refused: {message}. "
        "The checks above that were skipped or warned are where the cause hides",
        fix="; ".join(explained.causes[:3]),
        finding=Finding.LOGIN_REFUSED,
    )


def _password_checked(target: Target, message: str) -> Check:
    return Check(
        CheckName.LOGIN,
        CheckStatus.FAIL,
        f"refused: {message}. The server checked a password, so {target.user} is not in "
        "rds_iam (or does not exist: PostgreSQL answers both alike) and no IAM token can work",
        fix=f"if the role exists: {grant_fix(target.user)}; else create it first (CREATE "
        f"ROLE {_q(target.user)} LOGIN); an admin_conn= tells which",
        finding=Finding.NOT_IN_RDS_IAM,
    )


def outranked_by_login(checks: tuple[Check, ...]) -> tuple[Check, ...]:
    """A login that worked outranks evidence saying it cannot: those failures become warnings.

    (An admin connection to another server, a policy that is not the effective one, a
    reader-endpoint token that this server takes: what they show did not stop the login.)
    """
    if not any(c.name is CheckName.LOGIN and c.status is CheckStatus.PASS for c in checks):
        return checks
    return tuple(
        attrs.evolve(
            c,
            status=CheckStatus.WARN,
            reason=f"{c.reason} (yet the login works: this does not stop it here)",
        )
        if c.status is CheckStatus.FAIL
        else c
        for c in checks
    )
