"""Paper futures: the linear perpetual positions of paper accounts (issue 14), pure and
synchronous; `PaperBook` uses it for contract markets (a market with `settle`, such as
BTC/USDT:USDT), as Binance USDⓈ-M does in one-way mode.

- Settings per account and symbol: leverage (1 up to the market's maximum, 1 until set) and
  margin mode (CROSS until set; not changed while a position or an order is open).
- Money is the account's wallet in the settle currency (USDT). An order that opens or grows
  the position needs its initial margin (notional / leverage) and its taker fee free; a
  resting limit locks that much until it fills or ends. A reduce-only order needs nothing,
  and is refused when it would open or grow the position (it is cut to the position when
  it fills).
- A fill pays its fee (a rate on the notional) from the wallet. Opening or growing moves
  the margin into the position and averages the entry price; reducing pays the realized
  PnL (sign x (price - entry) x units) into the wallet with the closed part's margin;
  past zero (not reduce-only) the rest opens the other way.
- Liquidation: a tick at or past a position's liquidation price (domain/futures.py:
  isolated, from its margin; cross, from the wallet's free balance and its margin) closes it
  there, by the venue (an order of its own, `liquidation-N`): what backed it is lost, down
  to the maintenance margin, which the venue keeps, so an isolated position loses its
  margin and a cross one the wallet's free balance with it. What the venue keeps beyond the
  PnL at the liquidation price is the fee of that order's fill (Binance's clearance fee),
  so the fills say what the liquidation cost.
- Stored: the venue writes an account's position and settings on a symbol (`stored`, one
  row per tenant, account and symbol, flat ones too, for their settings) with the rest of
  the paper book whenever an order there or `prepare` may have changed them, before the
  operation answers; loading puts them back (`restore`), so a restart or a shard taken over
  margins, reports and liquidates as before.
- Funding is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from smarttrade.domain.futures import FuturesPosition
from smarttrade.domain.market import Market
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import Side
from smarttrade.exchange.port import OrderRejected, PositionReport, RejectReason

ZERO = Decimal(0)


@dataclass(slots=True)
class Wallet:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass(slots=True)
class Holding:
    """An account's position on one symbol (units 0: flat)."""

    side: Side = Side.BUY
    units: Decimal = ZERO
    entry: Decimal = ZERO
    margin: Decimal = ZERO


@dataclass(slots=True)
class Setting:
    leverage: Decimal = Decimal(1)
    margin_mode: MarginMode = MarginMode.CROSS


class PaperFutures:
    """The positions and settings of every paper account on contract markets."""

    def __init__(self, wallet: Callable[[str, str], Wallet]) -> None:
        self._wallet = wallet
        self.holdings: dict[tuple[str, str], Holding] = {}
        self.settings: dict[tuple[str, str], Setting] = {}

    def holding(self, account_id: str, symbol: str) -> Holding:
        return self.holdings.setdefault((account_id, symbol), Holding())

    def setting(self, account_id: str, symbol: str) -> Setting:
        return self.settings.setdefault((account_id, symbol), Setting())

    # ---- storage -------------------------------------------------------------------------

    def stored(self, account_id: str, symbol: str) -> tuple[Holding, Setting] | None:
        """Copies of the position and the settings on `symbol`, as a write takes them (a
        change after it starts goes with the next); None when the account has neither there,
        as in a book dropped since the change was made, whose stored row must stay."""
        key = (account_id, symbol)
        if key not in self.holdings and key not in self.settings:
            return None
        return replace(self.holding(account_id, symbol)), replace(self.setting(account_id, symbol))

    def restore(self, account_id: str, symbol: str, holding: Holding, setting: Setting) -> None:
        """Put back a position and its settings loaded from storage."""
        self.holdings[(account_id, symbol)] = holding
        self.settings[(account_id, symbol)] = setting

    # ---- settings ------------------------------------------------------------------------

    def prepare(
        self,
        account_id: str,
        market: Market,
        leverage: Decimal | None,
        margin_mode: MarginMode | None,
        busy: bool,
    ) -> None:
        """Set leverage and margin mode (what is not given stays as it is); `busy`: an
        order of the account on the symbol is open. Both are checked before either is set,
        so a refusal changes nothing."""
        setting = self.setting(account_id, market.symbol)
        if leverage is not None:
            ceiling = market.max_leverage or Decimal(1)
            if not 1 <= leverage <= ceiling or leverage != leverage.to_integral_value():
                raise OrderRejected(
                    RejectReason.INVALID_ORDER,
                    f"leverage {leverage} is not allowed on {market.symbol} (1 to {ceiling})",
                )
        if margin_mode is not None and margin_mode is not setting.margin_mode:
            if busy or self.holding(account_id, market.symbol).units:
                raise OrderRejected(
                    RejectReason.INVALID_ORDER,
                    f"the margin mode of {market.symbol} cannot change with a position or an"
                    " order open",
                )
            setting.margin_mode = margin_mode
        if leverage is not None:
            setting.leverage = leverage

    # ---- orders --------------------------------------------------------------------------

    def opening(self, account_id: str, symbol: str, side: Side, amount: Decimal) -> Decimal:
        """The part of an order of `amount` on `side` that opens or grows the position."""
        held = self.holding(account_id, symbol)
        if not held.units or held.side is side:
            return amount
        return max(amount - held.units, ZERO)

    def margin_needed(
        self,
        account_id: str,
        market: Market,
        side: Side,
        amount: Decimal,
        price: Decimal,
        reduce_only: bool,
        fee_rate: Decimal,
    ) -> Decimal:
        """What an order must find free in the wallet (and locks while it rests)."""
        opening = self.opening(account_id, market.symbol, side, amount)
        if reduce_only:
            if opening:
                raise OrderRejected(
                    RejectReason.INVALID_ORDER,
                    f"a reduce-only order would open or grow the position on {market.symbol}",
                )
            return ZERO
        leverage = self.setting(account_id, market.symbol).leverage
        return opening * price / leverage + opening * price * fee_rate

    def fill(
        self,
        account_id: str,
        market: Market,
        side: Side,
        amount: Decimal,
        price: Decimal,
        fee: Decimal,
        locked: Decimal,
    ) -> Decimal:
        """Apply a fill to the position and the wallet; what of `locked` (the order's lock)
        it used up. The fee and any margin beyond the lock come from the free balance."""
        wallet = self._wallet(account_id, market.settle or market.quote)
        held = self.holding(account_id, market.symbol)
        leverage = self.setting(account_id, market.symbol).leverage
        used = min(fee, locked)
        wallet.locked -= used
        wallet.free -= fee - used
        remaining_lock = locked - used
        if held.units and held.side is not side:  # reduces, maybe past zero
            units = min(amount, held.units)
            realized = held.side.sign * (price - held.entry) * units
            released = held.margin * units / held.units
            held.units -= units
            held.margin -= released
            wallet.free += released + realized
            amount -= units
            if not held.units:
                held.entry, held.margin = ZERO, ZERO
        if amount:  # opens or grows
            margin = amount * price / leverage
            from_lock = min(margin, remaining_lock)
            wallet.locked -= from_lock
            wallet.free -= margin - from_lock
            used += from_lock
            held.entry = (held.entry * held.units + price * amount) / (held.units + amount)
            held.side = side
            held.units += amount
            held.margin += margin
        return used

    # ---- positions -----------------------------------------------------------------------

    def position(self, account_id: str, market: Market) -> FuturesPosition | None:
        held = self.holding(account_id, market.symbol)
        if not held.units:
            return None
        setting = self.setting(account_id, market.symbol)
        return FuturesPosition(
            held.side,
            held.units,
            held.entry,
            setting.leverage,
            setting.margin_mode,
            market.maintenance_rate,
        )

    def liquidation_price(self, account_id: str, market: Market) -> Decimal | None:
        position = self.position(account_id, market)
        if position is None:
            return None
        held = self.holding(account_id, market.symbol)
        wallet = self._wallet(account_id, market.settle or market.quote)
        # Isolated: backed by its own margin, which is the initial margin unless a fill at
        # another leverage left another amount. Cross: by the free balance too.
        backing = held.margin + (wallet.free if position.margin_mode is MarginMode.CROSS else 0)
        return position.liquidation_price_backed_by(backing)

    def report(self, account_id: str, market: Market, mark: Decimal) -> list[PositionReport]:
        position = self.position(account_id, market)
        if position is None:
            return []
        return [
            PositionReport(
                symbol=market.symbol,
                side=position.side,
                units=position.units,
                entry_price=position.entry_price,
                leverage=position.leverage,
                margin_mode=position.margin_mode,
                liquidation_price=self.liquidation_price(account_id, market),
                unrealized_pnl=position.unrealized_pnl(mark),
            )
        ]

    def liquidate(
        self, account_id: str, market: Market, mark: Decimal
    ) -> tuple[Decimal, Decimal] | None:
        """Close the position at its liquidation price when `mark` reached it: that price
        and what the venue kept beyond the PnL at that price (its clearance fee, the fee of
        the liquidation's fill), or None when the position stands."""
        price = self.liquidation_price(account_id, market)
        held = self.holding(account_id, market.symbol)
        if price is None or not held.units:
            return None
        if (mark > price) if held.side is Side.BUY else (mark < price):
            return None
        wallet = self._wallet(account_id, market.settle or market.quote)
        realized = held.side.sign * (price - held.entry) * held.units
        kept = market.maintenance_rate * price * held.units  # the venue's
        # Isolated: margin + realized = kept at that price, and the free balance stays as
        # it was; cross: the free balance backed it too, and is spent down to 0.
        equity = wallet.free + held.margin + realized
        wallet.free = max(equity - kept, ZERO)
        held.units, held.entry, held.margin = ZERO, ZERO, ZERO
        return price, equity - wallet.free
