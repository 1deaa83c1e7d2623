"""The event history, each tenant's in its own sequence: reading it after a sequence, each
tenant's head, and pruning.

Events older than the retention are deleted, with the trade snapshots nothing points at any
more (neither a remaining event nor the trade's current version); a tenant's
`pruned_through` is the last of its sequences that may be gone, so a watcher resuming from
before it is told so rather than given a gap.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, exists, select

from smarttrade.domain.messages import Event, StoredEvent
from smarttrade.store import tables
from smarttrade.store.codec import from_document, trade_from_document

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

events = tables.events
snapshots = tables.trade_snapshots
sequences = tables.event_sequences

# Per tenant, the events before the retention that form a prefix of its sequence (an event's
# time may be a little out of sequence order across trades: what goes is always a prefix).
_PRUNE = """
WITH doomed AS (
    SELECT tenant_id, max(sequence) AS through FROM events WHERE at < $1 GROUP BY tenant_id
), gone AS (
    DELETE FROM events AS e USING doomed AS d
    WHERE e.tenant_id = d.tenant_id AND e.sequence <= d.through
    RETURNING e.tenant_id
), marked AS (
    UPDATE event_sequences AS q SET pruned_through = greatest(q.pruned_through, d.through)
    FROM doomed AS d WHERE q.tenant_id = d.tenant_id
)
SELECT count(*) AS deleted FROM gone
"""


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

    async def head(self, tenant_id: str) -> int:
        """The tenant's last sequence (0 before its first event)."""
        query = select(sequences.c.last).where(sequences.c.tenant_id == tenant_id)
        return int((await self._uow.execute(query)).scalar() or 0)

    async def heads(self) -> dict[str, int]:
        """Every tenant's last sequence."""
        rows = await self._uow.execute(select(sequences.c.tenant_id, sequences.c.last))
        return {tenant_id: int(last) for tenant_id, last in rows.all()}

    async def pruned_through(self, tenant_id: str) -> int:
        query = select(sequences.c.pruned_through).where(sequences.c.tenant_id == tenant_id)
        return int((await self._uow.execute(query)).scalar() or 0)

    async def prune(self, before: datetime) -> int:
        """Delete the events recorded before `before`; returns how many."""
        rows = await self._uow.fetch(_PRUNE, before, upkeep=True)
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
        return int(rows[0]["deleted"])
