"""The settings that turn on metrics and JSON logs, and the JSON log line itself."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import pytest

from smarttrade import logs
from smarttrade.config import ConfigError, add_serve_flags, from_environment, with_flags


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    return parser.parse_args(list(argv))


def test_metrics_and_json_logs_are_off_unless_asked_for() -> None:
    settings = from_environment({})
    assert settings.metrics_listen == ""
    assert settings.log_format == "text"
    assert settings.replica_id  # host and process id


def test_the_environment_and_the_flags_turn_them_on_and_flags_win() -> None:
    env = {
        "SMARTTRADE_METRICS_LISTEN": "0.0.0.0:9100",
        "SMARTTRADE_LOG_FORMAT": "json",
        "SMARTTRADE_REPLICA_ID": "pod-1",
    }
    settings = from_environment(env)
    assert (settings.metrics_listen, settings.log_format, settings.replica_id) == (
        "0.0.0.0:9100",
        "json",
        "pod-1",
    )
    flagged = with_flags(settings, flags("--metrics-listen", "[::1]:9200", "--replica-id", "b"))
    assert (flagged.metrics_listen, flagged.replica_id) == ("[::1]:9200", "b")


@pytest.mark.parametrize("address", ["9100", ":9100", "host:", "host:port", "host:70000", "h:٩١"])
def test_a_metrics_address_that_is_not_host_and_port_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="metrics listen"):
        from_environment({"SMARTTRADE_METRICS_LISTEN": address})


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="log format"):
        from_environment({"SMARTTRADE_LOG_FORMAT": "xml"})


def test_a_json_line_says_which_trade_and_request_it_is_about_and_carries_the_error() -> None:
    formatter = logs.JsonLines("replica-x")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "smarttrade", logging.ERROR, __file__, 1, "%s failed", ("it",), None
        )
        record.exc_info = sys.exc_info()
    marked = logs.request.set("req-1")
    try:
        with logs.about_trade("t-1"):
            line = json.loads(formatter.format(record))
        outside = json.loads(formatter.format(logging.makeLogRecord({"msg": "plain"})))
    finally:
        logs.request.reset(marked)

    assert line["message"] == "it failed"
    assert (line["replica"], line["trade"], line["request"]) == ("replica-x", "t-1", "req-1")
    assert "ValueError: boom" in line["error"]
    assert "trade" not in outside
    assert outside["request"] == "req-1"
