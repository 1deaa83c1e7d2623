"""The store on real PostgreSQL: a unit of work writes whole or not at all.

A decision, the intents it completes and the request's claim are one statement outside any
transaction block, so its atomicity rests on the statement's gates: a stale version or a
request id already claimed must leave every table as it was. A unit of work that reads and
writes through its connection is one transaction, rolled back unless committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.decide import create, decide
from smarttrade.domain.messages import Decision, OrderReported, PriceTicked
from smarttrade.domain.spec import EntrySpec, EntryType, StopLossSpec, TradeSpec
from smarttrade.domain.values import Fill, OrderStatus, Side
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.store.database import Database, open_database
from smarttrade.store.errors import AlreadyClaimed, ConcurrentUpdate, LeaseLost, StoreUnavailable
from smarttrade.store.leases import ShardLeases, shard_of
from smarttrade.store.requests import RequestRecord
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.support.store import Published

BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTC/USDT")
TENANT, ACCOUNT = "tenant-a", "00000000000000a1"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TABLES = ("smart_trades", "orders", "trade_snapshots", "order_intents", "events")


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(database_url, tmp_path)
    async with opened.pool.acquire() as connection:
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


def request(request_id: str) -> RequestRecord:
    return RequestRecord(TENANT, request_id, "CreateSmartTrade", "fingerprint", "smartTrades/x")


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def uow(database: Database, published: Published) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(database, published)


async def record(
    uow: UnitOfWorkFactory,
    decision: Decision | None,
    before: Decision | None,
    done: Sequence[tuple[str, str]] = (),
    claim: RequestRecord | None = None,
) -> None:
    async with uow() as unit:
        unit.trades.record(decision, before.trade if before else None, done, request=claim)
        await unit.commit()


async def load(uow: UnitOfWorkFactory, trade_id: str, tenant_id: str | None = None) -> object:
    async with uow() as unit:
        return await unit.trades.get(trade_id, tenant_id)


async def row_counts(database: Database) -> dict[str, int]:
    async with database.pool.acquire() as connection:
        return {
            table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES
        }


async def test_a_recorded_trade_loads_back_as_it_was_for_its_tenant_only(
    uow: UnitOfWorkFactory,
) -> None:
    new = held("t1")
    await record(uow, new, None)

    assert await load(uow, "t1") == new.trade
    assert await load(uow, "t1", TENANT) == new.trade
    assert await load(uow, "t1", "tenant-b") is None
    assert await load(uow, "nope") is None


async def test_a_trigger_is_written_with_its_intent_and_events_in_sequence(
    database: Database, uow: UnitOfWorkFactory, published: Published
) -> None:
    new = held("t1")
    await record(uow, new, None)
    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    assert stopped.intents
    assert stopped.events

    await record(uow, stopped, new)

    assert await load(uow, "t1") == stopped.trade
    sequences = [stored.sequence for stored in published.events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert [stored.event for stored in published.events[-len(stopped.events) :]] == list(
        stopped.events
    )
    async with database.pool.acquire() as connection:
        intents = await connection.fetch("SELECT client_order_id FROM order_intents")
    assert [row["client_order_id"] for row in intents] == [
        intent.client_order_id for intent in stopped.intents
    ]


async def test_a_decision_on_a_stale_version_writes_nothing_at_all(
    database: Database, uow: UnitOfWorkFactory, published: Published
) -> None:
    new = held("t1")
    await record(uow, new, None)
    first = decide(new.trade, PriceTicked(Decimal(94), AT))  # one writer stops it out
    assert first.persist
    await record(uow, first, new)
    before = await row_counts(database)
    events_before = len(published.events)

    stale = decide(new.trade, PriceTicked(Decimal(93), AT))  # another, on version 0 again
    with pytest.raises(ConcurrentUpdate):
        await record(uow, stale, new)

    assert await row_counts(database) == before
    assert len(published.events) == events_before
    assert await load(uow, "t1") == first.trade


async def test_a_request_id_already_claimed_writes_nothing_at_all(
    database: Database, uow: UnitOfWorkFactory, published: Published
) -> None:
    await record(uow, held("t1"), None, claim=request("r-1"))
    before = await row_counts(database)
    events_before = len(published.events)

    with pytest.raises(AlreadyClaimed):
        await record(uow, held("t2"), None, claim=request("r-1"))

    assert await row_counts(database) == before
    assert len(published.events) == events_before
    assert await load(uow, "t2") is None


async def test_completing_an_intent_removes_it_with_the_decision_that_saw_its_answer(
    database: Database, uow: UnitOfWorkFactory
) -> None:
    new = held("t1")
    await record(uow, new, None)
    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    await record(uow, stopped, new)
    (intent,) = stopped.intents

    await record(uow, None, None, done=[("PLACE", intent.client_order_id)])

    async with database.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM order_intents") == 0


async def test_a_request_claimed_with_a_decision_is_answered_with_the_trade_at_that_version(
    uow: UnitOfWorkFactory,
) -> None:
    new = held("t1")
    await record(uow, new, None, claim=request("r-1"))
    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    async with uow() as unit:  # a later write of the same call updates the answer
        unit.trades.record(stopped, new.trade, request=request("r-1"), first_of_request=False)
        await unit.commit()

    async with uow() as unit:
        stored = await unit.requests.find(TENANT, "r-1")
        assert stored is not None
        assert stored.same_request(request("r-1"))
        assert stored.answer == {"trade": "t1", "version": stopped.trade.version}
        assert await unit.trades.at_version(TENANT, "t1", new.trade.version) == new.trade
        assert await unit.requests.find("tenant-b", "r-1") is None


def account(account_id: str) -> ExchangeAccount:
    return ExchangeAccount(account_id, TENANT, "paper", "paper", AT)


async def test_a_unit_of_work_left_without_commit_keeps_nothing(uow: UnitOfWorkFactory) -> None:
    async with uow() as unit:
        await unit.accounts.add(account("00000000000000b2"))
        unit.requests.claim(request("r-2").answered({"account": "00000000000000b2"}), AT)
        assert await unit.accounts.get(TENANT, "00000000000000b2") is not None  # its own write

    async with uow() as unit:
        assert await unit.accounts.get(TENANT, "00000000000000b2") is None
        assert await unit.requests.find(TENANT, "r-2") is None


async def test_a_unit_of_work_that_raises_rolls_back_what_it_wrote(uow: UnitOfWorkFactory) -> None:
    async def refused_half_way() -> None:
        async with uow() as unit:
            await unit.accounts.add(account("00000000000000b3"))
            raise RuntimeError("a refusal half-way")

    with pytest.raises(RuntimeError):
        await refused_half_way()

    async with uow() as unit:
        assert await unit.accounts.get(TENANT, "00000000000000b3") is None


async def test_a_claim_taken_first_rolls_back_the_whole_transaction_of_the_second(
    uow: UnitOfWorkFactory,
) -> None:
    async with uow() as unit:
        await unit.accounts.add(account("00000000000000b4"))
        unit.requests.claim(request("r-3").answered({"account": "00000000000000b4"}), AT)
        await unit.commit()

    async def second() -> None:
        async with uow() as unit:
            await unit.accounts.add(account("00000000000000b5"))
            unit.requests.claim(request("r-3").answered({"account": "00000000000000b5"}), AT)
            await unit.commit()

    with pytest.raises(AlreadyClaimed):
        await second()

    async with uow() as unit:
        assert await unit.accounts.get(TENANT, "00000000000000b5") is None
        stored = await unit.requests.find(TENANT, "r-3")
        assert stored is not None
        assert stored.answer == {"account": "00000000000000b4"}


async def test_an_unreachable_database_is_the_stores_own_error_without_sql(
    tmp_path: Path,
) -> None:
    nowhere = await open_database(
        "postgresql://postgres@127.0.0.1:9/nowhere", tmp_path, migrated=False
    )
    factory = UnitOfWorkFactory(nowhere, Published())
    try:

        async def load_a_trade() -> None:
            async with factory() as unit:
                await unit.trades.get("t1")

        async def load_the_accounts() -> None:
            async with factory() as unit:
                await unit.accounts.all()

        with pytest.raises(StoreUnavailable) as raised:
            await load_a_trade()
        with pytest.raises(StoreUnavailable):
            await load_the_accounts()
    finally:
        await nowhere.close()
    assert "SELECT" not in str(raised.value)


async def ahead_rows(database: Database) -> list[tuple[str, int]]:
    async with database.pool.acquire() as connection:
        rows = await connection.fetch("SELECT trade_id, version FROM decisions_ahead")
    return [(row["trade_id"], row["version"]) for row in rows]


async def test_a_decision_made_durable_ahead_is_its_trigger_until_its_write_takes_its_place(
    database: Database, uow: UnitOfWorkFactory, published: Published
) -> None:
    new = held("t1")
    await record(uow, new, None)
    tick = PriceTicked(Decimal(94), AT)
    stopped = decide(new.trade, tick)
    before = await row_counts(database)

    async with uow() as unit:
        await unit.trades.write_ahead(stopped, new.trade, tick)
    async with uow() as unit:
        kept = await unit.trades.written_ahead()

    assert await row_counts(database) == before  # nothing of the decision written yet
    assert [(a.trade_id, a.version, a.trigger) for a in kept] == [("t1", 1, tick)]
    assert kept[0].intents == [("PLACE", i.client_order_id) for i in stopped.intents]
    async with uow() as unit:
        unit.trades.record(stopped, new.trade, decided_ahead=True)
        await unit.commit()
    assert await load(uow, "t1") == stopped.trade
    assert await ahead_rows(database) == []


async def test_a_decision_made_ahead_again_after_a_lost_answer_replaces_the_first(
    database: Database, uow: UnitOfWorkFactory
) -> None:
    new = held("t1")
    await record(uow, new, None)
    first = decide(new.trade, PriceTicked(Decimal(94), AT))
    again = decide(new.trade, PriceTicked(Decimal(93), AT))

    for decision, price in ((first, 94), (again, 93)):
        async with uow() as unit:
            await unit.trades.write_ahead(decision, new.trade, PriceTicked(Decimal(price), AT))

    async with uow() as unit:
        kept = await unit.trades.written_ahead()
    assert [a.trigger.price for a in kept if isinstance(a.trigger, PriceTicked)] == [Decimal(93)]


async def test_a_decision_made_ahead_on_a_stale_version_is_refused_before_anything_is_sent(
    database: Database, uow: UnitOfWorkFactory
) -> None:
    new = held("t1")
    await record(uow, new, None)
    first = decide(new.trade, PriceTicked(Decimal(94), AT))
    await record(uow, first, new)  # another writer moved the trade on

    stale = decide(new.trade, PriceTicked(Decimal(93), AT))
    with pytest.raises(ConcurrentUpdate):
        async with uow() as unit:
            await unit.trades.write_ahead(stale, new.trade, PriceTicked(Decimal(93), AT))

    assert await ahead_rows(database) == []


async def test_a_decision_made_ahead_by_a_replica_that_lost_the_lease_is_refused(
    database: Database, uow: UnitOfWorkFactory
) -> None:
    new = held("t1")
    await record(uow, new, None)
    deposed = ShardLeases(database, "replica-a", "127.0.0.1:1", seconds=30)
    assert await deposed.acquire(shard_of(new.trade.tenant_id))
    uow.lease = deposed
    async with database.pool.acquire() as connection:  # another replica took over
        await connection.execute("UPDATE shard_leases SET fence = nextval('lease_fences')")

    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    with pytest.raises(LeaseLost):
        async with uow() as unit:
            await unit.trades.write_ahead(stopped, new.trade, PriceTicked(Decimal(94), AT))

    assert await ahead_rows(database) == []


async def test_a_venue_report_a_decision_was_made_ahead_on_reads_back_as_it_came(
    uow: UnitOfWorkFactory,
) -> None:
    new = held("t1")
    await record(uow, new, None)
    stopped = decide(new.trade, PriceTicked(Decimal(94), AT))
    await record(uow, stopped, new)
    (sell,) = stopped.intents
    filled = OrderReported(
        sell.client_order_id,
        OrderStatus.FILLED,
        AT,
        fills=(Fill("f1", Decimal("93.9"), Decimal("0.1"), Decimal("0.01"), "USDT", AT),),
        exchange_order_id="x1",
    )
    closed = decide(stopped.trade, filled)
    done = [("PLACE", sell.client_order_id)]

    async with uow() as unit:
        await unit.trades.write_ahead(closed, stopped.trade, filled, done)
    async with uow() as unit:
        (kept,) = await unit.trades.written_ahead()

    assert (kept.trigger, kept.done, kept.version) == (filled, done, closed.trade.version)
