"""The paper venue as a product: simulated accounts on the matching book, persisted.

`PaperVenue` owns the one `PaperBook` of the service (prices are venue-wide, balances and
orders per paper account) and writes every change through `PaperStorage` before answering,
so paper accounts survive restarts like real ones. `PaperExchange` is the `Exchange` port for
one paper account.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from smarttrade.domain.market import Market
from smarttrade.exchange.paper_book import PaperBook, PaperOrder, PaperSettings
from smarttrade.exchange.port import (
    Balance,
    Capabilities,
    OrderRejected,
    OrderReport,
    OrderRequest,
    RejectReason,
    Ticker,
)

DEFAULT_BALANCES = {"USDT": Decimal(10000)}


@dataclass(frozen=True, slots=True)
class PaperChanges:
    """What one venue operation changed in one tenant's book, written before answering."""

    tenant_id: str
    balances: Mapping[str, Mapping[str, Balance]]  # account -> currency -> balance
    orders: Sequence[PaperOrder]
    prices: Mapping[str, tuple[Decimal, datetime]]


class PaperStorage(Protocol):
    async def load(self, venue: PaperVenue) -> None:
        """Put the stored prices, balances and orders into the venue's books."""
        ...

    async def save(self, changes: PaperChanges) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class PaperVenue:
    """One book per tenant: a tenant's sandbox prices move only that tenant's paper trades."""

    def __init__(
        self,
        markets: Iterable[Market],
        storage: PaperStorage,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._markets = tuple(markets)
        self._books: dict[str, PaperBook] = {}
        self._storage = storage
        self._clock = clock
        self._lock = asyncio.Lock()
        self._ticks: dict[tuple[str, str], asyncio.Condition] = {}

    async def start(self) -> None:
        await self._storage.load(self)

    def book(self, tenant_id: str) -> PaperBook:
        book = self._books.get(tenant_id)
        if book is None:
            book = self._books[tenant_id] = PaperBook(self._markets)
        return book

    def exchange(
        self, tenant_id: str, account_id: str, settings: PaperSettings | None
    ) -> PaperExchange:
        self.book(tenant_id).open_account(account_id, settings or PaperSettings())
        return PaperExchange(self, tenant_id, account_id)

    async def open_account(
        self,
        tenant_id: str,
        account_id: str,
        settings: PaperSettings,
        balances: Mapping[str, Decimal],
    ) -> None:
        async with self._lock:
            book = self.book(tenant_id)
            book.open_account(account_id, settings)
            for currency, amount in balances.items():
                book.set_balance(account_id, currency, amount)
            await self._save(tenant_id, [account_id], [])

    async def set_balances(
        self, tenant_id: str, account_id: str, totals: Mapping[str, Decimal]
    ) -> None:
        async with self._lock:
            book = self.book(tenant_id)
            for currency, amount in totals.items():
                book.set_balance(account_id, currency, amount)
            await self._save(tenant_id, [account_id], [])

    def balances(self, tenant_id: str, account_id: str) -> dict[str, Balance]:
        return self.book(tenant_id).balances(account_id)

    def last_price(self, tenant_id: str, symbol: str) -> Decimal | None:
        return self.book(tenant_id).prices.get(symbol)

    async def set_price(self, tenant_id: str, symbol: str, price: Decimal) -> list[PaperOrder]:
        """A tick: fill the resting orders it crosses and record it. Returns the orders that
        changed (the caller routes them to their trades)."""
        if price <= 0:
            raise OrderRejected(RejectReason.INVALID_ORDER, "a price must be greater than 0")
        async with self._lock:
            at = self._clock()
            changed = self.book(tenant_id).tick(symbol, price, at)
            accounts = [order.account_id for order in changed]
            await self._save(tenant_id, accounts, changed, {symbol: (price, at)})
        condition = self._ticks.get((tenant_id, symbol))
        if condition is not None:
            async with condition:
                condition.notify_all()
        return changed

    async def run(
        self, tenant_id: str, account_id: str, operation: Callable[[datetime], OrderReport]
    ) -> OrderReport:
        """Apply one order operation to the book and write it through."""
        async with self._lock:
            report = operation(self._clock())
            order = self.book(tenant_id).order_record(account_id, report.client_order_id)
            await self._save(tenant_id, [account_id], [order])
            return report

    async def _save(
        self,
        tenant_id: str,
        account_ids: Iterable[str],
        orders: Sequence[PaperOrder],
        prices: Mapping[str, tuple[Decimal, datetime]] | None = None,
    ) -> None:
        book = self.book(tenant_id)
        balances = {account: book.balances(account) for account in set(account_ids)}
        await self._storage.save(PaperChanges(tenant_id, balances, orders, prices or {}))

    async def watch_ticker(self, tenant_id: str, symbol: str) -> AsyncIterator[Ticker]:
        condition = self._ticks.setdefault((tenant_id, symbol), asyncio.Condition())
        while True:
            async with condition:
                await condition.wait()
            price = self.last_price(tenant_id, symbol)
            if price is not None:
                yield Ticker(symbol, price, self._clock())


class PaperExchange:
    """The `Exchange` port for one paper account."""

    def __init__(self, venue: PaperVenue, tenant_id: str, account_id: str) -> None:
        self._venue = venue
        self._tenant_id = tenant_id
        self._account_id = account_id
        self._book = venue.book(tenant_id)

    @property
    def exchange_id(self) -> str:
        return "paper"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(watch_ticker=True, watch_orders=False)

    async def load_markets(self) -> Mapping[str, Market]:
        return self._book.markets

    async def fetch_ticker(self, symbol: str) -> Ticker:
        price = self._book.prices.get(symbol)
        if symbol not in self._book.markets:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"unknown symbol {symbol}")
        if price is None:
            raise OrderRejected(
                RejectReason.INVALID_ORDER,
                f"the paper venue has no price for {symbol} yet: push one with SetPaperPrice",
            )
        return Ticker(symbol, price, utc_now())

    async def create_order(self, request: OrderRequest) -> OrderReport:
        book, account = self._book, self._account_id
        return await self._venue.run(
            self._tenant_id, account, lambda at: book.place(account, request, at)
        )

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        book, account = self._book, self._account_id
        return await self._venue.run(
            self._tenant_id, account, lambda at: book.cancel(account, client_order_id, at)
        )

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        return self._book.order(self._account_id, client_order_id)

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]:
        return self._book.open_orders(self._account_id, symbol)

    async def fetch_balances(self) -> Mapping[str, Balance]:
        return self._book.balances(self._account_id)

    async def watch_ticker(self, symbol: str) -> AsyncIterator[Ticker]:
        async for ticker in self._venue.watch_ticker(self._tenant_id, symbol):
            yield ticker

    async def watch_orders(self, symbol: str) -> AsyncIterator[OrderReport]:
        """Paper fills are routed by the venue as they happen (see `PaperVenue.set_price`);
        there is nothing to poll."""
        await asyncio.Event().wait()
        nothing: tuple[OrderReport, ...] = ()
        for report in nothing:
            yield report

    async def close(self) -> None:
        return None
