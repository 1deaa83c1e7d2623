"""The in-process event bus: committed events fan out to the watchers, in sequence order.

Each tenant's events are numbered in its own sequence, and commits hand them over with the
sequence they follow. The answers of concurrent commits come back in any order, so the bus
holds a commit that does not follow on from the last one it delivered until the ones before
it arrive; and if they do not (a commit whose answer was lost, a writer in another
process), it reads the missing events from the store after `gap_wait`. Commits of other
replicas are heard of as "committed through N" (`committed_through`, from engine/fanout.py)
and read from the store the same way. So every watcher sees
its tenant's events in sequence order, without a lock around the commits.

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
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from smarttrade import metrics
from smarttrade.domain.messages import StoredEvent

log = logging.getLogger(__name__)

# Reads a tenant's events after a sequence, through a sequence, from the store.
MissingEvents = Callable[[str, int, int], Awaitable[Sequence[StoredEvent]]]


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


class EventBus:
    def __init__(self, missing: MissingEvents | None = None, gap_wait: float = 0.2) -> None:
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._delivered: dict[str, int] = {}  # by tenant: the last sequence delivered
        self._held: dict[str, dict[int, Sequence[StoredEvent]]] = {}  # by tenant, by `after`
        self._missing = missing
        self._gap_wait = gap_wait
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._committed: dict[str, int] = {}  # by tenant: committed through, as last heard

    def start_from(self, heads: Mapping[str, int]) -> None:
        """Each tenant's last sequence in the store when the service starts: what follows
        it is what this bus delivers."""
        for tenant_id, head in heads.items():
            self._delivered[tenant_id] = max(head, self._delivered.get(tenant_id, 0))

    def head(self, tenant_id: str) -> int:
        """The tenant's last sequence delivered."""
        return self._delivered.get(tenant_id, 0)

    def subscribe(
        self, tenant_id: str, trade_id: str | None, buffer: int, heartbeat: float = 15.0
    ) -> Subscription:
        subscription = Subscription(tenant_id, trade_id, buffer, heartbeat)
        self._subscriptions[tenant_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions[subscription.tenant_id].discard(subscription)

    def publish(self, tenant_id: str, after: int, events: Sequence[StoredEvent]) -> None:
        """A commit's events, numbered from `after` + 1 on."""
        delivered = self._delivered.get(tenant_id, 0)
        if after < delivered:  # read from the store meanwhile
            events = [event for event in events if event.sequence > delivered]
            after = delivered
        if not events:
            return
        if after > delivered:
            self._held.setdefault(tenant_id, {})[after] = events
            self._fill_later(tenant_id)
            return
        self._deliver(tenant_id, events)
        held = self._held.get(tenant_id)
        while held and (following := held.pop(self._delivered[tenant_id], None)) is not None:
            self._deliver(tenant_id, following)
        if held is not None and not held:
            del self._held[tenant_id]

    def _deliver(self, tenant_id: str, events: Sequence[StoredEvent]) -> None:
        subscriptions = self._subscriptions.get(tenant_id, ())
        for event in events:
            for subscription in list(subscriptions):
                if subscription.trade_id is not None and event.trade.id != subscription.trade_id:
                    continue
                if len(subscription.events) >= subscription.buffer:
                    metrics.recorder.watcher_dropped()
                    subscription.overflowed = True
                    self._close(subscription)
                    continue
                subscription.events.append(event)
                subscription.wake()
        self._delivered[tenant_id] = events[-1].sequence

    def committed_through(self, tenant_id: str, sequence: int) -> None:
        """Tenant `tenant_id`'s events are committed through `sequence`, by this process or
        another replica: those not delivered yet are read from the store and
        delivered."""
        if sequence <= self._delivered.get(tenant_id, 0):
            return
        self._committed[tenant_id] = max(sequence, self._committed.get(tenant_id, 0))
        self._fill_later(tenant_id)

    def _fill_later(self, tenant_id: str) -> None:
        if self._missing is None or tenant_id in self._filling:
            return
        task = asyncio.get_running_loop().create_task(self._fill(tenant_id))
        self._filling[tenant_id] = task

    async def _fill(self, tenant_id: str) -> None:
        """Read from the store what is still missing: before the commits held back, after
        `gap_wait` (the commits they follow were answered to no one in this process), and
        through what other replicas committed, at once."""
        assert self._missing is not None
        try:
            if self._held.get(tenant_id):
                await asyncio.sleep(self._gap_wait)
            while True:
                delivered = self._delivered.get(tenant_id, 0)
                held = self._held.get(tenant_id)
                committed = self._committed.get(tenant_id, 0)
                if not held and committed <= delivered:
                    break
                until = min(held) if held else committed
                try:
                    found = await self._missing(tenant_id, delivered, until)
                except Exception:
                    log.warning("reading the events of %s after %d failed", tenant_id, delivered)
                    found = ()
                if found:
                    self.publish(tenant_id, delivered, found)
                else:
                    await asyncio.sleep(self._gap_wait)
        finally:
            del self._filling[tenant_id]

    async def heartbeats(self, resolution: float = 0.5) -> None:
        """Run forever: mark a heartbeat due on every subscription quiet for its interval."""
        while True:
            await asyncio.sleep(resolution)
            now = time.monotonic()
            for subscription in [s for group in self._subscriptions.values() for s in group]:
                if now - subscription.quiet_since >= subscription.heartbeat:
                    subscription.heartbeat_due = True
                    subscription.quiet_since = now
                    subscription.wake()

    def watchers(self) -> int:
        """How many subscriptions are open."""
        return sum(len(group) for group in self._subscriptions.values())

    def _close(self, subscription: Subscription) -> None:
        subscription.closed = True
        subscription.wake()
        self._subscriptions[subscription.tenant_id].discard(subscription)

    def close_all(self) -> None:
        """Graceful shutdown: every stream ends."""
        for subscription in [s for group in self._subscriptions.values() for s in group]:
            self._close(subscription)
        for task in self._filling.values():
            task.cancel()
