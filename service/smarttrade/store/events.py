"""The event history: reading it after a sequence, and pruning it.

Events older than the retention are deleted, with the trade snapshots nothing points at any
more (neither a remaining event nor the trade's current version); `pruned_through` is the
last sequence that may be gone, so a watcher resuming from before it is told so rather than
given a gap.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, exists, func, select, update

from smarttrade.domain.messages import Event, StoredEvent
from smarttrade.store import tables
from smarttrade.store.codec import from_document, trade_from_document

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

events = tables.events
snapshots = tables.trade_snapshots
retention = tables.stream_retention


class EventRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def after(
        self, tenant_id: str, trade_id: str | None, after_sequence: int, limit: int
    ) -> list[StoredEvent]:
        """The tenant's events (of one trade, if given) after a sequence, in sequence order."""
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
        rows = (await self._uow.execute(query)).all()
        return [
            StoredEvent(sequence, tenant_id, trade_from_document(data), from_document(Event, facts))
            for sequence, facts, data in rows
        ]

    async def latest_sequence(self) -> int:
        value = (await self._uow.execute(select(func.max(events.c.sequence)))).scalar()
        return int(value or 0)

    async def pruned_through(self) -> int:
        value = (await self._uow.execute(select(retention.c.pruned_through))).scalar()
        return int(value or 0)

    async def prune(self, before: datetime) -> int:
        """Delete the events recorded before `before`; returns how many."""
        last = (
            await self._uow.execute(select(func.max(events.c.sequence)).where(events.c.at < before))
        ).scalar()
        if last is None:
            return 0
        deleted = await self._uow.execute(delete(events).where(events.c.sequence <= last))
        await self._uow.execute(
            update(retention)
            .where(retention.c.id == 1)
            .values(pruned_through=func.greatest(retention.c.pruned_through, last))
        )
        trades = tables.smart_trades
        still_needed = exists().where(
            and_(
                events.c.trade_id == snapshots.c.trade_id,
                events.c.trade_version == snapshots.c.version,
            )
        )
        current = exists().where(
            and_(trades.c.id == snapshots.c.trade_id, trades.c.version == snapshots.c.version)
        )
        await self._uow.execute(delete(snapshots).where(~still_needed, ~current))
        return int(getattr(deleted, "rowcount", 0) or 0)
