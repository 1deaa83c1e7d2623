"""Small SQL helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, or_
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


def newest_first_page(
    query: Select[Any], table: Table, after: tuple[datetime, str] | None, limit: int
) -> Select[Any]:
    """One page of rows, newest first, keyset-paged on (created_at, id) after the cursor."""
    created_at, row_id = table.c.created_at, table.c.id
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(created_at < created, and_(created_at == created, row_id < last_id))
        )
    return query.order_by(created_at.desc(), row_id.desc()).limit(limit)
