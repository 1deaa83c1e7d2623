"""A stop loss that is a limit order never strands a trade (issue 15), worked by hand.

Bought 0.1 BTC at 50,000 (0.0999 held after the 0.1 % fee in BTC); the stop triggers at
47,500 and sends a sell limit at 47,400. The price gaps to 47,000, below the limit, so the
limit rests unfilled and the trade is CLOSING. A SELL mirrors it: stop 52,500, limit 52,600,
gap to 53,000; it owes 0.1 BTC, bought back by an order of 0.1 / 0.999 = 0.10010...,
rounded up to the lot: 0.10011 (§2.9).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from smarttrade.domain.decide import decide
from smarttrade.domain.errors import ActionNotAllowed, InvalidSpec
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.menu import available_actions
from smarttrade.domain.messages import Cancel, CloseAtMarket, EventType, TimeElapsed
from smarttrade.domain.model import Action, CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.validation import check_spec
from smarttrade.domain.values import OrderStatus, OrderType, Side
from tests.unit.builders import (
    TWO_STEPS,
    closing_on_a_stop_limit,
    closing_trade,
    market_entry,
    stop,
    trade_spec,
)
from tests.unit.driver import ACCOUNT, BTC

D = Decimal
EXIT = {Side.BUY: (Side.SELL, D("0.0999")), Side.SELL: (Side.BUY, D("0.10011"))}


def exit_orders(run: object) -> list[tuple[OrderType, Decimal | None, OrderStatus]]:
    trade = run.trade  # type: ignore[attr-defined]
    return [(o.type, o.price, o.status) for o in trade.leg("sl").orders]


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_an_unfilled_stop_limit_falls_back_to_market_after_its_time(side: Side) -> None:
    # Arrange: the limit was recorded at the gap's tick; 30 s to fill.
    run = closing_on_a_stop_limit(side, fallback_after=30)
    limit = D("47400") if side is Side.BUY else D("52600")

    # Act / Assert: 29 s is not yet 30.
    run.wait(29)
    assert run.trade.state is TradeState.CLOSING
    assert exit_orders(run) == [(OrderType.LIMIT, limit, OrderStatus.OPEN)]
    run.wait(1)

    # Assert: the limit was cancelled first, then the rest went at market at 47,000.
    assert exit_orders(run) == [
        (OrderType.LIMIT, limit, OrderStatus.CANCELLED),
        (OrderType.MARKET, None, OrderStatus.FILLED),
    ]
    market = run.placed()[-1]
    assert (market.side, market.amount) == EXIT[side]
    assert (run.trade.state, run.trade.close_reason) == (TradeState.CLOSED, CloseReason.STOP_LOSS)
    assert position_of(run.trade).units_held <= 0
    fallback = [e for e in run.events if e.type is EventType.PRICE_TRIGGERED][-1]
    assert fallback.message == "stop-limit falls back to market: unfilled after 30 s"


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_an_unfilled_stop_limit_falls_back_when_the_price_runs_past_its_limit(side: Side) -> None:
    # 1 % past 47,400 is 46,926 (SELL: 1 % past 52,600 is 53,126).
    run = closing_on_a_stop_limit(side, fallback_percent="1")
    near, past = ("46927", "46926") if side is Side.BUY else ("53125", "53126")

    run.tick(near)
    assert run.trade.state is TradeState.CLOSING
    run.tick(past)

    assert (run.trade.state, run.trade.close_reason) == (TradeState.CLOSED, CloseReason.STOP_LOSS)
    fills = [f for o in run.trade.leg("sl").orders for f in o.fills]
    assert [(f.price, f.amount) for f in fills] == [(D(past), EXIT[side][1])]


def test_the_wake_levels_of_a_resting_stop_limit_are_its_fallback_price_and_time() -> None:
    run = closing_on_a_stop_limit(Side.BUY, fallback_after=30, fallback_percent="1")
    placed_at = run.trade.leg("sl").orders[0].created_at

    levels = wake_levels(run.trade)

    assert (levels.below, levels.above) == (D("47400") * D("0.99"), None)
    assert levels.at == placed_at + timedelta(seconds=30)


def test_a_stop_limit_that_fills_while_its_fallback_cancel_is_in_flight_is_not_sold_again() -> None:
    # Arrange: the fallback is due; its cancel has not reached the venue when the price
    # comes back to the limit and the venue fills it.
    run = closing_on_a_stop_limit(Side.BUY, fallback_after=30)
    cancel = run.feed(TimeElapsed(run.now + timedelta(seconds=30)), auto=False).intents[0]
    run.tick("47400")

    # Act
    run.execute(cancel)

    # Assert: one sell, by the limit; no market order.
    assert [p.type for p in run.placed() if p.leg_id == "sl"] == [OrderType.LIMIT]
    assert run.trade.state is TradeState.CLOSED
    assert run.balance("BTC") == 0


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_close_at_market_from_closing_cancels_the_resting_limit_first_then_sells_the_rest(
    side: Side,
) -> None:
    run = closing_on_a_stop_limit(side)
    assert available_actions(run.trade) == [
        Action.REFRESH,
        Action.CLOSE_AT_MARKET,
        Action.SHARE,
        Action.CANCEL,
    ]

    run.feed(CloseAtMarket(run.now))

    assert [o.status for o in run.trade.leg("sl").orders] == [OrderStatus.CANCELLED]
    assert run.trade.leg("sl").state is LegState.CANCELLED
    close = run.trade.leg("close")
    assert [(o.type, o.amount, o.status) for o in close.orders] == [
        (OrderType.MARKET, EXIT[side][1], OrderStatus.FILLED)
    ]
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.CLOSED_AT_MARKET


def test_close_at_market_from_closing_waits_for_the_limits_cancel_before_selling() -> None:
    run = closing_on_a_stop_limit(Side.BUY)

    decision = run.feed(CloseAtMarket(run.now), auto=False)

    assert [type(i).__name__ for i in decision.intents] == ["CancelOrder"]
    assert run.trade.state is TradeState.CLOSING
    assert run.book.open_orders(ACCOUNT, "BTC/USDT")  # the limit still rests: nothing sold


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_cancel_from_closing_cancels_the_resting_limit_and_the_coins_stay(side: Side) -> None:
    run = closing_on_a_stop_limit(side)

    run.feed(Cancel(run.now))

    assert run.trade.state is TradeState.CANCELLED
    assert run.trade.close_reason is None
    assert run.book.open_orders(ACCOUNT, "BTC/USDT") == []
    assert position_of(run.trade).units_sold == 0


def test_close_at_market_is_refused_while_a_market_exit_is_already_in_flight() -> None:
    run = closing_trade(Side.BUY)

    with pytest.raises(ActionNotAllowed) as refused:
        decide(run.trade, CloseAtMarket(run.now))

    assert "a market exit is already selling everything" in str(refused.value)
    assert Action.CLOSE_AT_MARKET not in available_actions(run.trade)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"fallback_after": timedelta(seconds=30)}, "stop_loss.fallback_after"),
        ({"fallback_percent": D(1)}, "stop_loss.fallback_percent"),
    ],
)
def test_a_fallback_on_a_market_stop_is_refused_naming_the_field(
    fields: dict[str, object], named: str
) -> None:
    from dataclasses import replace

    spec = trade_spec(Side.BUY, market_entry(), TWO_STEPS, replace(stop(price="47500"), **fields))  # type: ignore[arg-type]

    with pytest.raises(InvalidSpec) as refused:
        check_spec(spec, BTC, D(50000))

    assert [v.field for v in refused.value.violations] == [named]


@pytest.mark.parametrize(
    ("after", "percent", "named"),
    [
        (timedelta(0), None, "stop_loss.fallback_after"),
        (timedelta(seconds=1.5), None, "stop_loss.fallback_after"),
        (timedelta(days=366), None, "stop_loss.fallback_after"),
        (None, D(100), "stop_loss.fallback_percent"),
        (None, D(0), "stop_loss.fallback_percent"),
    ],
)
def test_a_fallback_out_of_range_is_refused_naming_the_field(
    after: timedelta | None, percent: Decimal | None, named: str
) -> None:
    from dataclasses import replace

    sl = replace(stop(price="47500", limit="47400"), fallback_after=after, fallback_percent=percent)
    spec = trade_spec(Side.BUY, market_entry(), TWO_STEPS, sl)

    with pytest.raises(InvalidSpec) as refused:
        check_spec(spec, BTC, D(50000))

    assert [v.field for v in refused.value.violations] == [named]


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_a_stop_limit_whose_price_is_already_past_its_fallback_goes_at_market_at_once(
    side: Side,
) -> None:
    # A gap to 46,000 (SELL: 54,000): 1 % past the limit is 46,926 (53,126), passed already.
    run = closing_on_a_stop_limit(
        side, fallback_percent="1", gap="46000" if side is Side.BUY else "54000"
    )

    assert [(o.type, o.status) for o in run.trade.leg("sl").orders] == [
        (OrderType.MARKET, OrderStatus.FILLED)
    ]
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.STOP_LOSS
