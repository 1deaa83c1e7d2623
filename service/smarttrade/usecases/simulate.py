"""Simulating a trade: its settings over a price history, given or fetched from a venue,
walked by the simulator (engine/simulator.py). Nothing is stored and no order is sent.

Where the market's rules and the account's come from: a named account gives its venue's
markets and, when it is a paper account, its fees, slippage and partial fills; without one,
the candle source's venue gives the markets (the paper venue's when the candles come with
the request), and the paper defaults apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.candles import MAX_CANDLES, TIMEFRAMES, Candle
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.market import Market
from smarttrade.domain.spec import TradeSpec
from smarttrade.engine.ownership import Engines
from smarttrade.engine.simulator import Simulation as Simulation  # the answer's type
from smarttrade.engine.simulator import simulate
from smarttrade.errors import NotFound, PreconditionFailed
from smarttrade.exchange.port import (
    ExchangeError,
    OrderRejected,
    PriceHistory,
    RejectReason,
    TransientError,
)

SIMULATIONS_AT_ONCE = 2
# A venue's public price history by exchange id (None: no such venue here).
PriceHistories = Callable[[str], PriceHistory | None]


@dataclass(frozen=True, slots=True)
class CandleRequest:
    """A history to fetch: `symbol`'s candles of `timeframe` starting in [start, end)."""

    exchange: str
    timeframe: str
    start: datetime
    end: datetime

    @property
    def count(self) -> int:
        return -(-int((self.end - self.start).total_seconds()) // TIMEFRAMES[self.timeframe])


@dataclass(frozen=True, slots=True)
class SimulateTrade:
    tenant_id: str
    account_id: str  # "": none named
    spec: TradeSpec
    candles: Sequence[Candle] = ()
    source: CandleRequest | None = None
    balances: Mapping[str, Decimal] | None = None


class SimulateTrades:
    def __init__(
        self,
        engine: Engines,
        paper_markets: Mapping[str, Market],
        histories: PriceHistories,
    ) -> None:
        self._engine = engine
        self._paper_markets = paper_markets
        self._histories = histories
        self._running = asyncio.Semaphore(SIMULATIONS_AT_ONCE)

    async def __call__(self, command: SimulateTrade) -> Simulation:
        settings: PaperSettings | None = None
        markets: Mapping[str, Market] = self._paper_markets
        where = "paper"
        if command.account_id:
            account = await self._engine.account(command.account_id)
            if account.tenant_id != command.tenant_id:
                raise NotFound("exchange account", f"exchangeAccounts/{command.account_id}")
            markets = await self._engine.venues.markets(account)
            settings = account.paper_settings
            where = account.exchange
        candles = command.candles
        if command.source is not None:
            history = self._history(command.source)
            try:
                if not command.account_id:
                    markets = await history.load_markets()
                    where = command.source.exchange
                candles = await history.fetch_candles(
                    command.spec.symbol,
                    command.source.timeframe,
                    command.source.start,
                    command.source.end,
                )
            except OrderRejected as error:
                if error.reason is RejectReason.BAD_SYMBOL:
                    raise _not_a_market(command.spec.symbol, command.source.exchange) from error
                raise PreconditionFailed("EXCHANGE_REJECTED", str(error)) from error
            except TransientError:
                raise
            except ExchangeError as error:
                raise PreconditionFailed("EXCHANGE_REJECTED", str(error)) from error
            finally:
                await history.close()
        market = markets.get(command.spec.symbol)
        if market is None:
            raise _not_a_market(command.spec.symbol, where)
        # Seconds of CPU for a long history: off the event loop, so the live trades go on
        # meanwhile, and a few at a time, so a flood of simulations cannot crowd them out.
        async with self._running:
            return await asyncio.to_thread(
                simulate,
                command.spec,
                market,
                candles,
                settings,
                command.balances,
                tenant_id=command.tenant_id,
            )

    def _history(self, source: CandleRequest) -> PriceHistory:
        if source.count > MAX_CANDLES:
            raise InvalidSpec(
                [
                    FieldViolation(
                        "candle_source",
                        f"{source.count} candles of {source.timeframe}: "
                        f"at most {MAX_CANDLES} are allowed",
                    )
                ]
            )
        history = self._histories(source.exchange)
        if history is None:
            raise InvalidSpec(
                [FieldViolation("candle_source.exchange", f"{source.exchange!r} is not available")]
            )
        return history


def _not_a_market(symbol: str, exchange: str) -> InvalidSpec:
    return InvalidSpec(
        [FieldViolation("smart_trade.symbol", f"{symbol!r} is not a market of {exchange}")]
    )
