"""The store for integration tests: units of work on a test's own database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from smarttrade.domain.messages import StoredEvent
from smarttrade.store.database import open_database
from smarttrade.store.unit_of_work import UnitOfWorkFactory


class Published:
    """An event sink that keeps what was published, in order."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []

    def publish(self, events: Sequence[StoredEvent]) -> None:
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
