"""Pruning the event history: events older than the retention, and the trade snapshots
nothing points at any more (neither a remaining event nor the trade's current version)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smarttrade.store import tables

events = tables.events
snapshots = tables.trade_snapshots
retention = tables.stream_retention


async def pruned_through(connection: AsyncConnection) -> int:
    value = (await connection.execute(select(retention.c.pruned_through))).scalar()
    return int(value or 0)


async def prune(connection: AsyncConnection, before: datetime) -> int:
    """Delete the events recorded before `before`; returns how many."""
    last = (
        await connection.execute(select(func.max(events.c.sequence)).where(events.c.at < before))
    ).scalar()
    if last is None:
        return 0
    deleted = await connection.execute(delete(events).where(events.c.sequence <= last))
    await connection.execute(
        update(retention)
        .where(retention.c.id == 1)
        .values(pruned_through=func.greatest(retention.c.pruned_through, last))
    )
    trades = tables.smart_trades
    still_needed = exists().where(
        and_(
            events.c.trade_id == snapshots.c.trade_id, events.c.trade_version == snapshots.c.version
        )
    )
    current = exists().where(
        and_(trades.c.id == snapshots.c.trade_id, trades.c.version == snapshots.c.version)
    )
    await connection.execute(delete(snapshots).where(~still_needed, ~current))
    return int(deleted.rowcount or 0)
