"""Which `Exchange` serves an account, and the markets and prices of each venue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal

from smarttrade.domain.account import PAPER, ExchangeAccount
from smarttrade.domain.market import Market
from smarttrade.domain.spec import MarginMode, TriggerPrice
from smarttrade.domain.values import Balance
from smarttrade.errors import PreconditionFailed, Unavailable
from smarttrade.exchange.paper import PaperVenue
from smarttrade.exchange.port import (
    Capabilities,
    Exchange,
    OrderRejected,
    OrderReport,
    OrderRequest,
    PositionReport,
    Ticker,
    TransientError,
)

log = logging.getLogger(__name__)
# How long an adapter replaced by new credentials stays open for the calls it is making.
RETIRE_AFTER = 30.0

# Builds the adapter of a real venue for an account (credentials are unsealed inside).
ExchangeFactory = Callable[[ExchangeAccount], Exchange]


def paper_feed(tenant_id: str) -> str:
    """The paper venue's prices are each tenant's own (its sandbox)."""
    return f"{PAPER}/{tenant_id}"


def price_feed_of(account: ExchangeAccount, source: TriggerPrice = TriggerPrice.LAST) -> str:
    """Trades on the same venue share its public prices: the feed is the venue (and which of
    its prices: `binance@bid`), not the account. The paper venue has no order book: its
    bid, ask and mark are its one price, so every paper trade of a tenant shares one feed."""
    if account.is_paper:
        return paper_feed(account.tenant_id)
    if source is TriggerPrice.LAST:
        return account.exchange
    return f"{account.exchange}@{source.value.lower()}"


def source_of(feed: str) -> TriggerPrice:
    """Which price a feed carries (see `price_feed_of`)."""
    _, _, source = feed.partition("@")
    return TriggerPrice(source.upper()) if source else TriggerPrice.LAST


class AccountExchange:
    """A real venue's adapter for one account, built again when the account's credentials
    change (UpdateExchangeAccount): whoever holds it (a trade's runner, a price or order
    watch) makes its next call with the new ones. A stream already open goes on with the
    adapter it was opened on until it ends; the next one opens on the new adapter."""

    def __init__(self, adapter: Exchange, account: ExchangeAccount) -> None:
        self._adapter = adapter
        self.tenant_id = account.tenant_id
        self.sealed = account.sealed_credentials  # the credentials it was built with
        # Set when the account's shard comes back to this replica: the credentials may
        # have been rotated elsewhere meanwhile, so the next use compares them.
        self.recheck = False

    def replace(self, adapter: Exchange, account: ExchangeAccount) -> Exchange:
        """Use `adapter` (built with `account`'s credentials) from now on; the one it
        replaces, for the caller to close."""
        old, self._adapter, self.sealed = self._adapter, adapter, account.sealed_credentials
        return old

    @property
    def exchange_id(self) -> str:
        return self._adapter.exchange_id

    @property
    def capabilities(self) -> Capabilities:
        return self._adapter.capabilities

    async def load_markets(self) -> Mapping[str, Market]:
        return await self._adapter.load_markets()

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return await self._adapter.fetch_ticker(symbol)

    async def fetch_price(self, symbol: str, source: TriggerPrice) -> Decimal:
        return await self._adapter.fetch_price(symbol, source)

    async def create_order(self, request: OrderRequest) -> OrderReport:
        return await self._adapter.create_order(request)

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        return await self._adapter.cancel_order(symbol, client_order_id)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        return await self._adapter.fetch_order(symbol, client_order_id)

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]:
        return await self._adapter.fetch_open_orders(symbol)

    async def fetch_balances(self) -> Mapping[str, Balance]:
        return await self._adapter.fetch_balances()

    async def fetch_positions(self, symbol: str) -> Sequence[PositionReport]:
        return await self._adapter.fetch_positions(symbol)

    async def prepare_symbol(
        self, symbol: str, leverage: Decimal | None, margin_mode: MarginMode | None
    ) -> None:
        await self._adapter.prepare_symbol(symbol, leverage, margin_mode)

    def watch_ticker(self, symbol: str) -> AsyncIterator[Ticker]:
        return self._adapter.watch_ticker(symbol)

    def watch_orders(self, symbol: str) -> AsyncIterator[OrderReport]:
        return self._adapter.watch_orders(symbol)

    async def close(self) -> None:
        await self._adapter.close()


class Venues:
    def __init__(
        self,
        paper: PaperVenue,
        real: ExchangeFactory | None = None,
        paper_prices: Exchange | None = None,
    ) -> None:
        self.paper = paper
        self._real = real
        self.paper_prices = paper_prices  # a real venue's public prices for paper trading
        self._exchanges: dict[str, Exchange] = {}
        self._markets: dict[str, Mapping[str, Market]] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def exchange(self, account: ExchangeAccount) -> Exchange:
        """The account's adapter. After `recheck_tenants`, one built with other credentials
        than `account` (read afresh) has is built again first."""
        exchange = self._exchanges.get(account.id)
        if isinstance(exchange, AccountExchange) and exchange.recheck:
            exchange.recheck = False
            if exchange.sealed != account.sealed_credentials:
                self.credentials_changed(account)
        if exchange is None:
            if account.is_paper:
                exchange = self.paper.exchange(
                    account.tenant_id, account.id, account.paper_settings
                )
            elif self._real is None:
                raise PreconditionFailed(
                    "EXCHANGE_NOT_SUPPORTED", f"exchange {account.exchange!r} is not available"
                )
            else:
                exchange = AccountExchange(self._real(account), account)
            self._exchanges[account.id] = exchange
        return exchange

    def recheck_tenants(self, tenants: Callable[[str], bool]) -> None:
        """The `tenants`' shard comes back to this replica, their accounts read afresh: the
        next use of each of their adapters compares its credentials with the account's (a
        rotation made on another replica meanwhile), so no trade runs on revoked keys."""
        for exchange in self._exchanges.values():
            if isinstance(exchange, AccountExchange) and tenants(exchange.tenant_id):
                exchange.recheck = True

    def credentials_changed(self, account: ExchangeAccount) -> None:
        """The account's credentials were replaced: its adapter is built again with them,
        and the old one is closed once the calls it is making have had time to end."""
        exchange = self._exchanges.get(account.id)
        if not isinstance(exchange, AccountExchange) or self._real is None:
            return
        old = exchange.replace(self._real(account), account)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(old: Exchange) -> None:
        try:
            await asyncio.sleep(RETIRE_AFTER)
        finally:
            try:
                await old.close()
            except Exception:
                log.exception("closing the adapter replaced by new credentials")

    async def markets(self, account: ExchangeAccount) -> Mapping[str, Market]:
        feed = price_feed_of(account)
        markets = self._markets.get(feed)
        if markets is None:
            try:
                markets = await self.exchange(account).load_markets()
            except TransientError as error:
                raise _unavailable(account, error) from error
            except OrderRejected as error:
                raise _rejected(error) from error
            self._markets[feed] = markets
        return markets

    async def last_price(self, account: ExchangeAccount, symbol: str) -> Decimal:
        try:
            if account.is_paper and self.paper_prices is not None:
                known = self.paper.last_price(account.tenant_id, symbol)
                if known is None:  # the live feed starts with the first trade: seed it
                    return (await self.paper_prices.fetch_ticker(symbol)).last
            return (await self.exchange(account).fetch_ticker(symbol)).last
        except TransientError as error:
            raise _unavailable(account, error) from error
        except OrderRejected as error:
            raise PreconditionFailed("NO_MARKET_PRICE", str(error)) from error

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()  # closes its adapter now
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for exchange in self._exchanges.values():
            await exchange.close()
        self._exchanges.clear()
        if self.paper_prices is not None:
            await self.paper_prices.close()


def _unavailable(account: ExchangeAccount, error: TransientError) -> Unavailable:
    return Unavailable(
        f"{account.exchange}: {error}", error.retry_after, reason="EXCHANGE_UNAVAILABLE"
    )


def _rejected(error: OrderRejected) -> PreconditionFailed:
    """The venue refused (credentials, an unknown market): retrying cannot help."""
    return PreconditionFailed(
        "EXCHANGE_REJECTED", str(error), {"exchange_reason": error.reason.value}
    )
