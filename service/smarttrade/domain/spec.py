"""What the trader asked for: the settings of a SmartTrade, as immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import Enum

from smarttrade.domain.values import OrderType, Side

MAX_TAKE_PROFIT_STEPS = 8


class EntryType(Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    CONDITIONAL = "CONDITIONAL"
    SKIP = "SKIP"


class MarketType(Enum):
    SPOT = "SPOT"
    LINEAR = "LINEAR"


class MarginMode(Enum):
    ISOLATED = "ISOLATED"
    CROSS = "CROSS"


class TriggerPrice(Enum):
    """Which of the venue's prices a trade's triggers watch (conditions, trailing, the stop):
    the last trade's price, the best bid, the best ask, or a perpetual's mark price."""

    LAST = "LAST"
    BID = "BID"
    ASK = "ASK"
    MARK = "MARK"


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """The entry. Size is exactly one of `units` (base) or `total` (quote)."""

    type: EntryType
    units: Decimal | None = None
    total: Decimal | None = None
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    order_type: OrderType = OrderType.MARKET  # CONDITIONAL: the order placed once triggered
    trailing_percent: Decimal | None = None
    average_price: Decimal | None = None  # SKIP: the price the coins were bought at

    @property
    def is_trailing(self) -> bool:
        return self.trailing_percent is not None

    @property
    def executes_as_limit(self) -> bool:
        """Whether the entry order, once due, is a limit order (else market)."""
        if self.type is EntryType.LIMIT:
            return True
        return self.type is EntryType.CONDITIONAL and self.order_type is OrderType.LIMIT


@dataclass(frozen=True, slots=True)
class TakeProfitStepSpec:
    """One step: a target (absolute `price` or `percent` beyond the average entry) and the share
    of the position it exits."""

    volume_percent: Decimal
    price: Decimal | None = None
    percent: Decimal | None = None
    trailing_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopLossSpec:
    """The stop loss: a trigger (absolute `price` or `percent` beyond the average entry on the
    losing side), the order it sends, and its refinements."""

    price: Decimal | None = None
    percent: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    timeout: timedelta | None = None
    trailing_percent: Decimal | None = None
    move_to_breakeven: bool = False
    # A LIMIT stop's way out when its limit order does not fill (it must never strand the
    # trade in CLOSING): after resting this long, or once the price runs this many percent
    # past the limit, the limit order is cancelled and the rest sold at market.
    fallback_after: timedelta | None = None
    fallback_percent: Decimal | None = None

    @property
    def has_fallback(self) -> bool:
        return self.fallback_after is not None or self.fallback_percent is not None


@dataclass(frozen=True, slots=True)
class LeverageSpec:
    market_type: MarketType = MarketType.SPOT
    value: Decimal | None = None
    margin_mode: MarginMode | None = None


@dataclass(frozen=True, slots=True)
class TradeSpec:
    """Everything the trader set. Immutable: an edit produces a new spec."""

    symbol: str
    side: Side
    entry: EntrySpec
    take_profit: tuple[TakeProfitStepSpec, ...] = ()
    stop_loss: StopLossSpec | None = None
    leverage: LeverageSpec = field(default_factory=LeverageSpec)
    note: str = ""
    # The caller's labels (domain.labels): settings like the note, so an edit changes them,
    # and kept in the trade's `spec` column, where a list's label filter reads them.
    labels: dict[str, str] = field(default_factory=dict)
    # Close at market once the position has been open this long (Hummingbot's time_limit).
    time_limit: timedelta | None = None
    trigger_price: TriggerPrice = TriggerPrice.LAST
