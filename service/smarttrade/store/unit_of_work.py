"""The unit of work: one transaction on the store, through repositories.

    async with uow_factory() as uow:
        trade = await uow.trades.get(trade_id)
        uow.trades.record(decision, before=trade)
        uow.requests.claim(request)
        await uow.commit()

Reads happen when asked; writes are staged by the repositories and written at `commit()`.
Nothing is kept unless `commit()` is called: leaving the block otherwise (an error, a
refusal) rolls back whatever the unit of work did. Driver errors leave as the store's own
(store/errors.py).

Most units of work only record a trade's decision (the path from a trigger to its order) or
a venue's changes, with the request id they answer: those open no transaction at all, and
`commit()` writes everything staged as one statement, which is its own transaction
(one_statement.py): one round trip, committed durably when it returns, shared with the
writes of other trades that came while the previous statement was in flight
(group_commit.py). A unit of work that
reads or writes through its connection first (`connection()`: an account created, a share
revoked) runs in a transaction begun on first use, and `commit()` writes the staged rows in
it, then commits.

A decision that sends orders on a venue's fact or the clock (no trader's request) is made
durable ahead (`write_ahead`) as one small row, the input it was decided on, so its order
goes out after the cheapest commit there is; its write follows once the order is sent, and
in any case before the trade's next write, deleting that row. A service that stopped in
between decides again on the same input from the same version of the trade at its next
start (`TradeRepository.written_ahead`; decisions are pure functions of the two) and writes
that before loading any trade.

Events get their tenant's next sequences in that statement, from the tenant's counter row,
which stays locked until the commit: within a tenant, commit order is sequence order, so a
reader that has seen sequence N has seen everything of that tenant before it, and commits of
different tenants do not wait for each other. They are handed to the sink right after the
commit, with the sequence they follow; the sink puts each tenant's commits back in order
(answers of concurrent commits may come back in any order).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from types import TracebackType
from typing import Any, Protocol, Self, cast

from sqlalchemy import Executable, Result
from sqlalchemy.ext.asyncio import AsyncConnection

from smarttrade import failpoints, metrics
from smarttrade.domain.messages import Event, StoredEvent
from smarttrade.domain.model import SmartTrade
from smarttrade.failpoints import failpoint
from smarttrade.store.accounts import AccountRepository
from smarttrade.store.database import Database
from smarttrade.store.errors import AlreadyClaimed, ConcurrentUpdate, LeaseLost, driver_errors
from smarttrade.store.events import EventRepository
from smarttrade.store.group_commit import GroupCommit
from smarttrade.store.leases import NONE_HELD, ShardLeases
from smarttrade.store.one_statement import StagedWrites, ahead_statement, statement
from smarttrade.store.paper import PaperLedger
from smarttrade.store.requests import RequestRepository
from smarttrade.store.shares import ShareRepository
from smarttrade.store.trades import TradeRepository

Row = Mapping[str, Any]
UPKEEP_LIMIT = 3600.0  # seconds a statement of upkeep (pruning) may take
_LEASE_HELD = "SELECT 1 FROM shard_leases WHERE fence = $1 AND expires_at > clock_timestamp()"


class EventSink(Protocol):
    def publish(self, tenant_id: str, after: int, events: Sequence[StoredEvent]) -> None:
        """A commit's events of one tenant, numbered from `after` + 1 on."""
        ...


def _request_id(staged: StagedWrites) -> str | None:
    """The request id a write takes with its effect, if it does: the failpoints
    `request:{id}:before-commit` and `request:{id}:after-commit` crash there."""
    claim = staged.claim or (staged.requests[0] if staged.requests else None)
    return str(claim["request_id"]) if claim is not None else None


class UnitOfWorkFactory:
    """Makes units of work on one database, whose events go to one sink."""

    def __init__(self, database: Database, sink: EventSink) -> None:
        self.database = database
        self.sink = sink
        self.group_commit = GroupCommit(database)
        # Replicas with leases: every write carries the fencing number of its tenant's
        # shard (without leases, None, and writes are not fenced).
        self.lease: ShardLeases | None = None

    def __call__(self, *, consistent: bool = False) -> UnitOfWork:
        """A unit of work; `consistent`: its reads see one snapshot of the database
        (REPEATABLE READ), e.g. trades and the last sequence they reflect."""
        return UnitOfWork(self, consistent)


class UnitOfWork:
    def __init__(self, factory: UnitOfWorkFactory, consistent: bool = False) -> None:
        self._factory = factory
        self._consistent = consistent
        self._database = factory.database
        self._connection: AsyncConnection | None = None
        self._committed = False
        self.staged = StagedWrites()
        self.staged_events: list[tuple[SmartTrade, Event]] = []

    # The repositories, made on first use (most units of work use one).

    @cached_property
    def trades(self) -> TradeRepository:
        return TradeRepository(self)

    @cached_property
    def accounts(self) -> AccountRepository:
        return AccountRepository(self)

    @cached_property
    def shares(self) -> ShareRepository:
        return ShareRepository(self)

    @cached_property
    def requests(self) -> RequestRepository:
        return RequestRepository(self)

    @cached_property
    def events(self) -> EventRepository:
        return EventRepository(self)

    @cached_property
    def paper(self) -> PaperLedger:
        return PaperLedger(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                if not self._committed:
                    await connection.rollback()
                await connection.close()
            except Exception:
                if error is None:  # a failure to roll back loses nothing: report the first
                    raise
        self.staged = StagedWrites()
        self.staged_events = []

    # ---- for the repositories ------------------------------------------------------------

    async def connection(self) -> AsyncConnection:
        """The unit of work's transaction (SQLAlchemy Core), begun on first use."""
        if self._connection is None:
            async with driver_errors():
                connection = await self._database.connections.connect()
                if self._consistent:
                    connection = await connection.execution_options(
                        isolation_level="REPEATABLE READ"
                    )
                try:
                    await connection.begin()
                except BaseException:
                    await connection.close()
                    raise
            self._connection = connection
        return self._connection

    async def execute(self, statement: Executable) -> Result[*tuple[Any, ...]]:
        """A statement of SQLAlchemy Core, in the transaction."""
        connection = await self.connection()
        async with driver_errors():
            return await connection.execute(statement)

    async def fetch(self, sql: str, *arguments: object, upkeep: bool = False) -> list[Row]:
        """Plain SQL (asyncpg's `$n` parameters; JSON columns come back decoded): in the
        transaction if one was begun, else on its own (the hot reads: a trade loaded on the
        way to its trigger, a GetSmartTrade), within the store's time limit, unless it is
        `upkeep` (pruning a backlog may rightly take long)."""
        async with driver_errors():
            if self._connection is not None:
                result = await self._connection.exec_driver_sql(sql, arguments)
                return [dict(row._mapping) for row in result]
            limit = UPKEEP_LIMIT if upkeep else None  # None: the pool's own
            async with self._database.pool.acquire() as connection:
                return cast(list[Row], await connection.fetch(sql, *arguments, timeout=limit))

    def stage_events(self, trade: SmartTrade, events: Sequence[Event]) -> None:
        self.staged_events.extend((trade, event) for event in events)

    # ---- committing ----------------------------------------------------------------------

    async def commit(self) -> None:
        """Write what is staged and commit. Raises `AlreadyClaimed` or `ConcurrentUpdate`
        when a check fails (nothing is written then), `StoreUnavailable` when the database
        cannot be reached (nothing is written, unless the commit went through and only its
        answer was lost)."""
        staged, events = self.staged, self.staged_events
        answering = _request_id(staged) if failpoints.ARMED else None
        if answering:
            failpoint(f"request:{answering}:before-commit")
        if staged.empty:
            if self._connection is not None:
                async with driver_errors():
                    await self._connection.commit()
        else:
            staged.fence = self._fence(staged.owner)
            sequences = await self._write(staged)
            self._publish(sequences, events)
        self._done()
        if answering:
            failpoint(f"request:{answering}:after-commit")

    async def write_ahead(
        self, tenant_id: str, trade_id: str, expected: int, version: int, trigger: str
    ) -> None:
        """Make a trade's decision durable ahead of its write as the input it was decided on
        (`trigger`, JSON: see TradeRepository.write_ahead), while the trade is still at
        `expected`. Raises like `commit`."""
        fence = self._fence(tenant_id)
        sql, arguments = ahead_statement(fence, trade_id, expected, version, trigger)
        started = time.perf_counter()
        written = await self.fetch(sql, *arguments)
        metrics.recorder.store_write(time.perf_counter() - started)
        if not written:  # held back: say by which gate
            if fence is not None and not await self.fetch(_LEASE_HELD, fence):
                raise LeaseLost()
            raise ConcurrentUpdate(trade_id)
        self._done()

    def _fence(self, tenant_id: str | None) -> int | None:
        """Replicas with leases: the fencing number a write of the tenant's data carries
        (else None). A write of no tenant's data (none is staged so) would be refused."""
        lease = self._factory.lease
        if lease is None:
            return None
        return lease.fence_of(tenant_id) if tenant_id is not None else NONE_HELD

    async def _write(self, staged: StagedWrites) -> list[int]:
        """Write `staged`: with the writes of other units of work (group commit) on the
        fast path, else in this unit of work's transaction, then commit it."""
        started = time.perf_counter()
        if self._connection is None:
            row = await self._factory.group_commit.write(staged)
        else:
            sql, arguments = statement([staged])
            row = (await self.fetch(sql, *arguments))[0]
        metrics.recorder.store_write(time.perf_counter() - started)
        if not row["leased"]:
            raise LeaseLost()
        if not row["claimed"]:
            raise AlreadyClaimed(str((staged.claim or {}).get("request_id", "?")))
        if not row["written"]:
            raise ConcurrentUpdate(staged.trade_id or "?")
        if self._connection is not None:
            async with driver_errors():
                await self._connection.commit()
        return list(row["sequences"])

    def _publish(self, sequences: list[int], events: list[tuple[SmartTrade, Event]]) -> None:
        if not events:
            return
        tenant_id = events[0][0].tenant_id
        metrics.recorder.events(len(events))
        self._factory.sink.publish(
            tenant_id,
            sequences[0] - 1,
            [
                StoredEvent(sequence, tenant_id, trade, event)
                for sequence, (trade, event) in zip(sequences, events, strict=True)
            ],
        )

    def _done(self) -> None:
        self._committed = True
        self.staged, self.staged_events = StagedWrites(), []
