"""Test against RDS IAM authentication without AWS: a local emulator and its pytest fixtures.

::

    from rdsiamkit.testing import RdsIamEmulator

    with RdsIamEmulator() as emu:
        emu.create_user("app", iam=True)
        creds = emu.add_credentials()
        token = (
            creds.boto3_session(region=emu.region)
            .client("rds")
            .generate_db_auth_token(emu.endpoint, emu.port, "app")
        )
        psycopg.connect(**emu.conninfo("app", password=token))

With rdsiamkit installed, pytest gets the ``rds_emulator`` fixture (one
emulator per session, reset after each test).  Needs the ``testing`` extra.
"""

from __future__ import annotations

from rdsiamkit.testing.credentials import FakeCredentials
from rdsiamkit.testing.emulator import RdsIamEmulator
from rdsiamkit.testing.sigv4 import AuthFailureReason
from rdsiamkit.testing.tunnel import TcpTunnel
from rdsiamkit.testing.verifier import AuthEvent

__all__ = ["AuthEvent", "AuthFailureReason", "FakeCredentials", "RdsIamEmulator", "TcpTunnel"]
