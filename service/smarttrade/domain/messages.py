"""What goes into the core (inputs) and what comes out (events, intents, the decision).

Inputs are either venue facts, past tense (`OrderReported`, `PriceTicked`), or the trader's
commands, imperative (`CloseAtMarket`). Events are immutable facts, past tense. Intents are
what the shell must do next; each concerns an order the trade already records, under a
deterministic client order id, so that persisting the decision before acting is enough to
never place an order twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.model import Action, SmartTrade
from smarttrade.domain.spec import MarginMode, TradeSpec
from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side

# ---- inputs: venue facts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceTicked:
    """A new last price of the trade's symbol (it may equal the previous one)."""

    price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class TimeElapsed:
    """The clock reached `at` with no new price (completes stop-loss timeouts)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class OrderReported:
    """What the venue says of one of the trade's orders: its status and (all or new) fills.

    Reports may repeat and arrive out of order; fills are de-duplicated by trade id and a
    final status never regresses, except CANCELLED -> FILLED (a fill that raced the cancel).
    """

    client_order_id: str
    status: OrderStatus
    at: datetime
    fills: tuple[Fill, ...] = ()
    exchange_order_id: str | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class OrderMissing:
    """The venue confirmed it has no order with this client order id (it never arrived):
    the order is dropped and, if still needed, placed again under a new id."""

    client_order_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ErrorRecorded:
    """The shell could not make progress (a transient venue fault) and keeps retrying; an
    empty message clears the error."""

    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PositionGone:
    """Reconciliation found the position's coins gone from the account (sold by hand), or a
    futures position closed: by hand, or by the venue at its liquidation price
    (`liquidated`: the venue said so; else `price`, the price when it was found gone, at or
    past the trade's liquidation price says so)."""

    held_on_exchange: Decimal
    at: datetime
    price: Decimal | None = None
    liquidated: bool = False
    # The venue's order that liquidated it, with this trade's share of its fills as one
    # fill (the paper venue gives it): the trade counts it as its exit.
    liquidation: tuple[str, Fill] | None = None


@dataclass(frozen=True, slots=True)
class PositionSeen:
    """Reconciliation read a futures trade's position at the venue: the liquidation price
    it reports (None when it reports none)."""

    liquidation_price: Decimal | None
    at: datetime


# ---- inputs: the trader's actions --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refresh:
    at: datetime


@dataclass(frozen=True, slots=True)
class Cancel:
    at: datetime


@dataclass(frozen=True, slots=True)
class CloseAtMarket:
    at: datetime


@dataclass(frozen=True, slots=True)
class CloseStep:
    """Sell what is left of take-profit step `step` (1-based) at market now."""

    at: datetime
    step: int


@dataclass(frozen=True, slots=True)
class OpenNow:
    at: datetime


@dataclass(frozen=True, slots=True)
class Share:
    """Make a link with the trade's settings (see `share.shared_settings`); the trade itself
    does not change."""

    at: datetime


@dataclass(frozen=True, slots=True)
class AddFunds:
    """Another entry order; exactly one of `units` or `total`."""

    at: datetime
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    units: Decimal | None = None
    total: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReduceFunds:
    """Sell part of the position at market; exactly one of `units` or `percent` (of held)."""

    at: datetime
    units: Decimal | None = None
    percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the settings named by `paths` (update-mask paths) with those of `spec`."""

    at: datetime
    spec: TradeSpec
    paths: frozenset[str]


Input = (
    PriceTicked
    | TimeElapsed
    | OrderReported
    | OrderMissing
    | ErrorRecorded
    | PositionGone
    | PositionSeen
    | Refresh
    | Share
    | Cancel
    | CloseAtMarket
    | CloseStep
    | OpenNow
    | AddFunds
    | ReduceFunds
    | Edit
)

# An input made from the trade as its single writer has it when it applies it (an edit of
# some fields, merged with the trade's settings of that moment).
InputOf = Callable[[SmartTrade], Input]

ACTION_OF: dict[type, Action] = {
    Refresh: Action.REFRESH,
    Share: Action.SHARE,
    Cancel: Action.CANCEL,
    CloseAtMarket: Action.CLOSE_AT_MARKET,
    CloseStep: Action.CLOSE_STEP,
    OpenNow: Action.OPEN_NOW,
    AddFunds: Action.ADD_FUNDS,
    ReduceFunds: Action.REDUCE_FUNDS,
    Edit: Action.EDIT,
}

# ---- outputs -----------------------------------------------------------------------------


class EventType(Enum):
    CREATED = "CREATED"
    STATE_CHANGED = "STATE_CHANGED"
    LEG_STATE_CHANGED = "LEG_STATE_CHANGED"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_PARTIALLY_FILLED = "ORDER_PARTIALLY_FILLED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_FAILED = "ORDER_FAILED"
    TRAILING_ACTIVATED = "TRAILING_ACTIVATED"
    STOP_MOVED = "STOP_MOVED"
    PRICE_TRIGGERED = "PRICE_TRIGGERED"
    SETTINGS_UPDATED = "SETTINGS_UPDATED"
    ERROR_CHANGED = "ERROR_CHANGED"
    TARGET_MOVED = "TARGET_MOVED"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    at: datetime
    leg_id: str = ""
    client_order_id: str = ""
    state: TradeState | None = None
    leg_state: LegState | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Send the recorded order `client_order_id` to the venue."""

    client_order_id: str
    leg_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    reduce_only: bool = False
    # Futures, on an order that opens or grows the position: the leverage and margin mode
    # the symbol is set to at the venue first (idempotently).
    leverage: Decimal | None = None
    margin_mode: MarginMode | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel the order `client_order_id` at the venue."""

    client_order_id: str
    leg_id: str
    symbol: str


Intent = PlaceOrder | CancelOrder


@dataclass(frozen=True, slots=True)
class Decision:
    """The new trade, what happened, and what the shell must do: persist all three together
    (when `persist`), then carry out the intents. `persist` is false when the input changed
    nothing worth storing (a tick that moved no level), so ticks cost no write."""

    trade: SmartTrade
    events: tuple[Event, ...] = ()
    intents: tuple[Intent, ...] = ()
    persist: bool = True


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as recorded: with its sequence in the tenant's stream (DESIGN §2.8) and the
    trade as it was right after it."""

    sequence: int
    tenant_id: str
    trade: SmartTrade
    event: Event
