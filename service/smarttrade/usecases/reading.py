"""Reading trades: one trade, and pages of them.

A live trade is read from its running copy (the store may be a commit behind it), shown at
the venue's latest price; any other trade from the store. Another tenant's trade answers
exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.trade_query import NEWEST_FIRST, Filter, Order
from smarttrade.engine.ownership import Engines
from smarttrade.errors import NotFound
from smarttrade.store.trades import TradeFilter
from smarttrade.store.unit_of_work import UnitOfWork
from smarttrade.usecases.page_tokens import PageTokens

MAX_PAGE = 500
DEFAULT_PAGE = 50


@dataclass(frozen=True, slots=True)
class ListTrades:
    tenant_id: str
    states: Sequence[TradeState] = ()
    symbol: str = ""
    account_id: str = ""
    created_from: datetime | None = None
    created_before: datetime | None = None
    page_size: int = 0
    page_token: str = ""
    expression: Filter | None = None  # `filter` (AIP-160), parsed
    order: Order = NEWEST_FIRST  # `order_by` (AIP-132), parsed


@dataclass(frozen=True, slots=True)
class Page:
    trades: list[SmartTrade]
    next_page_token: str


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidSpec([FieldViolation("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


class TradeReader:
    def __init__(
        self, engine: Engines, unit_of_work: Callable[[], UnitOfWork], tokens: PageTokens
    ) -> None:
        self._engine = engine
        self._unit_of_work = unit_of_work
        self._tokens = tokens

    async def get(self, tenant_id: str, trade_id: str) -> SmartTrade:
        running = self._engine.running(trade_id)
        if running is not None and running.tenant_id == tenant_id:
            return self.shown(running)
        async with self._unit_of_work() as uow:
            trade = await uow.trades.get(trade_id, tenant_id)
        if trade is None:
            raise NotFound("smart trade", f"smartTrades/{trade_id}")
        return self.shown(trade)

    async def at_version(self, tenant_id: str, trade_id: str, version: int | None) -> SmartTrade:
        """The trade exactly as a request left it (its answer, as the first call returned
        it); as it is now once that version is no longer kept."""
        if version is not None:
            async with self._unit_of_work() as uow:
                trade = await uow.trades.at_version(tenant_id, trade_id, version)
            if trade is not None:
                return trade
        return await self.get(tenant_id, trade_id)

    async def list(self, query: ListTrades) -> Page:
        size = page_size(query.page_size)
        where = TradeFilter(
            states=tuple(query.states),
            symbol=query.symbol,
            account_id=query.account_id,
            created_from=query.created_from,
            created_before=query.created_before,
            expression=query.expression,
        )
        # A page token is bound to the filters and the order it was made with.
        filters = f"{where!r} {query.order!r}"
        after = self._tokens.decode(query.page_token, filters)
        async with self._unit_of_work() as uow:
            found = await uow.trades.page(query.tenant_id, where, after, size + 1, query.order)
        more = len(found) > size
        shown = [self.shown(self._engine.running(t.id) or t) for t, _ in found[:size]]
        token = ""
        if more:
            last, value = found[size - 1]
            token = self._tokens.encode((value, last.id), filters)
        return Page(shown, token)

    def shown(self, trade: SmartTrade) -> SmartTrade:
        """A live trade at the venue's latest price (a trade sees only the ticks that
        concern it: this is for its unrealized PnL)."""
        price = self._engine.last_price(trade.id) if not trade.state.is_terminal else None
        if price is None or price == trade.last_price:
            return trade
        return replace(trade, last_price=price)
