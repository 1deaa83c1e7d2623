"""Every edge of the two transition tables, each taken by a scenario a trader would recognise.

The random lives of `test_state_machine` prove that `decide` never asks for a pair missing
from the tables (that would raise `InvalidTransition`); these scenarios prove the converse,
deterministically: no edge is dead, and each odd one exists for the reason its comment says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from enum import Enum

import pytest

from smarttrade.domain import changes as changes_module
from smarttrade.domain.account import PaperSettings
from smarttrade.domain.fsm import (
    LEG_TRANSITIONS,
    TRADE_TRANSITIONS,
    LegState,
    LegTrigger,
    TradeState,
    TradeTrigger,
    transition,
)
from smarttrade.domain.messages import (
    AddFunds,
    Cancel,
    CloseAtMarket,
    Edit,
    PlaceOrder,
    PositionGone,
    PriceTicked,
    ReduceFunds,
)
from smarttrade.domain.spec import EntrySpec, EntryType
from smarttrade.domain.values import Side
from tests.unit.builders import (
    TWO_STEPS,
    active_trade,
    cancelled_trade,
    closed_trade,
    closing_on_a_stop_limit,
    closing_trade,
    conditional_entry,
    failed_trade,
    market_entry,
    pending_trade,
    skip_entry,
    step,
    trade_spec,
)
from tests.unit.driver import ACCOUNT, Run, reported

D = Decimal
Edge = tuple[Enum, Enum]


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> set[Edge]:
    """The (state, trigger) pairs the core applies while the test runs."""
    edges: set[Edge] = set()
    apply = transition  # the function `changes` imports and calls

    def recording(
        table: dict[tuple[Enum, Enum], Enum], machine: str, state: Enum, trigger: Enum
    ) -> Enum:
        edges.add((state, trigger))
        return apply(table, machine, state, trigger)

    monkeypatch.setattr(changes_module, "transition", recording)
    return edges


# ---- scenarios ---------------------------------------------------------------------------


def targets_fill() -> None:
    active_trade().tick("53000")


def entry_cancelled_by_hand_on_the_exchange() -> None:
    run = pending_trade()
    run.feed(reported(run.book.cancel(ACCOUNT, "t1-entry-0", run.now), run.now))


def coins_sold_outside(run: Run) -> None:
    run.feed(PositionGone(D(0), run.now))


def exit_refused_because_the_coins_are_gone() -> None:
    run = active_trade()
    cancels = run.feed(CloseAtMarket(run.now), auto=False).intents
    for cancel in cancels:
        run.execute(cancel, auto=False)
    exit_order = run.intents[-1]
    assert isinstance(exit_order, PlaceOrder)
    run.book.set_balance(ACCOUNT, "BTC", D(0))
    run.execute(exit_order)


def reduce_too_small_once_its_turn_comes() -> None:
    # 0.00011 is 5.50 USDT at 50,000 when asked, 4.40 at 40,000 when the targets are freed.
    run = Run.start(trade_spec(Side.BUY, market_entry(), TWO_STEPS), "50000")
    cancels = run.feed(ReduceFunds(run.now, units=D("0.00011")), auto=False).intents
    run.feed(PriceTicked(D(40000), run.now), auto=False)
    for cancel in cancels:
        run.execute(cancel)


def trailing_entry_too_small_when_due() -> None:
    # 5.20 USDT buys 0.0001 (5.00) at 50,000 but only 0.00008 (4.80) at 60,000.
    entry = EntrySpec(EntryType.MARKET, total=D("5.2"), trailing_percent=D(1))
    run = Run.start(trade_spec(Side.BUY, entry), "50000")
    run.tick("60000")


def entry_rearmed_by_an_edit_while_its_order_fills() -> None:
    run = Run.start(trade_spec(Side.BUY, market_entry()), "50000", auto=False)
    market_order = run.intents[0]
    trailing = EntrySpec(EntryType.MARKET, total=D(600), trailing_percent=D(1))
    edit = Edit(run.now, replace(run.trade.spec, entry=trailing), frozenset({"entry"}))
    cancel = run.feed(edit, auto=False).intents[0]
    run.execute(market_order)  # it filled before the cancel reached it
    run.execute(cancel)
    run.tick("49000")
    run.tick("49490")  # 1% off the lowest: due, and 0.1 bought already covers 600 USDT


def stop_removed_by_an_edit() -> None:
    run = active_trade()
    run.feed(Edit(run.now, replace(run.trade.spec, stop_loss=None), frozenset({"stop_loss"})))


def target_topped_up_after_a_partial_fill(refuse: bool) -> None:
    # Skip entry 0.1 BTC; one target at 51,000 fills half, then 0.1 more is added.
    spec = trade_spec(Side.BUY, skip_entry("50000"), (step("100", price="51000"),))
    run = Run.start(
        spec, "50000", {"BTC": "0.1", "USDT": "100000"}, PaperSettings(partial_fills=True)
    )
    run.tick("51000")
    intents = run.feed(AddFunds(run.now, units=D("0.1")), auto=False).intents
    top_ups = run.execute(intents[0], auto=False).intents
    if refuse:
        run.book.set_balance(ACCOUNT, "BTC", D("0.05"))  # only what the target locks
    for intent in top_ups:
        run.execute(intent)
    run.tick("51000")  # the working part of the target fills: the refused step is over


def target_filled_in_two_parts() -> None:
    spec = trade_spec(Side.BUY, skip_entry("50000"), (step("100", price="51000"),))
    run = Run.start(spec, "50000", {"BTC": "0.1"}, PaperSettings(partial_fills=True))
    run.tick("51000")
    run.tick("51000")


def closed_with_a_target_partly_filled() -> None:
    spec = trade_spec(Side.BUY, skip_entry("50000"), (step("100", price="51000"),))
    run = Run.start(spec, "50000", {"BTC": "0.1"}, PaperSettings(partial_fills=True))
    run.tick("51000")
    run.feed(CloseAtMarket(run.now))
    run.tick("51000")  # the market order's second half


def conditional_entry_triggered() -> None:
    Run.start(trade_spec(Side.BUY, conditional_entry("51000")), "50000").tick("51000")


def active_add_funds() -> None:
    run = active_trade()
    run.feed(AddFunds(run.now, units=D("0.1")))


def close_at_market_while_the_stop_limit_rests() -> None:
    run = closing_on_a_stop_limit()
    run.feed(CloseAtMarket(run.now))


def cancel_while_the_stop_limit_rests() -> None:
    run = closing_on_a_stop_limit()
    run.feed(Cancel(run.now))


def active_cancel() -> None:
    run = active_trade()
    run.feed(Cancel(run.now))


S, L = TradeState, LegState
T, G = TradeTrigger, LegTrigger
SCENARIOS: dict[Edge, Callable[[], object]] = {
    (S.PENDING, T.ENTRY_FILLED): active_trade,
    (S.PENDING, T.ENTRY_ENDED): entry_cancelled_by_hand_on_the_exchange,
    (S.PENDING, T.CANCEL): cancelled_trade,
    (S.PENDING, T.REJECTED): failed_trade,
    (S.ACTIVE, T.EXIT_STARTED): closing_trade,
    (S.ACTIVE, T.POSITION_EXITED): targets_fill,
    (S.ACTIVE, T.EXITED_EXTERNALLY): lambda: coins_sold_outside(active_trade()),
    (S.ACTIVE, T.CANCEL): active_cancel,
    (S.CLOSING, T.POSITION_EXITED): closed_trade,
    (S.CLOSING, T.EXITED_EXTERNALLY): lambda: coins_sold_outside(closing_trade()),
    (S.CLOSING, T.REJECTED): exit_refused_because_the_coins_are_gone,
    (S.CLOSING, T.EXIT_STARTED): close_at_market_while_the_stop_limit_rests,
    (S.CLOSING, T.CANCEL): cancel_while_the_stop_limit_rests,
    (L.IDLE, G.ARM): active_trade,  # the stop starts watching
    (L.IDLE, G.PLACE): active_trade,  # the targets are placed
    (L.IDLE, G.CANCEL): cancelled_trade,  # targets never placed
    (L.IDLE, G.FILL): lambda: Run.start(trade_spec(entry=skip_entry("48000")), "50000"),
    (L.IDLE, G.REJECT): reduce_too_small_once_its_turn_comes,
    (L.WAITING, G.PLACE): conditional_entry_triggered,
    (L.WAITING, G.REJECT): trailing_entry_too_small_when_due,
    (L.WAITING, G.FILL): entry_rearmed_by_an_edit_while_its_order_fills,
    (L.WAITING, G.DISARM): stop_removed_by_an_edit,
    (L.WAITING, G.CANCEL): closed_trade,  # the stop, once the position is gone
    (L.ORDER_PLACED, G.ARM): entry_rearmed_by_an_edit_while_its_order_fills,
    (L.ORDER_PLACED, G.PLACE): active_add_funds,  # targets replaced for the new average
    (L.ORDER_PLACED, G.PARTIAL_FILL): target_filled_in_two_parts,
    (L.ORDER_PLACED, G.FILL): active_trade,  # the market entry
    (L.ORDER_PLACED, G.CANCEL): active_cancel,
    (L.ORDER_PLACED, G.REJECT): failed_trade,
    (L.PARTIALLY_FILLED, G.PLACE): lambda: target_topped_up_after_a_partial_fill(refuse=False),
    (L.PARTIALLY_FILLED, G.FILL): target_filled_in_two_parts,
    (L.PARTIALLY_FILLED, G.CANCEL): closed_with_a_target_partly_filled,
    (L.PARTIALLY_FILLED, G.REJECT): lambda: target_topped_up_after_a_partial_fill(refuse=True),
}


def edge_id(edge: Edge) -> str:
    state, trigger = edge
    scenario = SCENARIOS[edge]
    name = scenario.__name__ if scenario.__name__ != "<lambda>" else "see the table"
    return f"{state.value} on {trigger.value}: {name}"


def test_every_edge_of_both_tables_has_a_scenario_and_no_scenario_is_for_a_missing_edge() -> None:
    assert set(SCENARIOS) == set(TRADE_TRANSITIONS) | set(LEG_TRANSITIONS)


@pytest.mark.parametrize("edge", list(SCENARIOS), ids=[edge_id(edge) for edge in SCENARIOS])
def test_the_edge_is_taken_by_its_scenario(edge: Edge, taken: set[Edge]) -> None:
    SCENARIOS[edge]()
    assert edge in taken
