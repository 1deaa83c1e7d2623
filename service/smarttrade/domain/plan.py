"""Converge: after every input, bring the trade's orders in line with what its state wants.

Each rule compares what should be working on the venue with the orders the trade records,
and emits only the difference: an order is placed where none is live, cancelled where a live
one no longer fits, and nothing is done while a cancel is still in flight (its outcome may
be a fill). The rules run until they ask for nothing more (one rule's effect, a step done,
may be another's cause), so applying the same input again emits nothing: no intent ever
concerns an order that already exists.

Rules that the spec leaves open, decided here:
- Take-profit orders follow the position as it fills: a step is topped up by an extra order
  when its allocation grows by a tradable amount while the entry fills, replaced for the new
  volume when Add Funds grew it (once every entry-side leg is done), and replaced when its
  target moves or its allocation shrinks (see `take_profit`).
- The exit orders working never ask for more than is held: a top-up waits while another
  exit order's cancel is in flight (it may still fill), so the coins are never sold twice;
  with none in flight, a step's new order covers at most what the others leave uncovered.
  (A spot SELL's buy-backs are rounded up to the lot, and a resting one keeps its size when
  another step's rounding brought in a surplus, so by under a lot per buy-back more: §2.9.)
- A step with nothing tradable to do waits while an entry-side leg is not done (a working
  or partly filled order, a condition not yet met): more may come in.
- The venue's final refusal of a take-profit order stops the step: nothing more is sent for
  it (never the same refused order again on every tick), a part already working keeps
  working, then the step is FAILED and the trade says why in `last_error`. Its unsold share
  goes to the last open step. The trade closes as TAKE_PROFIT only when every step is done
  and nothing tradable is held; otherwise it stays ACTIVE (the stop keeps watching).
- A sized leg (entry, Add Funds, Reduce Funds) whose fills reach its size is FILLED, and a
  replacement order still working is cancelled (the order it replaced turned out filled).
- A market exit (stop loss, close at market, trailing take profit) first cancels every other
  live order of the trade and waits for the venue to confirm, so that late fills are counted
  and the exit sells exactly what is left, rounded down to the lot.
- Reduce Funds likewise frees every take-profit order first (also one an edit removed),
  waits for any other exit order, sells, and lets the take-profit plan re-place the smaller
  remainder.
- A take-profit step closed at market (Close Step) first has its limit order cancelled and
  waits for the venue (it may still fill), then sells what is left of its allocation at
  market, within the same budget as the other steps; its allocation is the one the plan
  gave it, so the other steps keep theirs and their orders stay.
- A stop-limit that falls back to market (DESIGN §2.3 as extended by issue 15) likewise
  has its limit order cancelled and waited for before the rest is sold at market, and so
  does a Close at Market that takes over such an exit: the coins are never sold twice.
- Order prices from the settings go out on the market's tick (a limit entry, a stop's limit
  price, an absolute target), so that comparing a live order with the plan is exact.
"""

from __future__ import annotations

from decimal import Decimal

from smarttrade.domain.changes import Changes
from smarttrade.domain.fsm import LegState, LegTrigger, TradeState, TradeTrigger
from smarttrade.domain.messages import EventType
from smarttrade.domain.model import ZERO, CloseReason, Leg, LegKind, Order, SmartTrade
from smarttrade.domain.position import (
    Position,
    delivered,
    exit_size,
    exited_units,
    position_of,
)
from smarttrade.domain.prices import at_or_before, offset, stop_trigger
from smarttrade.domain.spec import EntryType
from smarttrade.domain.take_profit import StepPlan, plan_steps
from smarttrade.domain.validation import entry_units
from smarttrade.domain.values import OrderStatus, OrderType

MAX_PASSES = 8


def converge(changes: Changes) -> None:
    """Apply the rules until they ask for nothing more: one rule's effect (a leg done, an
    order cancelled) may be another's cause, and a decision must leave nothing for the same
    input to do a second time."""
    for _ in range(MAX_PASSES):
        seen = (len(changes.events), len(changes.intents))
        _converge_once(changes)
        if (len(changes.events), len(changes.intents)) == seen:
            return


def _converge_once(changes: Changes) -> None:
    trade = changes.trade
    if trade.state.is_terminal:
        return
    position = position_of(trade)
    if trade.state is TradeState.PENDING and position.units_bought > 0:
        _open_position(changes)
    _progress_sized_legs(changes)
    if trade.state in (TradeState.PENDING, TradeState.ACTIVE):
        _plan_entry(changes)
        _plan_add_funds(changes)
    if trade.state is TradeState.ACTIVE:
        position = position_of(trade)
        if _reduce_due(trade) is not None:
            _plan_reduce(changes, position)
        else:
            _plan_take_profit(changes, position)
    if trade.state is TradeState.CLOSING:
        _plan_exit(changes, position_of(trade))
    if not trade.state.is_terminal:
        _show_working_prices(changes, position_of(trade))


def _open_position(changes: Changes) -> None:
    """The first entry-side fill: the trade becomes ACTIVE and its exits start working."""
    trade = changes.trade
    changes.move_trade(TradeTrigger.ENTRY_FILLED)
    stop = trade.stop_loss_leg
    if stop is not None and trade.spec.stop_loss is not None and stop.state is LegState.IDLE:
        # The best price since the position opened starts at the price that opened it: the
        # last price, unless a resting entry filled at a tick the trade has not seen yet
        # (then that tick, which is the next one the trade sees, starts it).
        stop.trailing_extreme = None if trade.awaiting_price else trade.last_price
        changes.move_leg(stop, LegTrigger.ARM)
    for leg in trade.take_profit_legs:
        spec = trade.spec.take_profit[leg.step - 1]
        if spec.trailing_percent is not None and leg.state is LegState.IDLE:
            changes.move_leg(leg, LegTrigger.ARM)


def _on_tick(trade: SmartTrade, price: Decimal | None) -> Decimal | None:
    """A price from the settings, on the market's tick, as every order price must be."""
    return trade.market.round_price(price) if price is not None else None


def _last_order(leg: Leg) -> Order | None:
    return leg.orders[-1] if leg.orders else None


def _progress_sized_legs(changes: Changes) -> None:
    """Entry, Add Funds and Reduce Funds legs have a fixed size: fill, end or fail by it."""
    trade = changes.trade
    for leg in trade.legs:
        if leg.kind not in (LegKind.ENTRY, LegKind.ADD_FUNDS, LegKind.REDUCE_FUNDS):
            continue
        if leg.state.is_done or leg.id == trade.exit_leg_id:
            continue
        filled = leg.filled
        if leg.kind is LegKind.REDUCE_FUNDS:  # its size is what leaves the position
            filled = exited_units(leg.orders, trade.market.base)
        if leg.amount is not None and filled >= leg.amount:
            # A replacement may still be working when the order it replaced turns out filled
            # after all (a cancel that raced a fill): the leg is complete, so it goes.
            changes.cancel_live_orders(leg)
            changes.move_leg(leg, LegTrigger.FILL)
            continue
        if filled and leg.state is LegState.ORDER_PLACED:
            changes.move_leg(leg, LegTrigger.PARTIAL_FILL)
        last = _last_order(leg)
        if last is None or leg.live_orders:
            continue
        if last.status is OrderStatus.REJECTED:
            _leg_refused(changes, leg, last.error or "the exchange refused the order")
        elif last.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and not (
            last.cancel_requested
        ):
            _leg_ended_on_venue(changes, leg, last)


def _leg_refused(changes: Changes, leg: Leg, reason: str) -> None:
    trade = changes.trade
    changes.move_leg(leg, LegTrigger.REJECT, note=reason)
    changes.set_error(f"{leg.id}: {reason}")
    nothing_bought = position_of(trade).units_bought == 0
    entry_over = all(other.state.is_done for other in trade.legs if other.kind.is_entry_side)
    if trade.state is TradeState.PENDING and nothing_bought and entry_over:
        changes.move_trade(TradeTrigger.REJECTED)
        _cancel_remaining_legs(changes)


def _leg_ended_on_venue(changes: Changes, leg: Leg, order: Order) -> None:
    """The venue ended the leg's order without our asking (cancelled by hand, expired)."""
    trade = changes.trade
    why = f"order {order.client_order_id} was {order.status.value.lower()} on the exchange"
    if leg.filled:
        changes.move_leg(leg, LegTrigger.FILL, note=f"{why}; kept the part filled")
        return
    changes.move_leg(leg, LegTrigger.CANCEL, note=why)
    # The trade ends only once nothing can buy any more: an Add Funds order may still be
    # working when the entry's is cancelled by hand, or the other way round.
    nothing_bought = position_of(trade).units_bought == 0
    entry_over = all(other.state.is_done for other in trade.legs if other.kind.is_entry_side)
    if trade.state is TradeState.PENDING and nothing_bought and entry_over:
        changes.set_error(why)
        changes.move_trade(TradeTrigger.ENTRY_ENDED)
        _cancel_remaining_legs(changes)


def _plan_entry(changes: Changes) -> None:
    trade = changes.trade
    leg = trade.entry_leg
    spec = trade.spec.entry
    if leg.state.is_done or not leg.released or spec.type is EntryType.SKIP:
        return
    as_limit = spec.executes_as_limit and not spec.is_trailing and not leg.open_now
    order_type = OrderType.LIMIT if as_limit else OrderType.MARKET
    price = _on_tick(trade, spec.limit_price) if as_limit else None
    reference = price or trade.last_price
    if leg.amount is None and reference is not None:
        leg.amount = entry_units(spec, trade.market, reference)
    if leg.amount is None or reference is None:
        return
    _keep_sized_leg_working(changes, leg, order_type, price, leg.amount - leg.filled, reference)


def _plan_add_funds(changes: Changes) -> None:
    """Like the entry: one order working for what is left of each Add Funds leg, so one the
    venue never received (found missing) is placed again under a new id."""
    trade = changes.trade
    for leg in trade.legs_of(LegKind.ADD_FUNDS):
        if leg.state.is_done:
            continue
        reference = leg.limit_price or trade.last_price
        if reference is None:
            continue
        if leg.amount is None and leg.total is not None:
            leg.amount = trade.market.round_amount(leg.total / reference)
        if leg.amount is not None:
            _keep_sized_leg_working(
                changes, leg, leg.order_type, leg.limit_price, leg.amount - leg.filled, reference
            )


def _keep_sized_leg_working(
    changes: Changes,
    leg: Leg,
    order_type: OrderType,
    price: Decimal | None,
    remaining: Decimal,
    reference: Decimal,
) -> None:
    """One live order of the right type, price and size for what is left of the leg."""
    trade = changes.trade
    live = leg.live_orders
    if live:
        fits = all(order.type is order_type and order.price == price for order in live)
        if not fits or leg.live_remaining > remaining:
            changes.cancel_live_orders(leg)
        return
    if remaining > 0 and trade.market.is_tradable(remaining, reference):
        changes.place(leg, order_type, remaining, price)
    elif leg.filled:
        changes.move_leg(leg, LegTrigger.FILL, note="the rest is below the market minimum")
    else:
        _leg_refused(changes, leg, "the size is below the market minimum at this price")


def _reduce_due(trade: SmartTrade) -> Leg | None:
    for leg in trade.legs_of(LegKind.REDUCE_FUNDS):
        if not leg.state.is_done:
            return leg
    return None


def _plan_reduce(changes: Changes, position: Position) -> None:
    trade = changes.trade
    leg = _reduce_due(trade)
    assert leg is not None
    assert leg.amount is not None
    # Every take-profit order goes first, also one an edit removed whose cancel is still in
    # flight: until the venue answers, it may fill, and the coins must not be sold twice.
    busy = False
    for other in trade.legs:
        if other.kind is LegKind.TAKE_PROFIT:
            busy = changes.cancel_live_orders(other) or busy
        elif other is not leg and not other.kind.is_entry_side and other.live_orders:
            busy = True
    if busy or leg.live_orders:
        return
    price = trade.last_price or position.average_entry_price or ZERO
    # In units of the position (a spot SELL's buy-back delivers net of its base fee), then
    # the order that takes them off: grossed up for the fee, as every buy-back (§2.9).
    wanted = min(leg.amount - exited_units(leg.orders, trade.market.base), position.units_held)
    size = exit_size(trade, wanted, OrderType.MARKET)
    _keep_sized_leg_working(changes, leg, OrderType.MARKET, None, size, price)


def _plan_take_profit(changes: Changes, position: Position) -> None:
    trade = changes.trade
    market = trade.market
    plans = plan_steps(trade, position)
    # More may still come in while an entry-side leg is not done (a working or partly
    # filled order, a condition not yet met): a step with nothing tradable waits for it.
    entry_settled = all(leg.state.is_done for leg in trade.legs if leg.kind.is_entry_side)
    funds_added = any(leg.filled for leg in trade.legs_of(LegKind.ADD_FUNDS))
    # Never commit more to exit orders than is held, counting orders whose cancel is in
    # flight (they may still fill): a re-allocated step waits for the cancels to be answered.
    # Counted in what the orders take off the position, to the lot (a spot SELL's buy-back
    # is grossed up for its base fee and rounded up: it takes off under a lot more than it
    # was sized for, see `exit_size`).
    budget = max(position.units_held, ZERO) - sum(
        (
            market.round_amount(delivered(trade, order.remaining, order.type))
            for leg in trade.legs
            if not leg.kind.is_entry_side
            for order in leg.live_orders
        ),
        ZERO,
    )
    # First every cancel this decision asks for (a moved target, a smaller allocation, a
    # volume grown by Add Funds), then the orders: a step placed while a cancel is in flight
    # waits for the answer within the budget (the cancelled order may still fill).
    working: list[tuple[StepPlan, Decimal]] = []
    closing: list[StepPlan] = []
    for plan in plans:
        leg = plan.leg
        if leg.at_market:
            closing.append(plan)
            continue
        if plan.trailing or plan.target is None:
            continue
        live = leg.live_orders
        if any(order.cancel_requested for order in live):
            continue
        stale = [order for order in live if order.price != plan.target]
        if stale or leg.live_remaining > exit_size(trade, plan.remaining, OrderType.LIMIT):
            changes.cancel_live_orders(leg)
            continue
        refused = any(order.status is OrderStatus.REJECTED for order in leg.orders)
        if live and entry_settled and funds_added and not refused:
            need = plan.remaining - delivered(trade, leg.live_remaining, OrderType.LIMIT)
            top_up = exit_size(trade, need, OrderType.LIMIT)
            if top_up > 0 and market.is_tradable(top_up, plan.target):
                # Grown by Add Funds: the order is replaced for the new volume rather than
                # topped up (DESIGN §2.4).
                changes.cancel_live_orders(leg)
                continue
        working.append((plan, plan.target))
    cancelling = _cancel_in_flight(trade)
    for plan in closing:
        budget = _close_step_at_market(changes, plan, budget, cancelling)
    for plan, target in working:
        leg = plan.leg
        live = leg.live_orders
        refused_orders = [order for order in leg.orders if order.status is OrderStatus.REJECTED]
        if refused_orders:
            _step_refused(changes, leg, refused_orders[-1])
            continue
        # What the live orders do not cover yet, in units of the position, and the order
        # that covers it (one order per step: a spot SELL's is grossed up for its fee).
        need = plan.remaining - delivered(trade, leg.live_remaining, OrderType.LIMIT)
        if need > budget and not cancelling:
            # A spot SELL's buy-backs (DESIGN §2.9) bring in what the steps' plan does not
            # count: the surplus of a done step (its share stands, see `take_profit`) and
            # the rounding up of the orders working. With no cancel in flight the budget is
            # what is owed and not covered: the step buys back that, not the surplus again
            # (it would wait for ever for a budget that never comes).
            need = max(budget, ZERO)
        top_up = exit_size(trade, need, OrderType.LIMIT)
        if top_up > 0 and market.is_tradable(top_up, target):
            if need <= budget:
                changes.place(leg, OrderType.LIMIT, top_up, target)
                budget -= need
        elif not live and entry_settled:
            if plan.exited > 0:
                changes.move_leg(leg, LegTrigger.FILL)
            else:
                changes.move_leg(leg, LegTrigger.CANCEL, note="its volume went to another step")
        if leg.filled and leg.state is LegState.ORDER_PLACED:
            changes.move_leg(leg, LegTrigger.PARTIAL_FILL)
    # Whether what is left is dust depends on the current price: not judged at a price from
    # before a fill the trade has not seen the tick of (the next tick judges it).
    if all_steps_done(trade) and not trade.awaiting_price:
        held = market.round_amount(max(position_of(trade).units_held, ZERO))
        if not market.is_tradable(held, trade.last_price or position.average_entry_price or ZERO):
            trade.close_reason = CloseReason.TAKE_PROFIT
            _finish(changes)


def _close_step_at_market(
    changes: Changes, plan: StepPlan, budget: Decimal, cancelling: bool
) -> Decimal:
    """A step the trader closed at market: its limit order goes first (its cancel answered,
    since it may still fill), then one market order sells what is left of its allocation.
    The budget left for the other steps is returned."""
    trade = changes.trade
    leg = plan.leg
    if leg.filled and leg.state is LegState.ORDER_PLACED:
        changes.move_leg(leg, LegTrigger.PARTIAL_FILL)
    live = leg.live_orders
    if any(order.type is OrderType.LIMIT for order in live):
        changes.cancel_live_orders(leg)
        return budget
    if live:  # the market order is working
        return budget
    last = _last_order(leg)
    if last is not None and last.status is OrderStatus.REJECTED:
        _step_refused(changes, leg, last)
        return budget
    need = plan.remaining
    if need > budget and not cancelling:
        need = max(budget, ZERO)  # as for a limit step: never more than is owed, uncovered
    size = exit_size(trade, need, OrderType.MARKET)
    price = trade.last_price or plan.target or ZERO
    if size > 0 and trade.market.is_tradable(size, price):
        if need <= budget:
            changes.place(leg, OrderType.MARKET, size)
            budget -= need
        return budget
    if plan.exited > 0:
        changes.move_leg(leg, LegTrigger.FILL, note="closed at market")
    else:
        changes.move_leg(leg, LegTrigger.CANCEL, note="nothing was left to sell")
    return budget


def _cancel_in_flight(trade: SmartTrade) -> bool:
    """Whether an exit order's cancel is still unanswered (it may yet fill)."""
    return any(
        order.cancel_requested
        for leg in trade.legs
        if not leg.kind.is_entry_side
        for order in leg.live_orders
    )


def all_steps_done(trade: SmartTrade) -> bool:
    """An ACTIVE trade whose take-profit steps are all done: only a remainder may be left."""
    steps = trade.take_profit_legs
    return bool(steps) and all(s.state.is_done for s in steps) and trade.state is TradeState.ACTIVE


def _step_refused(changes: Changes, leg: Leg, order: Order) -> None:
    """The venue refused an order of the step: nothing more is sent for the step (never the
    same refused order again on every input). A part already working keeps working;
    once none is, the step is FAILED. The trade stays ACTIVE with what the step did not sell
    (the stop keeps watching, the trader may close), and says why in `last_error`."""
    reason = order.error or "the exchange refused the order"
    changes.set_error(f"{leg.id}: {reason}")
    if not leg.live_orders:
        changes.move_leg(leg, LegTrigger.REJECT, note=reason)


def start_exit(changes: Changes, leg: Leg, reason: CloseReason) -> None:
    """Begin a market exit carried by `leg`: CLOSING until nothing tradable is left."""
    trade = changes.trade
    trade.close_reason = reason
    trade.exit_leg_id = leg.id
    changes.move_trade(TradeTrigger.EXIT_STARTED)


def _plan_exit(changes: Changes, position: Position) -> None:
    trade = changes.trade
    assert trade.exit_leg_id is not None
    exit_leg = trade.leg(trade.exit_leg_id)
    stop = trade.spec.stop_loss
    limit = None
    if (
        exit_leg.kind is LegKind.STOP_LOSS
        and stop
        and stop.order_type is OrderType.LIMIT
        and not exit_leg.at_market
    ):
        limit = _on_tick(trade, stop.limit_price)
        if limit is not None and _past_fallback(trade, limit) and not exit_leg.orders:
            # The price is already as far past the limit as the fallback allows: the limit
            # order would only be cancelled again, so the stop goes at market at once.
            exit_leg.at_market = True
            limit = None
            changes.emit(
                EventType.PRICE_TRIGGERED,
                leg_id=exit_leg.id,
                price=trade.last_price,
                message="stop-limit falls back to market: the price is already past the limit",
            )
    busy = False
    for leg in trade.legs:
        if leg is not exit_leg:
            busy = changes.cancel_live_orders(leg) or busy
    if limit is None and any(order.type is OrderType.LIMIT for order in exit_leg.live_orders):
        # A stop-limit fell back to market: its order goes first (it may still fill).
        changes.cancel_live_orders(exit_leg)
    if busy or exit_leg.live_orders:
        return
    last = _last_order(exit_leg)
    if last is not None and last.status is OrderStatus.REJECTED:
        changes.move_leg(exit_leg, LegTrigger.REJECT, note=last.error)
        changes.set_error(f"{exit_leg.id}: {last.error or 'the exchange refused the exit'}")
        changes.move_trade(TradeTrigger.REJECTED)
        _cancel_remaining_legs(changes)
        return
    # One order for all that is left; a spot SELL's buy-back grossed up for its fee (§2.9).
    order_type = OrderType.MARKET if limit is None else OrderType.LIMIT
    amount = exit_size(trade, position.units_held, order_type)
    # Tradable at the price the order will carry: a stop-limit's own limit, else the market.
    price = limit or trade.last_price or position.average_entry_price or ZERO
    if amount > 0 and trade.market.is_tradable(amount, price):
        if limit is not None:
            changes.place(exit_leg, OrderType.LIMIT, amount, limit)
        else:
            changes.place(exit_leg, OrderType.MARKET, amount)
        return
    _finish(changes)


def _past_fallback(trade: SmartTrade, limit: Decimal) -> bool:
    """Whether the last price is at or past a stop-limit's fallback price (BUY: below)."""
    stop = trade.spec.stop_loss
    last = trade.last_price
    if stop is None or stop.fallback_percent is None or last is None:
        return False
    return at_or_before(
        trade.spec.side, last, offset(trade.spec.side, limit, -stop.fallback_percent)
    )


def _finish(changes: Changes) -> None:
    """Nothing tradable is left of the position: CLOSED, with the reason already set."""
    trade = changes.trade
    if trade.exit_leg_id is not None:
        exit_leg = trade.leg(trade.exit_leg_id)
        if not exit_leg.state.is_done and exit_leg.filled:
            changes.move_leg(exit_leg, LegTrigger.FILL)
    changes.move_trade(TradeTrigger.POSITION_EXITED)
    _cancel_remaining_legs(changes)


def _cancel_remaining_legs(changes: Changes) -> None:
    """At a terminal state: every leg not done is abandoned, its live orders cancelled."""
    for leg in changes.trade.legs:
        changes.cancel_live_orders(leg)
        if not leg.state.is_done:
            changes.move_leg(leg, LegTrigger.CANCEL)


def cancel_trade(changes: Changes) -> None:
    changes.move_trade(TradeTrigger.CANCEL)
    _cancel_remaining_legs(changes)


def _show_working_prices(changes: Changes, position: Position) -> None:
    """Keep each leg's displayed price equal to what it works at, announcing moves."""
    trade = changes.trade
    average = position.average_entry_price
    stop_leg = trade.stop_loss_leg
    if stop_leg is not None and trade.spec.stop_loss is not None:
        stop = stop_trigger(trade, average)
        if stop is not None and stop != stop_leg.price:
            moved = stop_leg.price is not None
            stop_leg.price = stop
            if moved:
                changes.emit(EventType.STOP_MOVED, leg_id=stop_leg.id, price=stop)
            else:
                changes.dirty = True
    for plan in plan_steps(trade, position):
        leg = plan.leg
        if plan.target is not None and plan.target != leg.price:
            moved = leg.price is not None
            leg.price = plan.target
            if moved:
                changes.emit(EventType.TARGET_MOVED, leg_id=leg.id, price=plan.target)
            else:
                changes.dirty = True
        if leg.amount != plan.allocation:
            leg.amount = plan.allocation
            changes.dirty = True
