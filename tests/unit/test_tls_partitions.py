"""CA bundles for GovCloud, China and the ISO partitions: never the commercial bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import CABundleError
from rdsiamkit.tls import ca_bundle_path, cache_clear


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CA variables from the environment, no remembered lookups."""
    for name in ("PGSSLROOTCERT", "RDSIAMKIT_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    cache_clear()


@pytest.mark.parametrize(
    "host",
    [
        "db.cluster-c1a2b3c4d5e6.rds.us-iso-east-1.c2s.ic.gov",
        "db.c1a2b3c4d5e6.us-isob-east-1.rds.sc2s.sgov.gov",
    ],
)
def test_iso_partitions_refuse_the_commercial_bundle(host: str, tmp_path: Path) -> None:
    """An ISO endpoint gets no commercial CA; the error says where its bundle comes from."""
    endpoint = Endpoint.parse(host)
    with pytest.raises(CABundleError) as info:
        ca_bundle_path(partition=endpoint.partition, region=endpoint.region, cache_dir=tmp_path)
    message = str(info.value)
    assert repr(endpoint.partition) in message
    assert "not published on the internet" in message and "sslrootcert=" in message


@pytest.mark.parametrize("partition", ["aws-us-gov", "aws-cn"])
def test_govcloud_and_china_point_at_ca_update(partition: str, tmp_path: Path) -> None:
    """GovCloud and China without a refreshed bundle say to run `rdsiamkit ca update`."""
    with pytest.raises(CABundleError, match=f"ca update --partition {partition}`"):
        ca_bundle_path(partition=partition, cache_dir=tmp_path)


def test_iso_with_an_explicit_bundle_uses_it(tmp_path: Path) -> None:
    """sslrootcert= is the way in for an ISO partition."""
    bundle = tmp_path / "iso-bundle.pem"
    bundle.write_text("placeholder", encoding="utf-8")
    assert ca_bundle_path(partition="aws-iso", sslrootcert=str(bundle)) == str(bundle)
