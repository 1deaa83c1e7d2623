"""Refresh: sync one trade with its venue now."""

from __future__ import annotations

from smarttrade.domain.model import SmartTrade
from smarttrade.engine.ownership import Engines
from smarttrade.usecases.reading import TradeReader


class RefreshTrades:
    """Refresh: sync one trade with its venue now, through the same path as the startup
    reconciliation, and return it fresh. Nothing to sync once it has finished."""

    def __init__(self, engine: Engines, reader: TradeReader) -> None:
        self._engine = engine
        self._reader = reader

    async def __call__(self, tenant_id: str, trade_id: str) -> SmartTrade:
        if self._engine.tenant_of(trade_id) == tenant_id:
            refreshed = await self._engine.refresh(trade_id)
            if refreshed is not None:
                return self._reader.shown(refreshed)
        return await self._reader.get(tenant_id, trade_id)
