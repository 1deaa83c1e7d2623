"""Events across replicas: every replica's watchers see every event of their tenant.

With replicas (SMARTTRADE_LEASE_SECONDS), the commits of a tenant's trades happen in the
replica that runs them, while its watchers may be connected to any replica. The events are
rows in PostgreSQL; each replica's bus delivers them in sequence order. This connects the
two: the commits of this replica are announced ("tenant T committed through N", LISTEN /
NOTIFY, store/notices.py) right after they are handed to the local bus, and every notice
heard, and every tenant's head read from the store each `poll` seconds (a notice may be
lost: its sender died after its commit), tells the local bus what it has to read from the
store and deliver (EventBus.committed_through).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from smarttrade.domain.messages import StoredEvent
from smarttrade.engine.bus import EventBus
from smarttrade.store.notices import EventNotices

log = logging.getLogger(__name__)

Heads = Callable[[], Awaitable[dict[str, int]]]


class EventFanOut:
    """The event sink of a replica's units of work: the local bus, then a notice."""

    def __init__(self, bus: EventBus, dsn: str, heads: Heads, poll: float = 1.0) -> None:
        self._bus = bus
        self._heads = heads
        self._poll = poll
        self._notices = EventNotices(dsn, bus.committed_through)

    def publish(self, tenant_id: str, after: int, events: Sequence[StoredEvent]) -> None:
        self._bus.publish(tenant_id, after, events)
        if events:
            self._notices.announce(tenant_id, events[-1].sequence)

    async def run(self) -> None:
        """Send and hear notices, and read the heads every `poll` seconds, until cancelled."""
        listening = asyncio.create_task(self._notices.run())
        try:
            while True:
                await asyncio.sleep(self._poll)
                try:
                    heads = await self._heads()
                except Exception as error:  # the store away: the probe says so already
                    log.debug("reading the event heads failed: %s", error)
                    continue
                for tenant_id, sequence in heads.items():
                    self._bus.committed_through(tenant_id, sequence)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
