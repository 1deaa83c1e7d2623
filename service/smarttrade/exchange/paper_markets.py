"""The paper venue's default markets: common spot pairs and two linear perpetuals, with
precision and limits as Binance lists them (tick size, lot size, minimum notional; for the
perpetuals, USDⓈ-M's filters, the highest leverage and the maintenance margin rate of the
first tier), so paper orders round and fail like real ones.

A perpetual has a symbol of its own (ccxt's BTC/USDT:USDT, settled in USDT), so its paper
price is its own too: a tenant's sandbox moves BTC/USDT and BTC/USDT:USDT separately, as a
spot market and its perpetual do drift apart."""

from __future__ import annotations

from dataclasses import replace
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


def _perpetual(
    symbol: str, tick: str, step: str, min_cost: str, max_leverage: str, maintenance_rate: str
) -> Market:
    """A linear perpetual, named BASE/QUOTE:SETTLE as ccxt names it."""
    pair, settle = symbol.split(":")
    return replace(
        _market(pair, tick, step, min_cost),
        symbol=symbol,
        settle=settle,
        max_leverage=Decimal(max_leverage),
        maintenance_rate=Decimal(maintenance_rate),
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
    # Binance USDⓈ-M BTCUSDT and ETHUSDT: a notional of at least 100 and 20 USDT.
    _perpetual("BTC/USDT:USDT", "0.1", "0.001", "100", "125", "0.004"),
    _perpetual("ETH/USDT:USDT", "0.01", "0.001", "20", "100", "0.005"),
)
