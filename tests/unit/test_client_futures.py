"""The Python client reads a futures trade's figures (issue 14): `SmartTrade.futures` with its
margin, ROE and liquidation price in `Decimal`, None when the message leaves the field unset
(spot, or no position open), and a trade the exchange liquidated as CLOSED (LIQUIDATED)."""

from __future__ import annotations

from decimal import Decimal

from smarttrade_client import (
    CloseReason,
    FuturesPosition,
    Leverage,
    MarginMode,
    MarketType,
    TradeState,
    jsonable,
)
from smarttrade_client.convert import smart_trade
from smarttrade_client.v1 import smart_trade_pb2 as pb
from tests.unit.trade_messages import LIQUIDATION, futures_trade, liquidated, spot_trade


def test_a_futures_trade_reads_its_margin_roe_and_liquidation_price_as_decimals() -> None:
    trade = smart_trade(futures_trade())

    assert trade.leverage == Leverage(
        market_type=MarketType.LINEAR, value=Decimal(10), margin_mode=MarginMode.ISOLATED
    )
    assert trade.futures == FuturesPosition(
        margin=Decimal(100),
        unrealized_pnl=Decimal(40),
        roe_percent=Decimal(40),
        liquidation_price=Decimal(LIQUIDATION),
    )


def test_a_cross_margin_position_before_the_exchange_reports_has_no_liquidation_price() -> None:
    message = futures_trade()
    message.leverage.margin_mode = pb.MARGIN_MODE_CROSS
    message.futures.liquidation_price = ""

    trade = smart_trade(message)

    assert trade.futures is not None
    assert trade.futures.liquidation_price is None
    assert trade.futures.margin == Decimal(100)


def test_a_spot_trade_has_no_futures_position() -> None:
    trade = smart_trade(spot_trade())

    assert trade.futures is None


def test_a_liquidated_trade_reads_closed_liquidated_with_no_futures_position() -> None:
    trade = smart_trade(liquidated(futures_trade()))

    assert (trade.state, trade.close_reason) == (TradeState.CLOSED, CloseReason.LIQUIDATED)
    assert trade.futures is None


def test_a_futures_trades_json_carries_its_figures_as_decimal_strings() -> None:
    trade = smart_trade(futures_trade())

    assert jsonable(trade)["futures"] == {
        "margin": "100",
        "unrealized_pnl": "40",
        "roe_percent": "40",
        "liquidation_price": LIQUIDATION,
    }
