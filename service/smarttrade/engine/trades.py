"""The SmartTrade use cases the API offers: create, read, list, act."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from smarttrade.domain.decide import create, decide
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.messages import Input
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import TradeSpec
from smarttrade.engine.engine import Engine
from smarttrade.engine.errors import EtagMismatch, NotFound
from smarttrade.engine.page_tokens import PageTokens
from smarttrade.engine.runner import TradeRunner, etag_of
from smarttrade.store.accounts import ExchangeAccount
from smarttrade.store.idempotency import AlreadyClaimed, Claim
from smarttrade.store.reads import TradeFilter, list_trades

MAX_PAGE = 500
DEFAULT_PAGE = 50


def trade_id_for(tenant_id: str, request_id: str) -> str:
    """16 hex characters, derived from the create request's id: two creates with one request
    id name the same trade, so concurrent duplicates collide instead of making two trades.
    Short enough that `{trade}-{leg}-{n}` fits every venue's client order id (Binance: 36)."""
    digest = hashlib.sha256(f"{tenant_id}\0{request_id}".encode()).hexdigest()
    return digest[:16]


@dataclass(frozen=True, slots=True)
class Page:
    trades: list[SmartTrade]
    next_page_token: str


class TradeService:
    def __init__(self, engine: Engine, tokens: PageTokens, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._tokens = tokens
        self._clock = clock

    async def _account(self, tenant_id: str, account_id: str) -> ExchangeAccount:
        try:
            account = await self._engine.account(account_id)
        except NotFound:
            account = None
        if account is None or account.tenant_id != tenant_id:
            raise NotFound("exchange account", f"exchangeAccounts/{account_id}")
        return account

    async def create(
        self, tenant_id: str, account_id: str, spec: TradeSpec, claim: Claim
    ) -> SmartTrade:
        account = await self._account(tenant_id, account_id)
        venues = self._engine.venues
        market = (await venues.markets(account)).get(spec.symbol)
        if market is None:
            raise InvalidSpec(
                [FieldViolation("symbol", f"{spec.symbol!r} is not a market of {account.exchange}")]
            )
        price = await venues.last_price(account, spec.symbol)
        decision = create(
            trade_id=trade_id_for(tenant_id, claim.request_id),
            tenant_id=tenant_id,
            account_id=account.id,
            exchange_id=account.exchange,
            spec=spec,
            market=market,
            last_price=price,
            at=self._clock(),
        )
        if self._engine.is_live(decision.trade.id):
            raise AlreadyClaimed(claim.request_id)  # a concurrent duplicate got there first
        try:
            return await self._engine.launch(decision, claim)
        except IntegrityError as error:
            raise AlreadyClaimed(claim.request_id) from error

    async def get(self, tenant_id: str, trade_id: str) -> SmartTrade:
        runner = self._engine.runner(trade_id)
        if runner is not None and runner.trade.tenant_id == tenant_id:
            return self._fresh(runner.trade)
        trade = await self._engine.store.load(trade_id, tenant_id)
        if trade is None:
            raise NotFound("smart trade", f"smartTrades/{trade_id}")
        return self._fresh(trade)

    async def act(
        self,
        tenant_id: str,
        trade_id: str,
        input: Input,
        etag: str = "",
        claim: Claim | None = None,
    ) -> SmartTrade:
        """Apply a trader's action. A trade that is no longer running (terminal) still
        answers: the core refuses what its state does not allow."""
        runner = await self._live_runner(tenant_id, trade_id)
        if runner is not None:
            return await runner.submit(input, etag, claim)
        trade = await self.get(tenant_id, trade_id)
        if etag and etag != etag_of(trade):
            raise EtagMismatch(f"smartTrades/{trade_id}")
        decide(trade, input)  # refuses every action but the read-only ones
        return trade

    async def refresh(self, tenant_id: str, trade_id: str, refresh: Input) -> SmartTrade:
        """Sync with the venue now, through the same path as startup reconciliation."""
        runner = await self._live_runner(tenant_id, trade_id)
        if runner is None:
            return await self.get(tenant_id, trade_id)  # finished: nothing to sync
        await self._engine.reconcile(runner)
        return await runner.submit(refresh)

    async def _live_runner(self, tenant_id: str, trade_id: str) -> TradeRunner | None:
        if self._engine.tenant_of(trade_id) != tenant_id:
            return None
        return await self._engine.live_runner(trade_id)

    async def list(
        self, tenant_id: str, where: TradeFilter, page_size: int, page_token: str
    ) -> Page:
        if page_size < 0:
            raise InvalidSpec([FieldViolation("page_size", "must not be negative")])
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        filters = repr(where)
        after = self._tokens.decode(page_token, filters)
        async with self._engine.store.engine.connect() as connection:
            trades = await list_trades(connection, tenant_id, where, after, size + 1)
        more = len(trades) > size
        trades = trades[:size]
        trades = [self._fresh(trade) for trade in trades]
        token = ""
        if more:
            last = trades[-1]
            token = self._tokens.encode((last.created_at, last.id), filters)
        return Page(trades, token)

    def _fresh(self, trade: SmartTrade) -> SmartTrade:
        """The running copy where there is one, shown at the venue's latest price."""
        runner = self._engine.runner(trade.id)
        if runner is not None:
            trade = runner.trade
        price = self._engine.last_price(trade.id) if not trade.state.is_terminal else None
        if price is None or price == trade.last_price:
            return trade
        return replace(trade, last_price=price)
