"""The fine print of actions in the middle of a trade (DESIGN §2.7), one test per rule, with
the examples a reference run found wrong (issue 12, §4b).

BTC/USDT, lot 0.00001 BTC, tick 0.01, minimum 5 USDT; paper fees 0.1 %, paid in the
currency received (a buy pays in BTC, a sell in USDT). A BUY of 10 at 1,000 holds 9.99 BTC
at an average of 10,000 / 9.99 = 1,001.001...
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from smarttrade.domain.decide import decide
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.messages import AddFunds, CancelOrder, Edit, ReduceFunds
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import StopLossSpec, TakeProfitStepSpec
from smarttrade.domain.values import OrderType, Side
from tests.unit.builders import (
    conditional_entry,
    market_entry,
    skip_entry,
    step,
    stop,
    trade_spec,
    wallet,
)
from tests.unit.driver import Run

D = Decimal


def bought_10_at_1000(
    steps: tuple[TakeProfitStepSpec, ...], stop_loss: StopLossSpec | None = None
) -> Run:
    spec = trade_spec(Side.BUY, market_entry("10"), steps, stop_loss)
    return Run.start(spec, "1000", balances={"USDT": "100000"})


def edit(run: Run, **fields: object) -> None:
    """Edit the named roots of the settings, as UpdateSmartTrade with an update mask does."""
    run.feed(Edit(run.now, replace(run.trade.spec, **fields), frozenset(fields)))  # type: ignore[arg-type]


def refused_fields(run: Run, **fields: object) -> list[str]:
    with pytest.raises(InvalidSpec) as refused:
        edit(run, **fields)
    return [violation.field for violation in refused.value.violations]


def working_targets(run: Run) -> list[tuple[str, Decimal, Decimal | None]]:
    return [
        (leg.id, order.amount, order.price)
        for leg in run.trade.take_profit_legs
        for order in leg.live_orders
    ]


# ---- an edit replaces what is working -----------------------------------------------------


def test_editing_a_take_profit_into_a_trailing_last_step_cancels_its_limit_and_watches() -> None:
    # Arrange: TP 1,050 x 100 %, working as a limit order.
    run = bought_10_at_1000((step("100", price="1050"),))
    old = run.trade.leg("tp1").orders[0]

    # Act: 1,020 x 100 % trailing 0.5 %; then 1,025 (reached), 1,045 (highest), 1,030.
    edit(run, take_profit=(step("100", price="1020", trailing="0.5"),))
    cancelled = [i.client_order_id for i in run.intents if isinstance(i, CancelOrder)]
    for price in ("1025", "1045", "1030"):
        run.tick(price)

    # Assert: 1,030 <= 1,045 x 0.995 = 1,039.775: 9.99 sold at market at 1,030.
    assert cancelled == [old.client_order_id]
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    sold = [o for o in run.trade.leg("tp1").orders if o.fills and o.type is OrderType.MARKET]
    assert [(o.amount, o.average_price) for o in sold] == [(D("9.99"), D(1030))]


def test_editing_two_steps_into_two_new_ones_replaces_the_first_and_watches_the_last() -> None:
    # Arrange: 1,050 x 50 % and 1,100 x 50 %, both working.
    run = bought_10_at_1000((step("50", price="1050"), step("50", price="1100")))

    # Act: 1,030 x 50 % and 1,060 x 50 % trailing 0.5 %.
    edit(run, take_profit=(step("50", price="1030"), step("50", price="1060", trailing="0.5")))

    # Assert: step 1 works at its new target, step 2 has no order left and watches.
    assert working_targets(run) == [("tp1", D("4.995"), D(1030))]
    assert run.trade.leg("tp2").state is LegState.WAITING
    run.tick("1030")  # step 1 fills
    for price in ("1060", "1070", "1064"):  # 1,064 <= 1,070 x 0.995 = 1,064.65
        run.tick(price)
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert position_of(run.trade).units_held == 0


def test_an_edited_limit_step_is_re_placed_at_its_new_target_and_volume() -> None:
    # Arrange: 1,050 x 50 % and 1,100 x 50 %.
    run = bought_10_at_1000((step("50", price="1050"), step("50", price="1100")))

    # Act: 1,040 x 30 % and 1,100 x 70 %.
    edit(run, take_profit=(step("30", price="1040"), step("70", price="1100")))

    # Assert: one order per step, for 30 % and 70 % of 9.99.
    assert working_targets(run) == [("tp1", D("2.997"), D(1040)), ("tp2", D("6.993"), D(1100))]


def test_a_filled_step_never_changes_when_the_others_are_edited() -> None:
    # Arrange: step 1 (1,050 x 50 %) has filled.
    run = bought_10_at_1000((step("50", price="1050"), step("50", price="1100")))
    run.tick("1050")
    filled = run.trade.leg("tp1").orders[0]

    # Act: step 2 moves to 1,080; step 1 is sent unchanged.
    edit(run, take_profit=(step("50", price="1050"), step("50", price="1080")))

    # Assert
    assert run.trade.leg("tp1").state is LegState.FILLED
    assert run.trade.leg("tp1").orders == [filled]
    assert working_targets(run) == [("tp2", D("4.995"), D(1080))]
    assert refused_fields(
        run, take_profit=(step("40", price="1050"), step("60", price="1080"))
    ) == ["take_profit.steps[0]"]


# ---- the stop of an ACTIVE trade -----------------------------------------------------------


def test_a_stop_edit_is_checked_against_the_average_entry_not_the_conditional_trigger() -> None:
    # Arrange: a SELL conditional at 990 (from 1,000, downward) opened at 950.
    spec = trade_spec(Side.SELL, conditional_entry("990", units="1"), (), stop(price="1100"))
    run = Run.start(spec, "1000", balances=wallet(Side.SELL))
    run.tick("950")
    assert position_of(run.trade).average_entry_price == D(950)

    # Act: the stop to 970, above the average 950 (below the trigger 990).
    edit(run, stop_loss=stop(price="970"))

    # Assert
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D(970)
    run.tick("970")
    assert run.trade.close_reason is CloseReason.STOP_LOSS


def test_a_stop_moved_into_profit_locks_it_in() -> None:
    # Arrange: bought at 1,000 (average 1,001.00), the price is 1,040.
    run = bought_10_at_1000((step("100", price="1100"),), stop(price="950"))
    run.tick("1040")

    # Act: the stop to 1,020, above the average.
    edit(run, stop_loss=stop(price="1020"))

    # Assert: it fires at 1,020, in profit.
    run.tick("1020")
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    assert position_of(run.trade).realized_pnl > 0


@pytest.mark.parametrize(
    ("stop_loss", "field"),
    [(stop(price="995"), "stop_loss.price"), (stop(percent="0.5"), "stop_loss.percent")],
    ids=["price", "percent"],
)
def test_a_stop_edit_where_the_last_price_already_crossed_is_refused_naming_the_field(
    stop_loss: StopLossSpec, field: str
) -> None:
    # Arrange: bought at 1,000 (average 1,001.00); the price fell to 990.
    run = bought_10_at_1000((step("100", price="1100"),), stop(price="950"))
    run.tick("990")

    # Act / Assert: 995 and 0.5 % below the average (996.00) are above 990.
    assert refused_fields(run, stop_loss=stop_loss) == [field]


def test_an_edited_trailing_stop_takes_the_new_level_and_trails_on_from_the_extreme() -> None:
    # Arrange: a stop trailing 2 %; the highest price is 1,100, so the stop is 1,078.
    run = bought_10_at_1000((step("100", price="1200"),), stop(price="950", trailing="2"))
    run.tick("1100")
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D(1078)

    # Act: the trader loosens it to 1,000.
    edit(run, stop_loss=stop(price="1000", trailing="2"))

    # Assert: 1,000 stands; 1,050 does not fire it; a new highest (1,120) trails it on.
    assert run.trade.stop_loss_leg.price == D(1000)
    run.tick("1050")
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.stop_loss_leg.price == D(1000)
    run.tick("1120")
    assert run.trade.stop_loss_leg.price == D("1097.60")


def test_an_edited_breakeven_stop_takes_the_new_level() -> None:
    # Arrange: step 1 filled, so the stop moved to the average 1,001.00.
    run = bought_10_at_1000(
        (step("50", price="1050"), step("50", price="1100")), stop(price="950", breakeven=True)
    )
    run.tick("1050")
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D("1001.00")

    # Act: the trader sets 980, breakeven still on.
    edit(run, stop_loss=stop(price="980", breakeven=True))

    # Assert: 980 stands; 990 does not fire it.
    assert run.trade.stop_loss_leg.price == D(980)
    run.tick("990")
    assert run.trade.state is TradeState.ACTIVE


# ---- Add Funds and Reduce Funds mid-trade ----------------------------------------------------


def test_add_funds_after_a_step_filled_spreads_the_units_over_the_open_steps_by_volume() -> None:
    # Arrange: 20 / 30 / 50 % at 1,050 / 1,100 / 1,150; step 1 sold 1.998 of 9.99.
    steps = (step("20", price="1050"), step("30", price="1100"), step("50", price="1150"))
    run = bought_10_at_1000(steps)
    run.tick("1050")

    # Act: 10 more at 1,050: 9.99 net of the fee.
    run.feed(AddFunds(run.now, units=D("10")))

    # Assert: 30:50 of 9.99 added to 2.997 and 4.995: 6.74325 and 11.23875.
    assert working_targets(run) == [
        ("tp2", D("6.74325"), D(1100)),
        ("tp3", D("11.23875"), D(1150)),
    ]


def test_a_breakeven_stop_follows_the_new_average_after_add_funds() -> None:
    # Arrange: step 1 filled; the stop is at the average 1,001.00.
    run = bought_10_at_1000(
        (step("50", price="1050"), step("50", price="1100")), stop(price="950", breakeven=True)
    )
    run.tick("1050")

    # Act: 10 more at 1,050.
    run.feed(AddFunds(run.now, units=D("10")))

    # Assert: the stop is the new average (10,000 + 10,500) / 19.98 = 1,026.03.
    average = position_of(run.trade).average_entry_price
    assert average == D(20500) / D("19.98")
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D("1026.03")


def test_a_stop_that_has_trailed_is_not_loosened_by_add_funds() -> None:
    # Arrange: 5 % below the average (950.95) trailing 2 %; the highest 1,100 made it 1,078.
    run = bought_10_at_1000((step("100", price="1200"),), stop(percent="5", trailing="2"))
    run.tick("1100")

    # Act: 10 more at 1,100 raises the average; 5 % below it is 1,002.50, looser than 1,078.
    run.feed(AddFunds(run.now, units=D("10")))

    # Assert: the tighter of the two stands.
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D(1078)


def test_reduce_funds_shrinks_every_open_step_in_proportion() -> None:
    # Arrange: 20 / 30 / 50 %; step 1 sold 1.998; 7.992 held.
    steps = (step("20", price="1050"), step("30", price="1100"), step("50", price="1150"))
    run = bought_10_at_1000(steps)
    run.tick("1050")

    # Act: sell 50 %: 3.996.
    run.feed(ReduceFunds(run.now, percent=D(50)))

    # Assert: 3.996 left, 30:50 -> 1.4985 and the rest, 2.4975.
    assert working_targets(run) == [("tp2", D("1.4985"), D(1100)), ("tp3", D("2.4975"), D(1150))]


def test_reduce_funds_of_100_percent_is_refused_as_close_at_market() -> None:
    run = bought_10_at_1000((step("100", price="1100"),))
    with pytest.raises(InvalidSpec) as refused:
        decide(run.trade, ReduceFunds(run.now, percent=D(100)))
    assert [v.field for v in refused.value.violations] == ["percent"]


# ---- SKIP -----------------------------------------------------------------------------------


def test_a_sell_skip_is_a_short_opened_at_creation_whose_exits_buy_back() -> None:
    # Arrange / Act: 1 BTC already sold at 1,000; the price is 990 at creation.
    spec = trade_spec(
        Side.SELL,
        skip_entry("1000", units="1"),
        (step("100", price="900"),),
        stop(percent="5", trailing="1"),
    )
    run = Run.start(spec, "990", balances={"USDT": "10000"})

    # Assert: ACTIVE at once, 1 BTC owed at 1,000; the lowest price starts at 990.
    assert run.trade.state is TradeState.ACTIVE
    position = position_of(run.trade)
    assert (position.units_held, position.average_entry_price) == (D(1), D(1000))
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.trailing_extreme == D(990)
    assert run.trade.stop_loss_leg.price == D("999.90")  # 990 x 1.01, tighter than 1,050
    assert [(o.side, o.price) for o in run.trade.leg("tp1").live_orders] == [(Side.BUY, D(900))]


# ---- messages ----------------------------------------------------------------------------------


def test_prices_and_sizes_in_messages_are_plain_decimals() -> None:
    # Arrange: a BUY conditional at 990 from 1,000.
    spec = trade_spec(Side.BUY, conditional_entry("990", units="1"), (), stop(price="900"))
    run = Run.start(spec, "1000")

    # Act: a stop above the entry while PENDING.
    with pytest.raises(InvalidSpec) as refused:
        edit(run, stop_loss=stop(price="1000"))

    # Assert
    assert str(refused.value) == "stop_loss.price: must be below the entry price 990"


def test_a_level_an_edit_sets_that_the_price_already_reached_acts_at_once() -> None:
    # Arrange: bought at 1,000, the price is 1,030; TP 1,100 x 100 %.
    run = bought_10_at_1000((step("100", price="1100"),))
    run.tick("1030")

    # Act: a trailing target of 1,020, already reached: it trails from 1,030 at once.
    edit(run, take_profit=(step("100", price="1020", trailing="0.5"),))
    run.tick("1024")

    # Assert: 1,024 <= 1,030 x 0.995 = 1,024.85: sold.
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
