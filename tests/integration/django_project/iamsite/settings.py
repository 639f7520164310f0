"""Settings of the test project: one IAM database, read from the environment the test sets.

``RDSIAMKIT_DJANGO_HOST`` (the endpoint name), ``_HOSTADDR`` (the address dialled),
``_PORT``, ``_NAME``, ``_USER`` and ``_SSLROOTCERT``; AWS credentials come from the
usual ``AWS_*`` variables, like in a deployment.
"""

import os

_ENV = "RDSIAMKIT_DJANGO_"

SECRET_KEY = "test-project-not-a-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["notes"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "rdsiamkit.django",
        "HOST": os.environ[_ENV + "HOST"],
        "PORT": os.environ[_ENV + "PORT"],
        "NAME": os.environ[_ENV + "NAME"],
        "USER": os.environ[_ENV + "USER"],
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "hostaddr": os.environ[_ENV + "HOSTADDR"],
            "sslrootcert": os.environ[_ENV + "SSLROOTCERT"],
            "region": os.environ.get(_ENV + "REGION", "us-east-1"),
        },
    }
}
