"""The engine: every live trade's runner, and the routing of prices and venue reports.

Startup and recovery are one code path (crash-only): `start` loads every trade that is not
terminal, hands each its pending intents (looked up at the venue before anything is sent
again), reconciles its orders with the venue, and only then reports ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal

from smarttrade.domain.messages import Decision, Input, PriceTicked
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.values import OrderStatus
from smarttrade.engine.errors import NotFound
from smarttrade.engine.executor import Executor, reported
from smarttrade.engine.market_data import MarketData
from smarttrade.engine.reconcile import Reconciler
from smarttrade.engine.runner import TradeRunner
from smarttrade.engine.venues import Venues, price_feed_of
from smarttrade.exchange.port import OrderNotFound, OrderReport
from smarttrade.store.accounts import ExchangeAccount, all_accounts, get_account
from smarttrade.store.idempotency import Claim
from smarttrade.store.reads import load_live_trades, pending_intents
from smarttrade.store.unit_of_work import Store

log = logging.getLogger(__name__)

FeedKey = tuple[str, str]  # (price feed, symbol)
STARTUP_CONCURRENCY = 64


def utc_now() -> datetime:
    return datetime.now(UTC)


def trade_id_of(client_order_id: str) -> str:
    """Client order ids are `{trade}-{leg}-{generation}`: the trade is the first part."""
    return client_order_id.split("-", 1)[0]


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        venues: Venues,
        executor: Executor,
        clock: Callable[[], datetime] = utc_now,
        order_poll_interval: float = 1.0,
        reconcile_interval: float = 30.0,
    ) -> None:
        self.store = store
        self._order_poll_interval = order_poll_interval
        self.venues = venues
        self._executor = executor
        self._clock = clock
        self._runners: dict[str, TradeRunner] = {}
        self._feeds: dict[FeedKey, set[str]] = defaultdict(set)
        self._accounts: dict[str, ExchangeAccount] = {}
        self.market_data = MarketData(self.on_price, self.on_order_reports)
        self.reconciler = Reconciler(venues, lambda account_id: self._accounts[account_id], clock)
        self._reconcile_interval = reconcile_interval
        self._sweeping: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        async with self.store.engine.connect() as connection:
            for account in await all_accounts(connection):
                self._accounts[account.id] = account
            trades = await load_live_trades(connection)
            intents = {trade.id: await pending_intents(connection, trade.id) for trade in trades}
        gate = asyncio.Semaphore(STARTUP_CONCURRENCY)

        async def resume(trade: SmartTrade) -> None:
            async with gate:
                runner = await self._runner_for(trade)
                await runner.start(recovered=intents[trade.id])

        await asyncio.gather(*(resume(trade) for trade in trades))
        await self.reconciler.sweep(list(self._runners.values()))
        self.ready.set()
        log.info("engine ready: %d live trades", len(self._runners))
        self._sweeping = asyncio.create_task(self._sweep_every(self._reconcile_interval))

    async def _sweep_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reconciler.sweep(list(self._runners.values()))
            except Exception:
                log.exception("the periodic reconciliation failed; next sweep in %s s", seconds)

    async def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
        await self.market_data.close()
        for runner in self._runners.values():
            runner.stop()

    # ---- trades --------------------------------------------------------------------------

    def remember_account(self, account: ExchangeAccount) -> None:
        self._accounts[account.id] = account

    async def account(self, account_id: str) -> ExchangeAccount:
        account = self._accounts.get(account_id)
        if account is None:
            async with self.store.engine.connect() as connection:
                account = await get_account(connection, None, account_id)
            if account is None:
                raise NotFound("exchange account", account_id)
            self._accounts[account_id] = account
        return account

    async def launch(self, decision: Decision, claim: Claim | None = None) -> SmartTrade:
        """Record a new trade's first decision (with the request's claim) and run it."""
        runner = await self._runner_for(decision.trade)
        try:
            await runner.start(new=decision, claim=claim)
        except Exception:
            self._forget(runner)
            raise
        return runner.trade

    def runner(self, trade_id: str) -> TradeRunner | None:
        return self._runners.get(trade_id)

    async def submit(self, trade_id: str, input: Input) -> SmartTrade:
        runner = self._runners.get(trade_id)
        if runner is None:
            raise NotFound("smart trade", trade_id)
        return await runner.submit(input)

    async def reconcile(self, runner: TradeRunner) -> None:
        """Refresh: sync one trade with the venue (see `reconcile.Reconciler`)."""
        trade = runner.trade
        siblings = [
            other
            for other in self._runners.values()
            if other is not runner
            and other.trade.account_id == trade.account_id
            and other.trade.spec.symbol == trade.spec.symbol
        ]
        await self.reconciler.trade(runner, siblings)

    async def _runner_for(self, trade: SmartTrade) -> TradeRunner:
        account = await self.account(trade.account_id)
        runner = TradeRunner(
            trade,
            exchange=self.venues.exchange(account),
            store=self.store,
            executor=self._executor,
            clock=self._clock,
            on_change=self._on_change,
        )
        self._runners[trade.id] = runner
        feed, symbol = price_feed_of(account), trade.spec.symbol
        self._feeds[(feed, symbol)].add(trade.id)
        if not account.is_paper:
            exchange = self.venues.exchange(account)
            self.market_data.watch_prices(feed, symbol, lambda: exchange.watch_ticker(symbol))
            if exchange.capabilities.watch_orders:
                self.market_data.stream_orders(
                    account.id, symbol, lambda: exchange.watch_orders(symbol)
                )
            else:
                self.market_data.poll_orders(
                    account.id,
                    symbol,
                    lambda: self._poll_orders(account, symbol),
                    self._order_poll_interval,
                )
        return runner

    async def _poll_orders(self, account: ExchangeAccount, symbol: str) -> list[OrderReport]:
        """What changed at the venue among the orders the trades believe open: those whose
        fill moved, and those that left the open orders (looked up for how they ended)."""
        exchange = self.venues.exchange(account)
        believed = [
            order
            for runner in self._runners.values()
            if runner.trade.account_id == account.id and runner.trade.spec.symbol == symbol
            for order in runner.trade.orders()
            if order.status is OrderStatus.OPEN
        ]
        if not believed:
            return []
        open_now = {r.client_order_id: r for r in await exchange.fetch_open_orders(symbol)}
        reports = []
        for order in believed:
            seen = open_now.get(order.client_order_id)
            if seen is not None and seen.filled == order.filled:
                continue
            try:
                reports.append(await exchange.fetch_order(symbol, order.client_order_id))
            except OrderNotFound:
                continue  # not visible (yet): the next poll asks again
        return reports

    def _on_change(self, runner: TradeRunner) -> None:
        if runner.finished:
            self._forget(runner)

    def _forget(self, runner: TradeRunner) -> None:
        trade = runner.trade
        runner.stop()
        self._runners.pop(trade.id, None)
        account = self._accounts[trade.account_id]
        feed = price_feed_of(account)
        members = self._feeds.get((feed, trade.spec.symbol), set())
        members.discard(trade.id)
        if not members:
            self._feeds.pop((feed, trade.spec.symbol), None)
            self.market_data.release("price", feed, trade.spec.symbol)
        if not any(
            other.trade.account_id == account.id and other.trade.spec.symbol == trade.spec.symbol
            for other in self._runners.values()
        ):
            self.market_data.release("orders", account.id, trade.spec.symbol)

    # ---- the venues' news ----------------------------------------------------------------

    async def on_price(self, feed: str, symbol: str, price: Decimal) -> None:
        """A new last price: every trade on that venue and symbol sees it (concurrently; each
        trade applies its inputs in order)."""
        at = self._clock()
        tick = PriceTicked(price, at)
        members = list(self._feeds.get((feed, symbol), ()))
        await self._for_each(members, tick)

    async def on_order_reports(self, reports: Iterable[OrderReport]) -> None:
        """Venue reports, in the order the venue produced them."""
        at = self._clock()
        for report in reports:
            runner = self._runners.get(trade_id_of(report.client_order_id))
            if runner is not None:
                await runner.submit(reported(report, at))

    async def _for_each(self, trade_ids: list[str], input: Input) -> None:
        async def one(trade_id: str) -> None:
            runner = self._runners.get(trade_id)
            if runner is None:
                return
            try:
                await runner.submit(input)
            except Exception:
                log.exception("trade %s failed on %s", trade_id, type(input).__name__)

        await asyncio.gather(*(one(trade_id) for trade_id in trade_ids))
