"""Reconciliation: the venue's truth about the trades, fed through the same path as live
updates (crash-only: startup, the periodic sweep and Refresh all run this).

Per account and symbol, in this order:
1. The position: when the account no longer holds a tradable amount of the coins its BUY
   trades hold (sold by hand), those trades end CLOSED_EXTERNALLY and their orphan orders
   are cancelled; nothing is re-placed. Checked first, so that an order the trader cancelled
   on the venue before selling is not re-created meanwhile (for the same reason the engine
   starts its live price and order updates only after the startup sweep).
2. The orders: every order the trades believe open is compared with the venue's open
   orders; those that moved or left are looked up and the venue's reports applied.
Then per venue and symbol, the price: the current last price goes through the trigger index
like any tick, so a stop crossed while the service was down fires at once, and only the
trades it concerns are loaded.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from smarttrade.domain.messages import ErrorRecorded, PositionGone, PriceTicked
from smarttrade.exchange.port import ExchangeError
from smarttrade.store.reads import holdings

if TYPE_CHECKING:
    from smarttrade.engine.engine import Engine
    from smarttrade.engine.runner import TradeRunner

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def sweep(self) -> None:
        engine = self._engine
        for account_id, symbol in engine.groups():
            await self.group(account_id, symbol)
        for feed, symbol in engine.feeds():
            price = await self._current_price(feed, symbol)
            if price is not None:
                await engine.on_price(feed, symbol, price)

    async def trade(self, runner: TradeRunner) -> None:
        """Refresh one trade: its account and symbol, then the price, for this trade."""
        trade = runner.trade
        await self.group(trade.account_id, trade.spec.symbol)
        if runner.trade.state.is_terminal:
            return
        account = self._engine.known_account(trade.account_id)
        try:
            ticker = await self._engine.venues.exchange(account).fetch_ticker(trade.spec.symbol)
        except ExchangeError as error:
            log.warning("reconciling the price of %s: %s", trade.spec.symbol, error)
            return
        await runner.submit(PriceTicked(ticker.last, ticker.at))

    async def group(self, account_id: str, symbol: str) -> None:
        engine = self._engine
        account = engine.known_account(account_id)
        exchange = engine.venues.exchange(account)
        async with engine.store.engine.connect() as connection:
            holding = await holdings(connection, account_id, symbol)
        if holding:
            try:
                balances = await exchange.fetch_balances()
                market = (await engine.venues.markets(account))[symbol]
                price = (await exchange.fetch_ticker(symbol)).last
            except ExchangeError as error:
                log.warning("reconciling the balances of %s: %s", account_id, error)
            else:
                balance = balances.get(market.base)
                have = balance.total if balance is not None else Decimal(0)
                expected = sum((held for _, held in holding), Decimal(0))
                now = engine.clock()
                if not market.is_tradable(market.round_amount(have), price):
                    for trade_id, _ in holding:
                        await engine.submit(trade_id, PositionGone(have, now))
                elif have < expected:
                    message = (
                        f"the account holds {have} {market.base}, "
                        f"its trades on {symbol} expect {expected}"
                    )
                    for trade_id, _ in holding:
                        await engine.submit(trade_id, ErrorRecorded(message, now))
        try:
            reports = await engine.poll_orders(account, symbol)
        except ExchangeError as error:
            log.warning("reconciling the orders of %s on %s: %s", account_id, symbol, error)
            return
        await engine.on_order_reports(reports)

    async def _current_price(self, feed: str, symbol: str) -> Decimal | None:
        engine = self._engine
        members = [m for m in engine.groups() if m[1] == symbol]
        for account_id, _ in members:
            account = engine.known_account(account_id)
            if engine.feed_of(account) != feed:
                continue
            try:
                return (await engine.venues.exchange(account).fetch_ticker(symbol)).last
            except ExchangeError as error:
                log.warning("reconciling the price of %s on %s: %s", symbol, feed, error)
                return None
        return None
