"""Shared fixtures: a real PostgreSQL for every test that needs one.

Which server: SMARTTRADE_TEST_DATABASE_URL when set; else the local server on 127.0.0.1:5432
when it answers; else an embedded one (pgserver) in a temporary directory. Under CI
(CI=true) a missing server fails the run instead of falling back, so Postgres tests never
skip silently. Each test gets its own database, cloned from a migrated template.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from smarttrade.store.database import asyncpg_url
from smarttrade.store.migrate import migrate

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPLATE = f"smarttrade_template_{os.getpid()}"

pytest.register_assert_rewrite("tests.integration.exchange_contract", "tests.support")


async def _answers(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _plain(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy postgresql+asyncpg://."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's `postgres` database (admin connection)."""
    configured = os.environ.get("SMARTTRADE_TEST_DATABASE_URL")
    if configured:
        yield _with_database(_plain(configured), "postgres")
        return
    if asyncio.run(_answers(LOCAL_SERVER)):
        yield LOCAL_SERVER
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            "no PostgreSQL server: set SMARTTRADE_TEST_DATABASE_URL or start the local one "
            "(pg_ctlcluster ... main start); CI does not fall back or skip"
        )
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="smarttrade-pg-"))
    server = get_server(directory / "pgdata", cleanup_mode="delete")
    yield f"postgresql://postgres:@/postgres?host={directory / 'pgdata'}"
    server.cleanup()


@pytest.fixture(scope="session")
def migrated_template(postgres_server: str) -> Iterator[str]:
    async def build() -> None:
        admin = await asyncpg.connect(postgres_server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
        await admin.close()
        engine = create_async_engine(asyncpg_url(_with_database(postgres_server, TEMPLATE)))
        await migrate(engine)
        await engine.dispose()

    asyncio.run(build())
    yield TEMPLATE

    async def drop() -> None:
        admin = await asyncpg.connect(postgres_server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await admin.close()

    asyncio.run(drop())


@asynccontextmanager
async def _fresh_database(postgres_server: str, template: str) -> AsyncIterator[str]:
    name = f"smarttrade_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    yield _with_database(postgres_server, name)
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(postgres_server: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (postgresql:// form)."""
    async with _fresh_database(postgres_server, migrated_template) as url:
        yield url


@pytest.fixture
async def reference_database_url(
    postgres_server: str, migrated_template: str
) -> AsyncIterator[str]:
    """Another fresh database, for a test that compares two runs of the service."""
    async with _fresh_database(postgres_server, migrated_template) as url:
        yield url
