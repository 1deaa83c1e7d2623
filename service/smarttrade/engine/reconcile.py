"""Reconciliation: the venue's truth about the trades, fed through the same path as live
updates (crash-only: startup, the periodic sweep and Refresh all run this).

Per account and symbol, in this order:
1. The balances, when the account's BUY trades hold coins; on a contract market (futures)
   the position, when its trades of either side hold one (`fetch_positions`: a futures
   position is no balance). Read before the orders, so that whatever left the account
   before the balances were read shows in the orders' reports, read after them (a fill
   landing in between is then explained, not taken for a sale).
2. The trades' own orders: every order they sent whose end they do not know for sure, that
   is all but the FILLED (nothing more can happen to them) and the REJECTED (the venue never
   took them), so also those they believe cancelled: an order reported cancelled may still
   have filled. Those believed open are looked up when they left the venue's open orders or
   their fill moved (the engine's order poll runs this comparison alone: `changed_orders`);
   those believed ended are looked up once after they ended, and again at start (every
   trade's), in Refresh (the refreshed trade's) and whenever the balances show coins
   missing (every trade's of the group), so a sweep's cost does not grow with the orders
   trades replaced long ago. The venue's reports are applied: a take profit that FILLED
   closes its trade TAKE_PROFIT at the venue's prices (a trade whose store write of them
   failed is not judged in step 3 this time).
   An order the venue ended (cancelled by hand, expired) gives its fills now but its end
   only after step 3: told of the end, a trade would place the order again, and if the
   trader cancelled it by hand before selling the coins, that would sell coins no longer
   there (for the same reason the engine starts its live order updates only after the
   startup sweep).
3. The position, with the trades' own orders applied: coins they do not explain are gone.
   When the account no longer holds a tradable amount, the trades still holding end
   CLOSED_EXTERNALLY (their orphan orders cancelled, nothing re-placed); when it holds less
   than they do, they say so in `last_error`. A futures position gone ends them LIQUIDATED
   instead when the venue said it liquidated it (the paper venue does) or the price when it
   was found gone is at or past their liquidation price; one still open gives them the
   liquidation price the venue reports.
4. The ends held back in step 2 (a trade that ended in step 3 only records them).
Then per venue and symbol, the price: the current last price goes through the trigger index
like any tick, so a stop crossed while the service was down fires at once, and only the
trades it concerns are loaded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.market import Market
from smarttrade.domain.messages import (
    ErrorRecorded,
    Input,
    PositionGone,
    PositionSeen,
    PriceTicked,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.values import Fill, OrderStatus, Side
from smarttrade.engine.executor import reported
from smarttrade.engine.venues import Venues, price_feed_of, source_of
from smarttrade.exchange.port import Exchange, ExchangeError, OrderNotFound, OrderReport
from smarttrade.store.trades import SentOrder
from smarttrade.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
ZERO = Decimal(0)


class Runtime(Protocol):
    """What reconciliation needs of the engine: the live trades' groups, and the way in for
    what it finds (the same as for live updates)."""

    def groups(self) -> list[tuple[str, str]]:
        """(account, symbol) of every live trade."""
        ...

    def feeds(self) -> list[tuple[str, str]]:
        """(price feed, symbol) of every live trade."""
        ...

    def known_account(self, account_id: str) -> ExchangeAccount: ...

    def is_live(self, trade_id: str) -> bool: ...

    def loaded_trades(self, account_id: str, symbol: str) -> Iterable[SmartTrade]:
        """The live trades of a group that are loaded (possibly ahead of the store)."""
        ...

    async def submit(self, trade_id: str, input: Input) -> SmartTrade: ...

    async def on_order_reports(self, reports: Iterable[OrderReport]) -> None: ...

    async def on_price(self, feed: str, symbol: str, price: Decimal) -> None: ...


# Orders whose end the venue may still tell something of (an order reported cancelled may
# still have filled); FILLED and REJECTED orders have nothing more to tell.
UNSETTLED = (
    OrderStatus.PENDING,
    OrderStatus.UNKNOWN,
    OrderStatus.OPEN,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
)
ENDED = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


class _EveryTrade:
    def __contains__(self, trade_id: object) -> bool:
        return True


EVERY_TRADE: Container[str] = _EveryTrade()


@dataclass(frozen=True, slots=True)
class BalanceSeen:
    """What the account held of a symbol's base when reconciliation began, and what its
    trades held then."""

    have: Decimal
    expected: Decimal
    market: Market
    price: Decimal
    liquidation_price: Decimal | None = None  # futures: the venue's, of the position

    @property
    def gone(self) -> bool:
        """Nothing tradable is left."""
        return not self.market.is_tradable(self.market.round_amount(self.have), self.price)

    @property
    def short(self) -> bool:
        return self.gone or self.have < self.expected


def held_by(
    holding: list[tuple[str, Side, Decimal]], market: Market
) -> list[tuple[str, Side, Decimal]]:
    """What the venue shows of the trades' holdings: on spot, the coins BUY trades hold (a
    SELL trade owes coins, which no balance shows); on futures, either side's position."""
    return [held for held in holding if market.is_contract or held[1] is Side.BUY]


def verdicts(
    seen: BalanceSeen,
    holding: list[tuple[str, Decimal]],
    unapplied: Container[str],
    liquidation: OrderReport | None,
    now: datetime,
) -> list[tuple[str, Input]]:
    """What each trade holding the position (trade id, units held, their venue's reports
    applied) is told of the balance or position `seen`: gone (sold outside, or on futures
    closed or liquidated, with its share of the venue's `liquidation` order), short of what
    they hold (an error), and on futures the venue's liquidation price. A trade in
    `unapplied` could not apply its reports and is not judged (the next sweep does). Pure:
    the simulator (engine/simulator.py) judges a liquidation by it too."""
    expected = sum((held for _, held in holding), ZERO)
    judged = [(trade_id, held) for trade_id, held in holding if trade_id not in unapplied]
    told: list[tuple[str, Input]] = []
    if seen.gone:
        for trade_id, held in judged:
            share = liquidation_share(liquidation, held, expected)
            gone = PositionGone(seen.have, now, seen.price, liquidation is not None, share)
            told.append((trade_id, gone))
        return told
    if seen.have < expected:
        message = (
            f"the account holds {seen.have} {seen.market.base}, "
            f"its trades on {seen.market.symbol} expect {expected}"
        )
        told += [(trade_id, ErrorRecorded(message, now)) for trade_id, _ in judged]
    if seen.market.is_contract:
        seen_now = PositionSeen(seen.liquidation_price, now)
        told += [(trade_id, seen_now) for trade_id, _ in judged]
    return told


def liquidation_share(
    liquidation: OrderReport | None, held: Decimal, total: Decimal
) -> tuple[str, Fill] | None:
    """A trade's share of the venue's liquidation order, as one fill: the trades on one
    position hold `total` of it, this one `held`, closed at the order's average price with
    its fee in proportion."""
    if liquidation is None or not liquidation.fills or not total:
        return None
    fills = liquidation.fills
    amount = sum((fill.amount for fill in fills), ZERO)
    price = sum((fill.price * fill.amount for fill in fills), ZERO) / amount
    fee = sum((fill.fee for fill in fills), ZERO) * held / total
    fill = Fill(fills[0].trade_id, price, held, fee, fills[0].fee_currency, fills[-1].at)
    return liquidation.exchange_order_id or liquidation.client_order_id, fill


class Reconciler:
    def __init__(
        self,
        runtime: Runtime,
        venues: Venues,
        unit_of_work: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
    ) -> None:
        self._runtime = runtime
        self._venues = venues
        self._unit_of_work = unit_of_work
        self._clock = clock
        # By live trade: its orders the venue has told us ended, when we looked them up.
        self._seen_ended: dict[str, set[str]] = {}

    async def sweep(self, recheck: Container[str] = ()) -> None:
        """Every live trade; the ended orders of the trades in `recheck` are looked up again
        (at start: of `EVERY_TRADE`)."""
        runtime = self._runtime
        self._seen_ended = {
            trade_id: ids for trade_id, ids in self._seen_ended.items() if runtime.is_live(trade_id)
        }
        for account_id, symbol in runtime.groups():
            await self.group(account_id, symbol, recheck=recheck)
        for feed, symbol in runtime.feeds():
            price = await self._current_price(feed, symbol)
            if price is not None:
                await runtime.on_price(feed, symbol, price)

    async def trade(self, trade: SmartTrade) -> None:
        """Refresh one trade: its account and symbol, then the price, for this trade."""
        await self.group(trade.account_id, trade.spec.symbol, recheck={trade.id})
        if not self._runtime.is_live(trade.id):  # it ended on what the venue said
            return
        account = self._runtime.known_account(trade.account_id)
        exchange = self._venues.exchange(account)
        try:
            price = await exchange.fetch_price(trade.spec.symbol, trade.spec.trigger_price)
        except ExchangeError as error:
            log.warning("reconciling the price of %s: %s", trade.spec.symbol, error)
            return
        await self._runtime.submit(trade.id, PriceTicked(price, self._clock()))

    async def group(
        self,
        account_id: str,
        symbol: str,
        *,
        recheck: Container[str] = (),
        liquidation: OrderReport | None = None,
    ) -> None:
        """The trades of one account and symbol, in the order of the module's docstring;
        the ended orders of the trades in `recheck` are looked up even if they were once.
        `liquidation`: the venue's order that liquidated the account's position on the
        symbol, when it said so (the paper venue does)."""
        runtime = self._runtime
        account = runtime.known_account(account_id)
        seen = await self._balance(account, symbol)
        # Coins are missing: before they are judged gone, every order has its say.
        if seen is not None and seen.short:
            recheck = EVERY_TRADE
        try:
            reports = await self._look_up(account, symbol, UNSETTLED, recheck)
        except ExchangeError as error:
            log.warning("reconciling the orders of %s on %s: %s", account_id, symbol, error)
            return  # the position is not judged without its orders
        fills, ends = [], []
        for trade_id, report in reports:
            if report.status in ENDED:
                ends.append(report)
                if not report.fills:
                    continue
                # Its fills count now; its end comes after the position is judged.
                report = dataclasses.replace(report, status=OrderStatus.OPEN)
            fills.append((trade_id, report))
        unapplied = await self._apply(fills)
        if seen is not None:
            await self._judge(account_id, symbol, seen, unapplied, liquidation)
        await runtime.on_order_reports(ends)

    async def changed_orders(self, account: ExchangeAccount, symbol: str) -> list[OrderReport]:
        """What changed at the venue among the orders the trades believe open: those whose
        fill moved, and those that left the open orders (looked up for how they ended).
        Polling the open orders alone would miss an order that filled between two polls."""
        found = await self._look_up(account, symbol, (OrderStatus.OPEN,), recheck=())
        return [report for _, report in found]

    async def _apply(self, reports: list[tuple[str, OrderReport]]) -> set[str]:
        """Apply the venue's reports to their trades, in the venue's order; the trades that
        could not apply theirs (the store failed them): their position is not judged now."""
        runtime = self._runtime
        at = self._clock()
        unapplied: set[str] = set()
        for trade_id, report in reports:
            if trade_id in unapplied or not runtime.is_live(trade_id):
                continue
            try:
                await runtime.submit(trade_id, reported(report, at))
            except Exception:
                log.exception(
                    "trade %s: the venue's report of %s was not applied",
                    trade_id,
                    report.client_order_id,
                )
                unapplied.add(trade_id)
        return unapplied

    async def _balance(self, account: ExchangeAccount, symbol: str) -> BalanceSeen | None:
        """The account's balance of the base, when its BUY trades hold some; on a contract
        market, its position, when its futures trades (either side) hold one (else None)."""
        async with self._unit_of_work() as uow:
            holding = await uow.trades.holdings(account.id, symbol)
        if not holding:
            return None
        exchange = self._venues.exchange(account)
        try:
            market = (await self._venues.markets(account))[symbol]
        except ExchangeError as error:
            log.warning("reconciling the holdings of %s: %s", account.id, error)
            return None
        holding = held_by(holding, market)
        if not holding:
            return None
        try:
            price = (await exchange.fetch_ticker(symbol)).last
            if market.is_contract:
                have, liquidation = await self._position(exchange, symbol, holding)
            else:
                balance = (await exchange.fetch_balances()).get(market.base)
                have, liquidation = (balance.total if balance is not None else ZERO), None
        except ExchangeError as error:
            log.warning("reconciling the holdings of %s: %s", account.id, error)
            return None
        expected = sum((held for _, _, held in holding), ZERO)
        return BalanceSeen(have, expected, market, price, liquidation)

    @staticmethod
    async def _position(
        exchange: Exchange, symbol: str, holding: list[tuple[str, Side, Decimal]]
    ) -> tuple[Decimal, Decimal | None]:
        """The units of the venue's position on the trades' side (a one-way account nets
        every order on a symbol into one position; the other side's holds none of theirs),
        and the liquidation price it reports."""
        side = holding[0][1]
        for position in await exchange.fetch_positions(symbol):
            if position.side is side and position.units:
                return position.units, position.liquidation_price
        return ZERO, None

    async def _judge(
        self,
        account_id: str,
        symbol: str,
        seen: BalanceSeen,
        unapplied: set[str],
        liquidation: OrderReport | None,
    ) -> None:
        """The balance (or position) seen against what the trades hold now that the venue's
        reports of their orders are applied: what those do not explain was sold outside (or,
        on futures, liquidated). A trade that could not apply its reports is not judged (the
        next sweep does)."""
        async with self._unit_of_work() as uow:
            holding = held_by(await uow.trades.holdings(account_id, symbol), seen.market)
        held = [(trade_id, units) for trade_id, _, units in holding]
        for trade_id, verdict in verdicts(seen, held, unapplied, liquidation, self._clock()):
            await self._runtime.submit(trade_id, verdict)

    async def _look_up(
        self,
        account: ExchangeAccount,
        symbol: str,
        statuses: tuple[OrderStatus, ...],
        recheck: Container[str],
    ) -> list[tuple[str, OrderReport]]:
        """The venue's reports, by trade, of the trades' orders in `statuses` that may tell
        something new: an order believed live, unless it is among the venue's open orders
        with the fill believed; an order believed ended, unless the venue told us so when we
        looked it up (and its trade is not in `recheck`)."""
        async with self._unit_of_work() as uow:
            sent = {
                o.client_order_id: o
                for o in await uow.trades.sent_orders(account.id, symbol, statuses)
            }
        for trade in self._runtime.loaded_trades(account.id, symbol):
            # A loaded trade may be ahead of the store by a commit.
            for known in trade.orders():
                if known.status in statuses or known.status.is_live:
                    sent[known.client_order_id] = SentOrder(
                        trade.id, known.client_order_id, known.status, known.filled
                    )
                else:
                    sent.pop(known.client_order_id, None)
        if not sent:
            return []
        exchange = self._venues.exchange(account)
        open_now = {r.client_order_id: r for r in await exchange.fetch_open_orders(symbol)}
        reports = []
        for order in sent.values():
            client_order_id = order.client_order_id
            seen = open_now.get(client_order_id)
            if seen is not None and order.status.is_live and seen.filled == order.filled:
                continue
            told = self._seen_ended.get(order.trade_id, ())
            if order.status in ENDED and client_order_id in told and order.trade_id not in recheck:
                continue
            try:
                report = await exchange.fetch_order(symbol, client_order_id)
            except OrderNotFound:
                continue  # not visible (yet): the next poll asks again
            reports.append((order.trade_id, report))
            if report.status in ENDED:
                self._seen_ended.setdefault(order.trade_id, set()).add(client_order_id)
        return reports

    async def _current_price(self, feed: str, symbol: str) -> Decimal | None:
        runtime = self._runtime
        for account_id, group_symbol in runtime.groups():
            if group_symbol != symbol:
                continue
            account = runtime.known_account(account_id)
            if price_feed_of(account, source_of(feed)) != feed:
                continue
            try:
                return await self._venues.exchange(account).fetch_price(symbol, source_of(feed))
            except ExchangeError as error:
                log.warning("reconciling the price of %s on %s: %s", symbol, feed, error)
                return None
        return None
