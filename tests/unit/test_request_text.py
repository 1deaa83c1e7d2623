"""Requests with a NUL character in any string are refused up front, naming each field
(PostgreSQL text cannot hold one)."""

from __future__ import annotations

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from smarttrade.api.parse import text_fields_clean
from smarttrade.domain.errors import InvalidSpec
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb


def refused_fields(request: Message) -> list[str]:
    with pytest.raises(InvalidSpec) as refused:
        text_fields_clean(request)
    assert {v.description for v in refused.value.violations} == {"must not contain NUL characters"}
    return [violation.field for violation in refused.value.violations]


def test_a_clean_request_passes() -> None:
    text_fields_clean(trades_pb.GetSmartTradeRequest(name="smartTrades/ab12"))
    text_fields_clean(trades_pb.CreateSmartTradeRequest())


def test_a_nul_in_a_top_level_string_names_that_field() -> None:
    assert refused_fields(trades_pb.GetSmartTradeRequest(name="smartTrades/a\x00")) == ["name"]


def test_a_nul_in_a_nested_string_names_its_path() -> None:
    request = trades_pb.CreateSmartTradeRequest(
        smart_trade=pb.SmartTrade(note="fine", symbol="BTC/\x00USDT"), request_id="r\x00"
    )
    assert sorted(refused_fields(request)) == ["request_id", "smart_trade.symbol"]


def test_a_nul_in_a_repeated_string_names_its_index() -> None:
    request = trades_pb.UpdateSmartTradeRequest(update_mask=FieldMask(paths=["note", "x\x00"]))
    assert refused_fields(request) == ["update_mask.paths[1]"]


def test_a_nul_in_a_map_key_or_value_names_the_map() -> None:
    for balances in ({"US\x00DT": "1"}, {"USDT": "1\x00"}):
        request = accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(
                paper_settings=accounts_pb.PaperAccountSettings(initial_balances=balances)
            )
        )
        assert refused_fields(request) == ["exchange_account.paper_settings.initial_balances"]
