"""Random lives of random trades, checked after every step against the rules that always hold.

A life is a sequence of price ticks, time passing, the venue getting to the queued intents,
its answers arriving late, twice or out of order (and, for the entry, "cancelled" before the
fill that raced the cancel), and the trader's actions. Any exception the core raises other
than a refused action or a refused input fails the test, so this also proves that every
(state, trigger) pair `decide` uses is in the transition tables.

"Units held" is `position_of(trade).units_held`: base units bought net of base fees, minus
base units sold plus base fees (for a SELL trade: units owed). The invariants:
- units held >= 0 (so units sold never exceed units bought), exactly, fees included;
- the exit orders working never ask for more than is held (a spot SELL's buy-backs, filled
  and working, by under one lot per order more: DESIGN §2.9);
- the average entry price lies within [lowest, highest] entry fill price (a SKIP entry's
  average price counts as a fill);
- a terminal trade absorbs every input: same state, no intent;
- no PlaceOrder for an order the trade already records, and no client order id ever reused;
- every order is on the lot and tick grid and tradable (no zero or dust order);
- a venue fact or a tick applied twice in a row yields no intent the second time;
- a terminal trade, and a leg that is done, leave nothing working on the venue unasked:
  every live order has a cancel requested;
- no order is sent for a leg once the venue finally refused one of its orders (no spam of
  the same refused order on every tick).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.decide import create, decide
from smarttrade.domain.errors import ActionNotAllowed, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.menu import available_actions, editable_fields
from smarttrade.domain.messages import (
    ACTION_OF,
    AddFunds,
    Cancel,
    CloseAtMarket,
    Edit,
    Input,
    OpenNow,
    OrderMissing,
    OrderReported,
    PlaceOrder,
    PositionGone,
    PriceTicked,
    ReduceFunds,
    Refresh,
    TimeElapsed,
)
from smarttrade.domain.model import ZERO, LegKind, Order, SmartTrade
from smarttrade.domain.position import delivered, position_of, skipped_entry_units
from smarttrade.domain.spec import (
    EntrySpec,
    EntryType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
)
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.store.codec import dump_json, trade_from_document
from tests.unit.driver import BTC, T0
from tests.unit.racing_venue import RacingVenue
from tests.unit.strategies import START, away, entries, take_profit_plans, trade_specs

# A sale outside the service ends a life at once: drawn less often than the others.
SURPRISES = ["refuse"] * 3 + ["cancel by hand"] * 3 + ["sold outside"]
REPEATABLE = (PriceTicked, TimeElapsed, OrderReported, OrderMissing, Refresh)
BALANCES = {"USDT": "10000000", "BTC": "100"}


class TradeLife(RuleBasedStateMachine):
    steps_checked = 0

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.price = START
        self.ids_placed: set[str] = set()

    @initialize(
        spec=trade_specs(),
        partial_fills=st.booleans(),
        fee=st.sampled_from(["0", "0.001"]),
    )
    def a_trade_is_created(self, spec: TradeSpec, partial_fills: bool, fee: str) -> None:
        paper = PaperSettings(Decimal(fee), Decimal(fee), partial_fills=partial_fills)
        self.venue = RacingVenue.open(BTC, START, paper, BALANCES)
        decision = create(
            trade_id="t1",
            tenant_id="tenant",
            account_id="acct",
            exchange_id="paper",
            spec=spec,
            market=BTC,
            last_price=START,
            at=self.now,
        )
        self.trade: SmartTrade = decision.trade
        self._check_orders(decision.trade, decision.intents)
        self.venue.send(decision.intents)

    # ---- feeding the core, with the per-decision checks -----------------------------------

    def feed(self, input: Input) -> None:
        before = self.trade
        action = ACTION_OF.get(type(input))
        try:
            decision = decide(before, input)
        except ActionNotAllowed:
            assert action is not None
            assert action not in available_actions(before) or self._refused_by_detail(input)
            return
        except InvalidSpec:
            assert action is not None, "only the trader's input may be refused as invalid"
            return
        if action is not None:
            assert action in available_actions(before), f"{action} done while {before.state}"
        if before.state.is_terminal:
            assert decision.trade.state is before.state, "a terminal state left"
            assert not decision.intents, "a terminal trade asked the venue for something"
        for intent in decision.intents:
            if isinstance(intent, PlaceOrder):
                assert before.find_order(intent.client_order_id) is None, "placed twice"
                leg = decision.trade.leg(intent.leg_id)
                refused = [o for o in leg.orders if o.status is OrderStatus.REJECTED]
                assert not refused, f"{leg.id} sent again after a refusal"
        self._check_orders(decision.trade, decision.intents)
        if isinstance(input, REPEATABLE):
            again = decide(decision.trade, input)
            assert not again.intents, f"the same {type(input).__name__} acted twice"
        self.trade = decision.trade
        self.venue.send(decision.intents)

    def _refused_by_detail(self, input: Input) -> bool:
        """On the menu, yet refused for what the menu cannot show: Open Now once the entry
        is done, an edit of a field that is no longer editable."""
        if isinstance(input, OpenNow):
            return True
        if isinstance(input, Edit):
            roots = {path.split(".")[0] for path in input.paths}
            return not roots <= set(editable_fields(self.trade))
        return False

    def _check_orders(self, trade: SmartTrade, intents: tuple[object, ...]) -> None:
        for intent in intents:
            if not isinstance(intent, PlaceOrder):
                continue
            assert intent.client_order_id not in self.ids_placed, "a client order id reused"
            self.ids_placed.add(intent.client_order_id)
            assert BTC.round_amount(intent.amount) == intent.amount, intent
            reference = intent.price if intent.price is not None else trade.last_price
            assert reference is not None
            assert BTC.is_tradable(intent.amount, reference), f"dust order {intent}"
            if intent.price is not None:
                assert BTC.round_price(intent.price) == intent.price, intent

    # ---- the market ------------------------------------------------------------------------

    @rule(move=st.integers(-4, 4))
    def the_price_moves(self, move: int) -> None:
        self.price = min(
            max(away(Side.BUY, self.price, Decimal(move) / 2), Decimal(35000)), Decimal(65000)
        )
        self.now += timedelta(seconds=1)
        self.venue.tick(self.price, self.now)
        self.feed(PriceTicked(self.price, self.now))

    @rule(seconds=st.sampled_from([1, 4, 5, 29, 30]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.feed(TimeElapsed(self.now))

    # ---- the venue -------------------------------------------------------------------------

    @precondition(lambda self: self.venue.queue)
    @rule(count=st.integers(1, 4))
    def the_venue_gets_to_the_intents(self, count: int) -> None:
        self.venue.work(count, self.now)

    @precondition(lambda self: self.venue.outbox)
    @rule(data=st.data())
    def an_answer_arrives_in_any_order(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.venue.outbox) - 1))
        self.feed(self.venue.take(index))

    @precondition(lambda self: self.venue.history)
    @rule(data=st.data())
    def an_old_answer_arrives_again(self, data: st.DataObject) -> None:
        self.feed(data.draw(st.sampled_from(self.venue.history)))

    @precondition(lambda self: self._entry_orders_being_cancelled())
    @rule(data=st.data())
    def an_entry_order_is_reported_cancelled_before_its_fill(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(self._entry_orders_being_cancelled()))
        report = OrderReported(
            order.client_order_id, OrderStatus.CANCELLED, self.now, fills=tuple(order.fills)
        )
        self.feed(report)

    def _entry_orders_being_cancelled(self) -> list[Order]:
        return [
            order
            for leg in self.trade.legs
            if leg.kind.is_entry_side
            for order in leg.orders
            if order.cancel_requested and order.status is OrderStatus.OPEN
        ]

    @rule(
        surprise=st.sampled_from(SURPRISES),
        data=st.data(),
    )
    def the_venue_surprises(self, surprise: str, data: st.DataObject) -> None:
        """What the service does not cause: a refusal, a cancel on the exchange's own site,
        the coins sold by hand (found by reconciliation)."""
        if surprise == "refuse":
            self.venue.refusing = data.draw(st.sampled_from([1, 3, 10]))
        elif surprise == "cancel by hand":
            open_orders = self.venue.open_orders()
            if open_orders:
                self.venue.cancel_by_hand(data.draw(st.sampled_from(open_orders)), self.now)
        else:
            self.feed(PositionGone(ZERO, self.now))

    @rule()
    def everything_settles(self) -> None:
        for _ in range(20):
            self.venue.work(len(self.venue.queue), self.now)
            while self.venue.outbox:
                self.feed(self.venue.take(0))
            if not self.venue.queue:
                break
        self._every_limit_step_works_once_all_is_answered()

    def _every_limit_step_works_once_all_is_answered(self) -> None:
        """Once the venue has answered everything and no entry-side leg or Reduce Funds is
        still working, an ACTIVE trade has an order working for each take-profit step with
        a limit that is not done: a step never waits for an order its rules will not place."""
        trade = self.trade
        if trade.state is not TradeState.ACTIVE or self.venue.queue or self.venue.outbox:
            return
        sized = (LegKind.ENTRY, LegKind.ADD_FUNDS, LegKind.REDUCE_FUNDS)
        if any(not leg.state.is_done for leg in trade.legs if leg.kind in sized):
            return
        for leg in trade.take_profit_legs:
            if leg.state.is_done or trade.spec.take_profit[leg.step - 1].trailing_percent:
                continue
            assert leg.live_orders, (leg.id, leg.state, leg.orders, position_of(trade))

    # ---- the trader ------------------------------------------------------------------------

    @rule(data=st.data())
    def the_trader_acts(self, data: st.DataObject) -> None:
        """One rule for the menu, so the market and the venue get most of the steps; Cancel
        is drawn less often, as it ends a life at once."""
        act = data.draw(st.sampled_from(ACTS))
        self.feed(act(self, data))

    def refresh(self, data: st.DataObject) -> Input:
        return Refresh(self.now)

    def cancel(self, data: st.DataObject) -> Input:
        return Cancel(self.now)

    def close_at_market(self, data: st.DataObject) -> Input:
        return CloseAtMarket(self.now)

    def open_now(self, data: st.DataObject) -> Input:
        return OpenNow(self.now)

    def add_funds(self, data: st.DataObject) -> Input:
        units = data.draw(st.sampled_from(["0.01", "0.05"]))
        limit = None
        if data.draw(st.booleans()):
            limit = away(self.trade.spec.side, self.price, Decimal(-1))
        order_type = OrderType.LIMIT if limit is not None else OrderType.MARKET
        return AddFunds(self.now, order_type, limit, units=Decimal(units))

    def reduce_funds(self, data: st.DataObject) -> Input:
        return ReduceFunds(self.now, percent=Decimal(data.draw(st.sampled_from([10, 40, 60]))))

    def edit_stop_loss(self, data: st.DataObject) -> Input:
        percent = data.draw(st.sampled_from([None, "1", "3", "5"]))
        stop = None
        if percent is not None:
            trailing = data.draw(st.sampled_from([None, Decimal(1)]))
            stop = StopLossSpec(percent=Decimal(percent), trailing_percent=trailing)
        spec = replace(self.trade.spec, stop_loss=stop)
        return Edit(self.now, spec, frozenset({"stop_loss"}))

    def edit_entry(self, data: st.DataObject) -> Input:
        entry = data.draw(entries(self.trade.spec.side))
        assume(entry.type is not EntryType.SKIP)
        spec = replace(self.trade.spec, entry=entry)
        return Edit(self.now, spec, frozenset({"entry"}))

    def edit_take_profit(self, data: st.DataObject) -> Input:
        average = position_of(self.trade).average_entry_price or self.price
        steps = data.draw(take_profit_plans(self.trade.spec.side, average))
        spec = replace(self.trade.spec, take_profit=steps)
        return Edit(self.now, spec, frozenset({"take_profit"}))

    # ---- what always holds -----------------------------------------------------------------

    @invariant()
    def nothing_is_sold_that_was_not_bought(self) -> None:
        """Beyond what a spot SELL's buy-backs round up to the lot (under one lot per
        order that bought back, DESIGN §2.9)."""
        trade = self.trade
        position = position_of(trade)
        assert position.units_held >= 0, position
        buy_backs = [o for o in trade.orders() if o.side is not trade.spec.side and o.fills]
        allowed = BTC.amount_step * len(buy_backs) if trade.spec.side is Side.SELL else ZERO
        assert position.units_sold - position.units_bought <= allowed, position
        assert position.surplus == max(position.units_sold - position.units_bought, ZERO)

    @invariant()
    def the_exit_orders_never_ask_for_more_than_is_held(self) -> None:
        """Counted in what they take off the position, net of a base fee.

        A spot SELL's buy-back of N is one order of N / (1 - fee) rounded up to the lot, so
        it brings back under one lot beyond N (DESIGN §2.9); a step's N is its share of the
        position, which the surplus another step's buy-back brought in leaves as it was (no
        resting order is re-placed because another step filled, see `take_profit`). So the
        orders working may ask for more than is still owed by that surplus as well as by
        their own rounding: what DESIGN bounds is every buy-back, filled or working,
        together: the position plus under one lot per order."""
        trade = self.trade
        if trade.state.is_terminal:
            return
        position = position_of(trade)
        live = [o for leg in trade.legs if not leg.kind.is_entry_side for o in leg.live_orders]
        working = sum((delivered(trade, o.remaining, o.type) for o in live), ZERO)
        allowed = ZERO
        if trade.spec.side is Side.SELL:
            filled = [o for o in trade.orders() if o.side is not trade.spec.side and o.fills]
            buy_backs = {o.client_order_id for o in [*live, *filled]}
            allowed = BTC.amount_step * len(buy_backs)
        assert position.units_sold + working <= position.units_bought + allowed, (
            working,
            position,
        )

    @invariant()
    def the_average_entry_lies_between_the_entry_fills(self) -> None:
        """Before base fees, that is: a BUY pays its fee in coins, so its average per coin
        held is the cost over the coins net of the fee."""
        trade = self.trade
        fills = [
            (fill.price, fill.amount)
            for order in trade.orders()
            if order.side is trade.spec.side
            for fill in order.fills
        ]
        entry = trade.spec.entry
        if entry.type is EntryType.SKIP:
            assert entry.average_price is not None
            fills.append((entry.average_price, skipped_entry_units(trade)))
        position = position_of(trade)
        if position.average_entry_price is None:
            assert not fills
            return
        prices = [price for price, _ in fills]
        gross = sum((amount for _, amount in fills), ZERO)
        assert min(prices) <= position.cost / gross <= max(prices)
        assert position.average_entry_price == position.cost / position.units_bought

    @invariant()
    def nothing_finished_leaves_an_order_working_unasked(self) -> None:
        """A terminal trade, and a leg that is done, keep no live order without a cancel."""
        for leg in self.trade.legs:
            if self.trade.state.is_terminal or leg.state.is_done:
                for order in leg.live_orders:
                    assert order.cancel_requested, (leg.id, leg.state, order)

    @invariant()
    def the_trade_reads_back_unchanged_from_its_stored_document(self) -> None:
        """The snapshot the store writes (JSON, by orjson) loads as the very same trade."""
        document = orjson.loads(dump_json(self.trade))
        assert trade_from_document(document) == self.trade

    @invariant()
    def the_state_is_one_of_the_six(self) -> None:
        TradeLife.steps_checked += 1  # run after every step: counts the steps taken
        assert self.trade.state in TradeState


ACTS = [
    TradeLife.refresh,
    TradeLife.close_at_market,
    TradeLife.open_now,
    TradeLife.add_funds,
    TradeLife.add_funds,
    TradeLife.reduce_funds,
    TradeLife.reduce_funds,
    TradeLife.edit_stop_loss,
    TradeLife.edit_take_profit,
    TradeLife.edit_entry,
    TradeLife.cancel,
]

TradeLife.TestCase.settings = settings(
    max_examples=1000,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_lives_of_trades_keep_every_invariant = TradeLife.TestCase


# ---- lives hypothesis found, replayed step by step ------------------------------------------


def keeps_every_invariant(life: TradeLife) -> None:
    life.nothing_is_sold_that_was_not_bought()
    life.the_exit_orders_never_ask_for_more_than_is_held()
    life.the_average_entry_lies_between_the_entry_fills()
    life.nothing_finished_leaves_an_order_working_unasked()
    life.the_trade_reads_back_unchanged_from_its_stored_document()
    life.the_state_is_one_of_the_six()


def test_a_sell_whose_first_and_last_steps_buy_back_at_once_keeps_every_invariant() -> None:
    # Arrange: a SELL limit of 600 USDT at 51,000 whose 4 % and 59 % steps (50,490 and
    # 50,745) lie above the price: opened now at 50,000, both buy back at once, each
    # rounded up to the lot, while the 13 % and 24 % steps keep their own grossed-up orders.
    spec = TradeSpec(
        symbol=BTC.symbol,
        side=Side.SELL,
        entry=EntrySpec(EntryType.LIMIT, total=Decimal(600), limit_price=Decimal(51000)),
        take_profit=(
            TakeProfitStepSpec(Decimal(4), price=Decimal(50490)),
            TakeProfitStepSpec(Decimal(13), percent=Decimal("0.5")),
            TakeProfitStepSpec(Decimal(24), price=Decimal(49470)),
            TakeProfitStepSpec(Decimal(59), price=Decimal(50745)),
        ),
    )
    life = TradeLife()
    life.a_trade_is_created(spec=spec, partial_fills=False, fee="0.001")
    keeps_every_invariant(life)

    # Act
    life.feed(OpenNow(life.now))
    keeps_every_invariant(life)
    life.everything_settles()

    # Assert
    keeps_every_invariant(life)


def test_a_sell_reduced_after_a_step_s_surplus_still_works_its_last_step() -> None:
    # Arrange: 0.1 BTC sold short at 50,000; the first step (49,000) buys back 0.05006,
    # 0.00000994 beyond its share, when the price falls 2 %.
    spec = TradeSpec(
        symbol=BTC.symbol,
        side=Side.SELL,
        entry=EntrySpec(EntryType.MARKET, units=Decimal("0.1")),
        take_profit=(
            TakeProfitStepSpec(Decimal(50), price=Decimal(49000)),
            TakeProfitStepSpec(Decimal(50), price=Decimal(48000)),
        ),
    )
    life = TradeLife()
    life.a_trade_is_created(spec=spec, partial_fills=False, fee="0.001")
    life.everything_settles()
    life.the_price_moves(-4)
    life.everything_settles()
    keeps_every_invariant(life)

    # Act: Reduce Funds by 40 % frees the second step's order.
    life.feed(ReduceFunds(life.now, percent=Decimal(40)))
    life.everything_settles()

    # Assert: the second step works again, for what is owed (it used to ask for 0.00001
    # more, which no budget allowed: the trade owed 0.03 with no order working).
    keeps_every_invariant(life)
    assert position_of(life.trade).units_held == Decimal("0.02999008")
    assert [o.amount for o in life.trade.leg("tp2").live_orders] == [Decimal("0.03003")]


def test_a_sell_step_re_placed_after_the_others_rounded_up_still_gets_its_order() -> None:
    # Arrange: 600 USDT sold short at market, filled in two parts (49,500 and 49,747.5),
    # which moves the 0.5 % target of the second step: its order is cancelled to be
    # re-placed. Meanwhile the first step's buy-back and the last step's two orders (one per
    # part of the entry) have each been rounded up to the lot.
    spec = TradeSpec(
        symbol=BTC.symbol,
        side=Side.SELL,
        entry=EntrySpec(EntryType.MARKET, total=Decimal(600)),
        take_profit=(
            TakeProfitStepSpec(Decimal(1), price=Decimal(49750)),
            TakeProfitStepSpec(Decimal(1), percent=Decimal("0.5")),
            TakeProfitStepSpec(Decimal(98), price=Decimal(49750)),
        ),
    )
    life = TradeLife()
    life.a_trade_is_created(spec=spec, partial_fills=True, fee="0.001")
    life.the_price_moves(-2)
    life.everything_settles()

    # Act
    life.the_price_moves(1)
    life.everything_settles()

    # Assert: the second step works again, for what is owed and not covered by the orders
    # working, 0.00011589 -> 0.00012 (it used to wait for a budget of 0.00012 for ever).
    keeps_every_invariant(life)
    assert [o.amount for o in life.trade.leg("tp2").live_orders] == [Decimal("0.00012")]
