"""Queries of the trades and their events. Every query a caller can reach is tenant-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import CancelOrder, Event, PlaceOrder
from smarttrade.domain.model import SmartTrade
from smarttrade.store import tables
from smarttrade.store.codec import from_document, trade_from_document
from smarttrade.store.sql import newest_first_page
from smarttrade.store.unit_of_work import StoredEvent

LIVE_STATES = [TradeState.PENDING.value, TradeState.ACTIVE.value, TradeState.CLOSING.value]

trades = tables.smart_trades
snapshots = tables.trade_snapshots


def _current_snapshot() -> Select[tuple[dict[str, Any]]]:
    return select(snapshots.c.data).join(
        trades, and_(snapshots.c.trade_id == trades.c.id, snapshots.c.version == trades.c.version)
    )


async def get_trade(
    connection: AsyncConnection, tenant_id: str, trade_id: str
) -> SmartTrade | None:
    query = _current_snapshot().where(trades.c.id == trade_id, trades.c.tenant_id == tenant_id)
    data = (await connection.execute(query)).scalar_one_or_none()
    return trade_from_document(data) if data is not None else None


@dataclass(frozen=True, slots=True)
class TradeHead:
    """What the engine keeps of an idle live trade: where it trades and when it wakes."""

    id: str
    tenant_id: str
    account_id: str
    symbol: str
    wake_below: Decimal | None
    wake_above: Decimal | None
    wake_at: datetime | None


async def live_trade_heads(connection: AsyncConnection) -> list[TradeHead]:
    """Every trade the engine must run (not terminal, any tenant), without loading them."""
    query = select(
        trades.c.id,
        trades.c.tenant_id,
        trades.c.account_id,
        trades.c.symbol,
        trades.c.wake_below,
        trades.c.wake_above,
        trades.c.wake_at,
    ).where(trades.c.state.in_(LIVE_STATES))
    result = await connection.stream(query.execution_options(yield_per=5000))
    return [TradeHead(*row) async for row in result]


async def holdings(
    connection: AsyncConnection, account_id: str, symbol: str
) -> list[tuple[str, Decimal]]:
    """The BUY trades holding coins on an account and symbol: (trade id, units held)."""
    query = select(trades.c.id, trades.c.units_held).where(
        trades.c.account_id == account_id,
        trades.c.symbol == symbol,
        trades.c.side == "BUY",
        trades.c.state.in_([TradeState.ACTIVE.value, TradeState.CLOSING.value]),
        trades.c.units_held > 0,
    )
    return [(row.id, row.units_held) for row in await connection.execute(query)]


async def believed_open_orders(
    connection: AsyncConnection, account_id: str, symbol: str
) -> list[tuple[str, Decimal]]:
    """The orders the live trades of an account and symbol believe open at the venue, with
    what they believe filled: (client order id, filled)."""
    orders, fills = tables.orders, tables.fills
    filled = (
        select(fills.c.client_order_id, func.sum(fills.c.amount).label("filled"))
        .group_by(fills.c.client_order_id)
        .subquery()
    )
    query = (
        select(orders.c.client_order_id, func.coalesce(filled.c.filled, 0))
        .join(trades, trades.c.id == orders.c.trade_id)
        .outerjoin(filled, filled.c.client_order_id == orders.c.client_order_id)
        .where(
            trades.c.account_id == account_id,
            trades.c.symbol == symbol,
            trades.c.state.in_(LIVE_STATES),
            orders.c.status == "OPEN",
        )
    )
    return [(row[0], row[1]) for row in await connection.execute(query)]


async def tenant_live_trades(connection: AsyncConnection, tenant_id: str) -> list[SmartTrade]:
    query = _current_snapshot().where(
        trades.c.tenant_id == tenant_id, trades.c.state.in_(LIVE_STATES)
    )
    query = query.order_by(trades.c.created_at, trades.c.id)
    return [trade_from_document(data) for data in (await connection.execute(query)).scalars()]


@dataclass(frozen=True, slots=True)
class TradeFilter:
    states: Sequence[TradeState] = ()
    symbol: str = ""
    account_id: str = ""
    created_from: datetime | None = None
    created_before: datetime | None = None


async def list_trades(
    connection: AsyncConnection,
    tenant_id: str,
    where: TradeFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[SmartTrade]:
    """Newest first; `after` is the (create time, id) of the last trade of the previous page."""
    query = _current_snapshot().where(trades.c.tenant_id == tenant_id)
    if where.states:
        query = query.where(trades.c.state.in_([state.value for state in where.states]))
    if where.symbol:
        query = query.where(trades.c.symbol == where.symbol)
    if where.account_id:
        query = query.where(trades.c.account_id == where.account_id)
    if where.created_from is not None:
        query = query.where(trades.c.created_at >= where.created_from)
    if where.created_before is not None:
        query = query.where(trades.c.created_at < where.created_before)
    query = newest_first_page(query, trades, after, limit)
    return [trade_from_document(data) for data in (await connection.execute(query)).scalars()]


async def events_after(
    connection: AsyncConnection,
    tenant_id: str,
    trade_id: str | None,
    after_sequence: int,
    limit: int,
) -> list[StoredEvent]:
    """The tenant's events (of one trade, if given) after a sequence, in sequence order."""
    events = tables.events
    query = (
        select(events.c.sequence, events.c.facts, snapshots.c.data)
        .join(
            snapshots,
            and_(
                snapshots.c.trade_id == events.c.trade_id,
                snapshots.c.version == events.c.trade_version,
            ),
        )
        .where(events.c.tenant_id == tenant_id, events.c.sequence > after_sequence)
        .order_by(events.c.sequence)
        .limit(limit)
    )
    if trade_id is not None:
        query = query.where(events.c.trade_id == trade_id)
    rows = (await connection.execute(query)).all()
    return [
        StoredEvent(sequence, tenant_id, trade_from_document(data), from_document(Event, facts))
        for sequence, facts, data in rows
    ]


async def latest_sequence(connection: AsyncConnection) -> int:
    value = (await connection.execute(select(func.max(tables.events.c.sequence)))).scalar()
    return int(value or 0)


async def oldest_sequence(connection: AsyncConnection) -> int:
    value = (await connection.execute(select(func.min(tables.events.c.sequence)))).scalar()
    return int(value or 0)


async def pending_intents(
    connection: AsyncConnection,
) -> dict[str, list[PlaceOrder | CancelOrder]]:
    """Every intent not yet carried out, by trade, oldest first."""
    intents = tables.order_intents
    rows = (
        await connection.execute(
            select(intents.c.trade_id, intents.c.kind, intents.c.payload).order_by(
                intents.c.created_at
            )
        )
    ).all()
    found: dict[str, list[PlaceOrder | CancelOrder]] = {}
    for trade_id, kind, payload in rows:
        intent = (
            from_document(PlaceOrder, payload)
            if kind == "PLACE"
            else from_document(CancelOrder, payload)
        )
        found.setdefault(trade_id, []).append(intent)
    return found
