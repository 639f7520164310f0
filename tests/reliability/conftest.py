"""Fixtures shared by the reliability tests: an IAM user, fake credentials, a provider."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider


@pytest.fixture
def iam_user(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """A fresh LOGIN role that is a member of rds_iam, dropped afterwards."""
    name = rds_emulator.create_user(f"rel_{uuid.uuid4().hex[:8]}", iam=True)
    yield name
    rds_emulator.drop_user(name)


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    """Long-term fake credentials the emulator trusts."""
    return rds_emulator.add_credentials()


@pytest.fixture
def provider(rds_emulator: RdsIamEmulator, creds: FakeCredentials) -> TokenProvider:
    """A token provider of its own, so no other test shares its cache."""
    return TokenProvider(session=creds.boto3_session(region=rds_emulator.region))
