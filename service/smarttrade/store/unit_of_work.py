"""The unit of work: one transaction that records decisions and their events atomically.

It rolls back unless `commit()` is called. Events get their global sequence at commit, under
a Postgres advisory lock held until the commit (and an in-process lock around it), so commit
order equals sequence order: a reader that has seen sequence N has seen everything before
it. The events are published to the in-process sink right after the commit, in that order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from sqlalchemy import insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import Decision, Event, Intent, PlaceOrder
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.store import tables
from smarttrade.store.codec import market_document, spec_document, to_document, trade_document
from smarttrade.store.sql import upsert

EVENTS_LOCK = 0x5354_4556  # "STEV": serialises the event tail of commits across replicas
APPEND_EVENTS = text(
    """
    WITH locked AS (SELECT pg_advisory_xact_lock(:lock))
    INSERT INTO events (tenant_id, trade_id, trade_version, type, at, facts)
    SELECT e.tenant_id, e.trade_id, e.trade_version, e.type, e.at, e.facts::jsonb
    FROM locked, unnest(
        CAST(:tenants AS text[]), CAST(:trades AS text[]), CAST(:versions AS integer[]),
        CAST(:types AS text[]), CAST(:ats AS timestamptz[]), CAST(:facts AS text[])
    ) WITH ORDINALITY AS e(tenant_id, trade_id, trade_version, type, at, facts, n)
    ORDER BY e.n
    RETURNING sequence
    """
)


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
    def __init__(self, store: Store) -> None:
        self._store = store
        self._connection: AsyncConnection | None = None
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

    async def save(self, decision: Decision, before: SmartTrade | None) -> None:
        """Record a decision: the trade's rows, its snapshot, its intents and (at commit) its
        events. `before` is the trade as stored (its version is checked); None if new. Only
        what changed since `before` is written: this is the hot path of every trigger."""
        trade = decision.trade
        connection = self.connection
        row = _trade_row(trade)
        if before is None:
            await connection.execute(insert(tables.smart_trades), [row])
        else:
            for fixed in FIXED_COLUMNS:
                del row[fixed]
            if trade.spec == before.spec:
                del row["spec"]
            result = await connection.execute(
                update(tables.smart_trades)
                .where(tables.smart_trades.c.id == trade.id)
                .where(tables.smart_trades.c.version == before.version)
                .values(row)
            )
            if result.rowcount != 1:
                raise ConcurrentUpdate(trade.id)
        await _upsert_legs(connection, trade, before)
        await connection.execute(
            insert(tables.trade_snapshots),
            [{"trade_id": trade.id, "version": trade.version, "data": trade_document(trade)}],
        )
        if decision.intents:
            await connection.execute(
                pg_insert(tables.order_intents).on_conflict_do_nothing(),
                [_intent_row(trade, intent) for intent in decision.intents],
            )
        self._events.extend((trade, event) for event in decision.events)

    async def complete_intent(self, client_order_id: str, kind: str) -> None:
        table = tables.order_intents
        await self.connection.execute(
            table.delete()
            .where(table.c.client_order_id == client_order_id)
            .where(table.c.kind == kind)
        )

    async def commit(self) -> list[StoredEvent]:
        connection = self.connection
        if not self._events:
            await connection.commit()
            return []
        rows = [_event_row(trade, event) for trade, event in self._events]
        async with self._store._append_lock:
            # One round trip: take the events lock and append, in event order.
            result = await connection.execute(
                APPEND_EVENTS,
                {
                    "lock": EVENTS_LOCK,
                    "tenants": [row["tenant_id"] for row in rows],
                    "trades": [row["trade_id"] for row in rows],
                    "versions": [row["trade_version"] for row in rows],
                    "types": [row["type"] for row in rows],
                    "ats": [row["at"] for row in rows],
                    "facts": [json.dumps(row["facts"]) for row in rows],
                },
            )
            sequences = sorted(result.scalars())
            await connection.commit()
            stored = [
                StoredEvent(sequence, trade.tenant_id, trade, event)
                for sequence, (trade, event) in zip(sequences, self._events, strict=True)
            ]
            self._events = []
            self._store.sink.publish(stored)
        return stored


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


async def _upsert_legs(
    connection: AsyncConnection, trade: SmartTrade, before: SmartTrade | None
) -> None:
    """The legs, orders and fills that changed since `before` (all of them when new)."""
    leg_rows: list[dict[str, object]] = []
    order_rows: list[dict[str, object]] = []
    fill_rows: list[dict[str, object]] = []
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
    await upsert(connection, tables.legs, leg_rows, ["trade_id", "id"])
    await upsert(connection, tables.orders, order_rows, ["client_order_id"])
    if fill_rows:
        await connection.execute(pg_insert(tables.fills).on_conflict_do_nothing(), fill_rows)


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
