"""The store for integration tests: units of work on a test's own database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from smarttrade.domain.messages import StoredEvent
from smarttrade.store.database import open_database
from smarttrade.store.unit_of_work import UnitOfWorkFactory


class Published:
    """An event sink that keeps what was published, in the order it was handed over."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []

    def publish(self, tenant_id: str, after: int, events: Sequence[StoredEvent]) -> None:
        assert [e.sequence for e in events] == list(range(after + 1, after + 1 + len(events)))
        self.events.extend(events)


@asynccontextmanager
async def units_of_work(
    database_url: str, data_dir: Path, *, migrated: bool = True
) -> AsyncIterator[UnitOfWorkFactory]:
    database = await open_database(database_url, data_dir, migrated=migrated)
    try:
        yield UnitOfWorkFactory(database, Published())
    finally:
        await database.close()
