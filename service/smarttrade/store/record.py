"""Writing a decision in one round trip.

A decision touches up to eight tables (the trade, its legs, orders, fills, snapshot, the
intents it adds and those it completes, its events). Sent one by one that is eight round
trips on the path from a tick to an order; here they are data-modifying CTEs of a single
statement, each fed by one JSON parameter. The foreign keys still hold (PostgreSQL checks
them at the end of the statement), and the events take the events lock in the same
statement, just before the commit (see unit_of_work).

The statement's text depends only on which parts are present, so it is built once per
shape and cached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Table, TextClause, text

from smarttrade.store import tables


def _json(value: object) -> str:
    def encode(item: object) -> object:
        if isinstance(item, Decimal):
            return str(item)
        if isinstance(item, datetime):
            return item.isoformat()
        raise TypeError(f"cannot encode {type(item).__name__}")

    return json.dumps(value, default=encode)


@dataclass
class Batch:
    """What one transaction writes, gathered until its commit."""

    new_trade: dict[str, object] | None = None
    trade_update: dict[str, object] | None = None
    expected_version: int = 0
    legs: list[dict[str, object]] = field(default_factory=list)
    orders: list[dict[str, object]] = field(default_factory=list)
    fills: list[dict[str, object]] = field(default_factory=list)
    snapshots: list[dict[str, object]] = field(default_factory=list)
    intents: list[dict[str, object]] = field(default_factory=list)
    done_intents: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.new_trade
            or self.trade_update
            or self.legs
            or self.orders
            or self.fills
            or self.snapshots
            or self.intents
            or self.done_intents
            or self.events
        )

    def statement(self, events_lock: int) -> tuple[TextClause, dict[str, Any]]:
        update_columns = tuple(self.trade_update) if self.trade_update else ()
        shape = (
            self.new_trade is not None,
            update_columns,
            bool(self.legs),
            bool(self.orders),
            bool(self.fills),
            bool(self.snapshots),
            bool(self.intents),
            bool(self.done_intents),
            bool(self.events),
        )
        parameters: dict[str, Any] = {}
        if self.new_trade is not None:
            parameters["trade"] = _json(self.new_trade)
        if self.trade_update is not None:
            parameters["trade"] = _json(self.trade_update)
            parameters["expected"] = self.expected_version
        for name in ("legs", "orders", "fills", "snapshots", "intents", "done_intents", "events"):
            rows = getattr(self, name)
            if rows:
                parameters[name] = _json(rows)
        if self.events:
            parameters["lock"] = events_lock
        return _statement(shape), parameters


def _set_all(table: Table, keys: tuple[str, ...]) -> str:
    columns = [c.name for c in table.columns if c.name not in keys]
    return (
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET ({', '.join(columns)}) = "
        f"({', '.join('EXCLUDED.' + c for c in columns)})"
    )


def _upsert(name: str, table: Table, keys: tuple[str, ...] | None) -> str:
    conflict = _set_all(table, keys) if keys else "ON CONFLICT DO NOTHING"
    return (
        f"{name}_w AS (INSERT INTO {table.name} SELECT * FROM jsonb_populate_recordset("
        f"NULL::{table.name}, CAST(:{name} AS jsonb)) {conflict} RETURNING 1)"
    )


@cache
def _statement(shape: tuple[Any, ...]) -> TextClause:
    (new, update_columns, legs, orders, fills, snapshots, intents, done, events) = shape
    parts = []
    if new:
        parts.append(
            "trade_w AS (INSERT INTO smart_trades SELECT * FROM jsonb_populate_record("
            "NULL::smart_trades, CAST(:trade AS jsonb)) RETURNING 1)"
        )
    elif update_columns:
        assignments = ", ".join(f"{c} = r.{c}" for c in update_columns if c != "id")
        parts.append(
            "trade_w AS (UPDATE smart_trades AS s SET "
            f"{assignments} FROM jsonb_populate_record(NULL::smart_trades, "
            "CAST(:trade AS jsonb)) AS r WHERE s.id = r.id AND s.version = :expected "
            "RETURNING 1)"
        )
    if legs:
        parts.append(_upsert("legs", tables.legs, ("trade_id", "id")))
    if orders:
        parts.append(_upsert("orders", tables.orders, ("client_order_id",)))
    if fills:
        parts.append(_upsert("fills", tables.fills, None))
    if snapshots:
        parts.append(_upsert("snapshots", tables.trade_snapshots, None))
    if intents:
        parts.append(_upsert("intents", tables.order_intents, None))
    if done:
        parts.append(
            "done_w AS (DELETE FROM order_intents AS o USING jsonb_to_recordset("
            "CAST(:done_intents AS jsonb)) AS x(client_order_id text, kind text) "
            "WHERE o.client_order_id = x.client_order_id AND o.kind = x.kind RETURNING 1)"
        )
    if events:
        # The lock is taken by the same statement that draws the sequences, so commits
        # append in sequence order (see unit_of_work).
        parts.append(
            "events_w AS (INSERT INTO events (tenant_id, trade_id, trade_version, type, at, "
            "facts) SELECT e->>'tenant_id', e->>'trade_id', (e->>'trade_version')::integer, "
            "e->>'type', (e->>'at')::timestamptz, e->'facts' "
            "FROM (SELECT pg_advisory_xact_lock(:lock)) AS held, "
            "jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS x(e, n) "
            "ORDER BY n RETURNING sequence)"
        )
    written = "(SELECT count(*) FROM trade_w)" if (new or update_columns) else "1"
    sequences = (
        "ARRAY(SELECT sequence FROM events_w ORDER BY sequence)" if events else "ARRAY[]::bigint[]"
    )
    body = f"SELECT {written} AS written, {sequences} AS sequences"
    return text(f"WITH {', '.join(parts)} {body}" if parts else body)
