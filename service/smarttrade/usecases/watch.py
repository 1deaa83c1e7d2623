"""Watching trades: a snapshot, then every event in sequence order, resumable.

The subscription to live events is taken first and the history read after, so nothing
committed in between is missed; anything seen twice (in both) is dropped by sequence.
Commit order equals sequence order (see store.unit_of_work), so "after N" is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from smarttrade.domain.messages import StoredEvent
from smarttrade.domain.model import SmartTrade
from smarttrade.engine.bus import EventBus
from smarttrade.errors import NotFound, OutOfRange, Unavailable
from smarttrade.store.unit_of_work import UnitOfWorkFactory

HISTORY_PAGE = 500


@dataclass(frozen=True, slots=True)
class SnapshotTrade:
    trade: SmartTrade


@dataclass(frozen=True, slots=True)
class SnapshotEnd:
    sequence: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sequence: int
    at: datetime


StreamItem = SnapshotTrade | SnapshotEnd | StoredEvent | Heartbeat


class HistoryPruned(OutOfRange):
    """The watcher resumes from before the retained history: events may be missing."""

    def __init__(self, after_sequence: int, pruned: int) -> None:
        super().__init__(
            "HISTORY_PRUNED",
            f"events after {after_sequence} are no longer kept (pruned through {pruned}); "
            "start again without after_sequence to get a fresh snapshot",
            {"pruned_through": str(pruned)},
        )
        self.pruned = pruned


class CursorAhead(OutOfRange):
    """The watcher resumes from after the last event: a sequence this service never sent."""

    def __init__(self, after_sequence: int) -> None:
        super().__init__(
            "CURSOR_AHEAD",
            f"after_sequence {after_sequence} is beyond the last event; resume with a sequence "
            "the stream sent, or start again without after_sequence to get a fresh snapshot",
            field="after_sequence",
            field_problem="is beyond the last event",
        )
        self.after_sequence = after_sequence


class StreamOverflow(Unavailable):
    """The consumer fell too far behind; it resumes with the last sequence it received."""

    def __init__(self, last_sequence: int) -> None:
        super().__init__(
            f"the stream fell behind; resume after sequence {last_sequence}",
            0.1,
            reason="STREAM_OVERFLOW",
            metadata={"last_sequence": str(last_sequence)},
        )
        self.last_sequence = last_sequence


class StreamClosed(Unavailable):
    """The server is shutting down; resume elsewhere with the last sequence received."""

    def __init__(self, last_sequence: int) -> None:
        super().__init__(
            f"the server is shutting down; resume after sequence {last_sequence}",
            0.1,
            reason="SHUTTING_DOWN",
            metadata={"last_sequence": str(last_sequence)},
        )
        self.last_sequence = last_sequence


class Watching:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        bus: EventBus,
        clock: Callable[[], datetime],
        buffer: int = 1000,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._bus = bus
        self._clock = clock
        self._buffer = buffer

    async def watch(
        self, tenant_id: str, trade_id: str | None, after_sequence: int, heartbeat: float
    ) -> AsyncIterator[StreamItem]:
        subscription = self._bus.subscribe(tenant_id, trade_id, self._buffer, heartbeat)
        try:
            last = after_sequence
            if after_sequence:
                async with self._unit_of_work() as uow:
                    pruned = await uow.events.pruned_through(tenant_id)
                    head = await uow.events.head(tenant_id)
                if after_sequence < pruned:
                    raise HistoryPruned(after_sequence, pruned)
                if after_sequence > head:
                    raise CursorAhead(after_sequence)
            else:
                sequence, trades = await self._snapshot(tenant_id, trade_id)
                for trade in trades:
                    yield SnapshotTrade(trade)
                yield SnapshotEnd(sequence)
                last = sequence
            while True:
                async with self._unit_of_work() as uow:
                    history = await uow.events.after(tenant_id, trade_id, last, HISTORY_PAGE)
                for event in history:
                    yield event
                    last = event.sequence
                if len(history) < HISTORY_PAGE:
                    break
            if after_sequence and last == after_sequence:
                # A resumed stream with nothing to catch up on says at once that it is live:
                # a client counting reconnections that received nothing (through a string
                # of restarts) knows this one was accepted.
                yield Heartbeat(last, self._clock())
            # Then live, as events are published: no task or timer per event (the buffer is
            # drained as it is, the stream sleeps on one future per burst, and heartbeats
            # come from the bus's one clock), and no nested generator: this loop is on the
            # path of every message to every watcher.
            buffered = subscription.events
            loop = asyncio.get_running_loop()
            while True:
                if buffered:
                    subscription.quiet_since = time.monotonic()
                while buffered:
                    event = buffered.popleft()
                    if event.sequence > last:
                        yield event
                        last = event.sequence
                if subscription.closed:
                    if subscription.overflowed:
                        raise StreamOverflow(last)
                    raise StreamClosed(last)
                if subscription.heartbeat_due:
                    subscription.heartbeat_due = False
                    yield Heartbeat(last, self._clock())
                    continue
                subscription.waiter = loop.create_future()
                await subscription.waiter
        finally:
            self._bus.unsubscribe(subscription)

    async def _snapshot(self, tenant_id: str, trade_id: str | None) -> tuple[int, list[SmartTrade]]:
        """The trades and the last sequence they reflect, read in one consistent snapshot."""
        async with self._unit_of_work(consistent=True) as uow:
            sequence = await uow.events.head(tenant_id)
            if trade_id is None:
                return sequence, await uow.trades.live_of_tenant(tenant_id)
            trade = await uow.trades.get(trade_id, tenant_id)
        if trade is None:
            raise NotFound("smart trade", f"smartTrades/{trade_id}")
        return sequence, [trade]
