"""Move database users from password logins to IAM: plan, apply, verify, roll back.

Without ``--apply`` this is a dry run: it prints the plan and changes nothing.
With ``--apply`` it switches the planned users in one transaction, then logs in
as each of them with an IAM token; if any login fails, it switches every user
it moved back to PASSWORD (their passwords work again) and exits 1.  Users the
plan refuses (admins, inherited memberships, missing roles) are left alone and
reported; ``--include-admins`` switches admins one at a time with
``set_auth_mode(verify=True)``, which tests the login and undoes the grant
itself when it fails.

The admin connection is a password login, usually the master user:
``--admin-dsn`` (default ``$ADMIN_DSN``) plus ``PGPASSWORD`` or ``~/.pgpass``.
IAM logins go to the same endpoint and TLS settings, signed with boto3's
credential chain (``--profile``, ``AWS_PROFILE``, ...)::

    PGPASSWORD=... python examples/migrate_users.py \\
        --admin-dsn "host=demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com user=postgres" \\
        svc_orders svc_billing report_ro            # dry run
    ... --apply                                     # do it

Exit status with --apply: 0 all users are on IAM, 1 failure (rolled back), 2 some users were
refused. A dry run exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

import rdsiamkit
from rdsiamkit import AuthMode, AuthModePlan, RefusalReason, plan_auth_modes, set_auth_mode


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("users", nargs="*", help="database users to move to IAM")
    parser.add_argument("--users-file", type=Path, help="one user per line (# comments allowed)")
    parser.add_argument(
        "--admin-dsn", default=os.environ.get("ADMIN_DSN", ""), help="libpq conninfo [ADMIN_DSN]"
    )
    parser.add_argument("--apply", action="store_true", help="switch (default: dry run)")
    parser.add_argument("--include-admins", action="store_true", help="switch admins, verified")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", help="AWS profile that signs the verification logins")
    parser.add_argument("--region", help="AWS region (default: read from the endpoint name)")
    parser.add_argument("--token-port", type=int, help="the database's real port, behind a tunnel")
    args = parser.parse_args(argv)
    if args.users_file:
        lines = args.users_file.read_text().splitlines()
        args.users += [u.strip() for u in lines if u.strip() and not u.lstrip().startswith("#")]
    if not args.users:
        parser.error("name at least one user (arguments or --users-file)")
    return args


def iam_login_options(
    admin: psycopg.Connection[Any], args: argparse.Namespace, provider: rdsiamkit.TokenProvider
) -> dict[str, Any]:
    """The admin connection's endpoint and TLS settings, for logins as other users."""
    params = admin.info.get_parameters()
    options: dict[str, Any] = {
        "host": admin.info.host,
        "port": admin.info.port,
        "dbname": admin.info.dbname,
        "region": args.region,
        "token_port": args.token_port,
        "token_provider": provider,
        "connect_timeout": 10,
    }
    for key in ("hostaddr", "sslrootcert"):
        if params.get(key):
            options[key] = params[key]
    return options


def verify_logins(users: Sequence[str], options: dict[str, Any]) -> dict[str, str]:
    """Log in as each user with a token; return the users that failed, with the error."""
    failed = {}
    for user in users:
        try:
            with rdsiamkit.connect(user=user, **options) as conn:
                row = conn.execute("SELECT current_user").fetchone()
            if row != (user,):
                failed[user] = f"logged in as {row!r}"
        except rdsiamkit.ConnectError as err:
            failed[user] = str(err).splitlines()[0]
    return failed


def roll_back(admin: psycopg.Connection[Any], users: Sequence[str]) -> None:
    """Switch ``users`` back to PASSWORD in one transaction."""
    plan = plan_auth_modes(admin, dict.fromkeys(users, AuthMode.PASSWORD))
    print(plan)
    print("rolled back:", plan.apply(admin))


def switch_admins(
    admin: psycopg.Connection[Any],
    plan: AuthModePlan,
    args: argparse.Namespace,
    provider: rdsiamkit.TokenProvider,
) -> list[str]:
    """Switch the users refused by the lockout guard one at a time, each verified."""
    failed = []
    for refusal in plan.refused:
        if refusal.reason is not RefusalReason.LOCKOUT_GUARD:
            continue
        try:
            change = set_auth_mode(
                admin,
                refusal.user,
                AuthMode.IAM,
                verify=True,
                token_port=args.token_port,
                region=args.region,
                token_provider=provider,
            )
            print(f"  {change}")
        except rdsiamkit.RdsIamError as err:
            print(f"  {refusal.user}: not switched: {err}")
            failed.append(refusal.user)
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    provider = rdsiamkit.TokenProvider(profile=args.profile, region=args.region)
    with psycopg.connect(args.admin_dsn, autocommit=True) as admin:
        plan = plan_auth_modes(admin, dict.fromkeys(args.users, AuthMode.IAM))
        print(plan)
        if not args.apply:
            print("dry run: nothing changed; run again with --apply")
            return 0
        if plan.changes:
            print("applying:", plan.apply(admin, batch_size=args.batch_size))
            failed = verify_logins(plan.to_grant, iam_login_options(admin, args, provider))
            for user, error in failed.items():
                print(f"  IAM login as {user} failed: {error}")
            if failed:
                print(f"{len(failed)} login(s) failed: moving all {len(plan.to_grant)} back")
                roll_back(admin, plan.to_grant)
                return 1
            print(f"verified an IAM login for each of {len(plan.to_grant)} user(s)")
        refused = [r.user for r in plan.refused]
        if args.include_admins and refused:
            print("switching admins one at a time, verified:")
            guarded = {r.user for r in plan.refused if r.reason is RefusalReason.LOCKOUT_GUARD}
            failed_admins = switch_admins(admin, plan, args, provider)
            if failed_admins:
                return 1
            refused = [u for u in refused if u not in guarded]
        if refused:
            print(f"left alone (refused): {', '.join(refused)}")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
