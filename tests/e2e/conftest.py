from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.service import Service, running_service
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def service(database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(database_url, tmp_path) as running:
        yield running


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    """A line to the test's database that the test can cut (see `TcpProxy.url`)."""
    url = make_url(database_url)
    line = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await line.start()
    yield line
    await line.cut()
