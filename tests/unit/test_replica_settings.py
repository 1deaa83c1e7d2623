"""The settings of replicas: where the others forward calls to this one."""

from __future__ import annotations

import socket

import pytest

from smarttrade.config import ConfigError, from_environment


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
