"""Queries of the trades and their events. Every query a caller can reach is tenant-scoped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import CancelOrder, Event, PlaceOrder
from smarttrade.domain.model import SmartTrade
from smarttrade.store import tables
from smarttrade.store.codec import from_document, trade_from_document
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


async def load_live_trades(connection: AsyncConnection) -> list[SmartTrade]:
    """Every trade the engine must run: not terminal, of any tenant."""
    query = _current_snapshot().where(trades.c.state.in_(LIVE_STATES))
    result = await connection.stream(query.execution_options(yield_per=2000))
    return [trade_from_document(data) async for data in result.scalars()]


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
    if after is not None:
        created, trade_id = after
        query = query.where(
            or_(
                trades.c.created_at < created,
                and_(trades.c.created_at == created, trades.c.id < trade_id),
            )
        )
    query = query.order_by(trades.c.created_at.desc(), trades.c.id.desc()).limit(limit)
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
    connection: AsyncConnection, trade_id: str
) -> list[PlaceOrder | CancelOrder]:
    """The trade's intents not yet carried out, oldest first."""
    intents = tables.order_intents
    rows = (
        await connection.execute(
            select(intents.c.kind, intents.c.payload)
            .where(intents.c.trade_id == trade_id)
            .order_by(intents.c.created_at)
        )
    ).all()
    return [
        from_document(PlaceOrder, payload)
        if kind == "PLACE"
        else from_document(CancelOrder, payload)
        for kind, payload in rows
    ]
