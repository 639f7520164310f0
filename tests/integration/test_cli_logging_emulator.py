"""The CLI prints a failure's explanation once (issue 13 item 8), through the console script."""

from __future__ import annotations

from collections.abc import Callable

from test_cli_emulator import creds, env, run, users, where  # noqa: F401 - fixtures

from rdsiamkit.testing import FakeCredentials, RdsIamEmulator

__all__: list[str] = []


def test_failed_switch_verify_explains_once(
    rds_emulator: RdsIamEmulator,
    env: dict[str, str],  # noqa: F811
    creds: FakeCredentials,  # noqa: F811
    users: Callable[..., str],  # noqa: F811
) -> None:
    """A `switch --verify` whose IAM login is denied prints its "Likely causes" block once."""
    user = users(password="pw-x")
    rds_emulator.set_policy(creds.access_key_id, [])
    result = run(["switch", user, "iam", "--verify", *where(rds_emulator)], env)
    assert result.returncode != 0, result.stdout
    assert "rolled back" in result.stderr
    assert result.stderr.count("Likely causes") == 1, result.stderr
