"""`decide(trade, input) -> Decision`: the one function that changes a trade.

It works on a copy, so a refused input (an action not on the menu, an invalid edit) raises
and changes nothing. First the input's own effect is applied (a fact recorded, a price
watched, an action taken), then `plan.converge` brings the orders in line with the new state.

Rules decided here where the spec is silent:
- A tick's decision ends with the exits checking the tick again (see
  `_exits_see_the_price`): a level the decision moves onto the price acts at once.
- A terminal trade (CLOSED, CANCELLED, FAILED) absorbs every input: its state does not
  change and it sends nothing. It still records what the venue reports of its orders (a
  fill that raced the cancel, a cancel confirmed), so coins bought or sold are never hidden
  from the trader; the trade just no longer manages them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from smarttrade.domain import actions, plan, watch
from smarttrade.domain.changes import Changes, merged_status
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.fsm import LegState, LegTrigger, TradeState, TradeTrigger
from smarttrade.domain.futures import liquidation_reached
from smarttrade.domain.market import Market
from smarttrade.domain.menu import require
from smarttrade.domain.messages import (
    ACTION_OF,
    AddFunds,
    Cancel,
    CloseAtMarket,
    CloseStep,
    Decision,
    Edit,
    ErrorRecorded,
    EventType,
    Input,
    OpenNow,
    OrderMissing,
    OrderReported,
    PositionGone,
    PositionSeen,
    PriceTicked,
    ReduceFunds,
    Refresh,
    Share,
    TimeElapsed,
)
from smarttrade.domain.model import CloseReason, Leg, LegKind, Order, SmartTrade
from smarttrade.domain.prices import at_or_before
from smarttrade.domain.spec import TradeSpec
from smarttrade.domain.validation import check_spec, futures_defaults, unsupported
from smarttrade.domain.values import Fill, OrderStatus, OrderType


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
    chosen_id: str = "",
) -> Decision:
    """A new trade from valid settings; raises `InvalidSpec` naming every bad field.
    `chosen_id`: the id of its resource name the caller chose, if any."""
    refused = unsupported(spec, market)
    if refused:
        raise InvalidSpec(refused)
    spec = futures_defaults(spec)
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
        chosen_id=chosen_id,
    )
    changes = Changes(trade, at)
    changes.emit(EventType.CREATED)
    watch.start_entry(changes)
    plan.converge(changes)
    return Decision(trade, tuple(changes.events), tuple(changes.intents), persist=True)


def decide(trade: SmartTrade, input: Input) -> Decision:
    action = ACTION_OF.get(type(input))
    if action is not None:
        require(trade, action)
    changes = Changes(trade.clone(), input.at)
    _HANDLERS[type(input)](changes, input)
    plan.converge(changes)
    if isinstance(input, (PriceTicked, *_LEVEL_SETTERS)):
        _exits_see_the_price(changes)
    new = changes.trade
    if changes.changed:
        new.version += 1
        new.updated_at = input.at
    return Decision(new, tuple(changes.events), tuple(changes.intents), changes.changed)


# The actions that set levels: one the last price has already reached acts at once (an
# action is decided at the current price: the shell shows the trade the latest price first).
_LEVEL_SETTERS = (Edit, AddFunds, ReduceFunds)


def _exits_see_the_price(changes: Changes) -> None:
    """After a tick (or an action that sets levels), an ACTIVE trade's exits check the price
    again: the decision may have moved a level onto it (breakeven after a step filled on
    this tick, an edited trailing target already reached), and such a level must not wait
    for another tick, which may never come. (Not after venue reports: the last price may be
    older than what the venue already did. A position opened by a tick's own entry order
    sees that tick again from the runner.)"""
    trade = changes.trade
    if trade.state is TradeState.ACTIVE and trade.last_price is not None:
        watch.on_price(changes, PriceTicked(trade.last_price, changes.at))
        plan.converge(changes)


# ---- venue facts -------------------------------------------------------------------------


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
    if new_fills and not changes.trade.state.is_terminal and not _price_seen(changes, order):
        changes.trade.awaiting_price = True
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


def _price_seen(changes: Changes, order: Order) -> bool:
    """Whether the trade has seen a price at which the venue could fill `order`: a market
    order went out at the last price; a resting limit fills only once the price crosses it,
    and the tick that did so may reach the trade after the venue's report of the fill."""
    last = changes.trade.last_price
    if order.type is not OrderType.LIMIT or order.price is None:
        return True
    return last is not None and at_or_before(order.side, last, order.price)


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


LIQUIDATION_LEG = "liquidation"


def _on_position_gone(changes: Changes, gone: PositionGone) -> None:
    """The coins were sold outside the service, or the venue liquidated a futures position:
    stop, cancel what is left, re-place nothing."""
    trade = changes.trade
    if trade.state not in (TradeState.ACTIVE, TradeState.CLOSING):
        return
    liquidated = trade.is_futures and (gone.liquidated or liquidation_reached(trade, gone.price))
    if liquidated:
        trade.close_reason, note = CloseReason.LIQUIDATED, "the exchange liquidated the position"
    else:
        trade.close_reason, note = CloseReason.CLOSED_EXTERNALLY, "the position was sold outside"
    changes.move_trade(TradeTrigger.EXITED_EXTERNALLY)
    for leg in trade.legs:
        changes.cancel_live_orders(leg)
        if not leg.state.is_done:
            changes.move_leg(leg, LegTrigger.CANCEL, note=note)
    if liquidated and gone.liquidation is not None:
        _record_liquidation(changes, *gone.liquidation)


def _record_liquidation(changes: Changes, venue_order_id: str, fill: Fill) -> None:
    """The venue's liquidation order (its id `venue_order_id`) as the trade's exit, a leg
    of its own, FILLED: its position and realized PnL say what the liquidation took."""
    trade = changes.trade
    if trade.find_leg(LIQUIDATION_LEG) is not None:
        return
    leg = Leg(id=LIQUIDATION_LEG, kind=LegKind.CLOSE, state=LegState.FILLED, generation=1)
    leg.amount, leg.price = fill.amount, fill.price
    order = Order(
        client_order_id=f"{trade.id}-{leg.id}-0",  # the venue's own order: not ours to send
        side=trade.spec.side.opposite,
        type=OrderType.MARKET,
        amount=fill.amount,
        price=None,
        created_at=fill.at,
        updated_at=fill.at,
        status=OrderStatus.FILLED,
        exchange_order_id=venue_order_id,
        fills=[fill],
        reduce_only=True,
    )
    leg.orders.append(order)
    trade.legs.append(leg)
    ids = {"leg_id": leg.id, "client_order_id": order.client_order_id}
    changes.emit(EventType.ORDER_FILLED, price=fill.price, amount=fill.amount, **ids)


def _on_position_seen(changes: Changes, seen: PositionSeen) -> None:
    """The venue's liquidation price of a futures position, shown on the trade."""
    trade = changes.trade
    if trade.is_futures and trade.venue_liquidation_price != seen.liquidation_price:
        trade.venue_liquidation_price = seen.liquidation_price
        changes.dirty = True


_HANDLERS: dict[type, Callable[[Changes, Any], None]] = {
    PriceTicked: watch.on_price,
    TimeElapsed: watch.on_time,
    OrderReported: _on_order_report,
    OrderMissing: _on_order_missing,
    ErrorRecorded: _on_error,
    PositionGone: _on_position_gone,
    PositionSeen: _on_position_seen,
    Refresh: actions.on_refresh,
    Share: actions.on_share,
    Cancel: actions.on_cancel,
    CloseAtMarket: actions.on_close,
    CloseStep: actions.on_close_step,
    OpenNow: actions.on_open_now,
    AddFunds: actions.on_add_funds,
    ReduceFunds: actions.on_reduce_funds,
    Edit: actions.on_edit,
}
