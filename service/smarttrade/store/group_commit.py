"""Group commit: the writes of concurrent units of work, committed by one statement.

A write that appends events takes its tenant's event counter row until its commit (see
unit_of_work), so one tenant's writes commit one after the other in PostgreSQL whatever we
do, each paying a round trip, a statement and a WAL flush of its own. Here each tenant's
writes go out one statement at a time instead: a write finds the line free and goes at once
(alone, as before), or finds a statement in flight and joins the next one, which carries
every write that came meanwhile (one_statement.statement: each write keeps its own gates
and answer). Under load a statement carries many writes for the price of one; at rest
nothing waits. Writes that append no events (a paper venue's, an intent completed) form a
line of their own, as do writes under another fencing number.

A statement never carries two writes of one trade (a trade writes one at a time anyway),
nor two that name no trade (a paper venue's rows overwrite by key): such a write waits for
the statement after. If the database is unreachable, every write of the statement gets the
error: none of them was written (or, where the answer was lost with the connection, all of
them were, which each writer finds as for a write of its own). A statement the database
refuses (a bug: it should not happen) is sent again one write at a time, so only the write
at fault fails. A writer that stops waiting (cancelled) before its statement goes out is
left out of it; once it went out, it is written anyway, as a statement cancelled in flight
may be.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from smarttrade import metrics
from smarttrade.store.database import Database
from smarttrade.store.errors import StoreUnavailable, driver_errors
from smarttrade.store.one_statement import StagedWrites, statement

Row = Mapping[str, Any]
MAX_WRITES = 64  # per statement: bounds its size, and the time a writer may wait behind it


@dataclass(eq=False)
class _Waiting:
    staged: StagedWrites
    answer: asyncio.Future[Row] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._lines: dict[tuple[str | None, int | None], deque[_Waiting]] = {}
        # The running senders, referenced: the loop holds its tasks only weakly.
        self._senders: set[asyncio.Task[None]] = set()

    async def write(self, staged: StagedWrites) -> Row:
        """Write `staged` (its fencing number set) durably; its row of the statement's
        answer (see one_statement.statement). Raises the store's errors."""
        key = (staged.tenant_id, staged.fence)
        waiting = _Waiting(staged)
        line = self._lines.get(key)
        if line is None:  # nothing in flight on this line: go now
            line = self._lines[key] = deque()
            line.append(waiting)
            sender = asyncio.get_running_loop().create_task(self._run(key, line))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        else:
            line.append(waiting)
        return await waiting.answer

    async def _run(self, key: tuple[str | None, int | None], line: deque[_Waiting]) -> None:
        """Send the line's writes, a statement at a time, until none is left. Should the
        sender itself fail (cancelled as the loop closes, a bug), every writer still waiting
        gets its error: none is left waiting forever."""
        batch: list[_Waiting] = []
        try:
            while line:
                batch = _take(line)
                if batch:
                    await self._send(batch)
        except BaseException as error:
            _fail([*batch, *line], error)
            raise
        finally:
            del self._lines[key]

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            sql, arguments = statement([waiting.staged for waiting in batch])
            metrics.recorder.store_statement(len(batch))
            async with driver_errors(), self._database.pool.acquire() as connection:
                rows = await connection.fetch(sql, *arguments)
        except Exception as error:
            if isinstance(error, StoreUnavailable) or len(batch) == 1:
                _fail(batch, error)  # each writer raises it (none of them was written)
            else:  # refused: a bug, of one of them; it alone gets it
                for waiting in batch:
                    await self._send([waiting])
            return
        for waiting, row in zip(batch, rows, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(cast(Row, row))


def _fail(writes: Iterable[_Waiting], error: BaseException) -> None:
    for waiting in writes:
        if not waiting.answer.done():
            if isinstance(error, asyncio.CancelledError):
                waiting.answer.cancel()
            else:
                waiting.answer.set_exception(error)


def _take(line: deque[_Waiting]) -> list[_Waiting]:
    """The next statement's writes, in the order they came: up to MAX_WRITES, of distinct
    trades and at most one of no trade. Those left out stay first in line; writers that
    stopped waiting are dropped."""
    batch: list[_Waiting] = []
    trades: set[str | None] = set()
    kept: list[_Waiting] = []
    while line and len(batch) < MAX_WRITES:
        waiting = line.popleft()
        if waiting.answer.done():  # cancelled: never sent
            continue
        trade = waiting.staged.trade_id
        if trade in trades:
            kept.append(waiting)
            continue
        trades.add(trade)
        batch.append(waiting)
    line.extendleft(reversed(kept))
    return batch
