"""The event bus puts each tenant's commits back in sequence order, and reads from the store
what it was never handed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from smarttrade.domain.decide import create
from smarttrade.domain.messages import Event, EventType, StoredEvent
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import EntrySpec, EntryType, TradeSpec
from smarttrade.domain.values import Side
from smarttrade.engine.bus import EventBus, Subscription
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS

AT = datetime(2026, 12, 2, tzinfo=UTC)
BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTC/USDT")


def a_trade(tenant_id: str) -> SmartTrade:
    spec = TradeSpec(
        "BTC/USDT", Side.BUY, EntrySpec(EntryType.SKIP, Decimal(1), average_price=Decimal(100))
    )
    return create(
        trade_id="t1",
        tenant_id=tenant_id,
        account_id="a1",
        exchange_id="paper",
        spec=spec,
        market=BTC,
        last_price=Decimal(100),
        at=AT,
    ).trade


def events(tenant_id: str, first: int, last: int) -> list[StoredEvent]:
    trade = a_trade(tenant_id)
    event = Event(EventType.STOP_MOVED, AT)
    return [StoredEvent(n, tenant_id, trade, event) for n in range(first, last + 1)]


def received(subscription: Subscription) -> list[int]:
    return [event.sequence for event in subscription.events]


async def test_a_commit_answered_early_waits_for_the_commits_before_it() -> None:
    bus = EventBus()
    watcher = bus.subscribe("tenant-a", None, buffer=100)

    bus.publish("tenant-a", 2, events("tenant-a", 3, 4))  # its answer came back first
    assert received(watcher) == []
    bus.publish("tenant-a", 0, events("tenant-a", 1, 2))

    assert received(watcher) == [1, 2, 3, 4]
    assert bus.head("tenant-a") == 4


async def test_each_tenant_is_ordered_on_its_own() -> None:
    bus = EventBus()
    a = bus.subscribe("tenant-a", None, buffer=100)
    b = bus.subscribe("tenant-b", None, buffer=100)

    bus.publish("tenant-a", 1, events("tenant-a", 2, 2))  # held: tenant-a's 1 is not there
    bus.publish("tenant-b", 0, events("tenant-b", 1, 1))  # not held back by tenant-a

    assert (received(a), received(b)) == ([], [1])


async def test_a_service_starts_following_on_from_each_tenants_head() -> None:
    bus = EventBus()
    bus.start_from({"tenant-a": 41})
    watcher = bus.subscribe("tenant-a", None, buffer=100)

    bus.publish("tenant-a", 41, events("tenant-a", 42, 42))

    assert received(watcher) == [42]


async def test_events_never_handed_over_are_read_from_the_store() -> None:
    asked: list[tuple[str, int, int]] = []

    async def missing(tenant_id: str, after: int, through: int) -> Sequence[StoredEvent]:
        asked.append((tenant_id, after, through))
        return events(tenant_id, after + 1, through)

    bus = EventBus(missing, gap_wait=0.01)
    watcher = bus.subscribe("tenant-a", None, buffer=100)

    bus.publish("tenant-a", 3, events("tenant-a", 4, 5))  # 1..3: a commit whose answer was lost
    for _ in range(100):
        if received(watcher):
            break
        await asyncio.sleep(0.01)

    assert asked == [("tenant-a", 0, 3)]
    assert received(watcher) == [1, 2, 3, 4, 5]


async def test_a_commit_arriving_after_its_events_were_read_from_the_store_is_not_repeated() -> (
    None
):
    async def missing(tenant_id: str, after: int, through: int) -> Sequence[StoredEvent]:
        return events(tenant_id, after + 1, through)

    bus = EventBus(missing, gap_wait=0.01)
    watcher = bus.subscribe("tenant-a", None, buffer=100)
    bus.publish("tenant-a", 2, events("tenant-a", 3, 3))
    for _ in range(100):
        if received(watcher):
            break
        await asyncio.sleep(0.01)

    bus.publish("tenant-a", 0, events("tenant-a", 1, 2))  # the late answer

    assert received(watcher) == [1, 2, 3]


async def test_events_another_replica_committed_are_read_from_the_store_once_heard_of() -> None:
    asked: list[tuple[str, int, int]] = []

    async def missing(tenant_id: str, after: int, through: int) -> Sequence[StoredEvent]:
        asked.append((tenant_id, after, through))
        return events(tenant_id, after + 1, through)

    bus = EventBus(missing, gap_wait=10)  # heard of: read at once, not after the gap wait
    watcher = bus.subscribe("tenant-a", None, buffer=100)

    bus.committed_through("tenant-a", 3)
    for _ in range(100):
        if received(watcher):
            break
        await asyncio.sleep(0.01)
    bus.committed_through("tenant-a", 2)  # an older notice: nothing to read
    bus.publish("tenant-a", 2, events("tenant-a", 3, 3))  # read already: not repeated

    assert asked == [("tenant-a", 0, 3)]
    assert received(watcher) == [1, 2, 3]


async def test_a_watcher_of_one_trade_gets_only_that_trades_events() -> None:
    bus = EventBus()
    other = bus.subscribe("tenant-a", "some-other-trade", buffer=100)
    this = bus.subscribe("tenant-a", "t1", buffer=100)

    bus.publish("tenant-a", 0, events("tenant-a", 1, 2))

    assert (received(other), received(this)) == ([], [1, 2])
