"""The working set of one decision: the trade being changed, and the events and intents
that change produces. Every state change goes through `move_trade` / `move_leg`, which
apply the transition tables and record the event."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from smarttrade.domain.fsm import (
    LEG_TRANSITIONS,
    TRADE_TRANSITIONS,
    LegTrigger,
    TradeTrigger,
    transition,
)
from smarttrade.domain.messages import CancelOrder, Event, EventType, Intent, PlaceOrder
from smarttrade.domain.model import Leg, Order, SmartTrade
from smarttrade.domain.values import OrderStatus, OrderType


class Changes:
    def __init__(self, trade: SmartTrade, at: datetime) -> None:
        self.trade = trade
        self.at = at
        self.events: list[Event] = []
        self.intents: list[Intent] = []
        self.dirty = False  # a persistent fact changed without an event (trailing extremes)

    @property
    def changed(self) -> bool:
        return self.dirty or bool(self.events) or bool(self.intents)

    def emit(self, type: EventType, **details: object) -> None:
        self.events.append(Event(type, self.at, **details))  # type: ignore[arg-type]

    def move_trade(self, trigger: TradeTrigger) -> None:
        trade = self.trade
        new = transition(TRADE_TRANSITIONS, "trade", trade.state, trigger)
        if new is trade.state:
            return
        trade.state = new
        if new.is_terminal:
            trade.ended_at = self.at
        self.emit(EventType.STATE_CHANGED, state=new)

    def move_leg(self, leg: Leg, trigger: LegTrigger, note: str = "") -> None:
        new = transition(LEG_TRANSITIONS, f"leg {leg.id}", leg.state, trigger)
        if note:
            leg.note = note
        if new is leg.state:
            return
        leg.state = new
        self.emit(EventType.LEG_STATE_CHANGED, leg_id=leg.id, leg_state=new, message=note)

    def set_error(self, message: str) -> None:
        if self.trade.last_error != message:
            self.trade.last_error = message
            self.emit(EventType.ERROR_CHANGED, message=message)

    def place(
        self, leg: Leg, type: OrderType, amount: Decimal, price: Decimal | None = None
    ) -> Order:
        """Record a new order on `leg` and the intent to send it, under a client order id
        that is unique for the trade's lifetime: `{trade}-{leg}-{generation}`."""
        trade = self.trade
        # Every rule passes sizes and prices already on the grid (so that comparing a live
        # order with the plan is exact); rounding again here only guards the venue.
        amount = trade.market.round_amount(amount)
        if price is not None:
            price = trade.market.round_price(price)
        side = trade.spec.side if leg.kind.is_entry_side else trade.spec.side.opposite
        # Futures: every exit only reduces the position; what opens or grows it sets the
        # symbol's leverage and margin mode first.
        reduce_only = trade.is_futures and not leg.kind.is_entry_side
        leverage = trade.spec.leverage if trade.is_futures and leg.kind.is_entry_side else None
        order = Order(
            client_order_id=f"{trade.id}-{leg.id}-{leg.generation}",
            side=side,
            type=type,
            amount=amount,
            price=price if type is OrderType.LIMIT else None,
            created_at=self.at,
            updated_at=self.at,
            reduce_only=reduce_only,
        )
        leg.generation += 1
        leg.orders.append(order)
        self.move_leg(leg, LegTrigger.PLACE)
        self.intents.append(
            PlaceOrder(
                client_order_id=order.client_order_id,
                leg_id=leg.id,
                symbol=trade.spec.symbol,
                side=side,
                type=type,
                amount=amount,
                price=order.price,
                reduce_only=reduce_only,
                leverage=leverage.value if leverage is not None else None,
                margin_mode=leverage.margin_mode if leverage is not None else None,
            )
        )
        return order

    def cancel(self, leg: Leg, order: Order) -> None:
        """Ask the venue to cancel a live order, once."""
        if order.cancel_requested or not order.status.is_live:
            return
        order.cancel_requested = True
        order.updated_at = self.at
        self.intents.append(CancelOrder(order.client_order_id, leg.id, self.trade.spec.symbol))

    def cancel_live_orders(self, leg: Leg) -> bool:
        """Cancel every live order of the leg; whether any is still live."""
        for order in leg.live_orders:
            self.cancel(leg, order)
        return bool(leg.live_orders)


def merged_status(current: OrderStatus, reported: OrderStatus) -> OrderStatus:
    """A final status never regresses; a fill that raced a cancel wins over the cancel."""
    if current is reported or reported is OrderStatus.PENDING:
        return current
    if reported is OrderStatus.UNKNOWN:
        return reported if current is OrderStatus.PENDING else current
    if current in (OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
        return current
    if current is OrderStatus.CANCELLED:
        # Real world possibility: reported cancelled, then found filled.
        return OrderStatus.FILLED if reported is OrderStatus.FILLED else current
    return reported
