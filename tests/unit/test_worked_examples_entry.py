"""Worked examples with numbers: the entry, races with the venue, rounding and market minimums.

BTC/USDT at 50,000, lot 0.00001 BTC, tick 0.01, minimum 0.00001 BTC and 5 USDT; paper fees
0.1%, paid in the currency received (a buy pays in BTC, a sell in USDT).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.menu import editable_fields
from smarttrade.domain.messages import (
    AddFunds,
    Cancel,
    Edit,
    EventType,
    OrderReported,
)
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side
from tests.unit.builders import (
    conditional_entry,
    dust_orders,
    limit_entry,
    market_entry,
    pending_trade,
    skip_entry,
    step,
    stop,
    trade_spec,
    wallet,
)
from tests.unit.driver import ACCOUNT, Run, reported

D = Decimal


def start(side: Side, *args: object, **kwargs: object) -> Run:
    return Run.start(trade_spec(side, *args, **kwargs), "50000", balances=wallet(side))  # type: ignore[arg-type]


def entry_orders(run: Run) -> list[tuple[OrderType, Decimal, Decimal | None]]:
    return [(p.type, p.amount, p.price) for p in run.placed() if p.leg_id == "entry"]


# ---- conditional entries -----------------------------------------------------------------

CONDITIONAL = [
    # (id, side, trigger, limit, a tick short of the trigger, the fill price)
    ("a buy from below then market", Side.BUY, "51000", None, "50999.99", "51000"),
    ("a buy from above then limit", Side.BUY, "49000", "48800", "49000.01", "48800"),
    ("a sell from above then market", Side.SELL, "49000", None, "49000.01", "49000"),
    ("a sell from below then limit", Side.SELL, "51000", "51200", "50999.99", "51200"),
]


@pytest.mark.parametrize(
    ("side", "trigger", "limit", "short", "fill"),
    [case[1:] for case in CONDITIONAL],
    ids=[case[0] for case in CONDITIONAL],
)
def test_a_conditional_entry_places_its_order_when_the_price_reaches_the_trigger(
    side: Side, trigger: str, limit: str | None, short: str, fill: str
) -> None:
    # Arrange: created at 50,000, so the trigger is approached from that side.
    run = start(side, conditional_entry(trigger, limit=limit))

    # Act / Assert: nothing is sent before the trigger is reached.
    run.tick(short)
    assert run.placed() == []
    run.tick(trigger)
    assert EventType.PRICE_TRIGGERED in run.event_types()
    if limit is None:
        assert entry_orders(run) == [(OrderType.MARKET, D("0.1"), None)]
    else:
        assert entry_orders(run) == [(OrderType.LIMIT, D("0.1"), D(limit))]
        assert run.trade.state is TradeState.PENDING  # resting until the price gets there
        run.tick(fill)
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.entry_leg.orders[0].average_price == D(fill)


def test_a_conditional_entry_below_the_price_ignores_prices_above_it() -> None:
    run = start(Side.BUY, conditional_entry("49000"))
    for price in ("51000", "60000"):
        run.tick(price)
    assert run.placed() == []


# ---- limit, skip, size in total ----------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "limit", "away"), [(Side.BUY, "49000", "49000.01"), (Side.SELL, "51000", "50999.99")]
)
def test_a_limit_entry_rests_on_the_exchange_and_fills_at_its_price(
    side: Side, limit: str, away: str
) -> None:
    run = start(side, limit_entry(limit))
    assert entry_orders(run) == [(OrderType.LIMIT, D("0.1"), D(limit))]
    run.tick(away)
    assert run.trade.state is TradeState.PENDING
    run.tick(limit)
    assert run.trade.state is TradeState.ACTIVE  # type: ignore[comparison-overlap]
    assert run.trade.entry_leg.orders[0].average_price == D(limit)


def test_a_skipped_entry_starts_active_at_the_given_average_with_its_targets_working() -> None:
    # Arrange / Act: 0.1 BTC held, bought at 48,000; target +2% = 48,960.
    run = start(Side.BUY, skip_entry("48000"), (step("100", percent="2"),), stop(percent="5"))

    # Assert: no entry order, the coins are the trader's already.
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.entry_leg.state is LegState.FILLED
    assert [(p.leg_id, p.amount, p.price) for p in run.placed()] == [("tp1", D("0.1"), D(48960))]
    assert position_of(run.trade).average_entry_price == D(48000)
    assert run.trade.leg("sl").price == D(45600)  # 5% below 48,000


@pytest.mark.parametrize(
    ("entry", "units"),
    [
        (market_entry(units=None, total="5000"), D("0.1")),  # 5,000 / 50,000
        # 1,234.5 / 49,000 = 0.0251938..., rounded down to the lot.
        (replace(limit_entry("49000"), units=None, total=D("1234.5")), D("0.02519")),
    ],
    ids=["market", "limit"],
)
def test_a_size_in_total_is_converted_at_the_price_used(entry: object, units: Decimal) -> None:
    run = start(Side.BUY, entry)
    assert entry_orders(run)[0][1] == units


# ---- partial fills and races -------------------------------------------------------------


def test_a_partly_filled_entry_opens_the_trade_and_its_targets_follow_the_fills() -> None:
    # Arrange: a limit buy of 0.1 at 49,000; the venue fills half an order per tick.
    spec = trade_spec(Side.BUY, limit_entry("49000"), (step("100", percent="2"),))
    run = Run.start(spec, "50000", settings=PaperSettings(partial_fills=True))

    # Act: 0.05 fills (0.04995 net); average 2,450 / 0.04995 = 49,049.049...
    run.tick("49000")

    # Assert: ACTIVE with a target of +2% = 50,030.03 for what is held.
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.entry_leg.state is LegState.PARTIALLY_FILLED
    assert [(p.amount, p.price) for p in run.placed() if p.leg_id == "tp1"] == [
        (D("0.04995"), D("50030.03"))
    ]

    # Act: the second half fills; the target is topped up for it (same average).
    run.tick("49000")

    # Assert
    assert run.trade.entry_leg.state is LegState.FILLED  # type: ignore[comparison-overlap]
    assert [p.amount for p in run.placed() if p.leg_id == "tp1"] == [D("0.04995"), D("0.04995")]
    assert position_of(run.trade).average_entry_price == D(4900) / D("0.0999")


def test_an_entry_reported_cancelled_then_found_filled_is_kept_on_the_cancelled_trade() -> None:
    # Arrange: the trader cancels a resting limit entry; the venue first says "cancelled".
    run = pending_trade()
    run.feed(Cancel(run.now), auto=False)
    run.feed(OrderReported("t1-entry-0", OrderStatus.CANCELLED, run.now), auto=False)
    assert run.trade.state is TradeState.CANCELLED
    fill = Fill("X1", D(49000), D("0.1"), D("0.0001"), "BTC", run.now)

    # Act: the order had filled just before the cancel reached it.
    decision = run.feed(OrderReported("t1-entry-0", OrderStatus.FILLED, run.now, (fill,)))

    # Assert: the fact is kept (the coins are on the account), the trade stays CANCELLED
    # and manages nothing: no order is sent for it.
    assert run.trade.state is TradeState.CANCELLED
    assert run.trade.entry_leg.orders[0].status is OrderStatus.FILLED
    assert [e.type for e in decision.events] == [EventType.ORDER_FILLED]
    assert decision.intents == ()
    assert position_of(run.trade).units_held == D("0.0999")


def test_a_replaced_entry_that_turns_out_filled_cancels_its_replacement() -> None:
    # Arrange: the limit is moved from 49,000 to 48,500; the venue says the old one was
    # cancelled, and the replacement is placed.
    run = pending_trade()
    moved = replace(run.trade.spec, entry=limit_entry("48500"))
    run.feed(Edit(run.now, moved, frozenset({"entry"})), auto=False)
    run.feed(OrderReported("t1-entry-0", OrderStatus.CANCELLED, run.now), auto=False)
    run.feed(OrderReported("t1-entry-1", OrderStatus.OPEN, run.now), auto=False)
    fill = Fill("X1", D(49000), D("0.1"), D("0.0001"), "BTC", run.now)

    # Act: the old order had filled after all.
    decision = run.feed(
        OrderReported("t1-entry-0", OrderStatus.FILLED, run.now, (fill,)), auto=False
    )

    # Assert: the entry is complete; the replacement must not buy another 0.1.
    assert run.trade.entry_leg.state is LegState.FILLED
    assert ("t1-entry-1", "entry") in [(i.client_order_id, i.leg_id) for i in decision.intents]
    assert all(p.leg_id != "entry" for p in decision.intents if hasattr(p, "side"))


# ---- rounding and the market's minimums --------------------------------------------------


def test_sizes_are_rounded_down_to_the_lot_and_prices_to_the_tick() -> None:
    # Arrange: 0.123456789 BTC at a limit of 49,000.004; a target at 51,000.006; a stop
    # executed as a limit at 47,000.005.
    spec = trade_spec(
        Side.BUY,
        limit_entry("49000.004", units="0.123456789"),
        (step("100", price="51000.006"),),
        stop(price="47500", limit="47000.005"),
    )
    run = Run.start(spec, "50000")

    # Act
    run.tick("49000")
    run.feed(AddFunds(run.now, OrderType.LIMIT, D("48000.005"), units=D("0.010009")))

    # Assert: 0.12345 at 49,000.00; 0.123 net of the 0.1% fee = 0.12332655 -> 0.12332 at
    # 51,000.01; Add Funds 0.01 at 48,000.01 (half up, as ccxt's price_to_precision).
    placed = [(p.leg_id, p.amount, p.price) for p in run.placed()]
    assert placed == [
        ("entry", D("0.12345"), D("49000.00")),
        ("tp1", D("0.12332"), D("51000.01")),
        ("add1", D("0.01"), D("48000.01")),
    ]
    run.tick("47500")
    assert run.placed()[-1].price == D("47000.01")
    assert dust_orders(run.placements) == []


def test_target_shares_below_the_market_minimum_are_handed_to_the_next_target() -> None:
    # Arrange: 0.0003 bought (15 USDT), 0.0002997 held after the fee. Shares: 10% = 0.00002
    # (1.02 USDT at 51,000) and 10% = 0.00003 are below 5 USDT; they go to the last target.
    steps = (step("10", price="51000"), step("10", price="52000"), step("80", price="53000"))
    run = start(Side.BUY, market_entry("0.0003"), steps)

    # Act
    run.tick("53000")

    # Assert: one order for all of it (0.0002997 -> 0.00029), never a dust order.
    assert [(p.leg_id, p.amount) for p in run.placed()] == [
        ("entry", D("0.0003")),
        ("tp3", D("0.00029")),
    ]
    assert [leg.state for leg in run.trade.take_profit_legs] == [
        LegState.CANCELLED,
        LegState.CANCELLED,
        LegState.FILLED,
    ]
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert dust_orders(run.placements) == []


def test_a_stop_with_only_dust_left_closes_without_sending_an_order() -> None:
    # Arrange: a limit buy of 0.0003 at 49,000 fills half (0.00015, 0.00014985 net), then the
    # trader cancels the rest by hand on the exchange. Stop at 31,000.
    spec = trade_spec(Side.BUY, limit_entry("49000", units="0.0003"), (), stop(price="31000"))
    run = Run.start(spec, "50000", settings=PaperSettings(partial_fills=True))
    run.tick("49000")
    run.feed(reported(run.book.cancel(ACCOUNT, "t1-entry-0", run.now), run.now))
    assert run.trade.entry_leg.state is LegState.FILLED  # the part filled is kept
    sent = len(run.placed())

    # Act: at 30,000 the 0.00014 left on the lot is worth 4.20 USDT, below the minimum.
    run.tick("30000")

    # Assert
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    assert len(run.placed()) == sent
    assert dust_orders(run.placements) == []


def test_a_pending_trade_ends_once_nothing_can_buy_and_an_ended_entry_is_not_editable() -> None:
    # Arrange: a limit entry at 49,000 and an Add Funds limit at 48,000 both resting.
    run = pending_trade()
    run.feed(AddFunds(run.now, OrderType.LIMIT, D(48000), units=D("0.01")))

    # Act: the trader cancels the entry's order on the exchange's own site.
    run.feed(reported(run.book.cancel(ACCOUNT, "t1-entry-0", run.now), run.now))

    # Assert: the Add Funds order may still buy, so the trade stays PENDING; the entry has
    # ended, so it is no longer editable (an edit does not restart it).
    assert run.trade.state is TradeState.PENDING
    assert "entry" not in editable_fields(run.trade)

    # Act: the Add Funds order is cancelled by hand too.
    run.feed(reported(run.book.cancel(ACCOUNT, "t1-add1-0", run.now), run.now))

    # Assert: nothing can buy any more and nothing was bought.
    assert run.trade.state is TradeState.CANCELLED  # type: ignore[comparison-overlap]
    assert "cancelled on the exchange" in run.trade.last_error
