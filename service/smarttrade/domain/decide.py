"""`decide(trade, input) -> Decision`: the one function that changes a trade.

It works on a copy, so a refused input (an action not on the menu, an invalid edit) raises
and changes nothing. First the input's own effect is applied (a fact recorded, a price
watched, an action taken), then `plan.converge` brings the orders in line with the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from smarttrade.domain import plan
from smarttrade.domain.changes import Changes, merged_status
from smarttrade.domain.errors import ActionNotAllowed, FieldViolation, InvalidSpec
from smarttrade.domain.fsm import LegState, LegTrigger, TradeState, TradeTrigger
from smarttrade.domain.market import Market
from smarttrade.domain.menu import EDITABLE, EDITABLE_ROOTS, require, root_of
from smarttrade.domain.messages import (
    ACTION_OF,
    AddFunds,
    Cancel,
    CloseAtMarket,
    Decision,
    Edit,
    ErrorRecorded,
    EventType,
    Input,
    OpenNow,
    OrderMissing,
    OrderReported,
    PositionGone,
    PriceTicked,
    ReduceFunds,
    Refresh,
    TimeElapsed,
)
from smarttrade.domain.model import CloseReason, Leg, LegKind, SmartTrade
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
from smarttrade.domain.spec import EntryType, TradeSpec
from smarttrade.domain.validation import check_spec, entry_price_estimate
from smarttrade.domain.values import OrderStatus, OrderType

HUNDRED = Decimal(100)


def create(
    *,
    trade_id: str,
    tenant_id: str,
    account_id: str,
    exchange_id: str,
    spec: TradeSpec,
    market: Market,
    last_price: Decimal,
    at: datetime,
) -> Decision:
    """A new trade from valid settings; raises `InvalidSpec` naming every bad field."""
    check_spec(spec, market, last_price)
    legs = [Leg(id="entry", kind=LegKind.ENTRY, state=LegState.IDLE)]
    legs += [
        Leg(id=f"tp{step}", kind=LegKind.TAKE_PROFIT, state=LegState.IDLE, step=step)
        for step in range(1, len(spec.take_profit) + 1)
    ]
    if spec.stop_loss is not None:
        legs.append(Leg(id="sl", kind=LegKind.STOP_LOSS, state=LegState.IDLE))
    trade = SmartTrade(
        id=trade_id,
        tenant_id=tenant_id,
        account_id=account_id,
        exchange_id=exchange_id,
        spec=spec,
        market=market,
        state=TradeState.PENDING,
        created_at=at,
        updated_at=at,
        reference_price=last_price,
        last_price=last_price,
        legs=legs,
    )
    changes = Changes(trade, at)
    changes.emit(EventType.CREATED)
    _start_entry(changes)
    plan.converge(changes)
    return Decision(trade, tuple(changes.events), tuple(changes.intents), persist=True)


def decide(trade: SmartTrade, input: Input) -> Decision:
    action = ACTION_OF.get(type(input))
    if action is not None:
        require(trade, action)
    changes = Changes(trade.clone(), input.at)
    _HANDLERS[type(input)](changes, input)
    plan.converge(changes)
    new = changes.trade
    if changes.changed:
        new.version += 1
        new.updated_at = input.at
    return Decision(new, tuple(changes.events), tuple(changes.intents), changes.changed)


# ---- the entry ---------------------------------------------------------------------------


def _start_entry(changes: Changes) -> None:
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
    if price is not None:
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


def _watch_trailing_take_profit(changes: Changes, price: Decimal) -> None:
    trade = changes.trade
    steps = trade.take_profit_legs
    if not steps:
        return
    leg = steps[-1]
    spec = trade.spec.take_profit[leg.step - 1]
    if spec.trailing_percent is None or leg.state is not LegState.WAITING:
        return
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
    if at_or_before(side, price, offset(side, highest, -spec.trailing_percent)):
        changes.emit(EventType.PRICE_TRIGGERED, leg_id=leg.id, price=price, message="trailing")
        plan.start_exit(changes, leg, CloseReason.TAKE_PROFIT)


# ---- venue facts -------------------------------------------------------------------------


def _on_price(changes: Changes, tick: PriceTicked) -> None:
    trade = changes.trade
    if trade.state.is_terminal:
        return
    trade.last_price = tick.price
    if trade.state is TradeState.PENDING:
        _watch_entry(changes, tick.price)
    elif trade.state is TradeState.ACTIVE:
        if trade.entry_leg.state is LegState.WAITING:
            _watch_entry(changes, tick.price)
        if not _watch_stop_loss(changes, tick.price):
            _watch_trailing_take_profit(changes, tick.price)


def _on_time(changes: Changes, tick: TimeElapsed) -> None:
    if changes.trade.state is TradeState.ACTIVE:
        _watch_stop_loss(changes, None)


def _on_order_report(changes: Changes, report: OrderReported) -> None:
    found = changes.trade.find_order(report.client_order_id)
    if found is None:
        return
    leg, order = found
    known = {fill.trade_id for fill in order.fills}
    new_fills = [fill for fill in report.fills if fill.trade_id not in known]
    new_fills = list({fill.trade_id: fill for fill in new_fills}.values())
    status = merged_status(order.status, report.status)
    if report.exchange_order_id and order.exchange_order_id != report.exchange_order_id:
        order.exchange_order_id = report.exchange_order_id
        changes.dirty = True
    if not new_fills and status is order.status:
        return
    was = order.status
    order.fills.extend(new_fills)
    order.status = status
    order.updated_at = changes.at
    if report.error:
        order.error = report.error
    ids = {"leg_id": leg.id, "client_order_id": order.client_order_id}
    if was in (OrderStatus.PENDING, OrderStatus.UNKNOWN) and status not in (
        OrderStatus.REJECTED,
        OrderStatus.UNKNOWN,
    ):
        changes.emit(EventType.ORDER_PLACED, price=order.price, amount=order.amount, **ids)
    if new_fills:
        amount = sum(fill.amount for fill in new_fills)
        price = sum(fill.price * fill.amount for fill in new_fills) / amount
        done = status is OrderStatus.FILLED
        kind = EventType.ORDER_FILLED if done else EventType.ORDER_PARTIALLY_FILLED
        changes.emit(kind, price=price, amount=amount, **ids)
    if status is not was:
        if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            changes.emit(EventType.ORDER_CANCELLED, message=status.value.lower(), **ids)
        elif status is OrderStatus.REJECTED:
            changes.emit(EventType.ORDER_FAILED, message=report.error, **ids)
    if status is OrderStatus.FILLED and changes.trade.last_error:
        changes.set_error("")


def _on_order_missing(changes: Changes, missing: OrderMissing) -> None:
    found = changes.trade.find_order(missing.client_order_id)
    if found is None:
        return
    leg, order = found
    if order.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
        return
    order.status = OrderStatus.CANCELLED
    order.cancel_requested = True  # ours to replace, not an exchange-side cancellation
    order.error = "the exchange never received it"
    order.updated_at = changes.at
    changes.emit(
        EventType.ORDER_CANCELLED,
        leg_id=leg.id,
        client_order_id=order.client_order_id,
        message=order.error,
    )


def _on_error(changes: Changes, error: ErrorRecorded) -> None:
    changes.set_error(error.message)


def _on_position_gone(changes: Changes, gone: PositionGone) -> None:
    """The coins were sold outside the service: stop, cancel what is left, re-place nothing."""
    trade = changes.trade
    if trade.state not in (TradeState.ACTIVE, TradeState.CLOSING):
        return
    trade.close_reason = CloseReason.CLOSED_EXTERNALLY
    changes.move_trade(TradeTrigger.EXITED_EXTERNALLY)
    for leg in trade.legs:
        changes.cancel_live_orders(leg)
        if not leg.state.is_done:
            changes.move_leg(leg, LegTrigger.CANCEL, note="the position was sold outside")


# ---- the trader's actions ----------------------------------------------------------------


def _on_refresh(changes: Changes, refresh: Refresh) -> None:
    """Refresh changes nothing by itself: the shell syncs with the venue and reports facts."""


def _on_cancel(changes: Changes, cancel: Cancel) -> None:
    plan.cancel_trade(changes)


def _on_close(changes: Changes, close: CloseAtMarket) -> None:
    trade = changes.trade
    leg = Leg(id="close", kind=LegKind.CLOSE, state=LegState.IDLE)
    trade.legs.append(leg)
    plan.start_exit(changes, leg, CloseReason.CLOSED_AT_MARKET)


def _on_open_now(changes: Changes, open_now: OpenNow) -> None:
    trade = changes.trade
    leg = trade.entry_leg
    if leg.state.is_done or trade.spec.entry.type is EntryType.SKIP:
        raise ActionNotAllowed(trade.state, ACTION_OF[OpenNow], "the entry is already done")
    leg.open_now = leg.released = True
    changes.emit(EventType.SETTINGS_UPDATED, leg_id=leg.id, message="open now at market")


def _next_leg_id(trade: SmartTrade, prefix: str) -> str:
    count = sum(1 for leg in trade.legs if leg.id.startswith(prefix))
    return f"{prefix}{count + 1}"


def _on_add_funds(changes: Changes, add: AddFunds) -> None:
    trade = changes.trade
    violations = _size_violations(add.units, add.total, "units", "total")
    if add.order_type is OrderType.LIMIT:
        if add.limit_price is None or add.limit_price <= 0:
            violations.append(FieldViolation("limit_price", "a positive price is required"))
    elif add.limit_price is not None:
        violations.append(FieldViolation("limit_price", "must be empty for a MARKET order"))
    reference = add.limit_price or trade.last_price
    if not violations and reference:
        units = add.units if add.units is not None else (add.total or 0) / reference
        units = trade.market.round_amount(units)
        if not trade.market.is_tradable(units, reference):
            field = "units" if add.units is not None else "total"
            violations.append(FieldViolation(field, "is below the market minimum"))
    if violations:
        raise InvalidSpec(violations)
    leg = Leg(
        id=_next_leg_id(trade, "add"),
        kind=LegKind.ADD_FUNDS,
        state=LegState.IDLE,
        order_type=add.order_type,
        limit_price=add.limit_price,
        amount=trade.market.round_amount(add.units) if add.units is not None else None,
        total=add.total,
        price=add.limit_price,
    )
    trade.legs.append(leg)


def _on_reduce_funds(changes: Changes, reduce: ReduceFunds) -> None:
    trade = changes.trade
    violations = _size_violations(reduce.units, reduce.percent, "units", "percent")
    if reduce.percent is not None and reduce.percent >= HUNDRED:
        violations.append(
            FieldViolation("percent", "must be below 100; use Close at Market to sell all")
        )
    if violations:
        raise InvalidSpec(violations)
    held = position_of(trade).units_held
    wanted = reduce.units if reduce.units is not None else held * (reduce.percent or 0) / HUNDRED
    units = trade.market.round_amount(wanted)
    price = trade.last_price or position_of(trade).average_entry_price or Decimal(0)
    field = "units" if reduce.units is not None else "percent"
    market = trade.market
    if not market.is_tradable(units, price):
        raise InvalidSpec([FieldViolation(field, "is below the market minimum")])
    left = market.round_amount(held - units)
    if units >= held or not market.is_tradable(left, price):
        raise InvalidSpec(
            [FieldViolation(field, "would leave less than the market minimum; use Close")]
        )
    trade.legs.append(
        Leg(
            id=_next_leg_id(trade, "reduce"),
            kind=LegKind.REDUCE_FUNDS,
            state=LegState.IDLE,
            amount=units,
        )
    )


def _size_violations(
    first: Decimal | None, second: Decimal | None, first_name: str, second_name: str
) -> list[FieldViolation]:
    if (first is None) == (second is None):
        return [FieldViolation(first_name, f"exactly one of {first_name} or {second_name}")]
    value, name = (first, first_name) if first is not None else (second, second_name)
    if value is not None and value <= 0:
        return [FieldViolation(name, "must be greater than 0")]
    return []


def _on_edit(changes: Changes, edit: Edit) -> None:
    trade = changes.trade
    roots = {root_of(path) for path in edit.paths}
    unknown = sorted(root for root in roots if root not in EDITABLE_ROOTS)
    if unknown or not roots:
        raise InvalidSpec(
            [FieldViolation("update_mask", f"cannot edit {', '.join(unknown) or 'nothing'}")]
        )
    refused = sorted(roots - set(EDITABLE[trade.state]))
    if refused:
        raise ActionNotAllowed(
            trade.state, ACTION_OF[Edit], f"{', '.join(refused)} cannot change now"
        )
    new = edit.spec
    position = position_of(trade)
    average = position.average_entry_price
    reference = average if average is not None else trade.last_price or trade.reference_price
    if trade.state is TradeState.PENDING:
        reference = entry_price_estimate(new.entry, trade.last_price or trade.reference_price)
    check_spec(new, trade.market, reference)
    if "take_profit" in roots:
        _check_done_steps_kept(trade, new)
    old = trade.spec
    trade.spec = new
    if new.entry != old.entry:
        trade.reference_price = trade.last_price or trade.reference_price
        _start_entry(changes)
        changes.cancel_live_orders(trade.entry_leg)
    if new.take_profit != old.take_profit:
        _rebuild_take_profit_legs(changes, len(new.take_profit))
    if new.stop_loss != old.stop_loss:
        _rearm_stop_loss(changes)
    changes.emit(EventType.SETTINGS_UPDATED, message=", ".join(sorted(edit.paths)))


def _check_done_steps_kept(trade: SmartTrade, new: TradeSpec) -> None:
    violations = []
    for leg in trade.take_profit_legs:
        if not leg.filled:
            continue
        index = leg.step - 1
        if index >= len(new.take_profit) or new.take_profit[index] != trade.spec.take_profit[index]:
            violations.append(
                FieldViolation(
                    f"take_profit.steps[{index}]", "has already filled (in part) and cannot change"
                )
            )
    if violations:
        raise InvalidSpec(violations)


def _rebuild_take_profit_legs(changes: Changes, count: int) -> None:
    trade = changes.trade
    current = {leg.step: leg for leg in trade.take_profit_legs}
    for step, leg in current.items():
        if step > count:
            leg.step = 0
            changes.cancel_live_orders(leg)
            if not leg.state.is_done:
                changes.move_leg(leg, LegTrigger.CANCEL, note="removed by an edit")
    for step in range(1, count + 1):
        if step in current:
            leg = current[step]
            trailing = trade.spec.take_profit[step - 1].trailing_percent is not None
            if not trailing and leg.state is LegState.WAITING:
                changes.move_leg(leg, LegTrigger.DISARM)
            elif trailing and leg.state is LegState.IDLE and trade.state is TradeState.ACTIVE:
                changes.move_leg(leg, LegTrigger.ARM)
            continue
        taken = sum(1 for leg in trade.legs if leg.id.startswith(f"tp{step}"))
        leg_id = f"tp{step}" if not taken else f"tp{step}-{taken + 1}"
        leg = Leg(id=leg_id, kind=LegKind.TAKE_PROFIT, state=LegState.IDLE, step=step)
        trade.legs.append(leg)
        spec = trade.spec.take_profit[step - 1]
        if spec.trailing_percent is not None and trade.state is TradeState.ACTIVE:
            changes.move_leg(leg, LegTrigger.ARM)


def _rearm_stop_loss(changes: Changes) -> None:
    trade = changes.trade
    leg = trade.stop_loss_leg
    if trade.spec.stop_loss is None:
        if leg is not None and leg.state is LegState.WAITING:
            leg.breach_since = None
            changes.move_leg(leg, LegTrigger.DISARM, note="removed by an edit")
        return
    if leg is None:
        leg = Leg(id="sl", kind=LegKind.STOP_LOSS, state=LegState.IDLE)
        trade.legs.append(leg)
    leg.breach_since = None
    if trade.state is TradeState.ACTIVE and leg.state is LegState.IDLE:
        leg.trailing_extreme = leg.trailing_extreme or trade.last_price
        changes.move_leg(leg, LegTrigger.ARM)


_HANDLERS: dict[type, Callable[[Changes, Any], None]] = {
    PriceTicked: _on_price,
    TimeElapsed: _on_time,
    OrderReported: _on_order_report,
    OrderMissing: _on_order_missing,
    ErrorRecorded: _on_error,
    PositionGone: _on_position_gone,
    Refresh: _on_refresh,
    Cancel: _on_cancel,
    CloseAtMarket: _on_close,
    OpenNow: _on_open_now,
    AddFunds: _on_add_funds,
    ReduceFunds: _on_reduce_funds,
    Edit: _on_edit,
}
