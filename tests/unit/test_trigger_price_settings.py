"""Which price triggers (issue 15), as settings: `MARK` is a perpetual's, so a spot trade asking
for it is refused naming `trigger_price`; the CLI's `--trigger-on` and a trade file's
`trigger_price:` become the contract's field, and `trades get` says which price a trade
watches when it is not the last price."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from smarttrade.domain.decide import create
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.spec import LeverageSpec, MarketType, TriggerPrice
from smarttrade.domain.values import Side
from smarttrade_client.cli import parser as cli_parser
from smarttrade_client.cli import views
from smarttrade_client.cli.trade_settings import trade_mapping, trade_settings
from smarttrade_client.convert import smart_trade, trade_message
from smarttrade_client.v1 import smart_trade_pb2 as pb
from tests.unit.builders import market_entry, stop, trade_spec
from tests.unit.driver import BTC, T0
from tests.unit.trade_messages import spot_trade

PERPETUAL = dataclasses.replace(
    BTC, symbol="BTC/USDT:USDT", settle="USDT", max_leverage=Decimal(125)
)


def created(trigger: TriggerPrice, futures: bool) -> TriggerPrice:
    spec = dataclasses.replace(
        trade_spec(Side.BUY, market_entry(), (), stop(percent="5")), trigger_price=trigger
    )
    market = BTC
    if futures:
        market = PERPETUAL
        spec = dataclasses.replace(
            spec, symbol=PERPETUAL.symbol, leverage=LeverageSpec(MarketType.LINEAR)
        )
    decision = create(
        trade_id="t1",
        tenant_id="tenant",
        account_id="acct-1",
        exchange_id="binance",
        spec=spec,
        market=market,
        last_price=Decimal(50000),
        at=T0,
    )
    return decision.trade.spec.trigger_price


@pytest.mark.parametrize("trigger", [TriggerPrice.LAST, TriggerPrice.BID, TriggerPrice.ASK])
def test_a_spot_trade_may_watch_the_last_price_the_bid_or_the_ask(trigger: TriggerPrice) -> None:
    assert created(trigger, futures=False) is trigger


def test_a_futures_trade_may_watch_the_mark_price() -> None:
    assert created(TriggerPrice.MARK, futures=True) is TriggerPrice.MARK


def test_a_spot_trade_watching_the_mark_price_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidSpec) as refused:
        created(TriggerPrice.MARK, futures=False)

    assert [v.field for v in refused.value.violations] == ["trigger_price"]


def test_the_cli_flag_sets_the_contracts_trigger_price() -> None:
    arguments = cli_parser.build("smarttrade", None).parse_args(
        [
            "trades",
            "create",
            "--account",
            "exchangeAccounts/fedcba9876543210",
            "--symbol",
            "BTC/USDT",
            "--side",
            "buy",
            "--units",
            "1",
            "--trigger-on",
            "bid",
        ]
    )

    request = trade_message(**trade_settings(trade_mapping(arguments)))

    assert request.trigger_price == pb.TRIGGER_PRICE_BID


def test_trades_get_says_which_price_a_trade_watches_unless_it_is_the_last() -> None:
    watching_bid = spot_trade()
    watching_bid.trigger_price = pb.TRIGGER_PRICE_BID
    watching_last = spot_trade()
    watching_last.trigger_price = pb.TRIGGER_PRICE_LAST

    assert "triggers on: the bid price" in views.trade_detail(smart_trade(watching_bid))
    assert "triggers on" not in views.trade_detail(smart_trade(watching_last))
