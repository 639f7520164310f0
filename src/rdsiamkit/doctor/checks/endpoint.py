"""Checks 1-3: the options make a valid target, its name resolves, its port accepts TCP."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket

from rdsiamkit._login import RegionContradictionError
from rdsiamkit.doctor.facts import Address, Addresses, Inputs, Target
from rdsiamkit.doctor.model import Check, CheckName, CheckStatus, Finding
from rdsiamkit.doctor.runner import Outcome, check, fixture
from rdsiamkit.endpoints import Endpoint
from rdsiamkit.errors import CABundleError, ConfigurationError


@check(
    CheckName.CONFIGURATION,
    provides="target",
    missing="needs valid connection options (see configuration)",
)
def configuration(*, inputs: Inputs) -> Check | Outcome[Target]:
    """The options make a valid target: verify-full TLS, a CA bundle, host, port and user."""
    try:
        target = Target.build(
            inputs.conninfo,
            inputs.kwargs,
            region=inputs.region,
            token_host=inputs.token_host,
            token_port=inputs.token_port,
            insecure_skip_tls_verify=inputs.insecure,
        )
    except (ConfigurationError, CABundleError) as err:
        return Check(
            CheckName.CONFIGURATION,
            CheckStatus.FAIL,
            str(err),
            fix="correct the option named above",
            finding=Finding.WRONG_REGION
            if isinstance(err, RegionContradictionError)
            else Finding.INVALID_OPTIONS,
        )
    return Outcome(
        Check(
            CheckName.CONFIGURATION,
            CheckStatus.PASS,
            f"{target.describe()}, sslmode={target.params['sslmode']}, "
            f"CA bundle {target.params['sslrootcert']}",
        ),
        target,
    )


@fixture("endpoint")
def endpoint(*, target: Target) -> Endpoint | None:
    """The RDS endpoint tokens are signed for; ``None`` if the name is not an RDS one."""
    return Endpoint.try_parse(target.token_host)


def _resolve(target: Target, timeout: float) -> tuple[str, ...]:
    """The addresses of ``target.host``; a hung resolver is left behind after ``timeout``."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM)
    pool.shutdown(wait=False)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise OSError(f"no answer from DNS within {timeout:g} s") from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


@check(CheckName.DNS, provides="addresses", missing="needs the address (see dns)")
def dns(*, target: Target, inputs: Inputs) -> Check | Outcome[Addresses]:
    """The endpoint resolves, unless ``hostaddr`` is dialled (then no lookup is made)."""
    hostaddr = target.params.get("hostaddr")
    if hostaddr:
        return Outcome(
            Check(
                CheckName.DNS,
                CheckStatus.PASS,
                f"hostaddr={hostaddr} is dialled; the name {target.host} is used for TLS "
                "verification and the token only (no DNS lookup)",
            ),
            Addresses((hostaddr,)),
        )
    try:
        addresses = _resolve(target, inputs.timeout)
    except OSError as err:
        return Check(
            CheckName.DNS,
            CheckStatus.FAIL,
            f"cannot resolve {target.host}: {err}",
            fix=(
                "check the endpoint name (aws rds describe-db-clusters shows it); from "
                "outside the VPC use a VPN or tunnel and pass hostaddr= with host= kept as "
                "the endpoint name"
            ),
            finding=Finding.DNS_FAILURE,
        )
    return Outcome(
        Check(CheckName.DNS, CheckStatus.PASS, f"{target.host} resolves to {', '.join(addresses)}"),
        Addresses(addresses),
    )


@check(
    CheckName.REACHABILITY,
    provides="address",
    missing="needs a TCP connection (see reachability)",
)
def reachability(
    *, target: Target, addresses: Addresses, inputs: Inputs
) -> Check | Outcome[Address]:
    """One of the addresses accepts TCP on the port."""
    errors = []
    for address in addresses.items:
        try:
            with socket.create_connection((address, target.port), timeout=inputs.timeout):
                pass
        except OSError as err:
            errors.append(f"{address}: {err}")
            continue
        return Outcome(
            Check(
                CheckName.REACHABILITY,
                CheckStatus.PASS,
                f"TCP connection to {address}:{target.port} opened",
            ),
            Address(address, target.port),
        )
    fix = (
        f"allow inbound TCP {target.port} from this machine in the security group and "
        "network ACL; check the port"
    )
    if any(_is_private(a) for a in addresses.items):
        fix += "; the address is private: connect from inside the VPC, a VPN or a tunnel"
    return Check(
        CheckName.REACHABILITY,
        CheckStatus.FAIL,
        f"cannot open TCP to port {target.port}: {'; '.join(errors)}",
        fix=fix,
        finding=Finding.UNREACHABLE,
    )


def _is_private(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_private
    except ValueError:
        return False
