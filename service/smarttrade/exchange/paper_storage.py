"""The paper venue's book in PostgreSQL, through the store's units of work.

Loading puts each paper account's own settings (fees, slippage, partial fills: kept on its
exchange-account row) into the books, so a tick right after a restart fills the resting
orders on the account's terms, not the defaults; and its futures positions with the leverage
and margin mode of each symbol, so a tick right after a restart liquidates what it would have
before. A save writes the changes of any number of operations (and the request ids they
answer) as one statement per tenant (with leases, each is fenced by its tenant's shard): the
venue gathers the changes made while a write is in flight into the next one (see
`PaperVenue`). Failures leave as the venue's own `PaperStorageError`, without the database's
message (which quotes SQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side
from smarttrade.exchange.paper import PaperChanges, PaperStorageError, PaperVenue, every_tenant
from smarttrade.exchange.paper_book import PaperOrder
from smarttrade.exchange.paper_futures import Holding, Setting
from smarttrade.store.codec import from_document, to_document
from smarttrade.store.errors import StoreUnavailable
from smarttrade.store.unit_of_work import UnitOfWork


@asynccontextmanager
async def _translated(doing: str) -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailable as error:
        raise PaperStorageError(f"the paper venue's storage is unavailable while {doing}") from (
            error
        )


class PostgresPaperStorage:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork]) -> None:
        self._unit_of_work = unit_of_work

    async def load(self, venue: PaperVenue, tenants: Callable[[str], bool] = every_tenant) -> None:
        async with _translated("loading"), self._unit_of_work() as uow:
            for account in await uow.accounts.all():
                settings = account.paper_settings
                if account.is_paper and settings is not None and tenants(account.tenant_id):
                    venue.book(account.tenant_id).open_account(account.id, settings)
            loaded = await uow.paper.load()
        rows = loaded.of(tenants)
        for row in rows.prices:
            venue.book(row["tenant_id"]).prices[row["symbol"]] = row["price"]
        for row in rows.balances:
            venue.book(row["tenant_id"]).restore_balance(
                row["account_id"], row["currency"], row["free"], row["locked"]
            )
        for row in rows.orders:
            venue.book(row["tenant_id"]).restore_order(
                PaperOrder(
                    account_id=row["account_id"],
                    client_order_id=row["client_order_id"],
                    exchange_order_id=row["exchange_order_id"],
                    symbol=row["symbol"],
                    side=Side(row["side"]),
                    type=OrderType(row["type"]),
                    amount=row["amount"],
                    price=row["price"],
                    created_at=row["created_at"],
                    status=OrderStatus(row["status"]),
                    fills=[from_document(Fill, fill) for fill in row["fills"]],
                    locked=row["locked"],
                    reduce_only=row["reduce_only"] is True,
                )
            )
        for row in rows.positions:
            venue.book(row["tenant_id"]).futures.restore(
                row["account_id"],
                row["symbol"],
                Holding(Side(row["side"]), row["units"], row["entry"], row["margin"]),
                Setting(row["leverage"], MarginMode(row["margin_mode"])),
            )

    async def save(self, changes: Sequence[PaperChanges]) -> None:
        """One write per tenant: with leases, each is fenced by its tenant's shard."""
        for change in changes:
            await self._save(change)

    async def _save(self, change: PaperChanges) -> None:
        async with _translated("saving"), self._unit_of_work() as uow:
            balances = [
                {
                    "tenant_id": change.tenant_id,
                    "account_id": account,
                    "currency": balance.currency,
                    "free": balance.free,
                    "locked": balance.locked,
                }
                for account, account_balances in change.balances.items()
                for balance in account_balances.values()
            ]
            orders = [
                {
                    "tenant_id": change.tenant_id,
                    "account_id": order.account_id,
                    "client_order_id": order.client_order_id,
                    "exchange_order_id": order.exchange_order_id,
                    "symbol": order.symbol,
                    "side": order.side.value,
                    "type": order.type.value,
                    "amount": order.amount,
                    "price": order.price,
                    "status": order.status.value,
                    "locked": order.locked,
                    "fills": to_document(order.fills),
                    "created_at": order.created_at,
                    "reduce_only": order.reduce_only,
                }
                for order in change.orders
            ]
            prices = [
                {"tenant_id": change.tenant_id, "symbol": s, "price": p, "updated_at": at}
                for s, (p, at) in change.prices.items()
            ]
            positions: list[dict[str, object]] = [
                {
                    "tenant_id": change.tenant_id,
                    "account_id": account,
                    "symbol": symbol,
                    "side": held.side.value,
                    "units": held.units,
                    "entry": held.entry,
                    "margin": held.margin,
                    "leverage": setting.leverage,
                    "margin_mode": setting.margin_mode.value,
                }
                for (account, symbol), (held, setting) in change.positions.items()
            ]
            for request, at in change.requests:
                uow.requests.keep(request, at)
            uow.paper.save(balances, orders, prices, positions)
            await uow.commit()
