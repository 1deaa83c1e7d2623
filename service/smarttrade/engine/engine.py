"""The engine: every live trade, and the routing of prices, venue reports and timers to them.

A live trade is kept as a small head (where it trades, the price band and time it wakes at)
and is loaded into a runner only when something concerns it: a price leaving its band (the
trigger index), a report on one of its orders, a timer, or a trader's action. So a tick
costs O(log n + triggered) and an idle trade a few hundred bytes, with 100,000 live trades.
Loading reads the store, which would sit between a trigger and its order: so a trade is
also loaded, in the background, as soon as the price comes within `WARM_BAND` of its band
(a second trigger index of narrowed bands), and is ready when the price gets there.

Startup and recovery are one code path (crash-only): `start` reads the heads of every trade
that is not terminal, loads those with intents left pending (each is looked up at the venue
before anything is sent again), reconciles every account and symbol with its venue, and
only then reports ready.

The engine is the runtime only: the use cases (usecases/) create trades through `launch`,
act on them through `submit`, read the running copies through `running`, and sync one with
its venue through `refresh`.

The store going away delays nothing beyond its return. A loaded trade keeps what it could not
commit (engine/runner.py); a trade that could not even be loaded has its inputs kept here; a
paper tick whose write failed is in the paper book but was never routed to the trades. When
the store's probe sees it answer again (`on_store`), the engine routes those ticks (with the
fills they made), delivers what it kept, and wakes every runner that is behind, so each
trade decides at the latest price within a probe interval, not at the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from smarttrade import logs, metrics, tracing
from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.decide import decide
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import (
    Decision,
    Input,
    InputOf,
    Intent,
    PriceTicked,
    Refresh,
    TimeElapsed,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import TriggerPrice
from smarttrade.engine.executor import Executor, reported
from smarttrade.engine.market_data import MarketData
from smarttrade.engine.reconcile import EVERY_TRADE, Reconciler
from smarttrade.engine.runner import NoProbe, StoreHealth, TradeRunner, intent_key
from smarttrade.engine.triggers import TriggerIndex
from smarttrade.engine.venues import Venues, paper_feed, price_feed_of, source_of
from smarttrade.errors import NotFound
from smarttrade.exchange.paper import PaperStorageError
from smarttrade.exchange.paper_book import is_liquidation
from smarttrade.exchange.port import Exchange, OrderReport, Ticker
from smarttrade.store.errors import StoreUnavailable
from smarttrade.store.requests import RequestRecord
from smarttrade.store.trades import TradeHead
from smarttrade.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

FeedKey = tuple[str, str]  # (price feed, symbol)
GroupKey = tuple[str, str]  # (account, symbol)
STARTUP_CONCURRENCY = 64
WARM_BAND = Decimal("0.01")  # load a trade once the price is within 1 % of its band
WARMING_CONCURRENCY = 8
NO_LEVELS = (None, None, None)


def utc_now() -> datetime:
    return datetime.now(UTC)


def warm_band(
    below: Decimal | None, above: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """A band `WARM_BAND` narrower on each side: crossing it, the price is getting close."""
    return (
        below * (1 + WARM_BAND) if below is not None else None,
        above * (1 - WARM_BAND) if above is not None else None,
    )


def trade_id_of(client_order_id: str) -> str:
    """Client order ids are `{trade}-{leg}-{generation}`: the trade is the first part."""
    return client_order_id.split("-", 1)[0]


async def cached_account(
    unit_of_work: Callable[[], UnitOfWork], cache: dict[str, ExchangeAccount], account_id: str
) -> ExchangeAccount:
    """An account from `cache`, read from the store (and kept) when it is not there."""
    account = cache.get(account_id)
    if account is None:
        async with unit_of_work() as uow:
            account = await uow.accounts.get(None, account_id)
        if account is None:
            raise NotFound("exchange account", f"exchangeAccounts/{account_id}")
        cache[account_id] = account
    return account


@dataclass(slots=True)
class LiveTrade:
    """A trade that is not terminal: its head always, its runner once loaded."""

    id: str
    tenant_id: str
    account_id: str
    symbol: str
    feed: FeedKey
    runner: TradeRunner | None = None
    loading: asyncio.Lock | None = None
    timer: asyncio.TimerHandle | None = None


class Engine:
    def __init__(
        self,
        *,
        unit_of_work: Callable[[], UnitOfWork],
        venues: Venues,
        executor: Executor,
        clock: Callable[[], datetime] = utc_now,
        order_poll_interval: float = 1.0,
        reconcile_interval: float = 30.0,
        paper_prices: Exchange | None = None,
        store: StoreHealth | None = None,
        tenants: Callable[[str], bool] | None = None,
        accounts: dict[str, ExchangeAccount] | None = None,
    ) -> None:
        """`tenants`: replicas with leases, the tenants whose trades this engine runs (those
        of one shard); `accounts`: a cache of the accounts shared with the other engines."""
        self._unit_of_work = unit_of_work
        self._tenants = tenants
        self._store = store or NoProbe()
        self.venues = venues
        self._executor = executor
        self._clock = clock
        self._order_poll_interval = order_poll_interval
        self._reconcile_interval = reconcile_interval
        self._live: dict[str, LiveTrade] = {}
        self._groups: dict[GroupKey, set[str]] = defaultdict(set)
        self._feeds: dict[FeedKey, set[str]] = defaultdict(set)
        self._accounts: dict[str, ExchangeAccount] = accounts if accounts is not None else {}
        self._recovered: dict[str, list[Intent]] = {}
        self.index = TriggerIndex()
        self._warm_index = TriggerIndex()  # the bands of trades not loaded, narrowed
        self._warming = asyncio.Semaphore(WARMING_CONCURRENCY)
        self._prices: dict[FeedKey, Decimal] = {}
        self.market_data = MarketData(self.on_price, self.on_order_reports)
        self._reconciler = Reconciler(self, venues, unit_of_work, clock)
        self._sweeping: asyncio.Task[None] | None = None
        self._paper_prices = paper_prices  # a real venue's public prices for paper trading
        self._paper_ticks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        # While the store is away: paper ticks in the book but not routed to the trades, and
        # the inputs of trades that could not be loaded (None: the clock), in order.
        self._unrouted_paper_ticks: set[tuple[str, str]] = set()
        self._undelivered: dict[str, list[Input | None]] = {}
        self.ready = asyncio.Event()
        self._live_inputs = False  # price feeds and order updates: after the startup sweep

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._write_decided_ahead()
        async with self._unit_of_work() as uow:
            for account in await uow.accounts.all():
                self._accounts[account.id] = account
            tenants = None
            if self._tenants is not None:  # one shard's: read only its tenants' heads
                tenants = [t for t in await uow.trades.live_tenants() if self.runs(t)]
            heads = await uow.trades.live_heads(tenants) if tenants != [] else []
            pending = await uow.trades.pending_intents()
        ids = {head.id for head in heads}
        self._recovered = {trade_id: i for trade_id, i in pending.items() if trade_id in ids}
        for head in heads:
            await self._admit(head)
        gate = asyncio.Semaphore(STARTUP_CONCURRENCY)

        async def resume(trade_id: str) -> None:
            async with gate:
                await self.live_runner(trade_id)

        # Loaded now: the trades with intents left pending, and those whose wake levels the
        # store does not know (written before revision 0004 kept them): idle, they would
        # never be woken by a price.
        unbanded = [h.id for h in heads if (h.wake_below, h.wake_above, h.wake_at) == NO_LEVELS]
        loading = dict.fromkeys([*self._recovered, *unbanded])
        await asyncio.gather(*(resume(trade_id) for trade_id in loading))
        # Every order the trades sent and did not see fill is looked up (also those they
        # believe cancelled): what the venue did while the service was down comes first.
        await self._reconciler.sweep(recheck=EVERY_TRADE)
        # Live prices and order updates start only now. Before the sweep has checked the
        # positions, an order the trader cancelled by hand before selling the coins would be
        # seen first and re-created, and a tick could fire a stop on coins no longer held.
        self._live_inputs = True
        for live in list(self._live.values()):
            self._subscribe(self._accounts[live.account_id], live.symbol, live.feed[0])
        self.ready.set()
        log.info("engine ready: %d live trades", len(self._live))
        self._sweeping = asyncio.create_task(self._sweep_every(self._reconcile_interval))

    async def _write_decided_ahead(self) -> None:
        """Decisions made durable ahead of their orders and not written (the service stopped
        in between: each order may or may not have gone out): decided again on the same
        input from the same version of the trade, and written, before anything is loaded;
        their intents are then pending like any other's, looked up at the venue first."""
        async with self._unit_of_work() as uow:
            written = await uow.trades.written_ahead()
        for ahead in written:
            async with self._unit_of_work() as uow:
                trade = await uow.trades.get(ahead.trade_id)
                if trade is not None and not self.runs(trade.tenant_id):
                    continue  # another shard's
                decision = decide(trade, ahead.trigger) if trade is not None else None
                if decision is None or decision.trade.version != ahead.version:
                    # Only a second writer of the trade could have moved it on.
                    log.error("trade %s: its decision ahead no longer applies", ahead.trade_id)
                    await uow.trades.forget_ahead(ahead.trade_id)
                    continue
                sent = [intent_key(intent) for intent in decision.intents]
                if sent != ahead.intents:
                    log.error(
                        "trade %s: decided again, it sends %s, not %s",
                        ahead.trade_id,
                        sent,
                        ahead.intents,
                    )
                uow.trades.record(decision, trade, ahead.done, decided_ahead=True)
                await uow.commit()
            log.info("trade %s: its decision ahead is written", ahead.trade_id)

    async def _sweep_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self._reconciler.sweep()
            except Exception:
                log.exception("the periodic reconciliation failed; next sweep in %s s", seconds)

    def runs(self, tenant_id: str) -> bool:
        """Whether this engine runs the tenant's trades."""
        return self._tenants is None or self._tenants(tenant_id)

    async def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.market_data.close()
        for live in self._live.values():
            if live.timer is not None:
                live.timer.cancel()
            if live.runner is not None:
                live.runner.stop()

    async def settle(self, seconds: float) -> None:
        """Wait (at most `seconds`) until no loaded trade is in the middle of a run."""

        async def every_runner() -> None:
            for live in list(self._live.values()):
                if live.runner is not None:
                    async with live.runner.lock:
                        pass

        try:
            await asyncio.wait_for(every_runner(), seconds)
        except TimeoutError:
            log.warning("trades still running after %s s; letting them go", seconds)

    # ---- accounts ------------------------------------------------------------------------

    def remember_account(self, account: ExchangeAccount) -> None:
        self._accounts[account.id] = account

    def known_account(self, account_id: str) -> ExchangeAccount:
        return self._accounts[account_id]

    async def account(self, account_id: str) -> ExchangeAccount:
        return await cached_account(self._unit_of_work, self._accounts, account_id)

    # ---- live trades ---------------------------------------------------------------------

    async def _admit(self, head: TradeHead) -> LiveTrade:
        account = await self.account(head.account_id)
        feed = (price_feed_of(account, head.trigger_price), head.symbol)
        live = LiveTrade(head.id, head.tenant_id, head.account_id, head.symbol, feed)
        self._live[head.id] = live
        self._groups[(head.account_id, head.symbol)].add(head.id)
        self._feeds[feed].add(head.id)
        self.index.register(feed, head.id, head.wake_below, head.wake_above)
        self._warm_index.register(feed, head.id, *warm_band(head.wake_below, head.wake_above))
        self._set_timer(live, head.wake_at)
        if self._live_inputs:
            self._subscribe(account, head.symbol, feed[0])
        return live

    def _subscribe(self, account: ExchangeAccount, symbol: str, feed: str) -> None:
        """The prices of `feed` and the account's order updates on `symbol` (each shared by
        every trade that needs them: subscribing again is a no-op)."""
        if account.is_paper:
            source = self._paper_prices
            if source is not None:  # else the sandbox pushes prices straight in
                tenant = account.tenant_id
                self.market_data.watch_prices(
                    paper_feed(tenant),
                    symbol,
                    lambda: source.watch_ticker(symbol),
                    lambda _feed, _symbol, price: self.apply_paper_price(tenant, symbol, price),
                )
            return
        exchange = self.venues.exchange(account)
        which = source_of(feed)
        if which is TriggerPrice.LAST:
            self.market_data.watch_prices(feed, symbol, lambda: exchange.watch_ticker(symbol))
        else:  # a bid, an ask or a mark price: polled (a venue's ticker stream has the last)
            self.market_data.watch_prices(
                feed, symbol, lambda: self._polled_price(exchange, symbol, which)
            )
        # The venue's own order stream, where it has one, reports changes soonest; the poll
        # (comparing the open orders with the orders believed open) runs anyway: a stream
        # can drop a message, the poll cannot miss an order that ended.
        if exchange.capabilities.watch_orders:
            self.market_data.stream_orders(
                account.id, symbol, lambda: exchange.watch_orders(symbol)
            )
        self.market_data.poll_orders(
            account.id,
            symbol,
            lambda: self._changed_orders(account, symbol),
            self._order_poll_interval,
        )

    async def _polled_price(
        self, exchange: Exchange, symbol: str, source: TriggerPrice
    ) -> AsyncIterator[Ticker]:
        """A venue's bid, ask or mark price of `symbol`, as it changes, polled as often as
        the orders are."""
        last: Decimal | None = None
        while True:
            price = await exchange.fetch_price(symbol, source)
            if price != last:
                last = price
                yield Ticker(symbol, price, self._clock())
            await asyncio.sleep(self._order_poll_interval)

    async def _changed_orders(self, account: ExchangeAccount, symbol: str) -> list[OrderReport]:
        """The order poll. It compares the venue's open orders with those the store believes
        open: while the store is away there is nothing to compare with, and nothing to
        report (the poll asks again; the trades keep what the venue answered them)."""
        try:
            return await self._reconciler.changed_orders(account, symbol)
        except StoreUnavailable:
            self._store.mark_unavailable()
            return []

    def running(self, trade_id: str) -> SmartTrade | None:
        """The running copy of a trade if it is loaded (for reads: a trade not loaded is
        read from the store)."""
        live = self._live.get(trade_id)
        return live.runner.trade if live is not None and live.runner is not None else None

    def last_price(self, trade_id: str) -> Decimal | None:
        """The venue's latest price for a live trade's symbol (a trade only sees the ticks
        that concern it; this is for showing its unrealized PnL)."""
        live = self._live.get(trade_id)
        return self._prices.get(live.feed) if live is not None else None

    def is_live(self, trade_id: str) -> bool:
        return trade_id in self._live

    def tenant_of(self, trade_id: str) -> str | None:
        live = self._live.get(trade_id)
        return live.tenant_id if live is not None else None

    async def live_runner(self, trade_id: str) -> TradeRunner | None:
        """The runner of a live trade, loading it on first use; None once terminal."""
        live = self._live.get(trade_id)
        if live is None:
            return None
        if live.runner is not None:
            return live.runner
        if live.loading is None:
            live.loading = asyncio.Lock()
        async with live.loading:
            if live.runner is None:
                async with self._unit_of_work() as uow:
                    trade = await uow.trades.get(trade_id)
                if trade is None:
                    raise NotFound("smart trade", trade_id)
                live.runner = self._runner_for(trade)
                self._warm_index.remove(trade_id)
                await live.runner.start(recovered=self._recovered.pop(trade_id, ()))
        return live.runner

    def _warm_up(self, trade_id: str) -> None:
        """Load a trade the price is getting close to, off the path of the tick."""
        live = self._live.get(trade_id)
        if live is None or live.runner is not None or live.loading is not None:
            return

        async def load() -> None:
            async with self._warming:
                try:
                    await self.live_runner(trade_id)
                except Exception:  # it is loaded when it triggers, then
                    log.warning("trade %s: loading ahead of its trigger failed", trade_id)

        task = asyncio.get_running_loop().create_task(load())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _runner_for(self, trade: SmartTrade) -> TradeRunner:
        account = self._accounts[trade.account_id]
        return TradeRunner(
            trade,
            exchange=self.venues.exchange(account),
            unit_of_work=self._unit_of_work,
            executor=self._executor,
            clock=self._clock,
            on_change=self._on_change,
            latest_price=lambda: self.last_price(trade.id),
            store=self._store,
        )

    async def launch(
        self,
        decision: Decision,
        request: RequestRecord | None = None,
        recorded: Callable[[], None] | None = None,
    ) -> SmartTrade:
        """Record a new trade's first decision (claiming the request with it) and run it;
        `recorded` is called once the decision is written, before its orders are sent.
        Raises `AlreadyClaimed` when the request id was taken, `ConcurrentUpdate` when a
        trade with this id exists already (nothing is written either way)."""
        trade = decision.trade
        head = TradeHead(
            trade.id,
            trade.tenant_id,
            trade.account_id,
            trade.spec.symbol,
            None,
            None,
            None,
            trade.spec.trigger_price,
        )
        live = await self._admit(head)
        runner = live.runner = self._runner_for(trade)
        try:
            with logs.about_trade(trade.id):
                await runner.start(new=decision, request=request, recorded=recorded)
        except Exception:
            if not runner.recorded:  # nothing was written: there is no such trade
                self._forget(live)
            raise
        return runner.trade

    async def submit(
        self,
        trade_id: str,
        input: Input | InputOf,
        etag: str = "",
        request: RequestRecord | None = None,
    ) -> SmartTrade:
        """Apply an input to a live trade (see `TradeRunner.submit`)."""
        runner = await self.live_runner(trade_id)
        if runner is None:
            raise NotFound("smart trade", f"smartTrades/{trade_id}")
        with logs.about_trade(trade_id):
            return await runner.submit(input, etag, request)

    async def settled(self, trade_id: str) -> None:
        """Wait until what the trade is doing now is done (a concurrent call on it)."""
        live = self._live.get(trade_id)
        if live is not None and live.runner is not None:
            async with live.runner.lock:
                pass

    async def refresh(self, trade_id: str) -> SmartTrade | None:
        """Sync a live trade with its venue now, through the same path as the startup
        reconciliation; the trade as it is then, or None if it is not live."""
        runner = await self.live_runner(trade_id)
        if runner is None:
            return None
        await self._reconciler.trade(runner.trade)
        runner = await self.live_runner(trade_id)
        if runner is None:
            return None
        return await runner.submit(Refresh(self._clock()))

    def _on_change(self, runner: TradeRunner) -> None:
        """After every run of a trade: keep its band and timer current, or let it go."""
        live = self._live.get(runner.trade.id)
        if live is None:
            return
        if runner.finished:
            self._forget(live)
            return
        levels = wake_levels(runner.trade)
        self.index.register(live.feed, live.id, levels.below, levels.above)
        self._set_timer(live, levels.at if live.runner is None else None)

    def _set_timer(self, live: LiveTrade, at: datetime | None) -> None:
        """A timer for a trade that is not loaded (a loaded runner keeps its own)."""
        if live.timer is not None:
            live.timer.cancel()
            live.timer = None
        if at is None:
            return
        delay = max((at - self._clock()).total_seconds(), 0.0)
        live.timer = asyncio.get_running_loop().call_later(delay, self._wake, live.id)

    def _wake(self, trade_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(trade_id, None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, live: LiveTrade) -> None:
        if live.runner is not None:
            live.runner.stop()
        if live.timer is not None:
            live.timer.cancel()
        self._live.pop(live.id, None)
        self.index.remove(live.id)
        self._warm_index.remove(live.id)
        group_key = (live.account_id, live.symbol)
        group = self._groups.get(group_key, set())
        group.discard(live.id)
        if not group:
            self._groups.pop(group_key, None)
            self.market_data.release("orders", live.account_id, live.symbol)
        members = self._feeds.get(live.feed, set())
        members.discard(live.id)
        if not members:
            self._feeds.pop(live.feed, None)
            self.market_data.release("price", *live.feed)

    # ---- the venues' news ----------------------------------------------------------------

    async def apply_paper_price(
        self, tenant_id: str, symbol: str, price: Decimal, request: RequestRecord | None = None
    ) -> None:
        """A tick of a tenant's paper book (from its sandbox, keeping `request` with the
        tick's write, or from a live source): the resting orders it crosses fill, then every
        trade it concerns reacts; returns when all is done and persisted."""
        async with self._paper_ticks[(tenant_id, symbol)]:
            try:
                changed = await self.venues.paper.set_price(tenant_id, symbol, price, request)
            except PaperStorageError:
                # The book took the tick (and its fills), the store did not: route it once
                # the store is back (`on_store`).
                self._unrouted_paper_ticks.add((tenant_id, symbol))
                self._store.mark_unavailable()
                raise
            # A liquidation (futures) ends the account's position: its trades learn it from
            # reconciliation, which takes the venue's reports of their orders (the reduce-only
            # exits it cancelled) before it judges the position, so none is placed again.
            liquidated = {o.account_id: o for o in changed if is_liquidation(o.client_order_id)}
            await self.on_order_reports(
                order.report() for order in changed if order.account_id not in liquidated
            )
            for account_id, order in sorted(liquidated.items()):
                if (account_id, symbol) in self._groups:
                    await self._reconciler.group(account_id, symbol, liquidation=order.report())
            await self.on_price(paper_feed(tenant_id), symbol, price)

    @property
    def live_count(self) -> int:
        """How many live trades this engine runs."""
        return len(self._live)

    async def on_price(self, feed: str, symbol: str, price: Decimal) -> None:
        """A new last price: the trades whose band it leaves see it (concurrently; each
        trade applies its inputs in order). The others do not need it."""
        key = (feed, symbol)
        self._prices[key] = price
        woken = self.index.crossed(key, price)
        for trade_id in self._warm_index.crossed(key, price):
            self._warm_up(trade_id)
        bound = 4 * max(len(self._feeds.get(key, ())), 64)
        for index in (self.index, self._warm_index):
            if index.size(key) > bound:
                index.compact(key)  # re-registrations leave stale entries behind
        if not woken:
            return
        tick = PriceTicked(price, self._clock())
        measured = (
            metrics.tick_started.set(time.perf_counter()) if metrics.recorder.enabled else None
        )
        try:
            with tracing.span("smarttrade.tick", symbol=symbol, price=str(price)):
                if len(woken) == 1:  # the usual case: no task to schedule on the way to the order
                    await self._deliver(woken.pop(), tick)
                    return
                await asyncio.gather(*(self._deliver(trade_id, tick) for trade_id in woken))
        finally:
            if measured is not None:
                metrics.tick_started.reset(measured)

    async def on_order_reports(self, reports: Iterable[OrderReport]) -> None:
        """Venue reports, in the order the venue produced them."""
        at = self._clock()
        for report in reports:
            trade_id = trade_id_of(report.client_order_id)
            if trade_id in self._live:
                await self._deliver(trade_id, reported(report, at))

    async def _deliver(self, trade_id: str, input: Input | None) -> None:
        """Hand one input (None: the clock) to a trade; whatever happens, it registers its
        band again, so a failure never leaves it deaf to prices."""
        runner = None
        marked = logs.trade.set(trade_id)
        try:
            runner = await self.live_runner(trade_id)
            if runner is not None:
                await runner.submit(input if input is not None else TimeElapsed(self._clock()))
        except StoreUnavailable:
            if runner is None:  # not loaded: kept here, delivered when the store is back
                self._keep_undelivered(trade_id, input)
                self._store.mark_unavailable()
                log.warning("trade %s: the store is unavailable; input kept", trade_id)
            else:
                log.exception("trade %s failed on %s", trade_id, type(input).__name__)
        except Exception:
            log.exception("trade %s failed on %s", trade_id, type(input).__name__)
        finally:
            logs.trade.reset(marked)
            if runner is not None:
                self._on_change(runner)

    # ---- the store away and back ---------------------------------------------------------

    async def on_store(self, available: bool) -> None:
        """The store's probe says whether the store answers; when it does again, catch up
        (in the background: the probe goes on watching)."""
        if available:
            task = asyncio.get_running_loop().create_task(self.catch_up_with_store())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def catch_up_with_store(self) -> None:
        """Everything the store's absence held back, in the order it happened: the paper
        ticks (and the fills they made) the trades never saw, what the venue's book
        changed besides, the inputs of trades that could not be loaded; then every runner
        that is behind catches up (each at the latest price)."""
        paper = self.venues.paper
        try:
            for tenant_id, symbol in sorted(self._unrouted_paper_ticks):
                self._unrouted_paper_ticks.discard((tenant_id, symbol))
                price = paper.last_price(tenant_id, symbol)
                if price is not None:
                    await self.apply_paper_price(tenant_id, symbol, price)
            await paper.flush()
        except PaperStorageError:
            log.warning("the paper venue's storage is still unavailable")
            return
        undelivered, self._undelivered = self._undelivered, {}
        for trade_id, inputs in undelivered.items():
            for input in inputs:
                if isinstance(input, PriceTicked):  # the price now, not the one kept
                    price = self.last_price(trade_id)
                    input = PriceTicked(price if price is not None else input.price, self._clock())
                await self._deliver(trade_id, input)
        for live in list(self._live.values()):
            if live.runner is not None:
                live.runner.resume()

    def _keep_undelivered(self, trade_id: str, input: Input | None) -> None:
        """The facts in order, then one price (its latest is taken on delivery), or else
        one reading of the clock."""
        kept = self._undelivered.setdefault(trade_id, [])
        facts = [i for i in kept if i is not None and not isinstance(i, PriceTicked)]
        prices = [i for i in kept if isinstance(i, PriceTicked)]
        clock = [i for i in kept if i is None]
        if isinstance(input, PriceTicked):
            prices = [input]
        elif input is not None:
            facts.append(input)
        elif not prices:
            clock = [None]
        kept[:] = [*facts, *(prices or clock)]

    # ---- what reconciliation sees (reconcile.Runtime) -------------------------------------

    def groups(self) -> list[GroupKey]:
        return list(self._groups)

    def feeds(self) -> list[FeedKey]:
        return list(self._feeds)

    def loaded_trades(self, account_id: str, symbol: str) -> list[SmartTrade]:
        return [
            live.runner.trade
            for trade_id in self._groups.get((account_id, symbol), ())
            if (live := self._live.get(trade_id)) is not None and live.runner is not None
        ]
