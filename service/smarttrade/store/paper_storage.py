"""The paper venue's state in Postgres: prices, balances and orders (with their fills).

Loading also puts each paper account's own settings (fees, slippage, partial fills: kept on
its exchange-account row) into the books, so a tick right after a restart fills the resting
orders on the account's terms, not the defaults. Database failures leave as the venue's own
`PaperStorageError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side
from smarttrade.exchange.paper import PaperChanges, PaperStorageError, PaperVenue
from smarttrade.exchange.paper_book import PaperOrder
from smarttrade.store import tables
from smarttrade.store.accounts import all_accounts
from smarttrade.store.codec import from_document, to_document
from smarttrade.store.sql import upsert


@asynccontextmanager
async def _translated(doing: str) -> AsyncIterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as error:
        raise PaperStorageError(f"paper storage unavailable while {doing}: {error}") from error


class PostgresPaperStorage:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self, venue: PaperVenue) -> None:
        async with _translated("loading"), self._engine.connect() as connection:
            for account in await all_accounts(connection):
                if account.is_paper and account.paper_settings is not None:
                    venue.book(account.tenant_id).open_account(account.id, account.paper_settings)
            for row in await connection.execute(select(tables.paper_prices)):
                venue.book(row.tenant_id).prices[row.symbol] = row.price
            for row in await connection.execute(select(tables.paper_balances)):
                book = venue.book(row.tenant_id)
                book.restore_balance(row.account_id, row.currency, row.free, row.locked)
            for row in await connection.execute(select(tables.paper_orders)):
                venue.book(row.tenant_id).restore_order(
                    PaperOrder(
                        account_id=row.account_id,
                        client_order_id=row.client_order_id,
                        exchange_order_id=row.exchange_order_id,
                        symbol=row.symbol,
                        side=Side(row.side),
                        type=OrderType(row.type),
                        amount=row.amount,
                        price=row.price,
                        created_at=row.created_at,
                        status=OrderStatus(row.status),
                        fills=[from_document(Fill, fill) for fill in row.fills],
                        locked=row.locked,
                    )
                )

    async def save(self, changes: PaperChanges) -> None:
        balance_rows = [
            {
                "tenant_id": changes.tenant_id,
                "account_id": account,
                "currency": balance.currency,
                "free": balance.free,
                "locked": balance.locked,
            }
            for account, balances in changes.balances.items()
            for balance in balances.values()
        ]
        order_rows = [
            {
                "tenant_id": changes.tenant_id,
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
            }
            for order in changes.orders
        ]
        price_rows = [
            {"tenant_id": changes.tenant_id, "symbol": symbol, "price": price, "updated_at": at}
            for symbol, (price, at) in changes.prices.items()
        ]
        async with _translated("saving"), self._engine.begin() as connection:
            await upsert(
                connection, tables.paper_balances, balance_rows, ["account_id", "currency"]
            )
            await upsert(
                connection, tables.paper_orders, order_rows, ["account_id", "client_order_id"]
            )
            await upsert(connection, tables.paper_prices, price_rows, ["tenant_id", "symbol"])
