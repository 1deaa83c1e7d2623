"""Whether the store answers now: a cheap `SELECT 1` on a connection of its own, every
`interval` seconds, and at once whenever a writer found the store unreachable.

Health follows it (a load balancer routes elsewhere while the store is away), and so do the
trade runners: a runner whose decision could not be committed waits for the store to
answer again instead of knocking at it, and is woken when it does. The probe has its own
connection, not one of the pools', so a pool busy with a burst of writes is never taken for
a store that is gone; and each probe has a deadline, so a stalled line (no answer, no reset)
reads as unavailable too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

Listener = Callable[[bool], Awaitable[None]]


class StoreProbe:
    def __init__(self, dsn: str, interval: float = 0.25, timeout: float = 2.0) -> None:
        """`dsn`: an asyncpg (postgresql://) URL of the store."""
        self._dsn = dsn
        self._interval = interval
        self._timeout = timeout
        self._connection: asyncpg.Connection | None = None
        self._listeners: list[Listener] = []
        self._nudged = asyncio.Event()
        self.available = True
        self._told = True  # what the listeners were last told

    def on_change(self, listener: Listener) -> None:
        """`listener(available)` is awaited on every change, in order, one at a time."""
        self._listeners.append(listener)

    def mark_unavailable(self) -> None:
        """A writer found the store unreachable: it is taken as gone from now until a probe
        answers (the next one runs after a full interval, so a writer's failure is not
        undone by a probe that slips through just before the line goes down)."""
        if self.available:
            self.available = False
            self._nudged.set()

    async def run(self) -> None:
        try:
            while True:
                await self._tell()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._nudged.wait()
                if self._nudged.is_set():
                    self._nudged.clear()
                    await self._tell()
                    await asyncio.sleep(self._interval)
                answered = await self.answers()
                if not self._nudged.is_set():  # else a writer found it gone since: newer
                    self.available = answered
        finally:
            await self._disconnect()

    async def answers(self) -> bool:
        """One probe: does the store answer `SELECT 1` within the deadline?"""
        try:
            async with asyncio.timeout(self._timeout):
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(self._dsn)
                await self._connection.fetchval("SELECT 1")
            return True
        except Exception as error:  # whatever the reason, it did not answer; the probe lives on
            log.debug("the store's probe failed: %r", error)
            await self._disconnect()
            return False

    async def _tell(self) -> None:
        while self._told != self.available:
            self._told = available = self.available
            if available:
                log.info("the store answers again")
            else:
                log.warning("the store is unavailable")
            for listener in self._listeners:
                try:
                    await listener(available)
                except Exception:
                    log.exception("a listener of the store's availability failed")

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()
