"""Request values the contract does not allow are refused naming the field, before anything
converts them: decimals in other scripts' digits, timestamps and durations out of their
well-known types' ranges, symbols of any length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from smarttrade.api import parse
from smarttrade.domain.errors import InvalidSpec
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb

NON_ASCII_DIGITS = ["１２３", "١٢٣", "𝟏𝟎𝟎", "۱۲", "१०", "1.٥", "٠.5"]
YEAR_10000 = 253_402_300_800
BEFORE_YEAR_1 = -62_135_596_801


def refused(text: str) -> list[str]:
    out = parse.Violations()
    assert parse.decimal(text, "units", out) is None
    return [violation.field for violation in out.items]


@pytest.mark.parametrize("text", NON_ASCII_DIGITS)
def test_a_decimal_in_another_scripts_digits_is_refused_naming_the_field(text: str) -> None:
    assert Decimal(text)  # what the constructor alone would have let through
    assert refused(text) == ["units"]


@pytest.mark.parametrize("text", ["0", "12.5", "-3", "123456789012345678901234567890.1"])
def test_a_decimal_in_ascii_digits_is_read(text: str) -> None:
    out = parse.Violations()
    assert parse.decimal(text, "units", out) == Decimal(text)
    assert out.items == []


def test_a_decimal_is_quoted_back_at_most_forty_characters_long() -> None:
    out = parse.Violations()
    parse.decimal("x" * 1_000_000, "units", out)
    assert len(out.items[0].description) < 100


@pytest.mark.parametrize("text", ["v١", "v１２", "v𝟏"])
def test_an_etag_in_another_scripts_digits_is_not_one_the_service_issued(text: str) -> None:
    with pytest.raises(InvalidSpec) as refusal:
        parse.etag(text, "etag")
    assert [v.field for v in refusal.value.violations] == ["etag"]


def listing(seconds: int, nanos: int = 0) -> trades_pb.ListSmartTradesRequest:
    return trades_pb.ListSmartTradesRequest(
        create_time_start=Timestamp(seconds=seconds, nanos=nanos)
    )


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (0, -1),
        (0, 1_000_000_000),
        (YEAR_10000, 0),
        (BEFORE_YEAR_1, 0),
        (2**63 - 1, 0),
        (-(2**63), 0),
    ],
)
def test_a_timestamp_out_of_range_is_refused_naming_the_field(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidSpec) as refusal:
        parse.timestamp(listing(seconds, nanos), "create_time_start")
    assert [v.field for v in refusal.value.violations] == ["create_time_start"]


def test_a_timestamp_at_either_end_of_its_range_is_read() -> None:
    last = parse.timestamp(listing(YEAR_10000 - 1, 999_999_999), "create_time_start")
    first = parse.timestamp(listing(BEFORE_YEAR_1 + 1), "create_time_start")
    assert last is not None
    assert last.year == 9999
    assert first == datetime(1, 1, 1, tzinfo=UTC)


def test_an_unset_timestamp_is_none() -> None:
    assert parse.timestamp(trades_pb.ListSmartTradesRequest(), "create_time_end") is None


def test_timestamps_out_of_range_are_collected_when_asked() -> None:
    out = parse.Violations()
    request = trades_pb.ListSmartTradesRequest(
        create_time_start=Timestamp(nanos=-1), create_time_end=Timestamp(seconds=YEAR_10000)
    )
    parse.timestamp(request, "create_time_start", out)
    parse.timestamp(request, "create_time_end", out)
    assert [v.field for v in out.items] == ["create_time_start", "create_time_end"]


def ttl(seconds: int, nanos: int = 0) -> timedelta | None:
    request = trades_pb.ShareSmartTradeRequest(ttl=Duration(seconds=seconds, nanos=nanos))
    return parse.duration(request, "ttl", rule="must be positive", minimum=timedelta.resolution)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (60, -1),  # nanos of the other sign than the seconds
        (-60, 1),
        (0, 1_000_000_000),
        (0, -1_000_000_000),
        (10**15, 0),
        (2**63 - 1, 0),
        (-(2**63), 0),
        (315_576_000_001, 0),
    ],
)
def test_a_duration_its_type_does_not_allow_is_refused_naming_the_field(
    seconds: int, nanos: int
) -> None:
    with pytest.raises(InvalidSpec) as refusal:
        ttl(seconds, nanos)
    assert [v.field for v in refusal.value.violations] == ["ttl"]
    assert "not a valid duration" in refusal.value.violations[0].description


@pytest.mark.parametrize(("seconds", "nanos"), [(0, 0), (-5, 0), (0, -5_000)])
def test_a_duration_below_the_minimum_is_refused_with_the_rule(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidSpec) as refusal:
        ttl(seconds, nanos)
    assert [(v.field, v.description) for v in refusal.value.violations] == [
        ("ttl", "must be positive")
    ]


def test_a_duration_within_its_rule_is_read() -> None:
    assert ttl(60, 500_000_000) == timedelta(seconds=60.5)
    assert ttl(315_576_000_000, 999_999_999) is not None


def test_an_unset_duration_is_none() -> None:
    request = trades_pb.WatchSmartTradesRequest()
    interval = parse.duration(
        request, "heartbeat_interval", rule="at least 1 s", minimum=timedelta(seconds=1)
    )
    assert interval is None


@pytest.mark.parametrize("text", ["B" * 1_000_000, "BTCUSDT", "BTC/USDT ", "ＢＴＣ/USDT", "BTC/٠"])
def test_a_symbol_that_is_not_a_unified_one_is_refused_without_quoting_it(text: str) -> None:
    out = parse.Violations()
    parse.symbol(text, "symbol", out)
    assert [(v.field, v.description) for v in out.items] == [
        ("symbol", "must be a unified symbol such as BTC/USDT")
    ]
