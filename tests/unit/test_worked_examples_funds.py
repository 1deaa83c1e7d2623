"""Worked examples with numbers: Add Funds, Reduce Funds, Close at Market (DESIGN §2.4, §2.7).

BTC/USDT, lot 0.00001 BTC, tick 0.01, minimum 5 USDT; paper fees 0.1%, paid in the currency
received (a buy pays in BTC, a sell in USDT).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import (
    AddFunds,
    CancelOrder,
    CloseAtMarket,
    OrderMissing,
    PlaceOrder,
    ReduceFunds,
)
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.values import OrderStatus, OrderType, Side
from tests.unit.builders import (
    dust_orders,
    market_entry,
    skip_entry,
    step,
    stop,
    trade_spec,
    wallet,
)
from tests.unit.driver import Run

D = Decimal
TWO_STEPS = (step("50", percent="2"), step("50", percent="4"))


def start(side: Side) -> Run:
    spec = trade_spec(side, market_entry("0.1"), TWO_STEPS, stop(percent="5"))
    return Run.start(spec, "50000", balances=wallet(side))


def live_targets(run: Run) -> list[tuple[Decimal, Decimal | None]]:
    return [(o.amount, o.price) for leg in run.trade.take_profit_legs for o in leg.live_orders]


# ---- Add Funds on an ACTIVE trade --------------------------------------------------------


def test_adding_funds_to_a_buy_lowers_the_average_and_moves_the_targets_and_the_stop() -> None:
    # Arrange: 0.0999 held at 50,050.05...; the price drops to 48,000 (the stop is 47,547.55).
    run = start(Side.BUY)
    first_targets = [o.client_order_id for leg in run.trade.take_profit_legs for o in leg.orders]
    run.tick("48000")

    # Act: buy 0.1 more at market: 4,800 USDT for 0.0999 net.
    run.feed(AddFunds(run.now, units=D("0.1")))

    # Assert: average (5,000 + 4,800) / 0.1998 = 49,049.049...
    position = position_of(run.trade)
    assert position.average_entry_price == D(9800) / D("0.1998")
    # Targets +2% = 50,030.03 and +4% = 51,011.01, each for half of 0.1998; the old orders
    # (for 0.04995 at 51,051.05 and 52,052.05) were cancelled first.
    assert live_targets(run) == [(D("0.0999"), D("50030.03")), (D("0.0999"), D("51011.01"))]
    cancelled = [i.client_order_id for i in run.intents if isinstance(i, CancelOrder)]
    assert cancelled == first_targets
    # The stop, 5% below the new average: 46,596.5966 -> 46,596.60.
    assert run.trade.leg("sl").price == D("46596.60")
    assert dust_orders(run.placements) == []


def test_adding_funds_to_a_sell_raises_the_average_and_moves_the_targets_and_the_stop() -> None:
    # Arrange: 0.1 owed at 50,000; the price rises to 52,000 (the stop is 52,500).
    run = start(Side.SELL)
    run.tick("52000")

    # Act: sell 0.1 more at 52,000.
    run.feed(AddFunds(run.now, units=D("0.1")))

    # Assert: average (5,000 + 5,200) / 0.2 = 51,000; targets 2% and 4% below = 49,980 and
    # 48,960, 0.1 each, bought back as 0.1 / 0.999 -> 0.10011 (the fee is paid in BTC);
    # stop 5% above = 53,550.
    assert position_of(run.trade).average_entry_price == D(51000)
    assert live_targets(run) == [(D("0.10011"), D(49980)), (D("0.10011"), D(48960))]
    assert run.trade.leg("sl").price == D(53550)


# ---- Reduce Funds ------------------------------------------------------------------------


def test_reducing_a_buy_by_40_percent_sells_at_market_and_scales_the_targets_down() -> None:
    # Arrange: 0.0999 held at 50,050.05..., targets of 0.04995 each.
    run = start(Side.BUY)
    assert live_targets(run) == [(D("0.04995"), D("51051.05")), (D("0.04995"), D("52052.05"))]

    # Act
    run.feed(ReduceFunds(run.now, percent=D(40)))

    # Assert: 40% of 0.0999 = 0.03996 sold at 50,000; 0.05994 left, 0.02997 per target.
    reduce = [p for p in run.placed() if p.leg_id == "reduce1"]
    assert [(p.type, p.amount) for p in reduce] == [(OrderType.MARKET, D("0.03996"))]
    assert position_of(run.trade).units_held == D("0.05994")
    assert live_targets(run) == [(D("0.02997"), D("51051.05")), (D("0.02997"), D("52052.05"))]
    # Sold 0.03996 x 50,000 = 1,998 (fee 1.998) against its cost at the average entry.
    cost = D(5000) / D("0.0999") * D("0.03996")
    assert position_of(run.trade).realized_pnl == D(1998) - cost - D("1.998")


def test_reducing_a_sell_by_40_percent_buys_back_at_market_and_scales_the_targets_down() -> None:
    # Arrange: 0.1 owed, targets of 0.05 each.
    run = start(Side.SELL)

    # Act
    run.feed(ReduceFunds(run.now, percent=D(40)))

    # Assert: 0.04 bought back in one order grossed up for its fee, 0.04 / 0.999 -> 0.04005,
    # which brings back 0.04000995: 0.05999005 still owed. The targets share it, 0.02999 and
    # the rest, 0.03000005, each grossed up: 0.03003 and 0.03004.
    assert [p.amount for p in run.placed() if p.leg_id == "reduce1"] == [D("0.04005")]
    assert position_of(run.trade).units_held == D("0.05999005")
    assert live_targets(run) == [(D("0.03003"), D(49000)), (D("0.03004"), D(48000))]


# ---- Close at Market with a target half filled -------------------------------------------


def test_closing_a_buy_with_a_target_half_filled_sells_exactly_the_rest() -> None:
    # Arrange: 0.1 BTC already held (skip entry at 50,000), all of it in the account; targets
    # 51,000 and 52,000, 0.05 each. With partial fills on, a fill takes half an order.
    spec = trade_spec(
        Side.BUY, skip_entry("50000"), (step("50", price="51000"), step("50", price="52000"))
    )
    run = Run.start(spec, "50000", {"BTC": "0.1"}, PaperSettings(partial_fills=True))
    run.tick("51000")  # the first target sells 0.025 of its 0.05
    assert position_of(run.trade).units_held == D("0.075")

    # Act
    run.feed(CloseAtMarket(run.now))
    run.tick("51000")  # the market order's second half fills

    # Assert: both targets cancelled, the part counted, 0.1 - 0.025 = 0.075 sold at market.
    assert [p.amount for p in run.placed() if p.leg_id == "close"] == [D("0.075")]
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.CLOSED_AT_MARKET
    assert position_of(run.trade).units_held == 0
    assert run.balance("BTC") == 0
    assert all(o.status is not OrderStatus.REJECTED for o in run.trade.orders())
    assert run.trade.last_error == ""
    # All sold at 51,000: 5,100 USDT, fee 5.1; cost 5,000.
    assert position_of(run.trade).realized_pnl == D("94.9")


def test_closing_a_sell_with_a_target_half_filled_buys_back_the_rest_and_its_fee() -> None:
    # Arrange: 0.1 already sold at 50,000 (skip entry); targets 49,000 and 48,000.
    spec = trade_spec(
        Side.SELL, skip_entry("50000"), (step("50", price="49000"), step("50", price="48000"))
    )
    run = Run.start(spec, "50000", {"USDT": "10000"}, PaperSettings(partial_fills=True))
    run.tick("49000")  # the first target buys 0.025, 0.024975 net of the fee
    assert position_of(run.trade).units_held == D("0.075025")

    # Act
    run.feed(CloseAtMarket(run.now))
    run.tick("49000")

    # Assert: 0.075025 owed, in one order grossed up for the fee the target's fill showed:
    # 0.075025 / 0.999 = 0.0751001... -> 0.07511, bringing back 0.07503489: nothing owed, a
    # surplus of 0.00000989 BTC.
    assert [p.amount for p in run.placed() if p.leg_id == "close"] == [D("0.07511")]
    assert run.trade.close_reason is CloseReason.CLOSED_AT_MARKET
    position = position_of(run.trade)
    assert (position.units_held, position.surplus) == (D(0), D("0.00000989"))
    assert all(o.status is not OrderStatus.REJECTED for o in run.trade.orders())
    # Bought back 0.025 + 0.07511 = 0.10011 at 49,000 for 4,905.39; sold 0.1 at 50,000.
    assert position.realized_pnl == D("94.61")
    assert dust_orders(run.placements) == []


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_closing_while_the_venue_has_not_answered_the_cancels_sends_nothing_yet(side: Side) -> None:
    # Arrange
    run = start(side)

    # Act
    decision = run.feed(CloseAtMarket(run.now), auto=False)

    # Assert: only the cancels; the exit is sized once they are answered (a late fill counts).
    assert [type(i) for i in decision.intents] == [CancelOrder, CancelOrder]
    assert run.trade.state is TradeState.CLOSING


def test_an_add_funds_order_the_venue_never_received_is_placed_again_under_a_new_id() -> None:
    run = Run.start(
        trade_spec(
            entry=market_entry("1"), steps=(step("100", price="150"),), stop_loss=stop("95")
        ),
        "100",
    )
    added = run.feed(AddFunds(run.now, OrderType.MARKET, None, units=Decimal(1)), auto=False)
    (lost,) = [i for i in added.intents if isinstance(i, PlaceOrder)]

    again = run.feed(OrderMissing(lost.client_order_id, run.now))

    (placed,) = [i for i in again.intents if isinstance(i, PlaceOrder)]
    assert placed.leg_id == lost.leg_id
    assert placed.client_order_id != lost.client_order_id
    assert placed.amount == Decimal(1)
    assert position_of(run.trade).units_held == Decimal("1.998")  # it filled, once
