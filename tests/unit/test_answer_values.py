"""Values in answers: the service's own conversions say what protobuf's would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from smarttrade.api import render
from smarttrade.domain.values import OrderStatus, Side
from smarttrade.v1 import smart_trade_pb2 as pb

ZONES = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)


@given(st.datetimes(timezones=ZONES))
def test_a_time_in_an_answer_is_the_timestamp_protobuf_makes_of_it(at: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(at)  # a naive time is UTC, for both
    assert render.timestamp(at) == expected


def test_an_unset_time_is_no_timestamp() -> None:
    assert render.timestamp(None) is None


def test_an_enum_value_is_the_contracts_number_each_time_it_is_asked() -> None:
    assert render.number(pb.Side, "SIDE", Side.BUY) == pb.SIDE_BUY
    assert render.number(pb.Side, "SIDE", Side.BUY) == pb.SIDE_BUY  # from the cache
    assert render.number(pb.OrderStatus, "ORDER_STATUS", OrderStatus.FILLED) == (
        pb.ORDER_STATUS_FILLED
    )
    assert render.number(pb.Side, "SIDE", None) == pb.SIDE_UNSPECIFIED
