"""The paper venue's default markets: common spot pairs with precision and limits as Binance
lists them (tick size, lot size, minimum notional), so paper orders round and fail like real
ones."""

from __future__ import annotations

from decimal import Decimal

from smarttrade.domain.market import Market


def _market(symbol: str, tick: str, step: str, min_cost: str) -> Market:
    base, quote = symbol.split("/")
    return Market(
        symbol=symbol,
        base=base,
        quote=quote,
        amount_step=Decimal(step),
        price_tick=Decimal(tick),
        min_amount=Decimal(step),
        min_cost=Decimal(min_cost),
    )


DEFAULT_MARKETS = (
    _market("BTC/USDT", "0.01", "0.00001", "5"),
    _market("ETH/USDT", "0.01", "0.0001", "5"),
    _market("SOL/USDT", "0.01", "0.001", "5"),
    _market("BNB/USDT", "0.01", "0.001", "5"),
    _market("XRP/USDT", "0.0001", "0.1", "5"),
    _market("ADA/USDT", "0.0001", "0.1", "5"),
    _market("DOGE/USDT", "0.00001", "1", "5"),
    _market("LTC/USDT", "0.01", "0.001", "5"),
    _market("ETH/BTC", "0.00001", "0.0001", "0.0001"),
)
