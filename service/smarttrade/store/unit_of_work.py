"""The unit of work: one transaction that records decisions and their events atomically.

It rolls back unless `commit()` is called. Events get their global sequence at commit, under
a Postgres advisory lock held until the commit (and an in-process lock around it), so commit
order equals sequence order: a reader that has seen sequence N has seen everything before
it. The events are published to the in-process sink right after the commit, in that order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import Decision, Event, Intent, PlaceOrder
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.store.codec import market_document, spec_document, to_document, trade_document
from smarttrade.store.record import Batch

EVENTS_LOCK = 0x5354_4556  # "STEV": serialises the event tail of commits across replicas


class ConcurrentUpdate(Exception):
    """The trade changed under us (another writer): the caller reloads and retries."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event with its global sequence and the trade as it was right after it."""

    sequence: int
    tenant_id: str
    trade: SmartTrade
    event: Event


class EventSink(Protocol):
    def publish(self, events: Sequence[StoredEvent]) -> None: ...


class Store:
    def __init__(self, engine: AsyncEngine, sink: EventSink) -> None:
        self.engine = engine
        self.sink = sink
        self._append_lock = asyncio.Lock()

    def transaction(self) -> UnitOfWork:
        return UnitOfWork(self)


class UnitOfWork:
    """A transaction. Decisions and completed intents are gathered and written at `commit`
    in one statement (see record.py); anything else uses `connection` directly."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._connection: AsyncConnection | None = None
        self._batch = Batch()
        self._events: list[tuple[SmartTrade, Event]] = []

    @property
    def connection(self) -> AsyncConnection:
        assert self._connection is not None, "use `async with store.transaction()`"
        return self._connection

    async def __aenter__(self) -> UnitOfWork:
        self._connection = await self._store.engine.connect()
        await self._connection.begin()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self.connection
        try:
            if connection.in_transaction():
                await connection.rollback()
        finally:
            await connection.close()

    def save(self, decision: Decision, before: SmartTrade | None) -> None:
        """Record a decision: the trade's rows, its snapshot, its intents and its events.
        `before` is the trade as stored (its version is checked at commit); None if new.
        Only what changed since `before` is written: this is the hot path of a trigger."""
        trade = decision.trade
        batch = self._batch
        row = _trade_row(trade)
        if before is None:
            batch.new_trade = row
        else:
            for fixed in FIXED_COLUMNS[1:]:  # the id stays: it is the row's key
                del row[fixed]
            if trade.spec == before.spec:
                del row["spec"]
            batch.trade_update = row
            batch.expected_version = before.version
        _changed_rows(batch, trade, before)
        batch.snapshots.append(
            {"trade_id": trade.id, "version": trade.version, "data": trade_document(trade)}
        )
        batch.intents.extend(_intent_row(trade, intent) for intent in decision.intents)
        batch.events.extend(_event_row(trade, event) for event in decision.events)
        self._events.extend((trade, event) for event in decision.events)

    def complete_intent(self, client_order_id: str, kind: str) -> None:
        self._batch.done_intents.append({"client_order_id": client_order_id, "kind": kind})

    async def commit(self) -> list[StoredEvent]:
        """Write what was gathered and commit. With events, the write and the commit run
        under the in-process append lock (and the statement takes the Postgres events lock):
        commits then append in sequence order, and are published in that order."""
        if not self._events:
            await self._write()
            await self.connection.commit()
            return []
        async with self._store._append_lock:
            sequences = await self._write()
            await self.connection.commit()
            stored = [
                StoredEvent(sequence, trade.tenant_id, trade, event)
                for sequence, (trade, event) in zip(sequences, self._events, strict=True)
            ]
            self._events = []
            self._store.sink.publish(stored)
        return stored

    async def _write(self) -> list[int]:
        batch, self._batch = self._batch, Batch()
        if batch.empty:
            return []
        statement, parameters = batch.statement(EVENTS_LOCK)
        row = (await self.connection.execute(statement, parameters)).one()
        if row.written != 1:
            raise ConcurrentUpdate(
                str((batch.trade_update or batch.new_trade or {}).get("id", "?"))
            )
        return list(row.sequences)


# Set at creation, never changed by a decision.
FIXED_COLUMNS = (
    "id",
    "tenant_id",
    "account_id",
    "exchange",
    "symbol",
    "side",
    "market",
    "created_at",
)


def _trade_row(trade: SmartTrade) -> dict[str, object]:
    levels = wake_levels(trade)
    return {
        "id": trade.id,
        "tenant_id": trade.tenant_id,
        "account_id": trade.account_id,
        "exchange": trade.exchange_id,
        "symbol": trade.spec.symbol,
        "side": trade.spec.side.value,
        "state": trade.state.value,
        "close_reason": trade.close_reason.value if trade.close_reason else None,
        "spec": spec_document(trade.spec),
        "market": market_document(trade.market),
        "reference_price": trade.reference_price,
        "last_price": trade.last_price,
        "last_error": trade.last_error,
        "exit_leg_id": trade.exit_leg_id,
        "version": trade.version,
        "created_at": trade.created_at,
        "updated_at": trade.updated_at,
        "ended_at": trade.ended_at,
        "wake_below": levels.below,
        "wake_above": levels.above,
        "wake_at": levels.at,
        "units_held": position_of(trade).units_held,
    }


def _changed_rows(batch: Batch, trade: SmartTrade, before: SmartTrade | None) -> None:
    """The legs, orders and fills that changed since `before` (all of them when new)."""
    leg_rows, order_rows, fill_rows = batch.legs, batch.orders, batch.fills
    unchanged = {leg.id: leg for leg in before.legs} if before is not None else {}
    for position, leg in enumerate(trade.legs):
        if unchanged.get(leg.id) == leg:
            continue
        leg_rows.append(
            {
                "trade_id": trade.id,
                "id": leg.id,
                "position": position,
                "kind": leg.kind.value,
                "state": leg.state.value,
                "step": leg.step,
                "amount": leg.amount,
                "price": leg.price,
                "generation": leg.generation,
                "watch": to_document(
                    {
                        "released": leg.released,
                        "triggered": leg.triggered,
                        "trailing_active": leg.trailing_active,
                        "trailing_extreme": leg.trailing_extreme,
                        "breach_since": leg.breach_since,
                        "open_now": leg.open_now,
                    }
                ),
                "params": to_document(
                    {
                        "order_type": leg.order_type,
                        "limit_price": leg.limit_price,
                        "total": leg.total,
                    }
                ),
                "note": leg.note,
            }
        )
        for index, order in enumerate(leg.orders):
            order_rows.append(
                {
                    "client_order_id": order.client_order_id,
                    "trade_id": trade.id,
                    "leg_id": leg.id,
                    "position": index,
                    "side": order.side.value,
                    "type": order.type.value,
                    "amount": order.amount,
                    "price": order.price,
                    "status": order.status.value,
                    "exchange_order_id": order.exchange_order_id,
                    "error": order.error,
                    "cancel_requested": order.cancel_requested,
                    "reduce_only": order.reduce_only,
                    "created_at": order.created_at,
                    "updated_at": order.updated_at,
                }
            )
            fill_rows.extend(
                {
                    "client_order_id": order.client_order_id,
                    "trade_id": fill.trade_id,
                    "smart_trade_id": trade.id,
                    "price": fill.price,
                    "amount": fill.amount,
                    "fee": fill.fee,
                    "fee_currency": fill.fee_currency,
                    "at": fill.at,
                }
                for fill in order.fills
            )


def _intent_row(trade: SmartTrade, intent: Intent) -> dict[str, object]:
    return {
        "client_order_id": intent.client_order_id,
        "kind": "PLACE" if isinstance(intent, PlaceOrder) else "CANCEL",
        "trade_id": trade.id,
        "payload": to_document(intent),
        "created_at": trade.updated_at,
    }


def _event_row(trade: SmartTrade, event: Event) -> dict[str, object]:
    facts = to_document(event)
    return {
        "tenant_id": trade.tenant_id,
        "trade_id": trade.id,
        "trade_version": trade.version,
        "type": event.type.value,
        "at": event.at,
        "facts": facts,
    }
