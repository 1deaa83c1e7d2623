"""The trader's actions from the trade-management menu (DESIGN §2.7).

`decide` has already checked the action is on the menu in the trade's state; a handler
raises `InvalidSpec` (naming the field) or `ActionNotAllowed` for what the menu cannot know,
and records the action's own effect. `plan.converge` then places and cancels the orders.

Rules decided here where the spec is silent:
- Reduce Funds takes `units` or `percent` of the units held, below 100%, and must leave a
  tradable remainder: selling everything is Close at Market.
- Add Funds in `total` is converted to units at its limit price, or at the last price for a
  market order, and must be tradable there.
- Open Now is refused (with the reason) when the entry is already done or was skipped.
- An edit replaces whole roots of the settings (`entry`, `take_profit`, `stop_loss`,
  `note`, `time_limit`); a take-profit step that has filled, even in part, cannot change or
  go.
- Close Step names a step of the current plan (1-based; another number is an invalid
  argument); a step done (filled, cancelled, failed) or already closing is refused with the
  reason, and so is one with nothing tradable left at the last price. The step's limit
  order is cancelled (a trailing step stops watching), and once the venue confirms, what
  is left of the step is sold at market; the other steps keep their allocation and orders.
  The step then counts as filled: a breakeven stop moves, and the last open step closed
  this way closes the trade as TAKE_PROFIT.
- Close at Market while CLOSING (a stop-limit resting unfilled): the close takes over the
  exit, the stop's limit order is cancelled and waited for, then the rest is sold at
  market; the close reason is CLOSED_AT_MARKET. Cancel while CLOSING cancels that limit
  order too and leaves what is held on the exchange, with no close reason.
"""

from __future__ import annotations

from decimal import Decimal

from smarttrade.domain import plan
from smarttrade.domain.changes import Changes
from smarttrade.domain.errors import ActionNotAllowed, FieldViolation, InvalidSpec
from smarttrade.domain.fsm import LegState, LegTrigger, TradeState
from smarttrade.domain.menu import ACTIONS, EDITABLE_ROOTS, editable_fields, root_of
from smarttrade.domain.messages import (
    ACTION_OF,
    AddFunds,
    Cancel,
    CloseAtMarket,
    CloseStep,
    Edit,
    EventType,
    OpenNow,
    ReduceFunds,
    Refresh,
    Share,
)
from smarttrade.domain.model import Action, CloseReason, Leg, LegKind, SmartTrade
from smarttrade.domain.position import exit_size, position_of
from smarttrade.domain.spec import EntryType, StopLossSpec, TakeProfitStepSpec, TradeSpec
from smarttrade.domain.take_profit import plan_steps
from smarttrade.domain.validation import OpenPosition, check_spec, entry_price_estimate
from smarttrade.domain.values import OrderType
from smarttrade.domain.watch import start_entry

HUNDRED = Decimal(100)


def on_refresh(changes: Changes, refresh: Refresh) -> None:
    """Refresh changes nothing by itself: the shell syncs with the venue and reports facts."""


def on_share(changes: Changes, share: Share) -> None:
    """Sharing reads the settings (`share.shared_settings`); the trade does not change."""


def on_cancel(changes: Changes, cancel: Cancel) -> None:
    changes.trade.close_reason = None  # an exit in flight is abandoned, not completed
    plan.cancel_trade(changes)


def on_close(changes: Changes, close: CloseAtMarket) -> None:
    trade = changes.trade
    leg_id = "close" if trade.find_leg("close") is None else _next_leg_id(trade, "close")
    leg = Leg(id=leg_id, kind=LegKind.CLOSE, state=LegState.IDLE)
    trade.legs.append(leg)
    plan.start_exit(changes, leg, CloseReason.CLOSED_AT_MARKET)


def on_close_step(changes: Changes, close: CloseStep) -> None:
    trade = changes.trade
    steps = {leg.step: leg for leg in trade.take_profit_legs}
    leg = steps.get(close.step)
    if leg is None:
        raise InvalidSpec(
            [FieldViolation("step", f"must be a take-profit step, 1 to {len(steps)}")]
        )
    action = ACTION_OF[CloseStep]
    if leg.state.is_done:
        state = leg.state.value.lower()
        raise ActionNotAllowed(trade.state, action, f"step {close.step} is already {state}")
    if leg.at_market:
        raise ActionNotAllowed(
            trade.state, action, f"step {close.step} is already closing at market"
        )
    position = position_of(trade)
    step = next(p for p in plan_steps(trade, position) if p.leg is leg)
    price = _reduce_price(trade)
    size = trade.market.round_amount(exit_size(trade, step.remaining, OrderType.MARKET))
    if not trade.market.is_tradable(size, price):
        raise ActionNotAllowed(
            trade.state, action, f"step {close.step} has nothing tradable left at market"
        )
    leg.at_market = True
    changes.emit(
        EventType.SETTINGS_UPDATED,
        leg_id=leg.id,
        amount=step.remaining,
        message=f"close take-profit step {close.step} at market",
    )


def on_open_now(changes: Changes, open_now: OpenNow) -> None:
    trade = changes.trade
    leg = trade.entry_leg
    if leg.state.is_done or trade.spec.entry.type is EntryType.SKIP:
        raise ActionNotAllowed(trade.state, ACTION_OF[OpenNow], "the entry is already done")
    leg.open_now = leg.released = True
    changes.emit(EventType.SETTINGS_UPDATED, leg_id=leg.id, message="open now at market")


def _next_leg_id(trade: SmartTrade, prefix: str) -> str:
    count = sum(1 for leg in trade.legs if leg.id.startswith(prefix))
    return f"{prefix}{count + 1}"


def on_add_funds(changes: Changes, add: AddFunds) -> None:
    trade = changes.trade
    market = trade.market
    violations = _size_violations(add.units, add.total, "units", "total")
    limit_price = market.round_price(add.limit_price) if add.limit_price is not None else None
    if add.order_type is OrderType.LIMIT:
        if limit_price is None or limit_price <= 0:
            violations.append(FieldViolation("limit_price", "a positive price is required"))
    elif add.limit_price is not None:
        violations.append(FieldViolation("limit_price", "must be empty for a MARKET order"))
    reference = limit_price or trade.last_price
    if not violations and reference:
        units = add.units if add.units is not None else (add.total or 0) / reference
        units = market.round_amount(units)
        if not market.is_tradable(units, reference):
            field = "units" if add.units is not None else "total"
            violations.append(FieldViolation(field, "is below the market minimum"))
    if violations:
        raise InvalidSpec(violations)
    leg = Leg(
        id=_next_leg_id(trade, "add"),
        kind=LegKind.ADD_FUNDS,
        state=LegState.IDLE,
        order_type=add.order_type,
        limit_price=limit_price,
        amount=trade.market.round_amount(add.units) if add.units is not None else None,
        total=add.total,
        price=limit_price,
    )
    trade.legs.append(leg)


def on_reduce_funds(changes: Changes, reduce: ReduceFunds) -> None:
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
    refusal = _reduce_refusal(trade, units)
    if refusal is not None:
        field = "units" if reduce.units is not None else "percent"
        raise InvalidSpec([FieldViolation(field, refusal)])
    trade.legs.append(
        Leg(
            id=_next_leg_id(trade, "reduce"),
            kind=LegKind.REDUCE_FUNDS,
            state=LegState.IDLE,
            amount=units,
        )
    )


def _reduce_price(trade: SmartTrade) -> Decimal:
    """The price a reduction's size is checked at: the last price, else the entry's."""
    return trade.last_price or position_of(trade).average_entry_price or Decimal(0)


def _reduce_refusal(trade: SmartTrade, units: Decimal) -> str | None:
    """Why Reduce Funds by `units` (on the amount grid) is refused now, or None."""
    held = position_of(trade).units_held
    market, price = trade.market, _reduce_price(trade)
    if not market.is_tradable(units, price):
        return "is below the market minimum"
    left = market.round_amount(held - units)
    if units >= held or not market.is_tradable(left, price):
        return "would leave less than the market minimum; use Close"
    return None


def reducible_units(trade: SmartTrade) -> Decimal | None:
    """The most Reduce Funds accepts now, in units of the base asset (3Commas'
    `reduce_funds_info`); None when it is not on the menu or no size is accepted. What must
    stay is the smallest tradable amount on the grid, so the answer is all that is held
    less that; it is checked with the same rule as the action itself."""
    if Action.REDUCE_FUNDS not in ACTIONS[trade.state]:
        return None
    market, price = trade.market, _reduce_price(trade)
    least = max(market.min_amount, market.min_cost / price if price > 0 else Decimal(0))
    must_stay = max(market.round_amount_up(least), market.amount_step)
    units = market.round_amount(position_of(trade).units_held - must_stay)
    return units if _reduce_refusal(trade, units) is None else None


def _size_violations(
    first: Decimal | None, second: Decimal | None, first_name: str, second_name: str
) -> list[FieldViolation]:
    if (first is None) == (second is None):
        return [FieldViolation(first_name, f"exactly one of {first_name} or {second_name}")]
    value, name = (first, first_name) if first is not None else (second, second_name)
    if value is not None and value <= 0:
        return [FieldViolation(name, "must be greater than 0")]
    return []


def on_edit(changes: Changes, edit: Edit) -> None:
    trade = changes.trade
    roots = {root_of(path) for path in edit.paths}
    unknown = sorted(root for root in roots if root not in EDITABLE_ROOTS)
    if unknown or not roots:
        raise InvalidSpec(
            [FieldViolation("update_mask", f"cannot edit {', '.join(unknown) or 'nothing'}")]
        )
    refused = sorted(roots - set(editable_fields(trade)))
    if refused:
        raise ActionNotAllowed(
            trade.state, ACTION_OF[Edit], f"{', '.join(refused)} cannot change now"
        )
    new = edit.spec
    average = position_of(trade).average_entry_price
    last = trade.last_price or trade.reference_price
    if trade.state is TradeState.ACTIVE and average is not None:
        check_spec(new, trade.market, last, OpenPosition(average, trade.last_price))
    else:
        check_spec(new, trade.market, entry_price_estimate(new.entry, last))
    if "take_profit" in roots:
        _check_done_steps_kept(trade, new)
    old = trade.spec
    trade.spec = new
    if new.entry != old.entry:
        trade.reference_price = trade.last_price or trade.reference_price
        start_entry(changes)
        changes.cancel_live_orders(trade.entry_leg)
    if new.take_profit != old.take_profit:
        _rebuild_take_profit_legs(changes, old.take_profit)
    if new.stop_loss != old.stop_loss:
        _rearm_stop_loss(changes, old.stop_loss)
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


def _rebuild_take_profit_legs(changes: Changes, old: tuple[TakeProfitStepSpec, ...]) -> None:
    """An edit replaces what is working (DESIGN §2.7): a changed step's order is cancelled
    (the plan re-places it at the new target and volume once the venue confirms), a step
    that now trails stops working as a limit and starts watching; a step done stays so."""
    trade = changes.trade
    new = trade.spec.take_profit
    current = {leg.step: leg for leg in trade.take_profit_legs}
    for step, leg in current.items():
        if step > len(new):
            leg.step = 0
            changes.cancel_live_orders(leg)
            if not leg.state.is_done:
                changes.move_leg(leg, LegTrigger.CANCEL, note="removed by an edit")
    for step in range(1, len(new) + 1):
        if step in current:
            leg = current[step]
            before = old[step - 1] if step <= len(old) else None
            if not leg.state.is_done and new[step - 1] != before:
                _replace_step(changes, leg, new[step - 1], before)
            continue
        taken = sum(1 for leg in trade.legs if leg.id.startswith(f"tp{step}"))
        leg_id = f"tp{step}" if not taken else f"tp{step}-{taken + 1}"
        leg = Leg(id=leg_id, kind=LegKind.TAKE_PROFIT, state=LegState.IDLE, step=step)
        trade.legs.append(leg)
        spec = trade.spec.take_profit[step - 1]
        if spec.trailing_percent is not None and trade.state is TradeState.ACTIVE:
            changes.move_leg(leg, LegTrigger.ARM)


def _replace_step(
    changes: Changes, leg: Leg, spec: TakeProfitStepSpec, before: TakeProfitStepSpec | None
) -> None:
    trade = changes.trade
    changes.cancel_live_orders(leg)
    trailing = spec.trailing_percent is not None
    moved = before is None or (before.price, before.percent, before.trailing_percent) != (
        spec.price,
        spec.percent,
        spec.trailing_percent,
    )
    if moved:  # a new target (or trail) is watched afresh
        leg.trailing_active = False
        leg.trailing_extreme = None
    if not trailing and leg.state is LegState.WAITING:
        changes.move_leg(leg, LegTrigger.DISARM)
    elif trailing and leg.state in _ARMABLE and trade.state is TradeState.ACTIVE:
        changes.move_leg(leg, LegTrigger.ARM)


_ARMABLE = (LegState.IDLE, LegState.ORDER_PLACED)


def _rearm_stop_loss(changes: Changes, old: StopLossSpec | None) -> None:
    """A new stop level (price or percent) is taken as given, also looser than where
    breakeven or trailing had moved the stop (DESIGN §2.7): a breakeven move already made is
    spent, and trailing moves the stop again only from a price beyond the extreme at the
    edit. An edit that makes the stop trail starts it from the last price at the edit."""
    trade = changes.trade
    leg = trade.stop_loss_leg
    new = trade.spec.stop_loss
    if new is None:
        if leg is not None and leg.state is LegState.WAITING:
            leg.breach_since = None
            changes.move_leg(leg, LegTrigger.DISARM, note="removed by an edit")
        return
    if leg is None:
        leg = Leg(id="sl", kind=LegKind.STOP_LOSS, state=LegState.IDLE)
        trade.legs.append(leg)
    leg.breach_since = None
    trailing = new.trailing_percent is not None
    was_trailing = old is not None and old.trailing_percent is not None
    # Trailing starts from the price at the edit (unless the trade awaits the price that
    # opened its position, which will start it).
    unknown = leg.trailing_extreme is None and not trade.awaiting_price
    if (trailing and not was_trailing) or unknown:
        leg.trailing_extreme = trade.last_price
    if old is None or (old.price, old.percent) != (new.price, new.percent):
        leg.trail_from = leg.trailing_extreme if trailing else None
        leg.breakeven_spent = any(s.state is LegState.FILLED for s in trade.take_profit_legs)
    if trade.state is TradeState.ACTIVE and leg.state is LegState.IDLE:
        changes.move_leg(leg, LegTrigger.ARM)
