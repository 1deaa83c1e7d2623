"""Group commit on real PostgreSQL: concurrent writes share a statement, not their fate.

Writes that come while a statement of their line is in flight go out together in the next
one; each keeps its own gates (a stale version, a claim taken, a refused row fail that write
alone), and the events of all of them are numbered in commit order without a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import asyncpg
import pytest

from smarttrade import metrics
from smarttrade.domain.decide import decide
from smarttrade.domain.messages import Decision, PriceTicked
from smarttrade.store.database import Database
from smarttrade.store.errors import AlreadyClaimed, ConcurrentUpdate
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.integration.test_store import (
    AT,
    TENANT,
    database,  # noqa: F401 (a fixture)
    held,
    load,
    published,  # noqa: F401 (a fixture)
    record,
    request,
    uow,  # noqa: F401 (a fixture)
)
from tests.support.store import Published


class Statements(metrics.Silent):
    """Counts the writes each statement carried."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def store_statement(self, writes: int) -> None:
        self.sizes.append(writes)


@pytest.fixture
def statements() -> Iterator[Statements]:
    counting = Statements()
    metrics.use(counting)
    try:
        yield counting
    finally:
        metrics.use(metrics.Silent())


def stopped(new: Decision) -> Decision:
    return decide(new.trade, PriceTicked(Decimal(94), AT))


async def test_concurrent_writes_of_many_trades_go_out_as_one_statement_each_with_its_own_gates(
    uow: UnitOfWorkFactory,  # noqa: F811
    published: Published,  # noqa: F811
    statements: Statements,
) -> None:
    news = [held(f"t{n}") for n in range(10)]
    for new in news:
        await record(uow, new, None)
    await record(uow, held("claimed-first"), None, claim=request("r-1"))
    await record(uow, stopped(news[9]), news[9])  # t9 moved on: a write from version 0 is stale
    statements.sizes.clear()
    first = len(published.events)

    outcomes = await asyncio.gather(
        *(record(uow, stopped(new), new) for new in news),  # t9's is stale
        record(uow, held("t-dup"), None, claim=request("r-1")),  # its request id was taken
        return_exceptions=True,
    )

    assert outcomes[:9] == [None] * 9
    assert isinstance(outcomes[9], ConcurrentUpdate)
    assert isinstance(outcomes[10], AlreadyClaimed)
    assert statements.sizes == [11]  # all of them in one statement
    for new in news[:9]:
        assert await load(uow, new.trade.id) == stopped(new).trade
    assert await load(uow, "t-dup") is None
    events = published.events[first:]
    assert [event.sequence for event in events] == list(
        range(events[0].sequence, events[0].sequence + len(events))
    )
    assert {event.trade.id for event in events} == {new.trade.id for new in news[:9]}
    assert len(events) == sum(len(stopped(new).events) for new in news[:9])


async def test_a_write_the_database_refuses_fails_alone_and_the_others_of_its_statement_land(
    uow: UnitOfWorkFactory,  # noqa: F811
    statements: Statements,
) -> None:
    news = [held(f"t{n}") for n in range(4)]
    orphan = held("orphan")  # its account does not exist: its row breaks a foreign key
    orphan = replace(orphan, trade=replace(orphan.trade, account_id="0000000000000000"))

    outcomes = await asyncio.gather(
        *(record(uow, new, None) for new in news[:2]),
        record(uow, orphan, None),
        *(record(uow, new, None) for new in news[2:]),
        return_exceptions=True,
    )

    assert [outcome is None for outcome in outcomes] == [True, True, False, True, True]
    assert isinstance(outcomes[2], asyncpg.ForeignKeyViolationError)
    assert statements.sizes == [5, 1, 1, 1, 1, 1]  # refused whole, then sent one by one
    for new in news:
        assert await load(uow, new.trade.id) == new.trade
    assert await load(uow, "orphan") is None


async def test_a_writer_that_stops_waiting_before_its_statement_goes_out_writes_nothing(
    database: Database,  # noqa: F811
    uow: UnitOfWorkFactory,  # noqa: F811
    statements: Statements,
) -> None:
    first, second = held("t-first"), held("t-second")
    async with database.pool.acquire() as locker:
        # Hold the tenant's event counter row, so the first statement waits in PostgreSQL.
        await record(uow, held("t-zero"), None)
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute(
            "SELECT 1 FROM event_sequences WHERE tenant_id = $1 FOR UPDATE", TENANT
        )
        writing = asyncio.ensure_future(record(uow, first, None))
        await asyncio.sleep(0.2)  # its statement is in flight, waiting on the row
        behind = asyncio.ensure_future(record(uow, second, None))
        await asyncio.sleep(0.05)
        behind.cancel()
        await transaction.rollback()
        await writing

    with pytest.raises(asyncio.CancelledError):
        await behind
    assert await load(uow, "t-first") == first.trade
    assert await load(uow, "t-second") is None
    assert statements.sizes[-1] == 1  # the first went alone, and nothing after it


async def test_writers_waiting_on_a_sender_that_is_cancelled_are_not_left_waiting(
    database: Database,  # noqa: F811
    uow: UnitOfWorkFactory,  # noqa: F811
) -> None:
    await record(uow, held("t-zero"), None)
    async with database.pool.acquire() as locker:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute(
            "SELECT 1 FROM event_sequences WHERE tenant_id = $1 FOR UPDATE", TENANT
        )
        first = asyncio.ensure_future(record(uow, held("t-first"), None))
        await asyncio.sleep(0.2)  # its statement waits on the row
        behind = asyncio.ensure_future(record(uow, held("t-second"), None))
        await asyncio.sleep(0.05)
        (sender,) = uow.group_commit._senders
        sender.cancel()  # as when the loop closes under it
        outcomes = await asyncio.wait_for(
            asyncio.gather(first, behind, return_exceptions=True), timeout=5
        )
        await transaction.rollback()

    assert [type(outcome) for outcome in outcomes] == [asyncio.CancelledError] * 2
