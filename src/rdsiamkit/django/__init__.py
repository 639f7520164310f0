"""A Django database backend that logs in to RDS / Aurora PostgreSQL with IAM tokens.

Name it as the ``ENGINE`` of a database (Django 4.2+, psycopg 3)::

    DATABASES = {
        "default": {
            "ENGINE": "rdsiamkit.django",
            "HOST": "mydb.cluster-abc.us-east-1.rds.amazonaws.com",
            "PORT": 5432,
            "NAME": "app",
            "USER": "app_iam",
            "OPTIONS": {"region": "us-east-1"},
        }
    }

Each new connection logs in through the kit (the process-wide token cache,
verify-full, the kit's errors); the kit's options (``region``, ``profile``,
``token_host``...) are read from ``OPTIONS`` and never reach psycopg.  The
backend lives in :mod:`rdsiamkit.django.base`; importing this package does not
import Django.  Install with ``pip install 'rdsiamkit[django]'``.
"""
