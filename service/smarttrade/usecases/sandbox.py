"""The paper sandbox: a tenant pushes prices and sets balances on its own paper book.

A tick's request id is kept in the same write as the tick (the paper venue's write of its
price, fills and balances), after a lookup: a request answered before gets its first answer;
one that never reached that write is performed. A duplicate in this process waits for the
first (`InFlight`), so a tick is never applied twice for one request id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.values import Balance
from smarttrade.engine.ownership import Engines
from smarttrade.errors import NotFound
from smarttrade.store.unit_of_work import UnitOfWork
from smarttrade.usecases.requests import InFlight, Requested, answered


@dataclass(frozen=True, slots=True)
class SetPrice:
    requested: Requested
    symbol: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class SetBalances:
    requested: Requested
    account_id: str
    totals: Mapping[str, Decimal]


class Sandbox:
    def __init__(self, engine: Engines, unit_of_work: Callable[[], UnitOfWork]) -> None:
        self._engine = engine
        self._unit_of_work = unit_of_work
        self._in_flight = InFlight()

    async def set_price(self, command: SetPrice) -> Decimal:
        """Apply a tick and return once every trade on the symbol has fully reacted: the
        venue's fills routed, triggers fired, orders placed and filled, all persisted."""
        requested = command.requested
        request = requested.record(command.symbol)
        paper = self._engine.venues.paper
        if command.symbol not in paper.book(requested.tenant_id).markets:
            raise InvalidSpec([FieldViolation("symbol", "is not a paper market")])
        if command.price <= 0:
            raise InvalidSpec([FieldViolation("price", "must be greater than 0")])

        async def tick() -> Decimal:
            stored = await answered(self._unit_of_work, request)
            if stored is not None:
                return Decimal(str((stored.answer or {}).get("price", command.price)))
            await self._engine.apply_paper_price(
                requested.tenant_id,
                command.symbol,
                command.price,
                request.answered({"price": str(command.price)}),
            )
            return command.price

        key = (requested.tenant_id, requested.request_id)
        return await self._in_flight.once(key, tick)

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

    async def set_balances(self, command: SetBalances) -> dict[str, Balance]:
        requested = command.requested
        request = requested.record(f"exchangeAccounts/{command.account_id}")
        await self._paper_account(requested.tenant_id, command.account_id)
        paper = self._engine.venues.paper

        async def set_them() -> dict[str, Balance]:
            stored = await answered(self._unit_of_work, request)
            if stored is None:
                await paper.set_balances(
                    requested.tenant_id, command.account_id, command.totals, request.answered({})
                )
            return paper.balances(requested.tenant_id, command.account_id)

        key = (requested.tenant_id, requested.request_id)
        return await self._in_flight.once(key, set_them)
