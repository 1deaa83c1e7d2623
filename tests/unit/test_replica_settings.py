"""The settings of replicas: where the others forward calls to this one, and workers."""

from __future__ import annotations

import socket

import pytest

from smarttrade.config import ConfigError, from_environment
from smarttrade.workers import worker_environment


def test_a_replica_advertises_its_listen_address_when_it_names_a_host() -> None:
    settings = from_environment({"SMARTTRADE_LISTEN": "10.0.0.5:50051"})
    assert settings.advertised(50051) == "10.0.0.5:50051"


def test_a_wildcard_listen_address_is_advertised_as_this_hosts_name() -> None:
    settings = from_environment({"SMARTTRADE_LISTEN": "0.0.0.0:0"})
    assert settings.advertised(41234) == f"{socket.gethostname()}:41234"


@pytest.mark.parametrize(
    ("advertise", "expected"),
    [
        ("10.1.2.3", "10.1.2.3:50051"),  # a pod's IP: the listening port is added
        ("fd00::7", "[fd00::7]:50051"),
        ("smarttrade-0.smarttrade", "smarttrade-0.smarttrade:50051"),
        ("10.1.2.3:6000", "10.1.2.3:6000"),
        ("[fd00::7]:6000", "[fd00::7]:6000"),
    ],
)
def test_an_advertised_host_gets_the_listening_port_unless_it_has_one(
    advertise: str, expected: str
) -> None:
    settings = from_environment(
        {"SMARTTRADE_LISTEN": "0.0.0.0:50051", "SMARTTRADE_ADVERTISE": advertise}
    )
    assert settings.advertised(50051) == expected


@pytest.mark.parametrize("advertise", ["host:", "host:port", "host:70000", ":50051"])
def test_an_advertised_address_with_a_bad_port_is_refused(advertise: str) -> None:
    with pytest.raises(ConfigError, match="advertise"):
        from_environment({"SMARTTRADE_ADVERTISE": advertise})


def test_a_replica_with_an_internal_address_advertises_that_one_with_its_port() -> None:
    settings = from_environment(
        {"SMARTTRADE_LISTEN": "0.0.0.0:50051", "SMARTTRADE_INTERNAL_LISTEN": "127.0.0.1:0"}
    )
    assert settings.advertised(41234) == "127.0.0.1:41234"


@pytest.mark.parametrize("workers", ["0", "65", "two", "٣", "-1", ""])
def test_a_number_of_workers_out_of_range_or_not_a_number_is_refused(workers: str) -> None:
    with pytest.raises(ConfigError, match="workers"):
        from_environment({"SMARTTRADE_WORKERS": workers})


def test_each_worker_shares_the_port_and_gets_its_own_internal_address_metrics_port_and_id() -> (
    None
):
    settings = from_environment(
        {
            "SMARTTRADE_LISTEN": "0.0.0.0:50051",
            "SMARTTRADE_WORKERS": "3",
            "SMARTTRADE_METRICS_LISTEN": "0.0.0.0:9100",
            "SMARTTRADE_REPLICA_ID": "node-7",
        }
    )
    base = {"SMARTTRADE_REPLICA_ID": "node-7", "PATH": "/bin"}
    first, third = (
        worker_environment(settings, "postgresql://db/x", index, base) for index in (0, 2)
    )
    assert first["SMARTTRADE_LISTEN"] == third["SMARTTRADE_LISTEN"] == "0.0.0.0:50051"
    assert first["SMARTTRADE_INTERNAL_LISTEN"] == "0.0.0.0:0"
    assert first["SMARTTRADE_WORKERS"] == "1"
    assert first["SMARTTRADE_DATABASE_URL"] == "postgresql://db/x"
    assert first["SMARTTRADE_LEASE_SECONDS"] == "5.0"  # workers are replicas with leases
    assert (first["SMARTTRADE_METRICS_LISTEN"], third["SMARTTRADE_METRICS_LISTEN"]) == (
        "0.0.0.0:9100",
        "0.0.0.0:9102",
    )
    assert (first["SMARTTRADE_REPLICA_ID"], third["SMARTTRADE_REPLICA_ID"]) == (
        "node-7-0",
        "node-7-2",
    )
    assert first["PATH"] == "/bin"
