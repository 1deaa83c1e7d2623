"""Sharing a trade's settings: an unguessable token, stored hashed, revocable, optionally
expiring, resolvable by any authenticated tenant, revealing the settings only: no account,
no owner, no size, no note, no labels, no balances, no secret. A tampered, revoked or
expired token is refused exactly like one that never existed.

The token is derived, not drawn: an HMAC of the tenant and the request id under a key of
the service (from the master keys), so a retry of ShareSmartTrade gets the same token back
while the store keeps only its hash, the id of the key it came from and the token's format.
Nothing stored reveals a token.

Formats: 1 (since 2026-12-02) is `st1_` and the HMAC in URL-safe base64, so a token never
starts with "-" (a command line took one in 64 of format 0's for an option); 0 is the bare
base64 of the first tokens, still derived for a retry of a request that issued one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from smarttrade.domain.menu import require
from smarttrade.domain.model import Action
from smarttrade.domain.spec import TradeSpec
from smarttrade.errors import NotFound
from smarttrade.store.codec import from_document, spec_document
from smarttrade.store.errors import AlreadyClaimed
from smarttrade.store.shares import Share
from smarttrade.store.unit_of_work import UnitOfWork
from smarttrade.usecases.page_tokens import PageTokens
from smarttrade.usecases.reading import TradeReader, page_size
from smarttrade.usecases.requests import Requested, answered


@dataclass(frozen=True, slots=True)
class SharedTrade:
    share_id: str
    trade_id: str
    exchange: str
    spec: TradeSpec  # without size and note
    created_at: datetime
    expires_at: datetime | None
    token: str = ""  # only for its owner, when issued (and when a retry asks again)


@dataclass(frozen=True, slots=True)
class ShareTrade:
    requested: Requested
    trade_id: str
    ttl: timedelta | None


@dataclass(frozen=True, slots=True)
class RevokeShare:
    requested: Requested
    trade_id: str
    share_id: str


TOKEN_FORMAT = 1


class ShareTokens:
    """Derives a share's token from its request, under a key that can rotate (the key's id
    and the token's format are kept with the share's request, so a retry derives the same
    token)."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        self._keys = {
            key_id: hashlib.sha256(b"share-tokens" + key).digest() for key_id, key in keys.items()
        }
        self.current = current

    def token(
        self, key_id: str, tenant_id: str, request_id: str, token_format: int = TOKEN_FORMAT
    ) -> str:
        message = f"{tenant_id}\0{request_id}".encode()
        digest = hmac.new(self._keys[key_id], message, hashlib.sha256).digest()
        text = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return text if token_format == 0 else f"st{token_format}_{text}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shared(share: Share, token: str = "") -> SharedTrade:
    settings: dict[str, Any] = share.settings
    return SharedTrade(
        share_id=share.id,
        trade_id=share.trade_id,
        exchange=settings["exchange"],
        spec=from_document(TradeSpec, settings["spec"]),
        created_at=share.created_at,
        expires_at=share.expires_at,
        token=token,
    )


class ShareResolver:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], clock: Callable[[], datetime]):
        self._unit_of_work = unit_of_work
        self._clock = clock

    async def resolve(self, token: str) -> SharedTrade:
        share = None
        if token:
            async with self._unit_of_work() as uow:
                share = await uow.shares.by_token_hash(token_hash(token))
        if share is None or not share.live(self._clock()):
            raise NotFound("share", "the share token")
        return _shared(share)


class ShareTrades:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        reader: TradeReader,
        tokens: ShareTokens,
        clock: Callable[[], datetime],
        pages: PageTokens,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._reader = reader
        self._tokens = tokens
        self._clock = clock
        self._pages = pages

    async def get(self, tenant_id: str, trade_id: str, share_id: str) -> SharedTrade:
        """One of the tenant's shares by its name (never its token); a revoked one is gone."""
        async with self._unit_of_work() as uow:
            share = await uow.shares.owned(tenant_id, trade_id, share_id)
        if share is None or share.revoked_at is not None:
            raise NotFound("share", f"smartTrades/{trade_id}/shares/{share_id}")
        return _shared(share)

    async def list(
        self, tenant_id: str, trade_id: str | None, size: int, page_token: str
    ) -> tuple[list[SharedTrade], str]:
        """The tenant's shares of one trade (None: of all its trades), newest first; a page
        token holds to the trade it was made for."""
        limit = page_size(size)
        bound = f"shares:{trade_id or '-'}"
        after = self._pages.decode_time(page_token, bound)
        async with self._unit_of_work() as uow:
            found = await uow.shares.page(tenant_id, trade_id, after, limit + 1)
        token = ""
        if len(found) > limit:
            found = found[:limit]
            token = self._pages.encode((found[-1].created_at, found[-1].id), bound)
        return [_shared(share) for share in found], token

    async def share(self, command: ShareTrade) -> SharedTrade:
        requested = command.requested
        request = requested.record(f"smartTrades/{command.trade_id}")
        if (stored := await answered(self._unit_of_work, request)) is not None:
            return await self._again(stored.answer, requested)
        trade = await self._reader.get(requested.tenant_id, command.trade_id)
        require(trade, Action.SHARE)
        entry = replace(trade.spec.entry, units=None, total=None)
        spec = replace(trade.spec, entry=entry, note="", labels={})
        now = self._clock()
        key_id = self._tokens.current
        token = self._tokens.token(key_id, requested.tenant_id, requested.request_id)
        share = Share(
            id=secrets.token_hex(8),
            tenant_id=requested.tenant_id,
            trade_id=command.trade_id,
            settings={"exchange": trade.exchange_id, "spec": spec_document(spec)},
            created_at=now,
            expires_at=now + command.ttl if command.ttl is not None else None,
            revoked_at=None,
        )
        try:
            async with self._unit_of_work() as uow:
                await uow.shares.add(share, token_hash(token))
                answer = {"share": share.id, "key": key_id, "format": TOKEN_FORMAT}
                uow.requests.claim(request.answered(answer), now)
                await uow.commit()
        except AlreadyClaimed:  # a concurrent duplicate wrote first
            stored = await answered(self._unit_of_work, request)
            assert stored is not None
            return await self._again(stored.answer, requested)
        return _shared(share, token)

    async def _again(self, answer: Mapping[str, Any] | None, requested: Requested) -> SharedTrade:
        """The share a request made, with its token derived again."""
        share = None
        if answer is not None:
            async with self._unit_of_work() as uow:
                share = await uow.shares.owned_by_id(requested.tenant_id, answer["share"])
        if share is None or answer is None:
            raise NotFound("share", "the share this request_id made")
        token_format = answer.get("format", 0)  # answers before format 1 had none
        token = self._tokens.token(
            answer["key"], requested.tenant_id, requested.request_id, token_format
        )
        return _shared(share, token)

    async def revoke(self, command: RevokeShare) -> None:
        requested = command.requested
        name = f"smartTrades/{command.trade_id}/shares/{command.share_id}"
        request = requested.record(name)
        if await answered(self._unit_of_work, request) is not None:
            return
        try:
            async with self._unit_of_work() as uow:
                share = await uow.shares.owned(
                    requested.tenant_id, command.trade_id, command.share_id
                )
                if share is None:
                    raise NotFound("share", name)
                now = self._clock()
                await uow.shares.revoke(command.share_id, now)
                uow.requests.claim(request.answered({}), now)
                await uow.commit()
        except AlreadyClaimed:  # a concurrent duplicate revoked it first
            await answered(self._unit_of_work, request)  # refuses another request's id
