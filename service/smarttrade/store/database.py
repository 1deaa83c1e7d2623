"""Connecting to PostgreSQL: an external server by URL, or the embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smarttrade.store.migrate import migrate
from smarttrade.store.unit_of_work import open_hot_path


def asyncpg_url(url: str) -> str:
    """Accept the usual `postgresql://` / `postgres://` forms and use the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("the database URL must start with postgresql://")


@dataclass
class Database:
    engine: AsyncEngine  # SQLAlchemy: reads, and the tables other than a trade's
    hot_path: asyncpg.Pool  # plain asyncpg: writing decisions, loading trades (unit_of_work)
    url: str
    embedded: Any = None  # the pgserver handle that keeps the embedded server running

    async def close(self) -> None:
        await self.hot_path.close()
        await self.engine.dispose()


async def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the embedded PostgreSQL 16 whose data lives in `data_dir/pgdata`."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    import pgserver  # a heavy import, only when embedded

    pgdata = data_dir / "pgdata"

    def start() -> Any:
        data_dir.mkdir(parents=True, exist_ok=True)
        return pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]

    server = await asyncio.to_thread(start)
    return f"postgresql+asyncpg://postgres:@/postgres?host={pgdata}", server


async def open_database(url: str | None, data_dir: Path, pool_size: int = 20) -> Database:
    """Connect (starting the embedded server when no URL is given) and migrate the schema."""
    embedded = None
    if url is None:
        url, embedded = await start_embedded(data_dir)
    else:
        url = asyncpg_url(url)
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )
    await migrate(engine)
    hot_path = await open_hot_path(url.replace("postgresql+asyncpg://", "postgresql://", 1), 8)
    return Database(engine=engine, hot_path=hot_path, url=url, embedded=embedded)
