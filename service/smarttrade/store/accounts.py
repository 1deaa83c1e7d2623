"""Exchange accounts: rows <-> `ExchangeAccount`, tenant-scoped."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from smarttrade.domain.account import ExchangeAccount, PaperSettings
from smarttrade.store import tables
from smarttrade.store.codec import from_document, to_document
from smarttrade.store.sql import newest_first_page
from smarttrade.store.trades import LIVE_STATES

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

accounts = tables.exchange_accounts


def _account(row: Any) -> ExchangeAccount:
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


class AccountRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def add(self, account: ExchangeAccount) -> None:
        await self._uow.execute(
            insert(accounts).values(
                id=account.id,
                tenant_id=account.tenant_id,
                display_name=account.display_name,
                exchange=account.exchange,
                credentials=account.sealed_credentials,
                paper_settings=to_document(account.paper_settings),
                created_at=account.created_at,
            )
        )

    async def get(
        self, tenant_id: str | None, account_id: str, for_update: bool = False
    ) -> ExchangeAccount | None:
        """One account; `tenant_id` None only for the engine's own lookups (which also see a
        deleted account: its finished trades still name it). `for_update`: locked until the
        transaction ends (an update compares and sets)."""
        query = select(accounts).where(accounts.c.id == account_id)
        if tenant_id is not None:
            query = query.where(accounts.c.tenant_id == tenant_id, accounts.c.deleted_at.is_(None))
        if for_update:
            query = query.with_for_update()
        row = (await self._uow.execute(query)).one_or_none()
        return _account(row) if row is not None else None

    async def all(self) -> list[ExchangeAccount]:
        query = select(accounts).where(accounts.c.deleted_at.is_(None))
        return [_account(row) for row in (await self._uow.execute(query)).all()]

    async def page(
        self, tenant_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[ExchangeAccount]:
        query = select(accounts).where(
            accounts.c.tenant_id == tenant_id, accounts.c.deleted_at.is_(None)
        )
        query = newest_first_page(query, accounts, after, limit)
        return [_account(row) for row in (await self._uow.execute(query)).all()]

    async def update(self, account: ExchangeAccount) -> None:
        """Write what a caller can change: the display name and the sealed credentials."""
        await self._uow.execute(
            update(accounts)
            .where(accounts.c.id == account.id)
            .values(display_name=account.display_name, credentials=account.sealed_credentials)
        )

    async def live_trade_count(self, account_id: str) -> int:
        trades = tables.smart_trades
        query = select(func.count()).where(
            trades.c.account_id == account_id, trades.c.state.in_(LIVE_STATES)
        )
        return int((await self._uow.execute(query)).scalar() or 0)

    async def delete(self, account_id: str, at: datetime) -> None:
        """Mark deleted and drop the credentials: nothing can trade on it any more."""
        await self._uow.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(deleted_at=at, credentials=None)
        )
