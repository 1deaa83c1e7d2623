"""What the service watches on every price and every second (DESIGN §2.1-§2.3): the entry's
condition and trailing, the stop loss (trailing, breakeven, timeout) and the trailing take
profit. Each watcher only records what it saw and what became due; `plan.converge` turns
that into orders.

Rules decided here where the spec is silent:
- A conditional entry's trigger is approached from the side the last price was on at
  creation (or at the last edit of the entry); a trigger equal to that price fires on the
  first tick.
- When the stop loss and the trailing take profit are both due on one tick, the stop wins
  (it is checked first), so the reason reads STOP_LOSS.
- The best price since the position opened is tracked while the stop trails (so a tick
  that moves nothing costs nothing); an edit that makes the stop trail starts it from the
  last price at the edit.
- A stop timeout counts from the first tick (or clock reading) seen beyond the trigger and
  fires at exactly `timeout` later; any tick back inside the trigger restarts it.
- The time limit fires at exactly `time_limit` after the position opened (the first
  entry-side fill, see `SmartTrade.opened_at`), on the clock or on any tick from then on.
  The stop loss is checked first: on the same tick, the reason reads STOP_LOSS.
- A stop-limit's fallback (issue 15) watches while CLOSING with the stop's limit order
  recorded: the time counts from when that order was recorded, the price distance from its
  limit price; either one makes the exit sell the rest at market.
"""

from __future__ import annotations

from decimal import Decimal

from smarttrade.domain import plan
from smarttrade.domain.changes import Changes
from smarttrade.domain.fsm import LegState, LegTrigger, TradeState
from smarttrade.domain.menu import exit_rests_as_limit
from smarttrade.domain.messages import EventType, PriceTicked, TimeElapsed
from smarttrade.domain.model import CloseReason, Leg, LegKind, Order, SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.prices import (
    at_or_before,
    at_or_beyond,
    best,
    offset,
    stop_trigger,
    take_profit_target,
    worst,
)
from smarttrade.domain.spec import EntryType, StopLossSpec
from smarttrade.domain.values import OrderType, plain


def on_price(changes: Changes, tick: PriceTicked) -> None:
    trade = changes.trade
    if trade.state.is_terminal:
        return
    trade.last_price = tick.price
    if trade.awaiting_price:
        trade.awaiting_price = False  # the current price is known again
        changes.dirty = True
    if trade.state is TradeState.PENDING:
        _watch_entry(changes, tick.price)
    elif trade.state is TradeState.ACTIVE:
        if trade.entry_leg.state is LegState.WAITING:
            _watch_entry(changes, tick.price)
        if not _watch_stop_loss(changes, tick.price) and not _watch_time_limit(changes):
            _watch_trailing_take_profit(changes, tick.price)
    elif trade.state is TradeState.CLOSING:
        _watch_stop_limit_fallback(changes, tick.price)


def on_time(changes: Changes, tick: TimeElapsed) -> None:
    if changes.trade.state is TradeState.ACTIVE:
        if not _watch_stop_loss(changes, None):
            _watch_time_limit(changes)
    elif changes.trade.state is TradeState.CLOSING:
        _watch_stop_limit_fallback(changes, None)


# ---- the entry ---------------------------------------------------------------------------


def start_entry(changes: Changes) -> None:
    """Arm the entry per its type: released at once, watched, or (SKIP) already held."""
    trade = changes.trade
    leg = trade.entry_leg
    spec = trade.spec.entry
    leg.released = leg.triggered = leg.trailing_active = leg.open_now = False
    leg.trailing_extreme = None
    leg.amount = None
    if spec.type is EntryType.SKIP:
        changes.move_leg(leg, LegTrigger.FILL, note="the coins were already held")
        return
    if spec.type is EntryType.CONDITIONAL:
        leg.price = spec.trigger_price
        if leg.state is not LegState.WAITING:
            changes.move_leg(leg, LegTrigger.ARM)
    elif spec.is_trailing:
        _activate_trailing_entry(changes, leg, trade.reference_price)
    else:
        leg.price = spec.limit_price
        leg.released = True


def _activate_trailing_entry(changes: Changes, leg: Leg, price: Decimal) -> None:
    leg.trailing_active = True
    leg.trailing_extreme = price
    if leg.state is not LegState.WAITING:
        changes.move_leg(leg, LegTrigger.ARM)
    changes.emit(EventType.TRAILING_ACTIVATED, leg_id=leg.id, price=price)


def _watch_entry(changes: Changes, price: Decimal) -> None:
    trade = changes.trade
    leg = trade.entry_leg
    spec = trade.spec.entry
    side = trade.spec.side
    if leg.released or leg.state.is_done:
        return
    if spec.type is EntryType.CONDITIONAL and not leg.triggered:
        assert spec.trigger_price is not None
        upward = spec.trigger_price >= trade.reference_price
        reached = price >= spec.trigger_price if upward else price <= spec.trigger_price
        if not reached:
            return
        leg.triggered = True
        changes.emit(EventType.PRICE_TRIGGERED, leg_id=leg.id, price=price)
        if spec.is_trailing:
            _activate_trailing_entry(changes, leg, price)
        else:
            leg.released = True
        return
    if leg.trailing_active and spec.trailing_percent is not None:
        assert leg.trailing_extreme is not None
        lowest = worst(side, leg.trailing_extreme, price)
        if lowest != leg.trailing_extreme:
            leg.trailing_extreme = lowest
            changes.dirty = True
        if at_or_beyond(side, price, offset(side, lowest, spec.trailing_percent)):
            leg.released = True
            changes.emit(EventType.PRICE_TRIGGERED, leg_id=leg.id, price=price)


# ---- the exits ---------------------------------------------------------------------------


def _watch_stop_loss(changes: Changes, price: Decimal | None) -> bool:
    """Trail, time and fire the stop; whether it fired. `price` None: time passed only."""
    trade = changes.trade
    leg = trade.stop_loss_leg
    spec = trade.spec.stop_loss
    if leg is None or spec is None or leg.state is not LegState.WAITING:
        return False
    side = trade.spec.side
    if price is not None and spec.trailing_percent is not None:
        extreme = price if leg.trailing_extreme is None else best(side, leg.trailing_extreme, price)
        if extreme != leg.trailing_extreme:
            leg.trailing_extreme = extreme
            changes.dirty = True
    trigger = stop_trigger(trade, position_of(trade).average_entry_price)
    last = price if price is not None else trade.last_price
    if trigger is None or last is None or not at_or_before(side, last, trigger):
        if leg.breach_since is not None:
            leg.breach_since = None
            changes.dirty = True
        return False
    if spec.timeout is not None:
        if leg.breach_since is None:
            leg.breach_since = changes.at
            changes.dirty = True
        if changes.at - leg.breach_since < spec.timeout:
            return False
    changes.emit(EventType.PRICE_TRIGGERED, leg_id=leg.id, price=last, message="stop loss")
    plan.start_exit(changes, leg, CloseReason.STOP_LOSS)
    return True


def _watch_time_limit(changes: Changes) -> bool:
    """Close at market once the position has been open for the time limit; whether it did."""
    trade = changes.trade
    due = trade.time_limit_at
    if due is None or changes.at < due:
        return False
    taken = sum(1 for leg in trade.legs if leg.id.startswith(TIME_LIMIT_LEG))
    leg_id = TIME_LIMIT_LEG if not taken else f"{TIME_LIMIT_LEG}{taken + 1}"
    leg = Leg(id=leg_id, kind=LegKind.CLOSE, state=LegState.IDLE, note="time limit reached")
    trade.legs.append(leg)
    plan.start_exit(changes, leg, CloseReason.TIME_LIMIT)
    return True


TIME_LIMIT_LEG = "time-limit"


def stop_limit_fallback(trade: SmartTrade) -> tuple[Order, StopLossSpec] | None:
    """While a stop-limit rests as the exit with a fallback set: its first limit order (the
    fallback counts from it) and the stop's settings."""
    stop = trade.spec.stop_loss
    if stop is None or not stop.has_fallback or not exit_rests_as_limit(trade):
        return None
    assert trade.exit_leg_id is not None
    orders = [o for o in trade.leg(trade.exit_leg_id).orders if o.type is OrderType.LIMIT]
    if not orders or orders[0].price is None:
        return None  # not placed yet: the take-profit orders' cancels are in flight
    return orders[0], stop


def fallback_level(trade: SmartTrade, order: Order, stop: StopLossSpec) -> Decimal | None:
    """The price past the stop's limit at which it falls back to market (BUY: below)."""
    if stop.fallback_percent is None or order.price is None:
        return None
    return offset(trade.spec.side, order.price, -stop.fallback_percent)


def _watch_stop_limit_fallback(changes: Changes, price: Decimal | None) -> None:
    trade = changes.trade
    found = stop_limit_fallback(trade)
    if found is None:
        return
    order, stop = found
    why = ""
    if stop.fallback_after is not None and changes.at >= order.created_at + stop.fallback_after:
        why = f"unfilled after {int(stop.fallback_after.total_seconds())} s"
    level = fallback_level(trade, order, stop)
    last = price if price is not None else trade.last_price
    percent = stop.fallback_percent
    if (
        not why
        and level is not None
        and percent is not None
        and last is not None
        and at_or_before(trade.spec.side, last, level)
    ):
        why = f"the price ran {plain(percent)}% past the limit"
    if not why:
        return
    assert trade.exit_leg_id is not None
    leg = trade.leg(trade.exit_leg_id)
    leg.at_market = True
    changes.emit(
        EventType.PRICE_TRIGGERED,
        leg_id=leg.id,
        price=last,
        message=f"stop-limit falls back to market: {why}",
    )


def _watch_trailing_take_profit(changes: Changes, price: Decimal) -> None:
    trade = changes.trade
    trailing = trade.waiting_trailing_step()
    if trailing is None:
        return
    leg, spec, trailing_percent = trailing
    side = trade.spec.side
    if not leg.trailing_active:
        target = take_profit_target(trade, spec, position_of(trade).average_entry_price)
        if target is None or not at_or_beyond(side, price, target):
            return
        leg.trailing_active = True
        leg.trailing_extreme = price
        changes.emit(EventType.TRAILING_ACTIVATED, leg_id=leg.id, price=price)
        return
    assert leg.trailing_extreme is not None
    highest = best(side, leg.trailing_extreme, price)
    if highest != leg.trailing_extreme:
        leg.trailing_extreme = highest
        changes.dirty = True
    if at_or_before(side, price, offset(side, highest, -trailing_percent)):
        changes.emit(EventType.PRICE_TRIGGERED, leg_id=leg.id, price=price, message="trailing")
        plan.start_exit(changes, leg, CloseReason.TAKE_PROFIT)
