"""Reconciliation: the venue's truth about the trades, fed through the same path as live
updates (crash-only: startup, the periodic sweep and Refresh all run this).

Per account and symbol, in this order:
1. The position: when the account no longer holds a tradable amount of the coins its BUY
   trades hold (sold by hand), those trades end CLOSED_EXTERNALLY and their orphan orders
   are cancelled; nothing is re-placed. Checked first, so that an order the trader cancelled
   on the venue before selling is not re-created meanwhile (for the same reason the engine
   starts its live price and order updates only after the startup sweep).
2. The orders: every order the trades believe open is compared with the venue's open
   orders; those that moved or left are looked up and the venue's reports applied. The
   engine's order poll runs the same comparison (`changed_orders`).
Then per venue and symbol, the price: the current last price goes through the trigger index
like any tick, so a stop crossed while the service was down fires at once, and only the
trades it concerns are loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.messages import ErrorRecorded, Input, PositionGone, PriceTicked
from smarttrade.domain.model import SmartTrade
from smarttrade.engine.venues import Venues, price_feed_of
from smarttrade.exchange.port import ExchangeError, OrderNotFound, OrderReport
from smarttrade.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What reconciliation needs of the engine: the live trades' groups, and the way in for
    what it finds (the same as for live updates)."""

    def groups(self) -> list[tuple[str, str]]:
        """(account, symbol) of every live trade."""
        ...

    def feeds(self) -> list[tuple[str, str]]:
        """(price feed, symbol) of every live trade."""
        ...

    def known_account(self, account_id: str) -> ExchangeAccount: ...

    def is_live(self, trade_id: str) -> bool: ...

    def loaded_trades(self, account_id: str, symbol: str) -> Iterable[SmartTrade]:
        """The live trades of a group that are loaded (possibly ahead of the store)."""
        ...

    async def submit(self, trade_id: str, input: Input) -> SmartTrade: ...

    async def on_order_reports(self, reports: Iterable[OrderReport]) -> None: ...

    async def on_price(self, feed: str, symbol: str, price: Decimal) -> None: ...


class Reconciler:
    def __init__(
        self,
        runtime: Runtime,
        venues: Venues,
        unit_of_work: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
    ) -> None:
        self._runtime = runtime
        self._venues = venues
        self._unit_of_work = unit_of_work
        self._clock = clock

    async def sweep(self) -> None:
        runtime = self._runtime
        for account_id, symbol in runtime.groups():
            await self.group(account_id, symbol)
        for feed, symbol in runtime.feeds():
            price = await self._current_price(feed, symbol)
            if price is not None:
                await runtime.on_price(feed, symbol, price)

    async def trade(self, trade: SmartTrade) -> None:
        """Refresh one trade: its account and symbol, then the price, for this trade."""
        await self.group(trade.account_id, trade.spec.symbol)
        if not self._runtime.is_live(trade.id):  # it ended on what the venue said
            return
        account = self._runtime.known_account(trade.account_id)
        try:
            ticker = await self._venues.exchange(account).fetch_ticker(trade.spec.symbol)
        except ExchangeError as error:
            log.warning("reconciling the price of %s: %s", trade.spec.symbol, error)
            return
        await self._runtime.submit(trade.id, PriceTicked(ticker.last, ticker.at))

    async def group(self, account_id: str, symbol: str) -> None:
        runtime = self._runtime
        account = runtime.known_account(account_id)
        exchange = self._venues.exchange(account)
        async with self._unit_of_work() as uow:
            holding = await uow.trades.holdings(account_id, symbol)
        if holding:
            try:
                balances = await exchange.fetch_balances()
                market = (await self._venues.markets(account))[symbol]
                price = (await exchange.fetch_ticker(symbol)).last
            except ExchangeError as error:
                log.warning("reconciling the balances of %s: %s", account_id, error)
            else:
                balance = balances.get(market.base)
                have = balance.total if balance is not None else Decimal(0)
                expected = sum((held for _, held in holding), Decimal(0))
                now = self._clock()
                if not market.is_tradable(market.round_amount(have), price):
                    for trade_id, _ in holding:
                        await runtime.submit(trade_id, PositionGone(have, now))
                elif have < expected:
                    message = (
                        f"the account holds {have} {market.base}, "
                        f"its trades on {symbol} expect {expected}"
                    )
                    for trade_id, _ in holding:
                        await runtime.submit(trade_id, ErrorRecorded(message, now))
        try:
            reports = await self.changed_orders(account, symbol)
        except ExchangeError as error:
            log.warning("reconciling the orders of %s on %s: %s", account_id, symbol, error)
            return
        await runtime.on_order_reports(reports)

    async def changed_orders(self, account: ExchangeAccount, symbol: str) -> list[OrderReport]:
        """What changed at the venue among the orders the trades believe open: those whose
        fill moved, and those that left the open orders (looked up for how they ended).
        Polling the open orders alone would miss an order that filled between two polls."""
        async with self._unit_of_work() as uow:
            believed = await uow.trades.believed_open_orders(account.id, symbol)
        for trade in self._runtime.loaded_trades(account.id, symbol):
            # A loaded trade may be ahead of the store by a commit.
            believed += [(o.client_order_id, o.filled) for o in trade.orders() if o.status.is_live]
        if not believed:
            return []
        exchange = self._venues.exchange(account)
        open_now = {r.client_order_id: r for r in await exchange.fetch_open_orders(symbol)}
        reports = []
        for client_order_id, filled in dict(believed).items():
            seen = open_now.get(client_order_id)
            if seen is not None and seen.filled == filled:
                continue
            try:
                reports.append(await exchange.fetch_order(symbol, client_order_id))
            except OrderNotFound:
                continue  # not visible (yet): the next poll asks again
        return reports

    async def _current_price(self, feed: str, symbol: str) -> Decimal | None:
        runtime = self._runtime
        for account_id, group_symbol in runtime.groups():
            if group_symbol != symbol:
                continue
            account = runtime.known_account(account_id)
            if price_feed_of(account) != feed:
                continue
            try:
                return (await self._venues.exchange(account).fetch_ticker(symbol)).last
            except ExchangeError as error:
                log.warning("reconciling the price of %s on %s: %s", symbol, feed, error)
                return None
        return None
