"""Connecting to PostgreSQL: an external server by URL, or the embedded one (pgserver).

Two pools on one database: SQLAlchemy's (a unit of work's transaction, built with Core) and
plain asyncpg connections for the one-statement writes and the hot reads, with no ORM layer,
no pre-ping, no BEGIN and ROLLBACK around a single statement.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
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
    connections: AsyncEngine  # SQLAlchemy's pool: transactions of units of work
    pool: asyncpg.Pool  # plain asyncpg: one-statement writes, hot reads
    url: str
    embedded: Any = None  # the pgserver handle that keeps the embedded server running

    async def close(self) -> None:
        await self.pool.close()
        await self.connections.dispose()


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Every use of a pooled asyncpg connection is one statement outside a transaction
    block: nothing of it outlives the statement, so a connection goes back as is."""


def _jsonb_text(value: object) -> str:
    """Parameters are sent as JSON text already (`CAST($n AS jsonb)`)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


async def _decode_json(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_jsonb_text, decoder=orjson.loads, format="text"
    )


# The longest a connection attempt, and a statement of the asyncpg pool, may wait (a line
# to the database that stalls without dropping): then the store is unavailable, and the
# trade that was writing keeps what it was doing for when it answers, instead of holding
# its lock until the kernel gives up on the connection (minutes).
DEFAULT_TIMEOUT = 5.0


async def open_pool(dsn: str, size: int, wait_limit: float = DEFAULT_TIMEOUT) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,  # connected on first use (the migration checked the server is there)
        max_size=size,
        timeout=wait_limit,  # connecting
        command_timeout=wait_limit,  # each statement
        reset=_nothing_to_reset,
        init=_decode_json,
        # No timer armed on every release to close a connection idle for long: that timer
        # cost more than the statement's own Python work on the hot path.
        max_inactive_connection_lifetime=0,
        # A handful of statement shapes, prepared once per connection and planned once:
        # their parameters are JSON documents, so a custom plan would be the same plan.
        statement_cache_size=64,
        server_settings={"plan_cache_mode": "force_generic_plan"},
    )
    assert pool is not None
    return pool


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


async def open_database(
    url: str | None,
    data_dir: Path,
    pool_size: int = 20,
    *,
    migrated: bool = True,
    wait_limit: float = DEFAULT_TIMEOUT,
) -> Database:
    """Connect (starting the embedded server when no URL is given) and migrate the schema
    (unless `migrated` is false: the pools then connect on first use). `wait_limit` bounds each
    connection attempt, and each statement of the asyncpg pool (the hot path: decisions,
    hot reads); SQLAlchemy's transactions (migrations, startup's reads, pages) are bounded
    only in connecting: a statement of theirs may rightly take long."""
    embedded = None
    if url is None:
        url, embedded = await start_embedded(data_dir)
    else:
        url = asyncpg_url(url)
    connections = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"timeout": wait_limit},
    )
    if migrated:
        await migrate(connections)
    pool = await open_pool(url.replace("postgresql+asyncpg://", "postgresql://", 1), 8, wait_limit)
    return Database(connections=connections, pool=pool, url=url, embedded=embedded)
