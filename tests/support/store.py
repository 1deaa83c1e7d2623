"""The store for integration tests: units of work on a test's own database."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

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


async def pg_dump(database_url: str) -> bytes:
    """A plain-SQL dump of the whole test database, as an operator's backup would hold it."""
    executable = shutil.which("pg_dump")
    if executable is None:
        pytest.fail("pg_dump is not installed (it comes with the PostgreSQL client)")
    url = make_url(database_url)
    host = url.host or str(url.query.get("host", ""))
    command = [executable, "--no-owner", "-h", host, "-d", str(url.database)]
    if url.port:
        command += ["-p", str(url.port)]
    if url.username:
        command += ["-U", url.username]
    environment = {**os.environ, "PGPASSWORD": url.password or ""}
    process = await asyncio.create_subprocess_exec(
        *command,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    dump, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    return dump
