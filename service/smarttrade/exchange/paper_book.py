"""The paper venue's matching and balances (DESIGN §2.9), pure and synchronous.

`PaperExchange` wraps this with persistence and async; tests may drive it directly.

- A tick is a new last price for a symbol: resting limit orders that it crosses fill at their
  limit price, oldest first (a BUY limit when price <= limit, a SELL limit when price >= limit).
- Market orders fill at the last price, worsened by the account's slippage; a limit order
  that is marketable when placed fills at once at the last price.
- Fees: maker for limit fills that rested, taker otherwise, charged in the currency received
  (a BUY pays in base, a SELL in quote), as real venues do.
- Balances are checked on every order (insufficient funds is a rejection); limit orders lock
  what they may spend (quote for a BUY, base for a SELL).
- With partial fills on, one fill executes at most half of the order's size (rounded down to
  the lot; a remainder below the market minimum goes with it), so an order fills in parts
  across ticks; a market order fills its first part at once and the rest on later ticks. The
  rest of a market BUY that the account can no longer pay for (the price rose) expires, as a
  real venue's market order does when it runs out of funds: balances never go negative.
- Order ids and fill ids come from one per-book sequence that a restored book continues, so a
  fill after a restart never repeats the id of an earlier one (fills are unique by id).
- Contract markets (linear perpetuals, `Market.settle`: the default BTC/USDT:USDT and
  ETH/USDT:USDT) trade positions on margin from the settle currency's wallet, with fees on
  the notional, reduce-only orders and liquidation: see exchange/paper_futures.py. Positions
  and each symbol's leverage and margin mode are stored with the balances and orders (the
  venue stages them with every order on a contract market and every `prepare`), and
  `restore_order` and `futures.restore` put them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.market import Market
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import Balance, Fill, OrderStatus, OrderType, Side
from smarttrade.exchange.paper_futures import PaperFutures, Wallet
from smarttrade.exchange.port import (
    AlreadyPlaced,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    OrderRequest,
    PositionReport,
    RejectReason,
)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
LIQUIDATION = "liquidation-"  # the client order id prefix of the venue's liquidation orders


def is_liquidation(client_order_id: str) -> bool:
    """Whether an order is the venue's own, closing a position it liquidated."""
    return client_order_id.startswith(LIQUIDATION)


@dataclass(slots=True)
class PaperOrder:
    account_id: str
    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    created_at: datetime
    status: OrderStatus = OrderStatus.OPEN
    fills: list[Fill] = field(default_factory=list)
    locked: Decimal = ZERO  # what the order still holds of the spent currency
    reduce_only: bool = False  # contract markets: it may only reduce the position

    @property
    def filled(self) -> Decimal:
        return sum((f.amount for f in self.fills), ZERO)

    def report(self) -> OrderReport:
        return OrderReport(
            client_order_id=self.client_order_id,
            exchange_order_id=self.exchange_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            amount=self.amount,
            price=self.price,
            status=self.status,
            filled=self.filled,
            fills=tuple(self.fills),
            at=self.fills[-1].at if self.fills else self.created_at,
        )


class PaperBook:
    """Every paper account's balances and orders, and the venue's last prices."""

    def __init__(self, markets: Iterable[Market]) -> None:
        self.markets = {market.symbol: market for market in markets}
        self.prices: dict[str, Decimal] = {}
        self.settings: dict[str, PaperSettings] = {}
        self._wallets: dict[str, dict[str, Wallet]] = {}
        self._orders: dict[tuple[str, str], PaperOrder] = {}
        self._resting: dict[str, list[PaperOrder]] = {}
        self._sequence = 0
        self.futures = PaperFutures(self._wallet)

    # ---- accounts ------------------------------------------------------------------------

    def open_account(self, account_id: str, settings: PaperSettings) -> None:
        self.settings[account_id] = settings
        self._wallets.setdefault(account_id, {})

    def set_balance(self, account_id: str, currency: str, total: Decimal) -> None:
        """Hold `total` of `currency`: the free part is what open orders do not lock."""
        wallet = self._wallet(account_id, currency)
        wallet.free = max(total - wallet.locked, ZERO)

    def balances(self, account_id: str) -> dict[str, Balance]:
        return {
            currency: Balance(currency, wallet.free, wallet.locked)
            for currency, wallet in sorted(self._wallets.get(account_id, {}).items())
        }

    def _wallet(self, account_id: str, currency: str) -> Wallet:
        return self._wallets.setdefault(account_id, {}).setdefault(currency, Wallet())

    # ---- orders --------------------------------------------------------------------------

    def place(self, account_id: str, request: OrderRequest, at: datetime) -> OrderReport:
        key = (account_id, request.client_order_id)
        existing = self._orders.get(key)
        if existing is not None:
            raise AlreadyPlaced(f"duplicate client order id {request.client_order_id}")
        market = self.markets.get(request.symbol)
        if market is None:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"unknown symbol {request.symbol}")
        last = self.prices.get(request.symbol)
        if last is None:
            raise OrderRejected(RejectReason.INVALID_ORDER, f"no price yet for {request.symbol}")
        amount = market.round_amount(request.amount)
        price: Decimal | None = None
        if request.type is OrderType.LIMIT:
            if request.price is None or request.price <= 0:
                raise OrderRejected(RejectReason.INVALID_ORDER, "a limit order needs a price")
            price = market.round_price(request.price)
        settings = self.settings.get(account_id, PaperSettings())
        # A market order spends at the price it fills at (the last price worsened by the
        # slippage); a limit order reserves its whole limit value.
        reference = (
            price if price is not None else self._market_price(market, request.side, last, settings)
        )
        if not market.is_tradable(amount, reference):
            raise OrderRejected(
                RejectReason.INVALID_ORDER,
                f"order {amount} {market.base} is below the minimum amount or cost",
            )
        if market.is_contract:
            assert market.settle is not None
            spend_currency = market.settle
            spend = self.futures.margin_needed(
                account_id,
                market,
                request.side,
                amount,
                reference,
                request.reduce_only,
                settings.taker_fee_rate,
            )
        else:
            spend_currency, spend = self._spend(market, request.side, amount, reference)
        wallet = self._wallet(account_id, spend_currency)
        if wallet.free < spend:
            raise OrderRejected(
                RejectReason.INSUFFICIENT_FUNDS,
                f"insufficient {spend_currency}: {wallet.free} free, {spend} needed",
            )
        self._sequence += 1
        order = PaperOrder(
            account_id=account_id,
            client_order_id=request.client_order_id,
            exchange_order_id=str(self._sequence),
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            amount=amount,
            price=price,
            created_at=at,
            locked=spend,
            reduce_only=request.reduce_only and market.is_contract,
        )
        wallet.free -= spend
        wallet.locked += spend
        self._orders[key] = order
        if request.type is OrderType.MARKET:
            self._fill(order, self._market_price(market, order.side, last, settings), at, False)
        elif self._crosses(order, last):
            self._fill(order, last, at, False)
        if order.status is OrderStatus.OPEN:
            self._resting.setdefault(order.symbol, []).append(order)
        return order.report()

    def cancel(self, account_id: str, client_order_id: str, at: datetime) -> OrderReport:
        order = self._orders.get((account_id, client_order_id))
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        if order.status is OrderStatus.OPEN:
            order.status = OrderStatus.CANCELLED
            self._release(order)
            self._resting[order.symbol].remove(order)
        return order.report()

    def order(self, account_id: str, client_order_id: str) -> OrderReport:
        order = self._orders.get((account_id, client_order_id))
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        return order.report()

    def order_record(self, account_id: str, client_order_id: str) -> PaperOrder:
        return self._orders[(account_id, client_order_id)]

    def open_orders(self, account_id: str, symbol: str) -> list[OrderReport]:
        return [o.report() for o in self._resting.get(symbol, []) if o.account_id == account_id]

    def all_orders(self) -> list[PaperOrder]:
        return list(self._orders.values())

    def restore_order(self, order: PaperOrder) -> None:
        """Put back an order loaded from storage (balances are restored separately)."""
        self._orders[(order.account_id, order.client_order_id)] = order
        used = [int(order.exchange_order_id)]
        used += [int(fill.trade_id.removeprefix("P")) for fill in order.fills]
        self._sequence = max(self._sequence, *used)
        if order.status is OrderStatus.OPEN:
            resting = self._resting.setdefault(order.symbol, [])
            resting.append(order)
            # Oldest first, whatever order storage gave them back in: ids follow placement.
            resting.sort(key=lambda o: int(o.exchange_order_id))

    def restore_balance(
        self, account_id: str, currency: str, free: Decimal, locked: Decimal
    ) -> None:
        wallet = self._wallet(account_id, currency)
        wallet.free, wallet.locked = free, locked

    # ---- prices --------------------------------------------------------------------------

    def tick(self, symbol: str, price: Decimal, at: datetime) -> list[PaperOrder]:
        """A new last price: fill the resting orders it crosses, oldest first. Returns the
        orders that changed."""
        if symbol not in self.markets:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"unknown symbol {symbol}")
        self.prices[symbol] = price
        changed: list[PaperOrder] = []
        if self.markets[symbol].is_contract:
            changed += self._liquidate(self.markets[symbol], price, at)
        for order in list(self._resting.get(symbol, [])):
            if order.type is OrderType.MARKET:
                market = self.markets[symbol]
                settings = self.settings.get(order.account_id, PaperSettings())
                self._fill(
                    order, self._market_price(market, order.side, price, settings), at, False
                )
            elif self._crosses(order, price):
                assert order.price is not None
                self._fill(order, order.price, at, True)
            else:
                continue
            changed.append(order)
            if order.status is not OrderStatus.OPEN:
                self._resting[symbol].remove(order)
        return changed

    # ---- the mechanics -------------------------------------------------------------------

    @staticmethod
    def _crosses(order: PaperOrder, price: Decimal) -> bool:
        assert order.price is not None
        return price <= order.price if order.side is Side.BUY else price >= order.price

    @staticmethod
    def _market_price(
        market: Market, side: Side, last: Decimal, settings: PaperSettings
    ) -> Decimal:
        slip = settings.slippage_percent / HUNDRED
        worse = last * (1 + slip) if side is Side.BUY else last * (1 - slip)
        return market.round_price(worse)

    @staticmethod
    def _spend(market: Market, side: Side, amount: Decimal, price: Decimal) -> tuple[str, Decimal]:
        """What an order must be able to spend: quote for a BUY, base for a SELL."""
        if side is Side.SELL:
            return market.base, amount
        return market.quote, amount * price

    def _fill(self, order: PaperOrder, price: Decimal, at: datetime, maker: bool) -> None:
        market = self.markets[order.symbol]
        settings = self.settings.get(order.account_id, PaperSettings())
        remaining = order.amount - order.filled
        amount = remaining
        if settings.partial_fills:
            part = market.round_amount(order.amount / 2)
            if part and part < remaining and market.is_tradable(remaining - part, price):
                amount = part
        if market.is_contract:
            self._fill_contract(order, market, price, amount, at, maker)
            return
        if order.side is Side.BUY and order.type is OrderType.MARKET:
            affordable = order.locked + self._wallet(order.account_id, market.quote).free
            if price * amount > affordable:
                amount = market.round_amount(affordable / price)
                if not market.is_tradable(amount, price):
                    order.status = OrderStatus.EXPIRED
                    self._release(order)
                    return
        rate = settings.maker_fee_rate if maker else settings.taker_fee_rate
        value = price * amount
        base, quote = (
            self._wallet(order.account_id, market.base),
            self._wallet(order.account_id, market.quote),
        )
        if order.side is Side.BUY:
            fee, fee_currency = amount * rate, market.base
            spent = min(value, order.locked)
            quote.locked -= spent
            quote.free -= value - spent  # a marketable limit may cost less than it locked
            order.locked -= spent
            base.free += amount - fee
        else:
            fee, fee_currency = value * rate, market.quote
            base.locked -= amount
            order.locked -= amount
            quote.free += value - fee
        self._sequence += 1
        order.fills.append(Fill(f"P{self._sequence}", price, amount, fee, fee_currency, at))
        if order.filled >= order.amount:
            order.status = OrderStatus.FILLED
            self._release(order)

    def _fill_contract(
        self,
        order: PaperOrder,
        market: Market,
        price: Decimal,
        amount: Decimal,
        at: datetime,
        maker: bool,
    ) -> None:
        """A fill on a contract market: the position and the margin wallet move (a
        reduce-only order is cut to the position; with none left, it expires)."""
        assert market.settle is not None
        if order.reduce_only:
            held = self.futures.holding(order.account_id, market.symbol)
            amount = min(amount, held.units if held.side is not order.side else ZERO)
            if not amount:
                order.status = OrderStatus.EXPIRED
                self._release(order)
                return
        settings = self.settings.get(order.account_id, PaperSettings())
        rate = settings.maker_fee_rate if maker else settings.taker_fee_rate
        fee = price * amount * rate
        used = self.futures.fill(
            order.account_id, market, order.side, amount, price, fee, order.locked
        )
        order.locked -= used
        self._sequence += 1
        order.fills.append(Fill(f"P{self._sequence}", price, amount, fee, market.settle, at))
        remaining = order.amount - order.filled
        if not remaining or (order.reduce_only and self._nothing_to_reduce(order)):
            order.status = OrderStatus.FILLED if not remaining else OrderStatus.EXPIRED
            self._release(order)

    def _nothing_to_reduce(self, order: PaperOrder) -> bool:
        return not self.futures.holding(order.account_id, order.symbol).units

    def _liquidate(self, market: Market, mark: Decimal, at: datetime) -> list[PaperOrder]:
        """Close, at their liquidation price, the positions `mark` reached: each by an order
        of the venue's own (`liquidation-N`, FILLED), reported with the tick's changes."""
        done = []
        for (account_id, symbol), held in list(self.futures.holdings.items()):
            if symbol != market.symbol or not held.units:
                continue
            side, units = held.side.opposite, held.units
            closed = self.futures.liquidate(account_id, market, mark)
            if closed is None:
                continue
            price, fee = closed
            self._sequence += 1
            order = PaperOrder(
                account_id=account_id,
                client_order_id=f"{LIQUIDATION}{self._sequence}",
                exchange_order_id=str(self._sequence),
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                amount=units,
                price=None,
                created_at=at,
                status=OrderStatus.FILLED,
                reduce_only=True,
            )
            self._sequence += 1
            assert market.settle is not None
            order.fills.append(Fill(f"P{self._sequence}", price, units, fee, market.settle, at))
            self._orders[(account_id, order.client_order_id)] = order
            for resting in list(self._resting.get(symbol, [])):  # the venue cancels them
                if resting.account_id == account_id and resting.reduce_only:
                    resting.status = OrderStatus.CANCELLED
                    self._release(resting)
                    self._resting[symbol].remove(resting)
                    done.append(resting)
            done.append(order)
        return done

    # ---- contract settings and positions -------------------------------------------------

    def prepare(
        self,
        account_id: str,
        symbol: str,
        leverage: Decimal | None,
        margin_mode: MarginMode | None,
    ) -> None:
        """Leverage and margin mode of an account on a contract market (nothing on spot)."""
        market = self.markets.get(symbol)
        if market is None:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"unknown symbol {symbol}")
        if market.is_contract:
            busy = any(o.account_id == account_id for o in self._resting.get(symbol, []))
            self.futures.prepare(account_id, market, leverage, margin_mode, busy)

    def positions(self, account_id: str, symbol: str) -> list[PositionReport]:
        market = self.markets.get(symbol)
        if market is None:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"unknown symbol {symbol}")
        if not market.is_contract:
            return []
        mark = self.prices.get(symbol)
        return self.futures.report(account_id, market, mark if mark is not None else ZERO)

    def _release(self, order: PaperOrder) -> None:
        """Give back what an order no longer needs to hold."""
        if not order.locked:
            return
        market = self.markets[order.symbol]
        currency = market.quote if order.side is Side.BUY else market.base
        if market.settle is not None:
            currency = market.settle
        wallet = self._wallet(order.account_id, currency)
        wallet.locked -= order.locked
        wallet.free += order.locked
        order.locked = ZERO
