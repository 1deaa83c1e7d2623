"""The SmartTrade aggregate: the trade, its legs and their exchange orders.

Plain data. Only `decide` (through `fsm.transition`) changes a state field; everything here is
either a fact reported by the venue or a value the core derived from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum

from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.market import Market
from smarttrade.domain.spec import MarketType, TakeProfitStepSpec, TradeSpec
from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side

ZERO = Decimal(0)


class LegKind(Enum):
    ENTRY = "ENTRY"
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"
    ADD_FUNDS = "ADD_FUNDS"
    REDUCE_FUNDS = "REDUCE_FUNDS"
    CLOSE = "CLOSE"

    @property
    def is_entry_side(self) -> bool:
        """Whether the leg's fills build the position (else they exit it)."""
        return self in (LegKind.ENTRY, LegKind.ADD_FUNDS)


class CloseReason(Enum):
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"
    CLOSED_AT_MARKET = "CLOSED_AT_MARKET"
    CLOSED_EXTERNALLY = "CLOSED_EXTERNALLY"
    LIQUIDATED = "LIQUIDATED"  # futures: the venue closed the position at its liquidation
    TIME_LIMIT = "TIME_LIMIT"  # the position was open for the trade's time limit


class Action(Enum):
    """The trade-management menu."""

    REFRESH = "REFRESH"
    ADD_FUNDS = "ADD_FUNDS"
    REDUCE_FUNDS = "REDUCE_FUNDS"
    OPEN_NOW = "OPEN_NOW"
    CLOSE_AT_MARKET = "CLOSE_AT_MARKET"
    EDIT = "EDIT"
    SHARE = "SHARE"
    CANCEL = "CANCEL"
    CLOSE_STEP = "CLOSE_STEP"  # one take-profit step at market now


@dataclass(slots=True)
class Order:
    """One exchange order, identified by the client order id the service chose for it."""

    client_order_id: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.PENDING
    exchange_order_id: str | None = None
    fills: list[Fill] = field(default_factory=list)
    error: str = ""
    cancel_requested: bool = False
    reduce_only: bool = False

    @property
    def filled(self) -> Decimal:
        return sum((f.amount for f in self.fills), ZERO)

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled if self.status.is_live else ZERO

    @property
    def average_price(self) -> Decimal | None:
        filled = self.filled
        if not filled:
            return None
        return sum((f.price * f.amount for f in self.fills), ZERO) / filled

    def clone(self) -> Order:
        return replace(self, fills=list(self.fills))


@dataclass(slots=True)
class Leg:
    """A part of the trade with its own state and orders.

    `amount` is what the leg should execute in base units (for take-profit steps it follows
    the position, see `take_profit.allocate`); `price` is the price it works at now (limit,
    target or stop trigger), kept for display and for change events.
    """

    id: str
    kind: LegKind
    state: LegState
    step: int = 0  # take-profit step (1-based); 0 for other legs or a step an edit removed
    amount: Decimal | None = None
    price: Decimal | None = None
    orders: list[Order] = field(default_factory=list)
    generation: int = 0  # counts the orders created, so client order ids never repeat
    # Watching, for conditions and trailing (facts about prices seen, not settings):
    released: bool = False  # entry: its order is due (no condition or trailing left to wait for)
    triggered: bool = False  # the conditional entry's trigger price was reached
    trailing_active: bool = False
    trailing_extreme: Decimal | None = None
    breach_since: datetime | None = None  # stop loss: beyond the trigger since, for the timeout
    # Stop loss, after an edit set a new level: trailing moves it again only from a price
    # beyond this extreme, and a breakeven move made before the edit is spent.
    trail_from: Decimal | None = None
    breakeven_spent: bool = False
    open_now: bool = False  # entry: execute the rest at market now (Open Now)
    # A take-profit step the trader closed at market, or a stop-limit that fell back to a
    # market order: its limit order goes, and what is left of it is sold at market.
    at_market: bool = False
    # Add Funds / Reduce Funds parameters:
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    total: Decimal | None = None  # Add Funds in quote: converted to units when placed
    note: str = ""

    @property
    def filled(self) -> Decimal:
        return sum((o.filled for o in self.orders), ZERO)

    @property
    def live_orders(self) -> list[Order]:
        return [o for o in self.orders if o.status.is_live]

    @property
    def live_remaining(self) -> Decimal:
        return sum((o.remaining for o in self.orders), ZERO)

    def order(self, client_order_id: str) -> Order | None:
        for order in self.orders:
            if order.client_order_id == client_order_id:
                return order
        return None

    def clone(self) -> Leg:
        return replace(self, orders=[o.clone() for o in self.orders])


@dataclass(slots=True)
class SmartTrade:
    """One position managed end to end.

    `reference_price` is the last price when the trade was created (or its entry last
    edited): the side a conditional trigger is approached from. `exit_leg_id` names the leg
    that carries the market exit while CLOSING.

    `awaiting_price`: a resting limit order of the trade filled at a price the trade has not
    seen (the venue's report came before the tick that filled it, or that tick was never
    delivered): `last_price` is from before the fill. What depends on the current price (the
    first extreme of a trailing stop, whether a remainder is dust) waits for the next tick,
    and the trade wakes on it (DESIGN §2.4).
    """

    id: str
    tenant_id: str
    account_id: str
    exchange_id: str
    spec: TradeSpec
    market: Market
    state: TradeState
    created_at: datetime
    updated_at: datetime
    reference_price: Decimal
    legs: list[Leg] = field(default_factory=list)
    close_reason: CloseReason | None = None
    ended_at: datetime | None = None
    last_price: Decimal | None = None
    last_error: str = ""
    exit_leg_id: str | None = None
    version: int = 0
    awaiting_price: bool = False
    # Futures: the liquidation price the venue last reported for the position (None: not
    # reported; isolated margin computes one meanwhile, see `futures.figures_of`).
    venue_liquidation_price: Decimal | None = None
    # The id the caller chose for the trade's resource name at creation (AIP-133), or ""
    # when the service chose it: then the name is the trade's own id.
    chosen_id: str = ""

    @property
    def resource_id(self) -> str:
        """The id of the trade's resource name, `smartTrades/{resource_id}`."""
        return self.chosen_id or self.id

    def leg(self, leg_id: str) -> Leg:
        for leg in self.legs:
            if leg.id == leg_id:
                return leg
        raise KeyError(leg_id)

    def find_leg(self, leg_id: str) -> Leg | None:
        for leg in self.legs:
            if leg.id == leg_id:
                return leg
        return None

    def legs_of(self, kind: LegKind) -> list[Leg]:
        return [leg for leg in self.legs if leg.kind is kind]

    @property
    def entry_leg(self) -> Leg:
        return self.legs[0]

    @property
    def take_profit_legs(self) -> list[Leg]:
        """The steps of the current plan, in order (legs an edit removed are left out)."""
        steps = [leg for leg in self.legs if leg.kind is LegKind.TAKE_PROFIT and leg.step]
        return sorted(steps, key=lambda leg: leg.step)

    def waiting_trailing_step(self) -> tuple[Leg, TakeProfitStepSpec, Decimal] | None:
        """The last take-profit step, its spec and how far it trails, while it trails and has
        not triggered."""
        steps = self.take_profit_legs
        if not steps:
            return None
        leg = steps[-1]
        spec = self.spec.take_profit[leg.step - 1]
        if spec.trailing_percent is None or leg.state is not LegState.WAITING or leg.at_market:
            return None
        return leg, spec, spec.trailing_percent

    @property
    def stop_loss_leg(self) -> Leg | None:
        return self.find_leg("sl")

    def find_order(self, client_order_id: str) -> tuple[Leg, Order] | None:
        for leg in self.legs:
            order = leg.order(client_order_id)
            if order is not None:
                return leg, order
        return None

    def orders(self) -> list[Order]:
        return [order for leg in self.legs for order in leg.orders]

    @property
    def opened_at(self) -> datetime | None:
        """When the position opened: the first entry-side fill (a SKIP entry: creation);
        None while nothing is bought."""
        times = [
            fill.at
            for leg in self.legs
            if leg.kind.is_entry_side
            for order in leg.orders
            for fill in order.fills
        ]
        if times:
            return min(times)
        if self.entry_leg.state is LegState.FILLED and not self.entry_leg.orders:
            return self.created_at  # SKIP: the coins were held at creation
        return None

    @property
    def time_limit_at(self) -> datetime | None:
        """When the time limit closes the position (None: no limit, or no position)."""
        opened = self.opened_at
        if self.spec.time_limit is None or opened is None:
            return None
        return opened + self.spec.time_limit

    @property
    def is_futures(self) -> bool:
        """A linear perpetual's position on margin (DESIGN §2: mirrored like any trade)."""
        return self.spec.leverage.market_type is not MarketType.SPOT

    @property
    def etag(self) -> str:
        """The version as an opaque tag (AIP-154): an action given a stale one is refused."""
        return f"v{self.version}"

    def clone(self) -> SmartTrade:
        return replace(self, legs=[leg.clone() for leg in self.legs])
