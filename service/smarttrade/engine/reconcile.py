"""Reconciliation: the venue's truth about the trades, fed through the same path as live
updates (crash-only: startup, the periodic sweep and Refresh all run this).

For each trade, in this order:
1. The position: when the account no longer holds a tradable amount of the coins its BUY
   trades believe they hold (sold by hand), those trades end CLOSED_EXTERNALLY and their
   orphan orders are cancelled; nothing is re-placed. Checked first, so that an order the
   trader cancelled on the venue before selling is not re-created meanwhile.
2. The orders: every order the trade believes live (and is not already resolving) is looked
   up and the venue's report applied.
3. The price: the current last price is applied as a tick, so a stop crossed while the
   service was down fires at once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import ErrorRecorded, PositionGone, PriceTicked
from smarttrade.domain.position import position_of
from smarttrade.domain.values import Side
from smarttrade.engine.executor import reported
from smarttrade.engine.runner import TradeRunner
from smarttrade.engine.venues import Venues
from smarttrade.exchange.port import ExchangeError, OrderNotFound
from smarttrade.store.accounts import ExchangeAccount

log = logging.getLogger(__name__)

HOLDING = (TradeState.ACTIVE, TradeState.CLOSING)


class Reconciler:
    def __init__(
        self,
        venues: Venues,
        account_of: Callable[[str], ExchangeAccount],
        clock: Callable[[], datetime],
    ) -> None:
        self._venues = venues
        self._account_of = account_of
        self._clock = clock

    async def sweep(self, runners: Iterable[TradeRunner]) -> None:
        groups: dict[tuple[str, str], list[TradeRunner]] = defaultdict(list)
        for runner in runners:
            groups[(runner.trade.account_id, runner.trade.spec.symbol)].append(runner)
        for group in groups.values():
            await self._positions(group)
            for runner in group:
                await self._orders_and_price(runner)

    async def trade(self, runner: TradeRunner, siblings: Iterable[TradeRunner]) -> None:
        """One trade (Refresh): its position is judged with the other trades holding the same
        coins on the same account."""
        await self._positions([runner, *siblings])
        await self._orders_and_price(runner)

    async def _positions(self, group: list[TradeRunner]) -> None:
        holding = [
            r
            for r in group
            if r.trade.state in HOLDING
            and r.trade.spec.side is Side.BUY
            and position_of(r.trade).units_held > 0
        ]
        if not holding:
            return
        trade = holding[0].trade
        exchange = self._venues.exchange(self._account_of(trade.account_id))
        try:
            balances = await exchange.fetch_balances()
        except ExchangeError as error:
            log.warning("reconciling balances of %s: %s", trade.account_id, error)
            return
        balance = balances.get(trade.market.base)
        have = balance.total if balance is not None else Decimal(0)
        expected = sum((position_of(r.trade).units_held for r in holding), Decimal(0))
        price = trade.last_price or Decimal(0)
        now = self._clock()
        if not trade.market.is_tradable(trade.market.round_amount(have), price):
            for runner in holding:
                await runner.submit(PositionGone(have, now))
        elif have < expected:
            message = (
                f"the account holds {have} {trade.market.base}, "
                f"its trades on {trade.spec.symbol} expect {expected}"
            )
            for runner in holding:
                await runner.submit(ErrorRecorded(message, now))

    async def _orders_and_price(self, runner: TradeRunner) -> None:
        trade = runner.trade
        if trade.state.is_terminal:
            return
        account = self._account_of(trade.account_id)
        exchange = self._venues.exchange(account)
        symbol = trade.spec.symbol
        for order in trade.orders():
            if not order.status.is_live or runner.has_pending(order.client_order_id):
                continue
            try:
                report = await exchange.fetch_order(symbol, order.client_order_id)
            except OrderNotFound:
                continue  # a placement being resolved settles it; else the next sweep
            except ExchangeError as error:
                log.warning("reconciling %s: %s", order.client_order_id, error)
                continue
            await runner.submit(reported(report, self._clock()))
        if runner.trade.state.is_terminal:
            return
        try:
            ticker = await exchange.fetch_ticker(symbol)
        except ExchangeError as error:
            log.warning("reconciling the price of %s: %s", symbol, error)
            return
        await runner.submit(PriceTicked(ticker.last, self._clock()))
