"""A Django settings snippet: the default database logs in with IAM tokens through rdsiamkit.

Copy the ``DATABASES`` entry into your project's ``settings.py``.  Nothing here is a
secret: the backend signs a token for each new connection (from the process-wide
cache) with the AWS credentials boto3 finds (environment, profile, instance or
task role), and connects with ``sslmode=verify-full`` against the RDS CA bundle.

The values come from libpq's environment variables so the snippet runs anywhere
(``tests/integration/test_django.py`` connects with it against the emulator)::

    PGHOST=mydb.cluster-abc123def456.us-east-1.rds.amazonaws.com PGDATABASE=app PGUSER=app_iam
"""

from __future__ import annotations

import os

DATABASES = {
    "default": {
        "ENGINE": "rdsiamkit.django",  # pip install 'rdsiamkit[django]'
        "HOST": os.environ["PGHOST"],  # the RDS / Aurora endpoint name (what is signed)
        "PORT": os.environ.get("PGPORT", "5432"),
        "NAME": os.environ.get("PGDATABASE", "postgres"),
        "USER": os.environ["PGUSER"],  # a user with GRANT rds_iam; no PASSWORD: it is refused
        # Persistent connections: a token matters only while a connection opens.
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # The kit's options (taken out before psycopg sees OPTIONS):
            # "region": "us-east-1", "profile": "app", "token_host": "...", "token_port": 5432,
            **({"profile": os.environ["AWS_PROFILE"]} if os.environ.get("AWS_PROFILE") else {}),
            # libpq's, as for Django's stock backend; dial an address other than HOST:
            **({"hostaddr": os.environ["PGHOSTADDR"]} if os.environ.get("PGHOSTADDR") else {}),
            **(
                {"sslrootcert": os.environ["PGSSLROOTCERT"]}
                if os.environ.get("PGSSLROOTCERT")
                else {}
            ),
            # Django 5.1+: a psycopg pool instead (set CONN_MAX_AGE to 0), every physical
            # connection logged in with a valid token:
            # "pool": {"min_size": 2, "max_size": 10},
        },
    }
}
