"""Exchange accounts: rows <-> records, tenant-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smarttrade.exchange.paper_book import PaperSettings
from smarttrade.store import tables
from smarttrade.store.codec import from_document, to_document
from smarttrade.store.reads import LIVE_STATES
from smarttrade.store.sql import newest_first_page

accounts = tables.exchange_accounts


@dataclass(frozen=True, slots=True)
class ExchangeAccount:
    id: str
    tenant_id: str
    display_name: str
    exchange: str
    created_at: datetime
    sealed_credentials: bytes | None = None
    paper_settings: PaperSettings | None = None

    @property
    def is_paper(self) -> bool:
        return self.exchange == "paper"


def _record(row: Any) -> ExchangeAccount:
    settings = row.paper_settings
    return ExchangeAccount(
        id=row.id,
        tenant_id=row.tenant_id,
        display_name=row.display_name,
        exchange=row.exchange,
        created_at=row.created_at,
        sealed_credentials=row.credentials,
        paper_settings=from_document(PaperSettings, settings) if settings is not None else None,
    )


async def insert_account(connection: AsyncConnection, account: ExchangeAccount) -> None:
    await connection.execute(
        insert(accounts),
        [
            {
                "id": account.id,
                "tenant_id": account.tenant_id,
                "display_name": account.display_name,
                "exchange": account.exchange,
                "credentials": account.sealed_credentials,
                "paper_settings": to_document(account.paper_settings),
                "created_at": account.created_at,
            }
        ],
    )


async def get_account(
    connection: AsyncConnection, tenant_id: str | None, account_id: str
) -> ExchangeAccount | None:
    """One account; `tenant_id` None only for the engine's own lookups."""
    query = select(accounts).where(accounts.c.id == account_id)
    if tenant_id is not None:
        query = query.where(accounts.c.tenant_id == tenant_id, accounts.c.deleted_at.is_(None))
    row = (await connection.execute(query)).one_or_none()
    return _record(row) if row is not None else None


async def all_accounts(connection: AsyncConnection) -> list[ExchangeAccount]:
    query = select(accounts).where(accounts.c.deleted_at.is_(None))
    return [_record(row) for row in (await connection.execute(query)).all()]


async def list_accounts(
    connection: AsyncConnection, tenant_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[ExchangeAccount]:
    query = select(accounts).where(
        accounts.c.tenant_id == tenant_id, accounts.c.deleted_at.is_(None)
    )
    query = newest_first_page(query, accounts, after, limit)
    return [_record(row) for row in (await connection.execute(query)).all()]


async def live_trade_count(connection: AsyncConnection, account_id: str) -> int:
    trades = tables.smart_trades
    query = select(func.count()).where(
        trades.c.account_id == account_id, trades.c.state.in_(LIVE_STATES)
    )
    return int((await connection.execute(query)).scalar() or 0)


async def delete_account(connection: AsyncConnection, account_id: str, at: datetime) -> None:
    """Mark deleted and drop the credentials: nothing can trade on it any more."""
    await connection.execute(
        update(accounts).where(accounts.c.id == account_id).values(deleted_at=at, credentials=None)
    )
