from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.support.store import units_of_work


@pytest.fixture
async def paper_store(database_url: str, tmp_path: Path) -> AsyncIterator[UnitOfWorkFactory]:
    """Units of work on the test's database, for a paper venue's storage."""
    async with units_of_work(database_url, tmp_path) as uow:
        yield uow
