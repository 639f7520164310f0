"""The Django backend: connect overhead and tokens minted per 1,000 connects.

Against the local RDS IAM emulator, each run opens a new Django connection
(``ensure_connection``) and closes it, ``--connects`` times, through:

* ``rdsiamkit.django`` (the kit's token cache: one mint, then cache hits);
* Django's stock PostgreSQL backend given a pre-minted token as ``PASSWORD``
  (the floor: what a login costs without any token work);
* django-iam-dbauth (``django_iam_dbauth.aws.postgresql``), which builds a boto3
  session and RDS client and signs a token on every connect.

Prints a table; nothing is asserted.

    .venv/bin/python bench/bench_django.py [--connects 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types
import uuid
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings
from django.db.utils import ConnectionHandler

from rdsiamkit.testing import RdsIamEmulator
from rdsiamkit.tokens import TokenProvider


def timed(fn: Callable[[], Any], n: int) -> float:
    """Median milliseconds of ``fn()`` (which connects and closes) over ``n`` runs."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def connect_once(entry: dict[str, Any]) -> None:
    """Open one new Django connection with these settings, run nothing, close it."""
    wrapper = ConnectionHandler({"default": dict(entry)})["default"]
    wrapper.ensure_connection()
    wrapper.close()


def count_iam_dbauth_mints(counter: list[int]) -> None:
    """Count django-iam-dbauth's token signings (one RDS client per connect, wrapped)."""
    from django_iam_dbauth.aws import database_wrapper

    real_boto3 = database_wrapper.boto3

    class CountingSession:
        def __init__(self) -> None:
            self._session = real_boto3.session.Session()

        def client(self, **kwargs: Any) -> Any:
            client = self._session.client(**kwargs)
            sign = client.generate_db_auth_token

            def generate(**kw: Any) -> str:
                counter[0] += 1
                return str(sign(**kw))

            client.generate_db_auth_token = generate
            return client

    shim = types.SimpleNamespace(session=types.SimpleNamespace(Session=CountingSession))
    database_wrapper.boto3 = shim


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=200)
    n = parser.parse_args().connects
    settings.configure(DATABASES={}, USE_TZ=True)
    django.setup()
    with RdsIamEmulator() as emu:
        user = f"bench_{uuid.uuid4().hex[:8]}"
        emu.create_user(user, iam=True)
        creds = emu.add_credentials()
        os.environ |= {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_DEFAULT_REGION": emu.region,
        }
        common = {
            "HOST": emu.endpoint,
            "PORT": emu.port,
            "NAME": "postgres",
            "USER": user,
        }
        tls = {"hostaddr": emu.hostaddr, "sslrootcert": str(emu.ca_file)}
        rows: list[tuple[str, float, str]] = []

        provider = TokenProvider(session=creds.boto3_session(region=emu.region))
        kit = {
            "ENGINE": "rdsiamkit.django",
            **common,
            "OPTIONS": tls | {"token_provider": provider},
        }
        kit_ms = timed(lambda: connect_once(kit), n)
        rows.append(("rdsiamkit.django", kit_ms, f"{provider.mint_count * 1000 / n:.0f}"))

        token = provider.get_token(emu.endpoint, emu.port, user)
        stock = {
            "ENGINE": "django.db.backends.postgresql",
            **common,
            "PASSWORD": token,
            "OPTIONS": tls | {"sslmode": "verify-full"},
        }
        rows.append(("stock backend, pre-minted token", timed(lambda: connect_once(stock), n), "0"))

        try:
            counter = [0]
            count_iam_dbauth_mints(counter)
            other = {
                "ENGINE": "django_iam_dbauth.aws.postgresql",
                **common,
                "OPTIONS": tls
                | {"sslmode": "verify-full", "use_iam_auth": True, "region_name": emu.region},
            }
            other_ms = timed(lambda: connect_once(other), n)
            rows.append(("django-iam-dbauth", other_ms, f"{counter[0] * 1000 / n:.0f}"))
        except ImportError as err:
            rows.append((f"django-iam-dbauth: not installed ({err})", float("nan"), "-"))
    print(f"Django {django.get_version()}, {n} connects each")
    print(f"{'approach':34} {'median ms/connect':>18} {'mints/1,000':>12}")
    for name, ms, mints in rows:
        print(f"{name:34} {ms:18.2f} {mints:>12}")


if __name__ == "__main__":
    main()
