"""Sharing a trade's settings: an unguessable token, stored hashed, revocable, optionally
expiring, resolvable by any authenticated tenant, revealing the settings only: no account,
no owner, no size, no note, no balances, no secret. A tampered, revoked or expired token is
refused exactly like one that never existed."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from smarttrade.domain.menu import require
from smarttrade.domain.model import Action
from smarttrade.domain.spec import TradeSpec
from smarttrade.engine.errors import NotFound
from smarttrade.engine.trades import TradeService
from smarttrade.store.codec import from_document, spec_document
from smarttrade.store.idempotency import Claim, insert_claim
from smarttrade.store.shares import (
    Share,
    insert_share,
    owned_share,
    revoke_share,
    share_by_token_hash,
)
from smarttrade.store.unit_of_work import Store


@dataclass(frozen=True, slots=True)
class SharedTrade:
    share: Share
    exchange: str
    spec: TradeSpec  # without size and note
    token: str = ""  # only when just issued


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shared(share: Share, token: str = "") -> SharedTrade:
    settings: dict[str, Any] = share.settings
    return SharedTrade(
        share, settings["exchange"], from_document(TradeSpec, settings["spec"]), token
    )


class ShareService:
    def __init__(self, trades: TradeService, store: Store, clock: Callable[[], datetime]) -> None:
        self._trades = trades
        self._store = store
        self._clock = clock

    async def share(
        self, tenant_id: str, trade_id: str, ttl: timedelta | None, claim: Claim
    ) -> SharedTrade:
        trade = await self._trades.get(tenant_id, trade_id)
        require(trade, Action.SHARE)
        entry = replace(trade.spec.entry, units=None, total=None)
        spec = replace(trade.spec, entry=entry, note="")
        now = self._clock()
        token = secrets.token_urlsafe(32)
        share = Share(
            id=secrets.token_hex(8),
            tenant_id=tenant_id,
            trade_id=trade_id,
            settings={"exchange": trade.exchange_id, "spec": spec_document(spec)},
            created_at=now,
            expires_at=now + ttl if ttl is not None else None,
            revoked_at=None,
        )
        async with self._store.engine.begin() as connection:
            await insert_claim(connection, claim, now)
            await insert_share(connection, share, _hash(token))
        return _shared(share, token)

    async def resolve(self, token: str) -> SharedTrade:
        async with self._store.engine.connect() as connection:
            share = await share_by_token_hash(connection, _hash(token)) if token else None
        if share is None or not share.live(self._clock()):
            raise NotFound("share", "the share token")
        return _shared(share)

    async def revoke(self, tenant_id: str, trade_id: str, share_id: str, claim: Claim) -> None:
        async with self._store.engine.begin() as connection:
            share = await owned_share(connection, tenant_id, trade_id, share_id)
            if share is None:
                raise NotFound("share", f"smartTrades/{trade_id}/shares/{share_id}")
            await insert_claim(connection, claim, self._clock())
            await revoke_share(connection, share_id, self._clock())
