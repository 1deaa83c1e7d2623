"""The simulator (engine/simulator.py): a candle becomes four ticks, and a trade walked
through a history ends as a worked example says it must.

BTC/USDT, lot 0.00001 BTC, tick 0.01; paper fees 0.1%, paid in the currency received. Every
trade buys (or sells) 0.1 BTC at market at the first candle's open, 50,000: a BUY pays
0.0001 BTC of fee and holds 0.0999 BTC, at an average of 5,000 / 0.0999.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.candles import (
    MAX_CANDLES,
    Candle,
    VolumeShortfall,
    check_candles,
    ticks,
    ticks_of,
    volume_shortfalls,
)
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import EventType
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import (
    LeverageSpec,
    MarginMode,
    MarketType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
)
from smarttrade.domain.values import Fill, OrderStatus, Side
from smarttrade.engine.simulator import Simulation, simulate
from smarttrade.errors import PreconditionFailed
from tests.unit.builders import limit_entry, market_entry, step, stop, trade_spec
from tests.unit.driver import BTC, PERP

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def candle(minute: int, open: str, high: str, low: str, close: str) -> Candle:
    return Candle(T0 + timedelta(minutes=minute), D(open), D(high), D(low), D(close))


def fills(simulation: Simulation) -> list[tuple[str, Decimal, Decimal, Decimal, str]]:
    return [
        (order.client_order_id.split("-")[1], fill.price, fill.amount, fill.fee, fill.fee_currency)
        for order in simulation.trade.orders()
        for fill in order.fills
    ]


FLAT = candle(0, "50000", "50000", "50000", "50000")

# ---- a candle becomes ticks ---------------------------------------------------------------


def test_a_candle_goes_to_the_low_first_when_the_low_is_nearer_to_the_open() -> None:
    assert ticks_of(candle(0, "100", "103", "99", "102")) == (D(100), D(99), D(103), D(102))


def test_a_candle_goes_to_the_high_first_when_the_high_is_nearer_to_the_open() -> None:
    assert ticks_of(candle(0, "100", "101", "95", "96")) == (D(100), D(101), D(95), D(96))


def test_a_candle_whose_extremes_are_equally_near_goes_to_the_low_first() -> None:
    assert ticks_of(candle(0, "100", "102", "98", "101")) == (D(100), D(98), D(102), D(101))


def test_the_ticks_of_a_candle_are_spread_over_its_time_to_the_next_candle() -> None:
    history = [candle(0, "100", "101", "99", "100"), candle(4, "100", "100", "100", "100")]

    times = [at for at, _ in ticks(history)]

    minutes = [int((at - T0).total_seconds() // 60) for at in times]
    assert minutes == [0, 1, 2, 3, 4, 5, 6, 7]


# ---- what the history's volume says of the fills -----------------------------------------


def a_fill(minute: float, amount: str) -> Fill:
    return Fill(f"f{minute}", D(100), D(amount), D(0), "USDT", T0 + timedelta(minutes=minute))


def test_the_fills_of_a_candle_are_added_up_against_its_volume() -> None:
    history = [
        replace(candle(0, "100", "100", "100", "100"), volume=D("5")),
        replace(candle(1, "100", "100", "100", "100"), volume=D("5")),
        candle(2, "100", "100", "100", "100"),  # no volume: not judged
        replace(candle(3, "100", "100", "100", "100"), volume=D("0")),
    ]
    fills = [
        a_fill(0, "3"),
        a_fill(0.75, "3"),  # 6 in the first candle: more than its 5
        a_fill(1.5, "5"),  # exactly the second's 5: possible
        a_fill(2.25, "100"),
        a_fill(9, "0.1"),  # after the last candle's start: the last candle's
    ]

    shortfalls = volume_shortfalls(history, fills)

    assert shortfalls == [
        VolumeShortfall(T0, D("5"), D("6")),
        VolumeShortfall(T0 + timedelta(minutes=3), D("0"), D("0.1")),
    ]


def test_a_simulation_reports_the_candles_in_which_it_filled_more_than_was_traded() -> None:
    # 0.1 BTC bought at the open of a candle where 0.05 BTC traded; the target's 0.0999
    # sells in a candle where 2 BTC traded.
    spec = trade_spec(Side.BUY, market_entry("0.1"), (step("100", price="51000"),))
    history = [
        replace(candle(0, "50000", "50200", "49900", "50100"), volume=D("0.05")),
        replace(candle(1, "50100", "51200", "50000", "51100"), volume=D("2")),
    ]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.close_reason is CloseReason.TAKE_PROFIT
    assert simulation.volume_shortfalls == (VolumeShortfall(T0, D("0.05"), D("0.1")),)


# ---- a bad history is refused, naming the row ---------------------------------------------


@pytest.mark.parametrize(
    ("history", "field"),
    [
        ([], "candles"),
        ([candle(0, "100", "99", "101", "100")], "candles[0].high"),
        ([FLAT, candle(0, "100", "100", "100", "100")], "candles[1].time"),
        ([candle(0, "100", "101", "99", "102")], "candles[0].close"),
        ([candle(0, "0", "0", "0", "0")], "candles[0].open"),
    ],
    ids=["empty", "high below low", "time not increasing", "close outside", "zero price"],
)
def test_a_history_that_cannot_be_walked_is_refused_naming_the_field(
    history: list[Candle], field: str
) -> None:
    with pytest.raises(InvalidSpec) as refused:
        check_candles(history)

    assert [v.field for v in refused.value.violations] == [field]


def test_a_history_longer_than_the_limit_is_refused() -> None:
    history = [candle(minute, "1", "1", "1", "1") for minute in range(MAX_CANDLES + 1)]

    with pytest.raises(InvalidSpec) as refused:
        check_candles(history)

    assert [v.field for v in refused.value.violations] == ["candles"]


def test_a_futures_trade_on_a_spot_market_is_refused_naming_the_symbol() -> None:
    spec = trade_spec(Side.BUY, market_entry())
    futures = replace(spec, leverage=LeverageSpec(MarketType.LINEAR))

    with pytest.raises(InvalidSpec) as refused:
        simulate(futures, BTC, [FLAT])

    assert [v.field for v in refused.value.violations] == ["symbol"]


# ---- worked outcomes -----------------------------------------------------------------------


def test_a_buy_reaching_its_target_sells_everything_at_the_limit_and_closes_in_profit() -> None:
    # The second candle dips to 50,000 first (nearer), then reaches 51,200: the limit at
    # 51,000 fills at its price, a maker fill: fee 0.0999 x 51,000 x 0.1% = 5.0949 USDT.
    spec = trade_spec(Side.BUY, market_entry("0.1"), (step("100", price="51000"),))
    history = [
        candle(0, "50000", "50200", "49900", "50100"),
        candle(1, "50100", "51200", "50000", "51100"),
    ]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.state is TradeState.CLOSED
    assert simulation.trade.close_reason is CloseReason.TAKE_PROFIT
    assert fills(simulation) == [
        ("entry", D("50000"), D("0.1"), D("0.0001"), "BTC"),
        ("tp1", D("51000"), D("0.0999"), D("5.0949"), "USDT"),
    ]
    # 5,094.9 - 5,000 - 5.0949
    assert position_of(simulation.trade).realized_pnl == D("89.8051")


def test_a_buy_falling_through_its_stop_sells_at_market_at_the_tick_that_crossed_it() -> None:
    # Up to 50,100 first (nearer), then down to 48,800: the stop at 49,000 sells there.
    spec = trade_spec(
        Side.BUY, market_entry("0.1"), (step("100", price="53000"),), stop(price="49000")
    )
    history = [
        candle(0, "50000", "50200", "49900", "50100"),
        candle(1, "50000", "50100", "48800", "48900"),
    ]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.close_reason is CloseReason.STOP_LOSS
    assert fills(simulation) == [
        ("entry", D("50000"), D("0.1"), D("0.0001"), "BTC"),
        ("sl", D("48800"), D("0.0999"), D("4.87512"), "USDT"),
    ]
    # 4,875.12 - 5,000 - 4.87512
    assert position_of(simulation.trade).realized_pnl == D("-129.75512")


def test_a_trailing_stop_follows_the_high_and_sells_when_the_price_falls_back_through_it() -> None:
    # The high of 52,000 lifts the stop to 52,000 x 98% = 50,960; the next candle's low,
    # 50,900, is the first tick at or below it.
    spec = trade_spec(
        Side.BUY,
        market_entry("0.1"),
        (step("100", price="60000"),),
        stop(percent="2", trailing="2"),
    )
    history = [
        FLAT,
        candle(1, "50000", "52000", "49900", "51900"),
        candle(2, "51900", "51950", "50900", "51000"),
    ]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.close_reason is CloseReason.STOP_LOSS
    moved = [e.price for e in simulation.events if e.type is EventType.STOP_MOVED]
    assert moved[-1] == D("50960")
    assert fills(simulation)[-1] == ("sl", D("50900"), D("0.0999"), D("5.08491"), "USDT")
    assert position_of(simulation.trade).realized_pnl == D("79.82509")


def test_a_sell_mirrors_the_buy_and_buys_back_grossed_up_for_the_fee_in_coins() -> None:
    # Sold 0.1 at 50,000 (fee 5 USDT); the target at 49,000 buys back 0.1 / 0.999 rounded
    # up to the lot, 0.10011, so 0.1 is delivered net of the 0.1% fee in BTC.
    spec = trade_spec(Side.SELL, market_entry("0.1"), (step("100", price="49000"),))
    history = [
        candle(0, "50000", "50100", "49800", "49900"),
        candle(1, "49900", "50000", "48800", "48900"),
    ]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.close_reason is CloseReason.TAKE_PROFIT
    assert fills(simulation) == [
        ("entry", D("50000"), D("0.1"), D("5"), "USDT"),
        ("tp1", D("49000"), D("0.10011"), D("0.00010011"), "BTC"),
    ]
    # 5,000 - 4,905.39 - 5
    assert position_of(simulation.trade).realized_pnl == D("89.61")


def test_the_account_fees_and_slippage_are_those_the_simulation_is_given() -> None:
    spec = trade_spec(Side.BUY, market_entry("0.1"), (step("100", price="51000"),))
    settings = PaperSettings(taker_fee_rate=D("0.002"), slippage_percent=D("1"))

    simulation = simulate(spec, BTC, [FLAT], settings)

    assert fills(simulation) == [("entry", D("50500"), D("0.1"), D("0.0002"), "BTC")]


# ---- futures: a perpetual at 100, 10 BTC at 10x isolated (margin 100 USDT) ----------------


def perp_trade(
    side: Side, *steps: TakeProfitStepSpec, stop_loss: StopLossSpec | None = None
) -> TradeSpec:
    spec = trade_spec(side, market_entry("10"), steps, stop_loss)
    leverage = LeverageSpec(MarketType.LINEAR, D(10), MarginMode.ISOLATED)
    return replace(spec, symbol=PERP.symbol, leverage=leverage)


def test_a_futures_short_is_opened_on_margin_and_bought_back_reduce_only() -> None:
    # Sold at 100 (fee 0.1 % of 1,000 = 1 USDT), bought back at the target of 95 as a
    # maker (0.1 % of 950 = 0.95): (100 - 95) x 10 - 1.95 = 48.05; the wallet likewise.
    spec = perp_trade(Side.SELL, step("100", price="95"))
    history = [
        candle(0, "100", "100.2", "99.8", "100"),
        candle(1, "100", "100.1", "94.9", "95.5"),
    ]

    simulation = simulate(spec, PERP, history, balances={"USDT": D(10000)})

    assert simulation.trade.close_reason is CloseReason.TAKE_PROFIT
    assert fills(simulation) == [
        ("entry", D("100"), D("10"), D("1"), "USDT"),
        ("tp1", D("95"), D("10"), D("0.95"), "USDT"),
    ]
    assert [o.reduce_only for o in simulation.trade.orders()] == [False, True]
    assert position_of(simulation.trade).realized_pnl == D("48.05")
    assert simulation.balances["USDT"].free + simulation.balances["USDT"].locked == D("10048.05")


def test_a_futures_long_the_price_falls_through_is_liquidated_by_the_venue() -> None:
    # Bought at 100 with 100 USDT of margin and 1 of fee; the low of 89 is past the
    # liquidation price (about 90.36), where the venue closes it and keeps the margin:
    # the trade loses its margin and its fee, -101, as the wallet does. Its target is
    # cancelled by the venue and not placed again.
    spec = perp_trade(Side.BUY, step("100", price="110"))
    history = [
        candle(0, "100", "100.2", "99.8", "100"),
        candle(1, "100", "100.1", "89", "89.5"),
        candle(2, "89.5", "111", "89.5", "110.5"),
    ]

    simulation = simulate(spec, PERP, history, balances={"USDT": D(10000)})

    trade = simulation.trade
    assert (trade.state, trade.close_reason) == (TradeState.CLOSED, CloseReason.LIQUIDATED)
    assert round(position_of(trade).realized_pnl, 8) == D("-101")  # the price has 27 digits
    wallet = simulation.balances["USDT"]
    assert wallet.free + wallet.locked == D("9899")
    assert [(order.client_order_id.split("-")[1], order.status) for order in trade.orders()] == [
        ("entry", OrderStatus.FILLED),
        ("tp1", OrderStatus.CANCELLED),
        ("liquidation", OrderStatus.FILLED),  # the venue's order, this trade's exit
    ]


def test_a_liquidation_that_leaves_a_position_is_judged_as_reconciliation_judges_it() -> None:
    # Partial fills: the limit entry fills 5 at 100; the gap to 89 liquidates those 5 and,
    # in the same tick, fills the entry's other 5, a new position. As live, the trade is
    # told the venue holds less than it does (an error), not that its position is gone;
    # the new position's liquidation, a tick later, ends it.
    spec = replace(perp_trade(Side.BUY, step("100", price="110")), entry=limit_entry("100", "10"))
    history = [
        candle(0, "100.5", "100.6", "100", "100.2"),
        candle(1, "100.2", "100.2", "89", "89"),
        candle(2, "89", "89", "88", "88"),
    ]

    simulation = simulate(spec, PERP, history, PaperSettings(partial_fills=True))

    trade = simulation.trade
    errors = [e.message for e in simulation.events if e.type is EventType.ERROR_CHANGED]
    assert errors == ["the account holds 5 BTC, its trades on BTC/USDT:USDT expect 10"]
    assert (trade.state, trade.close_reason) == (TradeState.CLOSED, CloseReason.LIQUIDATED)
    assert trade.updated_at == T0 + timedelta(minutes=1, seconds=45)  # the second one


def test_a_futures_position_left_open_shows_the_venues_liquidation_price() -> None:
    # 10 BTC at 100 on 100 USDT of margin (isolated): the book liquidates at the price
    # where margin + (price - 100) x 10 = 0.4 % x price x 10: 100 + 10p - 1,000 = 0.04p,
    # p = 900 / 9.96 = 90.3614...
    spec = perp_trade(Side.BUY, step("100", price="110"))

    simulation = simulate(spec, PERP, [candle(0, "100", "101", "99.5", "100.5")])

    assert simulation.trade.state is TradeState.ACTIVE
    price = simulation.trade.venue_liquidation_price
    assert price is not None
    assert round(price, 8) == round(D(900) / D("9.96"), 8)


def test_a_trade_left_open_is_shown_at_the_last_close_of_the_history() -> None:
    spec = trade_spec(Side.BUY, market_entry("0.1"), (step("100", price="60000"),))
    history = [FLAT, candle(1, "50000", "50500", "49500", "50250")]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.state is TradeState.ACTIVE
    assert simulation.trade.last_price == D("50250")


def test_ticks_inside_the_trades_band_are_walked_without_deciding_anything() -> None:
    # A target at 60,000 and a stop at 40,000: a thousand quiet candles wake nothing.
    spec = trade_spec(
        Side.BUY, market_entry("0.1"), (step("100", price="60000"),), stop(price="40000")
    )
    history = [FLAT] + [candle(m, "50000", "50100", "49900", "50000") for m in range(1, 1001)]

    simulation = simulate(spec, BTC, history)

    assert simulation.ticks == 4 * 1001
    assert simulation.decided == 3  # the create, the entry's fill, the target placed


def test_a_stop_with_a_timeout_fires_when_the_clock_completes_it_between_ticks() -> None:
    # Below the stop at 49,000 from 1:00; its 90-second timeout completes at 2:30, when the
    # clock goes first, before that moment's tick: the stop sells at the last price, 48,900.
    spec = trade_spec(
        Side.BUY,
        market_entry("0.1"),
        (step("100", price="60000"),),
        stop(price="49000", timeout=90),
    )
    history = [
        FLAT,
        candle(1, "48950", "48950", "48900", "48900"),
        candle(2, "48900", "48900", "48900", "48900"),
    ]

    simulation = simulate(spec, BTC, history)

    assert simulation.trade.close_reason is CloseReason.STOP_LOSS
    triggered = [e.at for e in simulation.events if e.type is EventType.PRICE_TRIGGERED]
    assert triggered == [T0 + timedelta(minutes=2, seconds=30)]
    assert fills(simulation)[-1][1] == D("48900")


def test_a_history_on_which_the_trade_decides_too_often_is_refused_asking_for_a_shorter_one() -> (
    None
):
    # A trailing stop lifted by a new high on every candle decides on every candle.
    spec = trade_spec(
        Side.BUY,
        market_entry("0.1"),
        (step("100", price="90000"),),
        stop(percent="2", trailing="2"),
    )
    rising = [FLAT] + [
        candle(
            m, str(50000 + 10 * m), str(50005 + 10 * m), str(49995 + 10 * m), str(50000 + 10 * m)
        )
        for m in range(1, 40)
    ]

    with pytest.raises(PreconditionFailed) as refused:
        simulate(spec, BTC, rising, max_decisions=20)

    assert refused.value.reason == "SIMULATION_TOO_LONG"
    assert simulate(spec, BTC, rising).decided > 20  # within the real bound
