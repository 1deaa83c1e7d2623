"""The market-data hub: one price subscription per venue and symbol, and one order-update
subscription per account and symbol, shared by every trade that needs them.

A price subscription reads an adapter's `watch_ticker` (streamed where the venue can,
polled otherwise). Order updates are streamed (`watch_orders`) where the venue can; where it
cannot, the engine polls: it compares the venue's open orders with the orders its trades
believe open, and looks up each one that left (polling the open orders alone would miss an
order that opened and filled between two polls). A subscription starts with the first trade
that needs it and stops when the last one is gone; a failing source is restarted after a
pause, never in a tight loop. The paper venue needs none: its sandbox pushes prices and
fills straight into the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

from smarttrade.exchange.port import OrderReport, Ticker, TransientError

log = logging.getLogger(__name__)

RESTART_PAUSE = 1.0

PriceSink = Callable[[str, str, Decimal], Awaitable[None]]
ReportSink = Callable[[list[OrderReport]], Awaitable[None]]


class MarketData:
    def __init__(self, on_price: PriceSink, on_reports: ReportSink) -> None:
        self._on_price = on_price
        self._on_reports = on_reports
        self._tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    def watch_prices(
        self,
        feed: str,
        symbol: str,
        source: Callable[[], AsyncIterator[Ticker]],
        sink: PriceSink | None = None,
    ) -> None:
        """`sink` defaults to the engine's tick (a paper book's live source passes its own)."""
        key = ("price", feed, symbol)
        if key not in self._tasks:
            task = self._prices(feed, symbol, source, sink or self._on_price)
            self._tasks[key] = asyncio.create_task(task)

    def stream_orders(
        self, account_id: str, symbol: str, source: Callable[[], AsyncIterator[OrderReport]]
    ) -> None:
        key = ("order-stream", account_id, symbol)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._orders(source))

    def poll_orders(
        self,
        account_id: str,
        symbol: str,
        poll: Callable[[], Awaitable[list[OrderReport]]],
        interval: float,
    ) -> None:
        key = ("orders", account_id, symbol)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._polled(poll, interval))

    def release(self, kind: str, owner: str, symbol: str) -> None:
        kinds = ("orders", "order-stream") if kind == "orders" else (kind,)
        for each in kinds:
            task = self._tasks.pop((each, owner, symbol), None)
            if task is not None:
                task.cancel()

    @property
    def subscriptions(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _prices(
        self,
        feed: str,
        symbol: str,
        source: Callable[[], AsyncIterator[Ticker]],
        sink: PriceSink,
    ) -> None:
        while True:
            try:
                async for ticker in source():
                    await sink(feed, symbol, ticker.last)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("price feed %s %s failed; restarting", feed, symbol)
            await asyncio.sleep(RESTART_PAUSE)

    async def _polled(
        self, poll: Callable[[], Awaitable[list[OrderReport]]], interval: float
    ) -> None:
        while True:
            pause = interval
            try:
                reports = await poll()
                if reports:
                    await self._on_reports(reports)
            except asyncio.CancelledError:
                raise
            except TransientError as error:
                pause = max(interval, error.retry_after or RESTART_PAUSE)
            except Exception:
                log.exception("polling orders failed")
                pause = max(interval, RESTART_PAUSE)
            await asyncio.sleep(pause)

    async def _orders(self, source: Callable[[], AsyncIterator[OrderReport]]) -> None:
        while True:
            try:
                async for report in source():
                    await self._on_reports([report])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("order updates failed; restarting")
            await asyncio.sleep(RESTART_PAUSE)
