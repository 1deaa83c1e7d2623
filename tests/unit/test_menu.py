"""The trade-management menu (DESIGN §2.7), for every state and every action.

Each trade is BTC/USDT, bought at 50,000 (0.1 BTC; the 0.1% fee is paid in BTC, so 0.0999 is
held and the average entry is 5,000 / 0.0999 = 50,050.05005...), with targets +2% and +4%
(50/50) and a stop 5% below the average. PENDING is a limit entry resting at 49,000; CLOSING
is Close at Market asked while the venue has not answered the cancels of the targets yet (a
market exit in flight: closing again is refused, Cancel is not); the stop-limit resting
unfilled, the other CLOSING, is at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest

from smarttrade.domain.decide import decide
from smarttrade.domain.errors import ActionNotAllowed
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.menu import available_actions, editable_fields
from smarttrade.domain.messages import (
    AddFunds,
    Cancel,
    CloseAtMarket,
    CloseStep,
    Edit,
    EventType,
    Input,
    OpenNow,
    ReduceFunds,
    Refresh,
    Share,
)
from smarttrade.domain.model import Action, CloseReason, LegKind
from smarttrade.domain.position import position_of
from smarttrade.domain.share import shared_settings
from smarttrade.domain.values import OrderStatus, OrderType
from tests.unit.builders import TRADE_IN, limit_entry, stop
from tests.unit.driver import ACCOUNT, Run

# DESIGN §2.7, written out again here so the core's own table is checked against it.
ALLOWED = {
    TradeState.PENDING: {
        Action.REFRESH,
        Action.ADD_FUNDS,
        Action.OPEN_NOW,
        Action.EDIT,
        Action.SHARE,
        Action.CANCEL,
    },
    TradeState.ACTIVE: {
        Action.REFRESH,
        Action.ADD_FUNDS,
        Action.REDUCE_FUNDS,
        Action.CLOSE_AT_MARKET,
        Action.EDIT,
        Action.SHARE,
        Action.CANCEL,
        Action.CLOSE_STEP,
    },
    TradeState.CLOSING: {Action.REFRESH, Action.SHARE, Action.CANCEL},
    TradeState.CLOSED: {Action.REFRESH, Action.SHARE},
    TradeState.CANCELLED: {Action.REFRESH, Action.SHARE},
    TradeState.FAILED: {Action.REFRESH, Action.SHARE},
}


def the_input(action: Action, run: Run) -> Input:
    now = run.now
    if action is Action.EDIT:
        if run.trade.state is TradeState.PENDING:
            spec = replace(run.trade.spec, entry=limit_entry("48500"))
            return Edit(now, spec, frozenset({"entry"}))
        return Edit(
            now, replace(run.trade.spec, stop_loss=stop(percent="3")), frozenset({"stop_loss"})
        )
    inputs: dict[Action, Input] = {
        Action.REFRESH: Refresh(now),
        Action.SHARE: Share(now),
        Action.CANCEL: Cancel(now),
        Action.CLOSE_AT_MARKET: CloseAtMarket(now),
        Action.OPEN_NOW: OpenNow(now),
        Action.ADD_FUNDS: AddFunds(now, units=Decimal("0.05")),
        Action.REDUCE_FUNDS: ReduceFunds(now, percent=Decimal(40)),
        Action.CLOSE_STEP: CloseStep(now, 1),
    }
    return inputs[action]


# ---- what each allowed action does -------------------------------------------------------


def changes_nothing(run: Run, action: Action) -> None:
    before = run.trade
    decision = run.feed(the_input(action, run))
    assert decision.trade == before
    assert decision.events == ()
    assert decision.intents == ()
    assert decision.persist is False


def pending_cancel_cancels_the_entry_order_and_buys_nothing(run: Run, action: Action) -> None:
    run.feed(Cancel(run.now))
    assert run.trade.state is TradeState.CANCELLED
    assert [o.status for o in run.trade.entry_leg.orders] == [OrderStatus.CANCELLED]
    assert position_of(run.trade).units_bought == 0
    assert run.book.open_orders(ACCOUNT, "BTC/USDT") == []
    assert (run.balance("USDT"), run.balance("BTC")) == (Decimal(100000), Decimal(0))


def active_cancel_cancels_the_targets_and_the_coins_stay(run: Run, action: Action) -> None:
    run.feed(Cancel(run.now))
    assert run.trade.state is TradeState.CANCELLED
    assert all(leg.state.is_done for leg in run.trade.legs)
    assert run.book.open_orders(ACCOUNT, "BTC/USDT") == []
    assert run.balance("BTC") == Decimal("0.0999")  # nothing sold
    assert position_of(run.trade).units_sold == 0


def close_at_market_sells_everything(run: Run, action: Action) -> None:
    run.feed(CloseAtMarket(run.now))
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.CLOSED_AT_MARKET
    assert run.placed()[-1].type is OrderType.MARKET
    assert run.placed()[-1].amount == Decimal("0.0999")
    assert position_of(run.trade).units_held == 0
    assert run.balance("BTC") == 0


def close_step_sells_step_one_at_market_and_step_two_keeps_working(
    run: Run, action: Action
) -> None:
    run.feed(CloseStep(run.now, 1))
    tp1, tp2 = run.trade.take_profit_legs
    # Half of 0.0999 on the 0.00001 lot: 0.04995 per step.
    assert [(o.type, o.amount, o.status) for o in tp1.orders] == [
        (OrderType.LIMIT, Decimal("0.04995"), OrderStatus.CANCELLED),
        (OrderType.MARKET, Decimal("0.04995"), OrderStatus.FILLED),
    ]
    assert tp1.state is LegState.FILLED
    assert [(o.amount, o.status) for o in tp2.orders] == [(Decimal("0.04995"), OrderStatus.OPEN)]
    assert run.trade.state is TradeState.ACTIVE
    assert position_of(run.trade).units_held == Decimal("0.04995")


def closing_cancel_abandons_the_exit_and_the_coins_stay(run: Run, action: Action) -> None:
    run.feed(Cancel(run.now))
    assert run.trade.state is TradeState.CANCELLED
    assert run.trade.close_reason is None
    assert all(leg.state.is_done for leg in run.trade.legs)
    assert position_of(run.trade).units_sold == 0
    assert run.balance("BTC") == Decimal("0.0999")  # nothing sold


def open_now_buys_at_market_dropping_the_limit(run: Run, action: Action) -> None:
    run.feed(OpenNow(run.now))
    entry = run.trade.entry_leg
    assert [(o.type, o.status) for o in entry.orders] == [
        (OrderType.LIMIT, OrderStatus.CANCELLED),
        (OrderType.MARKET, OrderStatus.FILLED),
    ]
    assert run.trade.state is TradeState.ACTIVE
    assert position_of(run.trade).units_held == Decimal("0.0999")  # 0.1 - 0.1% fee in BTC


def pending_add_funds_buys_alongside_the_entry(run: Run, action: Action) -> None:
    run.feed(AddFunds(run.now, units=Decimal("0.05")))
    added = run.trade.legs_of(LegKind.ADD_FUNDS)
    assert [leg.state for leg in added] == [LegState.FILLED]
    assert run.trade.state is TradeState.ACTIVE
    # 0.05 at 50,000 = 2,500 USDT for 0.04995 BTC net: 2,500 / 0.04995 = 50,050.05...
    assert position_of(run.trade).average_entry_price == Decimal(2500) / Decimal("0.04995")
    assert run.trade.entry_leg.live_orders  # the limit entry keeps working


def active_add_funds_reaverages_the_position(run: Run, action: Action) -> None:
    run.tick("48000")
    run.feed(AddFunds(run.now, units=Decimal("0.1")))
    # (5,000 + 4,800) / (0.0999 + 0.0999) = 9,800 / 0.1998 = 49,049.049...
    position = position_of(run.trade)
    assert position.average_entry_price == Decimal(9800) / Decimal("0.1998")
    # Targets +2% and +4% of the new average, each for half of 0.1998.
    live = [(o.amount, o.price) for leg in run.trade.take_profit_legs for o in leg.live_orders]
    assert live == [
        (Decimal("0.0999"), Decimal("50030.03")),
        (Decimal("0.0999"), Decimal("51011.01")),
    ]


def reduce_funds_sells_part_and_scales_the_targets(run: Run, action: Action) -> None:
    run.feed(ReduceFunds(run.now, percent=Decimal(40)))
    # 40% of 0.0999 = 0.03996 sold; 0.05994 left, half per target.
    assert [p.amount for p in run.placed() if p.leg_id == "reduce1"] == [Decimal("0.03996")]
    assert position_of(run.trade).units_held == Decimal("0.05994")
    live = [o.amount for leg in run.trade.take_profit_legs for o in leg.live_orders]
    assert live == [Decimal("0.02997"), Decimal("0.02997")]


def pending_edit_moves_the_entry_order(run: Run, action: Action) -> None:
    run.feed(the_input(Action.EDIT, run))
    entry = run.trade.entry_leg
    assert [(o.price, o.status) for o in entry.orders] == [
        (Decimal(49000), OrderStatus.CANCELLED),
        (Decimal(48500), OrderStatus.OPEN),
    ]


def active_edit_moves_the_stop(run: Run, action: Action) -> None:
    run.feed(the_input(Action.EDIT, run))
    # 3% below 50,050.05005... = 48,548.5485... -> 48,548.55 on the 0.01 tick.
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == Decimal("48548.55")
    assert EventType.STOP_MOVED in run.event_types()


def share_changes_nothing_and_reveals_no_size(run: Run, action: Action) -> None:
    changes_nothing(run, action)
    shared = shared_settings(run.trade)
    assert (shared.entry.units, shared.entry.total) == (None, None)
    assert shared.take_profit == run.trade.spec.take_profit
    assert not hasattr(shared, "account_id")
    assert not hasattr(shared, "tenant_id")


EFFECT: dict[tuple[TradeState, Action], Callable[[Run, Action], None]] = {
    (TradeState.PENDING, Action.REFRESH): changes_nothing,
    (TradeState.PENDING, Action.ADD_FUNDS): pending_add_funds_buys_alongside_the_entry,
    (TradeState.PENDING, Action.OPEN_NOW): open_now_buys_at_market_dropping_the_limit,
    (TradeState.PENDING, Action.EDIT): pending_edit_moves_the_entry_order,
    (TradeState.PENDING, Action.SHARE): share_changes_nothing_and_reveals_no_size,
    (TradeState.PENDING, Action.CANCEL): pending_cancel_cancels_the_entry_order_and_buys_nothing,
    (TradeState.ACTIVE, Action.REFRESH): changes_nothing,
    (TradeState.ACTIVE, Action.ADD_FUNDS): active_add_funds_reaverages_the_position,
    (TradeState.ACTIVE, Action.REDUCE_FUNDS): reduce_funds_sells_part_and_scales_the_targets,
    (TradeState.ACTIVE, Action.CLOSE_AT_MARKET): close_at_market_sells_everything,
    (TradeState.ACTIVE, Action.EDIT): active_edit_moves_the_stop,
    (TradeState.ACTIVE, Action.SHARE): share_changes_nothing_and_reveals_no_size,
    (TradeState.ACTIVE, Action.CANCEL): active_cancel_cancels_the_targets_and_the_coins_stay,
    (TradeState.ACTIVE, Action.CLOSE_STEP): (
        close_step_sells_step_one_at_market_and_step_two_keeps_working
    ),
    (TradeState.CLOSING, Action.CANCEL): closing_cancel_abandons_the_exit_and_the_coins_stay,
}
for _state in (TradeState.CLOSING, TradeState.CLOSED, TradeState.CANCELLED, TradeState.FAILED):
    EFFECT[(_state, Action.REFRESH)] = changes_nothing
    EFFECT[(_state, Action.SHARE)] = share_changes_nothing_and_reveals_no_size

PAIRS = [(state, action) for state in TradeState for action in Action]


def pair_id(pair: tuple[TradeState, Action]) -> str:
    state, action = pair
    if action in ALLOWED[state]:
        return f"{state.value} allows {action.value}: {EFFECT[pair].__name__}"
    return f"{state.value} refuses {action.value}"


def test_the_menu_covers_all_54_pairs_and_allowed_ones_have_an_effect_checked() -> None:
    assert len(PAIRS) == 54
    assert {pair for pair in PAIRS if pair[1] in ALLOWED[pair[0]]} == set(EFFECT)


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(pair) for pair in PAIRS])
def test_each_action_in_each_state(pair: tuple[TradeState, Action]) -> None:
    # Arrange
    state, action = pair
    run = TRADE_IN[state]()
    assert run.trade.state is state

    # Act / Assert
    if action in ALLOWED[state]:
        EFFECT[pair](run, action)
        return
    before = run.trade
    with pytest.raises(ActionNotAllowed) as refused:
        decide(before, the_input(action, run))
    assert refused.value.state is state
    assert refused.value.action is action
    assert state.value in str(refused.value)
    assert action.value in str(refused.value)
    assert run.trade == before


# ---- what the menu tells a UI ------------------------------------------------------------


@pytest.mark.parametrize("state", list(TradeState), ids=lambda state: state.value)
def test_available_actions_list_exactly_the_allowed_ones_in_menu_order(state: TradeState) -> None:
    run = TRADE_IN[state]()
    assert available_actions(run.trade) == [a for a in Action if a in ALLOWED[state]]


EDITABLE = {
    TradeState.PENDING: ["entry", "take_profit", "stop_loss", "note", "labels", "time_limit"],
    TradeState.ACTIVE: ["take_profit", "stop_loss", "note", "labels", "time_limit"],
}


@pytest.mark.parametrize("state", list(TradeState), ids=lambda state: state.value)
def test_editable_fields_are_entry_only_while_pending_and_none_once_exiting(
    state: TradeState,
) -> None:
    run = TRADE_IN[state]()
    assert editable_fields(run.trade) == EDITABLE.get(state, [])


def test_an_edit_of_the_entry_of_an_active_trade_is_refused_naming_state_and_action() -> None:
    # Arrange
    run = TRADE_IN[TradeState.ACTIVE]()
    spec = replace(run.trade.spec, entry=limit_entry("48500"))

    # Act
    with pytest.raises(ActionNotAllowed) as refused:
        decide(run.trade, Edit(run.now, spec, frozenset({"entry.limit_price"})))

    # Assert
    assert "EDIT is not allowed while the trade is ACTIVE" in str(refused.value)
    assert "entry" in str(refused.value)
