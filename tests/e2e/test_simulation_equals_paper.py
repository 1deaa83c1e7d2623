"""A simulation makes the fills a live paper trade makes on the same ticks (issue 15).

Each case runs one trade twice over gRPC: live on a paper account, the sandbox price set to
every tick the candles make (open, nearer extreme, farther extreme, close; the first open
before the trade is created), and as SimulateSmartTrade over those candles with the same
account (its fees) and balances. Every order is compared, with its fills (price, amount,
fee), and the state, close reason and PnL.

BTC/USDT at about 100 USDT: lot 0.00001 BTC, tick 0.01, fees 0.1 %; the perpetual
BTC/USDT:USDT likewise at 100 (lot 0.001, tick 0.1, fees 0.1 % of the notional, maintenance
margin 0.4 %), on the same account's USDT.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from smarttrade.domain.candles import Candle, ticks
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, running_service

BTC = "BTC/USDT"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
BALANCES = {"USDT": "100000", "BTC": "100"}
Prices = tuple[str, str, str, str]  # open, high, low, close

# A BUY with three targets, the last trailing 1 %, and a stop that moves to breakeven: the
# first two targets fill as limits, the third trails from 108 and sells at 107.
THREE_TARGETS = (
    pb.SmartTrade(
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="50"),
        take_profit=pb.TakeProfit(
            steps=[
                pb.TakeProfitStep(price="104", volume_percent="30"),
                pb.TakeProfitStep(price="106", volume_percent="30"),
                pb.TakeProfitStep(price="108", volume_percent="40", trailing_percent="1"),
            ]
        ),
        stop_loss=pb.StopLoss(price="97", move_to_breakeven=True),
    ),
    [
        ("100", "100.5", "99.8", "100.2"),
        ("100.2", "102", "100", "101.8"),
        ("101.8", "104.3", "101.5", "104"),
        ("104", "106.4", "103.8", "106.2"),
        ("106.2", "108.5", "106", "108.3"),
        ("108.3", "108.4", "107", "107.2"),
    ],
)
# A SELL whose limit entry fills at 101; its first target fills at 98 and moves the stop to
# breakeven, which the climb back to 101.6 fires.
SELL_TO_BREAKEVEN = (
    pb.SmartTrade(
        symbol=BTC,
        side=pb.SIDE_SELL,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="20", limit_price="101"),
        take_profit=pb.TakeProfit(
            steps=[
                pb.TakeProfitStep(price="98", volume_percent="50"),
                pb.TakeProfitStep(price="95", volume_percent="50"),
            ]
        ),
        stop_loss=pb.StopLoss(price="104", move_to_breakeven=True),
    ),
    [
        ("100", "100.4", "99.7", "100.3"),
        ("100.3", "101.5", "100.1", "101.2"),
        ("101.2", "101.3", "97.5", "97.8"),
        ("97.8", "101.6", "97.6", "101.4"),
    ],
)
# A BUY entered when the price reaches 102, with a stop trailing 2 % from the high of 106.
CONDITIONAL_TRAILING_STOP = (
    pb.SmartTrade(
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(
            type=pb.ENTRY_TYPE_CONDITIONAL,
            units="30",
            trigger_price="102",
            order_type=pb.ORDER_TYPE_MARKET,
        ),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
        stop_loss=pb.StopLoss(percent="5", trailing_percent="2"),
    ),
    [
        ("100", "100.6", "99.9", "100.5"),
        ("100.5", "102.4", "100.4", "102.2"),
        ("102.2", "106", "102", "105.8"),
        ("105.8", "105.9", "103.5", "103.7"),
    ],
)
PERP = "BTC/USDT:USDT"
ON_MARGIN = pb.Leverage(
    market_type=pb.MARKET_TYPE_LINEAR, value="10", margin_mode=pb.MARGIN_MODE_ISOLATED
)
# A futures short at 10x (no coins: margin), two targets and a stop trailing 2 %: the first
# target fills at 97, the stop trails the low of 95.5 (to 97.41) and buys back the rest at
# the tick that crosses it, 97.6.
SHORT_ON_MARGIN = (
    pb.SmartTrade(
        symbol=PERP,
        side=pb.SIDE_SELL,
        leverage=ON_MARGIN,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        take_profit=pb.TakeProfit(
            steps=[
                pb.TakeProfitStep(price="97", volume_percent="50"),
                pb.TakeProfitStep(price="90", volume_percent="50"),
            ]
        ),
        stop_loss=pb.StopLoss(percent="3", trailing_percent="2"),
    ),
    [
        ("100", "100.3", "99.8", "100.1"),
        ("100.1", "100.2", "96.8", "97.2"),
        ("97.2", "97.4", "95.5", "95.8"),
        ("95.8", "97.6", "95.7", "97.5"),
    ],
)
# A futures long at 10x isolated whose price falls through its liquidation price (about
# 90.36): the venue closes it, and its target is not placed again after the climb.
LONG_LIQUIDATED = (
    pb.SmartTrade(
        symbol=PERP,
        side=pb.SIDE_BUY,
        leverage=ON_MARGIN,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="110", volume_percent="100")]),
    ),
    [
        ("100", "100.2", "99.8", "100"),
        ("100", "100.1", "89", "89.5"),
        ("89.5", "111", "89.5", "110.5"),
    ],
)
CASES = {  # the settings, the candles, how the trade ends
    "a buy through three targets, the last trailing": (
        *THREE_TARGETS,
        pb.CLOSE_REASON_TAKE_PROFIT,
    ),
    "a sell stopped at breakeven": (*SELL_TO_BREAKEVEN, pb.CLOSE_REASON_STOP_LOSS),
    "a conditional buy stopped by its trailing stop": (
        *CONDITIONAL_TRAILING_STOP,
        pb.CLOSE_REASON_STOP_LOSS,
    ),
    "a futures short on margin stopped by its trailing stop": (
        *SHORT_ON_MARGIN,
        pb.CLOSE_REASON_STOP_LOSS,
    ),
    "a futures long liquidated": (*LONG_LIQUIDATED, pb.CLOSE_REASON_LIQUIDATED),
}


def domain_candles(rows: list[Prices]) -> list[Candle]:
    return [
        Candle(T0 + timedelta(minutes=m), *(Decimal(p) for p in row)) for m, row in enumerate(rows)
    ]


def pb_candles(rows: list[Prices]) -> list[trades_pb.Candle]:
    found = []
    for m, (open_, high, low, close) in enumerate(rows):
        time = Timestamp()
        time.FromDatetime(T0 + timedelta(minutes=m))
        found.append(trades_pb.Candle(time=time, open=open_, high=high, low=low, close=close))
    return found


def orders(trade: pb.SmartTrade) -> list[tuple[object, ...]]:
    """Every order by leg and number (the trade's id left out), with its fills."""
    return [
        (
            order.client_order_id.split("-", 1)[1],
            order.side,
            order.type,
            order.amount,
            order.price,
            order.status,
            [(f.price, f.amount, f.fee, f.fee_currency) for f in order.fills],
        )
        for leg in trade.legs
        for order in leg.orders
    ]


def outcome(trade: pb.SmartTrade) -> tuple[object, ...]:
    position = trade.position
    return (
        trade.state,
        trade.close_reason,
        position.realized_pnl,
        position.units_held,
        position.surplus,
    )


async def live(
    client: Client, account: str, trade: pb.SmartTrade, rows: list[Prices]
) -> pb.SmartTrade:
    prices = [price for _, price in ticks(domain_candles(rows))]
    await client.set_price(trade.symbol, str(prices[0]))
    created = await client.create(trade)
    deadline = asyncio.get_running_loop().time() + 10
    while any(
        o.status == pb.ORDER_STATUS_PENDING for o in (await client.get(created.name)).legs[0].orders
    ):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    for price in prices[1:]:
        await client.set_price(trade.symbol, str(price))  # returns once every trade reacted
    return await client.get(created.name)


@pytest.mark.parametrize("case", list(CASES))
async def test_a_simulation_makes_every_fill_a_live_paper_trade_makes_on_the_same_ticks(
    database_url: str, tmp_path: Path, case: str
) -> None:
    # Arrange
    settings, rows, reason = CASES[case]
    async with running_service(database_url, tmp_path) as service:
        client = service.a
        account = await client.paper_account(**BALANCES)
        trade = pb.SmartTrade()
        trade.CopyFrom(settings)
        trade.account = account

        # Act
        live_trade = await live(client, account, trade, rows)
        simulated = await client.trades.SimulateSmartTrade(
            trades_pb.SimulateSmartTradeRequest(
                smart_trade=trade, candles=pb_candles(rows), balances=BALANCES
            ),
            metadata=client.metadata,
        )

    # Assert
    assert (live_trade.state, live_trade.close_reason) == (pb.SMART_TRADE_STATE_CLOSED, reason)
    fills = [fill for leg in live_trade.legs for order in leg.orders for fill in order.fills]
    assert len(fills) >= 2  # an entry and an exit at least, compared below
    assert orders(simulated.smart_trade) == orders(live_trade)
    assert outcome(simulated.smart_trade) == outcome(live_trade)
