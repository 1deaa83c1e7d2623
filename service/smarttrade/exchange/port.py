"""The Exchange port: what the engine needs from a venue, in the core's own types.

Adapters (ccxt for real venues, paper for the simulated one) implement `Exchange` and
translate every library error into the errors below, so nothing above them knows ccxt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Protocol

from smarttrade.domain.candles import Candle
from smarttrade.domain.market import Market
from smarttrade.domain.messages import PlaceOrder
from smarttrade.domain.spec import MarginMode, TriggerPrice
from smarttrade.domain.values import Balance, Fill, OrderStatus, OrderType, Side
from smarttrade.errors import Unavailable


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to send. `client_order_id` is deterministic, so a lost answer can be looked up."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None = None
    reduce_only: bool = False

    @classmethod
    def of(cls, intent: PlaceOrder) -> OrderRequest:
        """The order a trade's intent asks the venue for."""
        return cls(
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            amount=intent.amount,
            price=intent.price,
            reduce_only=intent.reduce_only,
        )


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What the venue says of one order now: status, cumulative fill and the fills themselves."""

    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    filled: Decimal
    fills: tuple[Fill, ...] = ()
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PositionReport:
    """What the venue says of one open position on a contract market (a linear perpetual):
    its side (BUY long, SELL short), size in base units (never negative), average entry
    price, leverage, margin mode, the liquidation price it computes (None when it reports
    none) and its unrealized PnL at the mark, in the quote (settle) currency."""

    symbol: str
    side: Side
    units: Decimal
    entry_price: Decimal
    leverage: Decimal
    margin_mode: MarginMode
    liquidation_price: Decimal | None
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last: Decimal
    at: datetime
    bid: Decimal | None = None  # None: the venue's answer had none
    ask: Decimal | None = None


class ExchangeError(Exception):
    """Base of every error an adapter raises. Messages never contain credentials."""


class RejectReason(Enum):
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INVALID_ORDER = "INVALID_ORDER"
    BAD_SYMBOL = "BAD_SYMBOL"
    AUTHENTICATION = "AUTHENTICATION"


class OrderRejected(ExchangeError):
    """The venue finally refused: retrying the same request cannot succeed."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TransientError(Unavailable, ExchangeError):
    """Network, venue unavailable, rate limited: retry later (after `retry_after` s, if set)."""

    reason = "EXCHANGE_UNAVAILABLE"


class RateLimited(TransientError):
    """The venue asked us to slow down; `retry_after` is the wait it asked for, when it said."""


class OutcomeUnknown(ExchangeError):
    """An order was sent but the answer was lost (timeout, 5xx): it may exist at the venue.

    Never re-send on this: look the order up by its client order id first.
    """


class AlreadyPlaced(ExchangeError):
    """The venue refused a client order id it already has (e.g. Binance -2010 "Duplicate order
    sent."): the order exists, so the request must be treated as accepted and looked up."""


class OrderNotFound(ExchangeError):
    """The venue has no order with that client order id (not yet visible, or never arrived)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a venue offers beyond the basics; decides streaming versus polling."""

    watch_ticker: bool = False
    watch_orders: bool = False
    futures: bool = False
    extra: Mapping[str, bool] = field(default_factory=dict)
    # An order the venue does not find was never placed and never will be: nothing is on
    # its way to it. A real venue may show an order late (its answer lost, its books
    # eventually consistent), so an order looked up and not found is only given up after a
    # grace; the paper venue's book is what it has stored, and an order it has not is gone.
    final_lookups: bool = False


class Exchange(Protocol):
    """One account on one venue."""

    @property
    def exchange_id(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def load_markets(self) -> Mapping[str, Market]:
        """All markets of the venue by unified symbol, with precision and limits."""
        ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_price(self, symbol: str, source: TriggerPrice) -> Decimal:
        """The venue's price of `symbol` by `source`: the last price, the best bid, the best
        ask or a perpetual's mark price. Raises ExchangeError when the venue gives none."""
        ...

    async def create_order(self, request: OrderRequest) -> OrderReport:
        """Send an order. Raises OrderRejected, TransientError (nothing was sent, or it was
        surely refused), OutcomeUnknown (it may exist) or AlreadyPlaced."""
        ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        """Cancel by client order id; returns the order's final report (it may have filled
        meanwhile). Raises OrderNotFound when the venue has no such order."""
        ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        """Look an order up by client order id, with its fills. Raises OrderNotFound."""
        ...

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]: ...

    async def fetch_balances(self) -> Mapping[str, Balance]: ...

    async def fetch_positions(self, symbol: str) -> Sequence[PositionReport]:
        """The open positions on `symbol`: at most one in one-way mode, none when flat or
        on a spot market (spot holds balances, not positions)."""
        ...

    async def prepare_symbol(
        self, symbol: str, leverage: Decimal | None, margin_mode: MarginMode | None
    ) -> None:
        """Set the account's leverage and margin mode on a contract market before an order
        opens or grows a position there (nothing on spot). Setting what is already set
        succeeds; a value the venue will not set raises OrderRejected."""
        ...

    def watch_ticker(self, symbol: str) -> AsyncIterator[Ticker]:
        """Last prices as they change: streamed where the venue can, polled otherwise."""
        ...

    def watch_orders(self, symbol: str) -> AsyncIterator[OrderReport]:
        """Order changes (status, fills) as they happen: streamed where the venue can, polled
        from the open orders otherwise."""
        ...

    async def close(self) -> None: ...


class PriceHistory(Protocol):
    """A venue's public price history (no credentials needed)."""

    async def load_markets(self) -> Mapping[str, Market]: ...

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> Sequence[Candle]:
        """Every candle of `symbol` starting in [start, end), oldest first, fetched in as
        many pages as the venue needs; `timeframe` is one of `candles.TIMEFRAMES`."""
        ...

    async def close(self) -> None: ...
