"""The in-process event bus: committed events fan out to the watchers, in sequence order.

Publishing never blocks: each subscription has a bounded buffer, and a subscriber that
falls behind by more than it holds is marked overflowed and dropped, so one slow consumer
never stalls the engine or the other watchers (its stream ends with a resumable status and
the client resumes from the last sequence it saw).

Heartbeats come from one clock for all subscriptions (`heartbeats`), not a timer per
waiting stream: with a thousand watchers, every event would otherwise cost a thousand
timer insertions and cancellations.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from smarttrade.domain.messages import StoredEvent


@dataclass(eq=False)
class Subscription:
    tenant_id: str
    trade_id: str | None
    buffer: int
    heartbeat: float = 15.0  # seconds of silence before a heartbeat is due
    events: deque[StoredEvent] = field(default_factory=deque)
    overflowed: bool = False
    closed: bool = False
    heartbeat_due: bool = False
    quiet_since: float = field(default_factory=time.monotonic)
    # The stream asleep until news, a heartbeat or the end: a bare future, not an
    # asyncio.Event (whose waiter list and loop lookup are on every delivery's path).
    waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wants(self, event: StoredEvent) -> bool:
        if event.tenant_id != self.tenant_id:
            return False
        return self.trade_id is None or event.trade.id == self.trade_id


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.last_sequence = 0

    def subscribe(
        self, tenant_id: str, trade_id: str | None, buffer: int, heartbeat: float = 15.0
    ) -> Subscription:
        subscription = Subscription(tenant_id, trade_id, buffer, heartbeat)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            self.last_sequence = max(self.last_sequence, event.sequence)
            for subscription in list(self._subscriptions):
                if not subscription.wants(event):
                    continue
                if len(subscription.events) >= subscription.buffer:
                    subscription.overflowed = True
                    self._close(subscription)
                    continue
                subscription.events.append(event)
                subscription.wake()

    async def heartbeats(self, resolution: float = 0.5) -> None:
        """Run forever: mark a heartbeat due on every subscription quiet for its interval."""
        while True:
            await asyncio.sleep(resolution)
            now = time.monotonic()
            for subscription in list(self._subscriptions):
                if now - subscription.quiet_since >= subscription.heartbeat:
                    subscription.heartbeat_due = True
                    subscription.quiet_since = now
                    subscription.wake()

    def _close(self, subscription: Subscription) -> None:
        subscription.closed = True
        subscription.wake()
        self._subscriptions.discard(subscription)

    def close_all(self) -> None:
        """Graceful shutdown: every stream ends."""
        for subscription in list(self._subscriptions):
            self._close(subscription)
