"""The vocabulary of the core: enums and small value objects shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum


class Side(Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL: multiplies price differences so one formula serves both."""
        return 1 if self is Side.BUY else -1


class OrderType(Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(Enum):
    """An exchange order's status, plus the service's own PENDING and UNKNOWN."""

    PENDING = "PENDING"  # recorded as an intent, not yet confirmed by the exchange
    UNKNOWN = "UNKNOWN"  # sent, the answer was lost: being looked up by client order id
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_live(self) -> bool:
        """May still fill or still occupy balance on the exchange."""
        return self in (OrderStatus.PENDING, OrderStatus.UNKNOWN, OrderStatus.OPEN)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, as the exchange reported it. Fills are unique by `trade_id`."""

    trade_id: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    """What an account holds of one currency: free, and locked by open orders."""

    currency: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


def plain(value: Decimal) -> str:
    """A decimal as people write it in a message: "990", "0.00001", never "9.9E+2"."""
    return f"{value.normalize():f}"
