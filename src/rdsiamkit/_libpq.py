"""What libpq and the server say when a login fails, and what each message tells us.

One list for the whole package: connect errors (``rdsiamkit.connection``) and the
doctor both classify failures with these substrings.
"""

from __future__ import annotations

import re

from psycopg import sql

__all__ = [
    "AUTH_FAILED",
    "CERT_UNTRUSTED",
    "DATABASE_MISSING",
    "HOSTNAME_MISMATCH",
    "PAM_REFUSED",
    "PASSWORD_REFUSED",
    "TLS_UNAVAILABLE",
    "TRANSIENT",
    "is_auth_failure",
    "missing_database",
    "password_refused_by_pam",
    "server_line",
]

# The server refused the credentials.  PAM means the user is in rds_iam (it expects a
# token); "password authentication failed" means it is not (it expects its password).
PAM_REFUSED = "PAM authentication failed"
PASSWORD_REFUSED = "password authentication failed"  # noqa: S105 - a message, not a secret
AUTH_FAILED = (PAM_REFUSED, PASSWORD_REFUSED)

# The server authenticated the user, then found no such database (libpq defaults dbname
# to the user name): raised after authentication succeeded.
DATABASE_MISSING = re.compile(r'database "(?P<name>(?:[^"]|"")*)" does not exist')

# libpq refused the server's certificate: not signed by a CA in sslrootcert, or not for
# the host name dialled (verify-full); or TLS could not start at all.
CERT_UNTRUSTED = "certificate verify failed"
HOSTNAME_MISMATCH = "does not match host name"
TLS_UNAVAILABLE = ("server does not support SSL", "root certificate file")

# Network or server-state trouble that a later attempt may not meet.
TRANSIENT = (
    "Connection refused",
    "timeout expired",
    "Connection timed out",
    "Connection reset by peer",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "sorry, too many clients already",
    "SSL SYSCALL error: EOF detected",
)


def is_auth_failure(err: BaseException) -> bool:
    """Whether the server refused the credentials (as opposed to TLS or network trouble)."""
    return any(s in str(err) for s in AUTH_FAILED)


def server_line(err: BaseException) -> str:
    """The server's ``FATAL:`` line of a failed login, else libpq's whole message."""
    text = str(err).strip()
    _, found, fatal = text.rpartition("FATAL:")
    return ("FATAL: " + fatal.strip()) if found else text


def missing_database(err: BaseException | str) -> str | None:
    """The database a login named that does not exist (authentication had passed), if so."""
    found = DATABASE_MISSING.search(str(err))
    return None if found is None else found.group("name").replace('""', '"')


def password_refused_by_pam(user: str) -> str:
    """Why PAM refused a password login, and what to do: the user is in ``rds_iam``."""
    return (
        f"PAM refused the password: {user} is in rds_iam (directly or through a group), so "
        "the server checks an IAM token, never the password, for it. Log in with an IAM "
        "token instead (iam=True), or have another admin REVOKE rds_iam FROM "
        f"{sql.Identifier(user).as_string(None)}"
    )
