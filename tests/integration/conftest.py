"""Fixtures shared by the integration tests that log in to the emulator as an IAM user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rdsiamkit.testing import FakeCredentials, RdsIamEmulator
from rdsiamkit.tokens import TokenProvider


@pytest.fixture
def iam_user(rds_emulator: RdsIamEmulator) -> Iterator[str]:
    """A fresh login role in rds_iam, dropped afterwards."""
    name = f"iam_{uuid.uuid4().hex[:8]}"
    rds_emulator.create_user(name, iam=True)
    yield name
    rds_emulator.drop_user(name)


@pytest.fixture
def creds(rds_emulator: RdsIamEmulator) -> FakeCredentials:
    """A fake AWS key the emulator knows."""
    return rds_emulator.add_credentials()


@pytest.fixture
def provider(rds_emulator: RdsIamEmulator, creds: FakeCredentials) -> TokenProvider:
    """A token provider signing with ``creds``."""
    return TokenProvider(session=creds.boto3_session(region=rds_emulator.region))
