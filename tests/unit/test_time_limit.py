"""A time limit on the position (issue 15, Hummingbot's time_limit), worked by hand.

Bought 0.1 BTC at 50,000 (0.0999 held after the 0.1 % fee in BTC), targets +2 % and +4 %,
stop 5 % below; the position opens with the entry's fill. A SELL owes 0.1 BTC back, bought
back by an order of 0.1 / 0.999 rounded up to the lot: 0.10011 (§2.9).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import Edit
from smarttrade.domain.model import CloseReason, LegKind
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import TradeSpec
from smarttrade.domain.validation import check_spec
from smarttrade.domain.values import OrderType, Side
from tests.unit.builders import TWO_STEPS, limit_entry, market_entry, stop, trade_spec, wallet
from tests.unit.driver import BTC, T0, Run

D = Decimal
HOUR = timedelta(hours=1)
BUY_BACK = {Side.BUY: (Side.SELL, D("0.0999")), Side.SELL: (Side.BUY, D("0.10011"))}


def limited(side: Side, limit: timedelta | None = HOUR, **fields: object) -> TradeSpec:
    spec = trade_spec(side, market_entry(), TWO_STEPS, stop(percent="5"))
    return replace(spec, time_limit=limit, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_the_position_is_closed_at_market_when_the_time_limit_runs_out(side: Side) -> None:
    # Arrange
    run = Run.start(limited(side), "50000", balances=wallet(side))
    assert wake_levels(run.trade).at == T0 + HOUR

    # Act / Assert: an hour less a second is not an hour.
    run.wait(3599)
    assert run.trade.state is TradeState.ACTIVE
    run.wait(1)

    # Assert: the targets were cancelled, the rest sold at market with its own reason.
    assert (run.trade.state, run.trade.close_reason) == (TradeState.CLOSED, CloseReason.TIME_LIMIT)
    leg = run.trade.leg("time-limit")
    assert leg.kind is LegKind.CLOSE
    exit_order = run.placed()[-1]
    assert (exit_order.type, exit_order.side, exit_order.amount) == (
        OrderType.MARKET,
        *BUY_BACK[side],
    )
    assert all(not tp.live_orders for tp in run.trade.take_profit_legs)
    assert position_of(run.trade).units_held <= 0


def test_a_tick_after_the_time_limit_closes_the_position_too() -> None:
    run = Run.start(limited(Side.BUY), "50000")

    run.tick("50100", seconds=3600)

    assert run.trade.close_reason is CloseReason.TIME_LIMIT
    assert [f.price for o in run.trade.leg("time-limit").orders for f in o.fills] == [D(50100)]


def test_the_time_limit_counts_from_the_first_entry_fill_not_from_creation() -> None:
    # Arrange: a limit entry at 49,000 fills 100 s after creation.
    spec = replace(limited(Side.BUY, timedelta(seconds=60)), entry=limit_entry("49000"))
    run = Run.start(spec, "50000")
    run.tick("49000", seconds=100)
    assert run.trade.state is TradeState.ACTIVE
    assert wake_levels(run.trade).at == T0 + timedelta(seconds=160)

    # Act / Assert
    run.wait(59)
    assert run.trade.state is TradeState.ACTIVE
    run.wait(1)
    assert run.trade.close_reason is CloseReason.TIME_LIMIT


def test_a_pending_trade_has_no_time_limit_running() -> None:
    spec = replace(limited(Side.BUY, timedelta(seconds=60)), entry=limit_entry("49000"))
    run = Run.start(spec, "50000")

    run.wait(3600)

    assert run.trade.state is TradeState.PENDING
    assert wake_levels(run.trade).at is None


def test_the_stop_wins_over_the_time_limit_on_the_same_tick() -> None:
    run = Run.start(limited(Side.BUY), "50000")

    run.tick("47000", seconds=3600)  # past the stop (47,547.55) and the hour at once

    assert run.trade.close_reason is CloseReason.STOP_LOSS


def test_an_edit_that_sets_a_time_limit_already_passed_closes_at_once() -> None:
    run = Run.start(limited(Side.BUY, None), "50000")
    run.wait(120)

    spec = replace(run.trade.spec, time_limit=timedelta(seconds=60))
    run.feed(Edit(run.now, spec, frozenset({"time_limit"})))

    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.TIME_LIMIT


def test_an_edit_that_removes_the_time_limit_lets_the_position_run() -> None:
    run = Run.start(limited(Side.BUY), "50000")

    run.feed(Edit(run.now, replace(run.trade.spec, time_limit=None), frozenset({"time_limit"})))
    run.wait(7200)

    assert run.trade.state is TradeState.ACTIVE
    assert wake_levels(run.trade).at is None


@pytest.mark.parametrize(
    "limit", [timedelta(0), timedelta(seconds=-5), timedelta(seconds=1.5), timedelta(days=366)]
)
def test_a_time_limit_out_of_range_is_refused_naming_the_field(limit: timedelta) -> None:
    with pytest.raises(InvalidSpec) as refused:
        check_spec(limited(Side.BUY, limit), BTC, D(50000))

    assert [v.field for v in refused.value.violations] == ["time_limit"]
