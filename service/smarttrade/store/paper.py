"""The paper venue's ledger: its prices, balances, orders (with their fills) and futures
positions (with their leverage and margin mode), as rows.

The venue (exchange/paper.py) owns what the rows mean; its storage adapter
(exchange/paper_storage.py) maps them to its book, so the store knows the tables only.
Writes are staged into the unit of work's one statement: every change of the venue is one
round trip, and a request id answered by it (a sandbox tick) is claimed in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from smarttrade.store import tables

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PaperRows:
    prices: list[Row]
    balances: list[Row]
    orders: list[Row]
    positions: list[Row]

    def of(self, tenants: Callable[[str], bool]) -> PaperRows:
        """The rows of the `tenants` only."""
        return PaperRows(
            [row for row in self.prices if tenants(row["tenant_id"])],
            [row for row in self.balances if tenants(row["tenant_id"])],
            [row for row in self.orders if tenants(row["tenant_id"])],
            [row for row in self.positions if tenants(row["tenant_id"])],
        )


class PaperLedger:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def load(self) -> PaperRows:
        async def rows(table: Any) -> list[Row]:
            return [dict(row._mapping) for row in await self._uow.execute(select(table))]

        return PaperRows(
            await rows(tables.paper_prices),
            await rows(tables.paper_balances),
            await rows(tables.paper_orders),
            await rows(tables.paper_positions),
        )

    def save(
        self,
        balances: Sequence[dict[str, object]],
        orders: Sequence[dict[str, object]],
        prices: Sequence[dict[str, object]],
        positions: Sequence[dict[str, object]],
    ) -> None:
        """Stage rows (each overwriting the row of its key) for the unit of work's commit."""
        staged = self._uow.staged
        staged.paper_balances.extend(balances)
        staged.paper_orders.extend(orders)
        staged.paper_prices.extend(prices)
        staged.paper_positions.extend(positions)
