"""Connecting to PostgreSQL: an external server by URL, or the embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smarttrade.store.migrate import migrate


def asyncpg_url(url: str) -> str:
    """Accept the usual `postgresql://` / `postgres://` forms and use the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("the database URL must start with postgresql://")


@dataclass
class Database:
    engine: AsyncEngine
    url: str
    embedded: Any = None  # the pgserver handle that keeps the embedded server running

    async def close(self) -> None:
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
    return Database(engine=engine, url=url, embedded=embedded)
