"""Which `Exchange` serves an account, and the markets and prices of each venue."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from smarttrade.domain.account import PAPER, ExchangeAccount
from smarttrade.domain.market import Market
from smarttrade.errors import PreconditionFailed, Unavailable
from smarttrade.exchange.paper import PaperVenue
from smarttrade.exchange.port import Exchange, OrderRejected, TransientError

# Builds the adapter of a real venue for an account (credentials are unsealed inside).
ExchangeFactory = Callable[[ExchangeAccount], Exchange]


def paper_feed(tenant_id: str) -> str:
    """The paper venue's prices are each tenant's own (its sandbox)."""
    return f"{PAPER}/{tenant_id}"


def price_feed_of(account: ExchangeAccount) -> str:
    """Trades on the same venue share its public prices: the feed is the venue, not the
    account."""
    return paper_feed(account.tenant_id) if account.is_paper else account.exchange


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

    def exchange(self, account: ExchangeAccount) -> Exchange:
        exchange = self._exchanges.get(account.id)
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
                exchange = self._real(account)
            self._exchanges[account.id] = exchange
        return exchange

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
