"""The store of running trades: recording decisions and loading trades, on the hot path.

A decision, the intents it completes and the request's claim are one unit of work, written
by one statement (record.py) that is its own transaction. It goes through the hot path's
pool of plain asyncpg connections, outside any transaction block: one round trip,
committed durably when it returns (this is the path from a trigger to its order: persist,
then act). Events get their global sequence in that statement, under a Postgres advisory
lock held until its commit (and an in-process lock around it), so commit order equals
sequence order: a reader that has seen sequence N has seen everything before it. The
events are published to the in-process sink right after the commit, in that order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import Decision, Event, Intent, PlaceOrder
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.store.codec import (
    trade_from_document,
)
from smarttrade.store.idempotency import AlreadyClaimed, Claim
from smarttrade.store.record import Batch

EVENTS_LOCK = 0x5354_4556  # "STEV": serialises the event tail of commits across replicas

# SQLSTATE classes that say the database cannot serve now, not that it refused a statement:
# connection exception, insufficient resources (too many connections, disk full), operator
# intervention (shutting down, not accepting connections yet, a cancelled statement).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


def database_unavailable(error: BaseException) -> bool:
    """Whether an error means the database could not be reached or dropped the connection
    (try again later), rather than that it refused a statement."""
    if isinstance(error, StoreUnavailable | OSError | asyncpg.InterfaceError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES


class ConcurrentUpdate(Exception):
    """The trade changed under us (another writer): the caller reloads and retries."""


class StoreUnavailable(Exception):
    """The database could not be reached or dropped the connection; nothing was written
    unless the commit itself was lost (the caller reloads on a version conflict)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event with its global sequence and the trade as it was right after it."""

    sequence: int
    tenant_id: str
    trade: SmartTrade
    event: Event


class EventSink(Protocol):
    def publish(self, events: Sequence[StoredEvent]) -> None: ...


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Every use of a hot-path connection is one statement outside a transaction block:
    nothing of it outlives the statement, so a connection goes back to the pool as is."""


async def open_hot_path(dsn: str, size: int) -> asyncpg.Pool:
    """Plain asyncpg connections for the engine's hot path: writing decisions and loading
    trades (no ORM layer, no pre-ping, no BEGIN and ROLLBACK around a single statement)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        reset=_nothing_to_reset,
        # A handful of statement shapes, prepared once per connection and planned once:
        # their parameters are JSON documents, so a custom plan would be the same plan.
        statement_cache_size=64,
        server_settings={"plan_cache_mode": "force_generic_plan"},
    )
    assert pool is not None
    return pool


class Store:
    def __init__(self, engine: AsyncEngine, hot_path: asyncpg.Pool, sink: EventSink) -> None:
        self.engine = engine  # for reads and the other tables
        self.hot_path = hot_path
        self.sink = sink
        self._append_lock = asyncio.Lock()

    async def record(
        self,
        decision: Decision | None,
        before: SmartTrade | None,
        done: Sequence[tuple[str, str]] = (),
        claim: Claim | None = None,
        at: datetime | None = None,
    ) -> None:
        """Write a decision (only what changed since `before`, the trade as stored; None
        if new), the intents it completes (`(kind, client order id)`) and the request's
        claim (taken `at`), all or nothing. Raises `AlreadyClaimed` or `ConcurrentUpdate`
        when a check fails (nothing is written then), `StoreUnavailable` when the database
        cannot be reached."""
        batch = Batch()
        events: list[tuple[SmartTrade, Event]] = []
        if claim is not None:
            assert at is not None, "a claim is recorded with the time it was taken"
            batch.claim = _claim_row(claim, at)
        if decision is not None and decision.persist:
            _add_decision(batch, decision, before)
            events = [(decision.trade, event) for event in decision.events]
        batch.done_intents.extend(
            {"client_order_id": client_order_id, "kind": kind} for kind, client_order_id in done
        )
        if batch.empty:
            return
        if not events:
            await self._write(batch)
            return
        async with self._append_lock:
            sequences = await self._write(batch)
            self.sink.publish(
                [
                    StoredEvent(sequence, trade.tenant_id, trade, event)
                    for sequence, (trade, event) in zip(sequences, events, strict=True)
                ]
            )

    async def load(self, trade_id: str, tenant_id: str | None = None) -> SmartTrade | None:
        """The trade as last recorded (of this tenant, when one is given)."""
        async with self.hot_path.acquire() as connection:
            data = await connection.fetchval(
                "SELECT s.data FROM smart_trades AS t JOIN trade_snapshots AS s "
                "ON s.trade_id = t.id AND s.version = t.version "
                "WHERE t.id = $1 AND ($2::text IS NULL OR t.tenant_id = $2)",
                trade_id,
                tenant_id,
            )
        return trade_from_document(orjson.loads(data)) if data is not None else None

    async def _write(self, batch: Batch) -> list[int]:
        sql, arguments = batch.statement(EVENTS_LOCK)
        try:
            async with self.hot_path.acquire() as connection:
                row = await connection.fetchrow(sql, *arguments)
        except Exception as error:
            if database_unavailable(error):
                raise StoreUnavailable(f"the database is unavailable: {error}") from error
            raise
        assert row is not None
        if row["claimed"] != 1:
            assert batch.claim is not None
            raise AlreadyClaimed(str(batch.claim["request_id"]))
        if row["written"] != 1:
            raise ConcurrentUpdate(
                str((batch.trade_update or batch.new_trade or {}).get("id", "?"))
            )
        return list(row["sequences"])


def _claim_row(claim: Claim, at: datetime) -> dict[str, object]:
    return {
        "tenant_id": claim.tenant_id,
        "request_id": claim.request_id,
        "method": claim.method,
        "request_hash": claim.fingerprint,
        "resource": claim.resource,
        "response": None,
        "created_at": at,
    }


def _add_decision(batch: Batch, decision: Decision, before: SmartTrade | None) -> None:
    """The trade's rows, its snapshot, its intents and its events; only what changed since
    `before`: this is the hot path of a trigger. Values stay as they are (dataclasses,
    Decimals, enums): the batch is written as JSON by `codec.dump_json`."""
    trade = decision.trade
    row = _trade_row(trade)
    if before is None:
        row |= _fixed_columns(trade)
        batch.new_trade = row
    else:
        if trade.spec != before.spec:
            row["spec"] = trade.spec
        batch.trade_update = row
        batch.expected_version = before.version
    _changed_rows(batch, trade, before)
    batch.snapshots.append({"trade_id": trade.id, "version": trade.version, "data": trade})
    batch.intents.extend(_intent_row(trade, intent) for intent in decision.intents)
    batch.events.extend(_event_row(trade, event) for event in decision.events)


def _fixed_columns(trade: SmartTrade) -> dict[str, object]:
    """Set at creation, never changed by a decision."""
    return {
        "tenant_id": trade.tenant_id,
        "account_id": trade.account_id,
        "exchange": trade.exchange_id,
        "symbol": trade.spec.symbol,
        "side": trade.spec.side,
        "spec": trade.spec,
        "market": trade.market,
        "created_at": trade.created_at,
    }


def _trade_row(trade: SmartTrade) -> dict[str, object]:
    levels = wake_levels(trade)
    return {
        "id": trade.id,
        "state": trade.state,
        "close_reason": trade.close_reason,
        "reference_price": trade.reference_price,
        "last_price": trade.last_price,
        "last_error": trade.last_error,
        "exit_leg_id": trade.exit_leg_id,
        "version": trade.version,
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
                "kind": leg.kind,
                "state": leg.state,
                "step": leg.step,
                "amount": leg.amount,
                "price": leg.price,
                "generation": leg.generation,
                "watch": {
                    "released": leg.released,
                    "triggered": leg.triggered,
                    "trailing_active": leg.trailing_active,
                    "trailing_extreme": leg.trailing_extreme,
                    "breach_since": leg.breach_since,
                    "open_now": leg.open_now,
                },
                "params": {
                    "order_type": leg.order_type,
                    "limit_price": leg.limit_price,
                    "total": leg.total,
                },
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
                    "side": order.side,
                    "type": order.type,
                    "amount": order.amount,
                    "price": order.price,
                    "status": order.status,
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
        "payload": intent,
        "created_at": trade.updated_at,
    }


def _event_row(trade: SmartTrade, event: Event) -> dict[str, object]:
    return {
        "tenant_id": trade.tenant_id,
        "trade_id": trade.id,
        "trade_version": trade.version,
        "type": event.type,
        "at": event.at,
        "facts": event,
    }
