"""The package's public surface: version, __all__, exception tree, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

import rdsiamkit


def test_version_is_a_string() -> None:
    """__version__ is exposed and looks like a version."""
    assert isinstance(rdsiamkit.__version__, str)
    assert rdsiamkit.__version__[0].isdigit()


def test_all_is_sorted_and_resolvable() -> None:
    """__all__ is sorted, unique, and every name in it exists."""
    assert list(rdsiamkit.__all__) == sorted(set(rdsiamkit.__all__))
    for name in rdsiamkit.__all__:
        assert hasattr(rdsiamkit, name), name


def test_every_public_exception_derives_from_the_root() -> None:
    """Every exception class in __all__ is an RdsIamError."""
    classes = [getattr(rdsiamkit, n) for n in rdsiamkit.__all__]
    errors = [c for c in classes if isinstance(c, type) and issubclass(c, BaseException)]
    assert len(errors) > 10
    for cls in errors:
        assert issubclass(cls, rdsiamkit.RdsIamError), cls


def test_connect_errors_are_psycopg_operational_errors() -> None:
    """Code written for plain psycopg still catches the kit's connect errors."""
    assert issubclass(rdsiamkit.IamAuthenticationError, psycopg.OperationalError)
    assert issubclass(rdsiamkit.TLSVerificationError, psycopg.OperationalError)
    assert issubclass(rdsiamkit.ConfigurationError, ValueError)


def test_connect_error_str_lists_causes_and_keeps_context() -> None:
    """A ConnectError keeps endpoint context and renders its likely causes."""
    err = rdsiamkit.IamAuthenticationError(
        "login refused", host="h", port=5432, user="u", causes=("policy lacks the ARN",)
    )
    assert (err.host, err.port, err.user) == ("h", 5432, "u")
    assert "policy lacks the ARN" in str(err)


def test_import_does_not_import_boto3() -> None:
    """`import rdsiamkit` leaves boto3/botocore unimported until a token is needed."""
    code = (
        "import sys, rdsiamkit;"
        "print(any(m.split('.')[0] in ('boto3', 'botocore') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_administrative_parts_load_on_first_use() -> None:
    """`import rdsiamkit` skips auth modes, policies, discovery, doctor until first touched."""
    code = (
        "import sys, rdsiamkit\n"
        "lazy = ('authmode', 'policy', 'discovery', 'doctor', 'explore', 'arn')\n"
        "before = [m for m in lazy if 'rdsiamkit.' + m in sys.modules]\n"
        "rdsiamkit.AuthMode\n"
        "print(before, 'rdsiamkit.authmode' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A name outside the API raises AttributeError, and dir() lists the whole API."""
    with pytest.raises(AttributeError, match="no_such_name"):
        rdsiamkit.no_such_name  # noqa: B018
    assert set(rdsiamkit.__all__) <= set(dir(rdsiamkit))


def test_pools_and_retries_cost_nothing_at_import() -> None:
    """`import rdsiamkit` loads neither psycopg_pool nor tenacity; the pool loads on first use."""
    code = (
        "import sys, rdsiamkit\n"
        "before = [m for m in ('psycopg_pool', 'tenacity', 'rdsiamkit.pool') if m in sys.modules]\n"
        "rdsiamkit.create_pool\n"
        "print(before, 'psycopg_pool' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"
