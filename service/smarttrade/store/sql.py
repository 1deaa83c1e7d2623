"""Small SQL helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    connection: AsyncConnection, table: Table, rows: Sequence[dict[str, object]], keys: list[str]
) -> None:
    """Insert the rows, overwriting every non-key column of the rows that exist."""
    if not rows:
        return
    statement = pg_insert(table)
    changing = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    await connection.execute(
        statement.on_conflict_do_update(index_elements=keys, set_=changing), list(rows)
    )
