"""Shares: rows <-> records. Looked up by the token's hash, never by the token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from smarttrade.store import tables
from smarttrade.store.sql import newest_first_page

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

shares = tables.shares


@dataclass(frozen=True, slots=True)
class Share:
    id: str
    tenant_id: str
    trade_id: str
    settings: dict[str, Any]  # {"exchange": ..., "spec": <TradeSpec document without size>}
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def live(self, now: datetime) -> bool:
        expired = self.expires_at is not None and self.expires_at <= now
        return self.revoked_at is None and not expired


def _share(row: Any) -> Share:
    return Share(
        id=row.id,
        tenant_id=row.tenant_id,
        trade_id=row.trade_id,
        settings=row.settings,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class ShareRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def add(self, share: Share, token_hash: str) -> None:
        await self._uow.execute(
            insert(shares).values(
                id=share.id,
                tenant_id=share.tenant_id,
                trade_id=share.trade_id,
                token_hash=token_hash,
                settings=share.settings,
                created_at=share.created_at,
                expires_at=share.expires_at,
            )
        )

    async def by_token_hash(self, token_hash: str) -> Share | None:
        query = select(shares).where(shares.c.token_hash == token_hash)
        row = (await self._uow.execute(query)).first()
        return _share(row) if row is not None else None

    async def owned(self, tenant_id: str, trade_id: str, share_id: str) -> Share | None:
        query = select(shares).where(
            shares.c.id == share_id, shares.c.tenant_id == tenant_id, shares.c.trade_id == trade_id
        )
        row = (await self._uow.execute(query)).first()
        return _share(row) if row is not None else None

    async def owned_by_id(self, tenant_id: str, share_id: str) -> Share | None:
        query = select(shares).where(shares.c.id == share_id, shares.c.tenant_id == tenant_id)
        row = (await self._uow.execute(query)).first()
        return _share(row) if row is not None else None

    async def revoke(self, share_id: str, at: datetime) -> None:
        await self._uow.execute(update(shares).where(shares.c.id == share_id).values(revoked_at=at))

    async def page(
        self,
        tenant_id: str,
        trade_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Share]:
        """The tenant's shares not revoked, of one trade (None: of all), newest first."""
        query = select(shares).where(shares.c.tenant_id == tenant_id, shares.c.revoked_at.is_(None))
        if trade_id is not None:
            query = query.where(shares.c.trade_id == trade_id)
        query = newest_first_page(query, shares, after, limit)
        return [_share(row) for row in (await self._uow.execute(query)).all()]
