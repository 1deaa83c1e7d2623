"""The paper sandbox: a tenant pushes prices and sets balances on its own paper book."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.engine.engine import Engine
from smarttrade.engine.errors import NotFound
from smarttrade.exchange.port import Balance
from smarttrade.store.accounts import ExchangeAccount
from smarttrade.store.idempotency import Claim, insert_claim


class PaperSandbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def _claim(self, claim: Claim) -> None:
        async with self._engine.store.engine.begin() as connection:
            await insert_claim(connection, claim, datetime.now(UTC))

    async def set_price(self, tenant_id: str, symbol: str, price: Decimal, claim: Claim) -> Decimal:
        """Apply a tick and return once every trade on the symbol has fully reacted: the
        venue's fills routed, triggers fired, orders placed and filled, all persisted."""
        paper = self._engine.venues.paper
        if symbol not in paper.book(tenant_id).markets:
            raise InvalidSpec([FieldViolation("symbol", f"{symbol!r} is not a paper market")])
        if price <= 0:
            raise InvalidSpec([FieldViolation("price", "must be greater than 0")])
        await self._claim(claim)
        await self._engine.apply_paper_price(tenant_id, symbol, price)
        return price

    async def _paper_account(self, tenant_id: str, account_id: str) -> ExchangeAccount:
        try:
            account = await self._engine.account(account_id)
        except NotFound:
            account = None
        if account is None or account.tenant_id != tenant_id or not account.is_paper:
            raise NotFound("paper account", f"exchangeAccounts/{account_id}")
        return account

    async def balances(self, tenant_id: str, account_id: str) -> dict[str, Balance]:
        await self._paper_account(tenant_id, account_id)
        return self._engine.venues.paper.balances(tenant_id, account_id)

    def last_price(self, tenant_id: str, symbol: str) -> Decimal | None:
        return self._engine.venues.paper.last_price(tenant_id, symbol)

    async def set_balances(
        self, tenant_id: str, account_id: str, totals: Mapping[str, Decimal], claim: Claim
    ) -> dict[str, Balance]:
        await self._paper_account(tenant_id, account_id)
        await self._claim(claim)
        paper = self._engine.venues.paper
        await paper.set_balances(tenant_id, account_id, totals)
        return paper.balances(tenant_id, account_id)
