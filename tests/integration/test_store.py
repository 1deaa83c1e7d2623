"""The store of running trades on real PostgreSQL: a decision is written whole or not at all.

A decision, the intents it completes and the request's claim are one statement outside any
transaction block, so its atomicity rests on the statement's gates: a stale version or a
request id already claimed must leave every table as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.domain.decide import create, decide
from smarttrade.domain.messages import Decision, PriceTicked
from smarttrade.domain.spec import EntrySpec, EntryType, StopLossSpec, TradeSpec
from smarttrade.domain.values import Side
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.store.database import Database, open_database
from smarttrade.store.idempotency import AlreadyClaimed, Claim
from smarttrade.store.unit_of_work import ConcurrentUpdate, Store, StoredEvent

BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTC/USDT")
TENANT, ACCOUNT = "tenant-a", "00000000000000a1"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TABLES = ("smart_trades", "legs", "orders", "trade_snapshots", "order_intents", "events")


class Published:
    def __init__(self) -> None:
        self.events: list[StoredEvent] = []

    def publish(self, events: Sequence[StoredEvent]) -> None:
        self.events.extend(events)


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(database_url, tmp_path)
    async with opened.hot_path.acquire() as connection:
        await connection.execute(
            "INSERT INTO exchange_accounts (id, tenant_id, display_name, exchange,"
            " paper_settings, created_at) VALUES ($1, $2, 'paper', 'paper', '{}', $3)",
            ACCOUNT,
            TENANT,
            AT,
        )
    yield opened
    await opened.close()


def held(trade_id: str) -> Decision:
    """A trade holding 0.1 BTC bought at 100, with its stop at 95."""
    spec = TradeSpec(
        symbol="BTC/USDT",
        side=Side.BUY,
        entry=EntrySpec(EntryType.SKIP, units=Decimal("0.1"), average_price=Decimal(100)),
        stop_loss=StopLossSpec(price=Decimal(95)),
    )
    return create(
        trade_id=trade_id,
        tenant_id=TENANT,
        account_id=ACCOUNT,
        exchange_id="paper",
        spec=spec,
        market=BTC,
        last_price=Decimal(100),
        at=AT,
    )


def claim(request_id: str) -> Claim:
    return Claim(TENANT, request_id, "CreateSmartTrade", "fingerprint", "smartTrades/x")


async def row_counts(database: Database) -> dict[str, int]:
    async with database.hot_path.acquire() as connection:
        return {
            table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES
        }


async def test_a_recorded_trade_loads_back_as_it_was_for_its_tenant_only(
    database: Database,
) -> None:
    store = Store(database.engine, database.hot_path, Published())
    new = held("t1")
    await store.record(new, None)

    assert await store.load("t1") == new.trade
    assert await store.load("t1", TENANT) == new.trade
    assert await store.load("t1", "tenant-b") is None
    assert await store.load("nope") is None


async def test_a_trigger_is_written_with_its_intent_and_events_in_sequence(
    database: Database,
) -> None:
    published = Published()
    store = Store(database.engine, database.hot_path, published)
    new = held("t1")
    await store.record(new, None)
    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    assert stopped.intents
    assert stopped.events

    await store.record(stopped, new.trade)

    assert await store.load("t1") == stopped.trade
    sequences = [stored.sequence for stored in published.events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert [stored.event for stored in published.events[-len(stopped.events) :]] == list(
        stopped.events
    )
    async with database.hot_path.acquire() as connection:
        intents = await connection.fetch("SELECT client_order_id FROM order_intents")
    assert [row["client_order_id"] for row in intents] == [
        intent.client_order_id for intent in stopped.intents
    ]


async def test_a_decision_on_a_stale_version_writes_nothing_at_all(database: Database) -> None:
    published = Published()
    store = Store(database.engine, database.hot_path, published)
    new = held("t1")
    await store.record(new, None)
    first = decide(new.trade, PriceTicked(Decimal(94), AT))  # one writer stops it out
    assert first.persist
    await store.record(first, new.trade)
    before = await row_counts(database)
    events_before = len(published.events)

    stale = decide(new.trade, PriceTicked(Decimal(93), AT))  # another, on version 0 again
    with pytest.raises(ConcurrentUpdate):
        await store.record(stale, new.trade)

    assert await row_counts(database) == before
    assert len(published.events) == events_before
    assert await store.load("t1") == first.trade


async def test_a_request_id_already_claimed_writes_nothing_at_all(database: Database) -> None:
    published = Published()
    store = Store(database.engine, database.hot_path, published)
    await store.record(held("t1"), None, claim=claim("r-1"), at=AT)
    before = await row_counts(database)
    events_before = len(published.events)

    with pytest.raises(AlreadyClaimed):
        await store.record(held("t2"), None, claim=claim("r-1"), at=AT)

    assert await row_counts(database) == before
    assert len(published.events) == events_before
    assert await store.load("t2") is None


async def test_completing_an_intent_removes_it_with_the_decision_that_saw_its_answer(
    database: Database,
) -> None:
    store = Store(database.engine, database.hot_path, Published())
    new = held("t1")
    await store.record(new, None)
    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    await store.record(stopped, new.trade)
    (intent,) = stopped.intents

    await store.record(None, None, done=[("PLACE", intent.client_order_id)])

    async with database.hot_path.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM order_intents") == 0
