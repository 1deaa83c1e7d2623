"""Futures accounting for a linear (USDT-margined) position (issue 14), pure and in Decimal.

A linear contract is quoted and settled in the quote currency: a position of `units` base
at an average entry price `entry` has a notional of `entry x units` quote, and its profit is
`sign x (price - entry) x units` (sign +1 long, -1 short), whatever the side: a short needs
no coins, only margin. What the venue charges and keeps:

- initial margin: notional / leverage, set aside when the position opens;
- fees: a rate on the notional of each fill (in quote), taken from the margin balance;
- maintenance margin: `mmr x mark x units`, the least equity the position may keep; below
  it the venue liquidates.

The liquidation price is where the equity backing the position meets its maintenance
margin. Isolated margin backs it with its own margin only:

    margin + sign x (P - entry) x units = mmr x P x units

so P = (margin - sign x entry x units) / (units x (mmr - sign)); with margin = notional /
leverage that is entry x (1 - 1/leverage) / (1 - mmr) long, and entry x (1 + 1/leverage) /
(1 + mmr) short. Cross margin backs it with the account's whole margin balance (`wallet`,
what the account holds in quote less what its other positions' maintenance takes): the same
equation with `wallet` for `margin`; a long whose wallet covers its whole notional (as a
long at leverage 1 on isolated margin) has none (None): no price above 0 liquidates it.
This is Binance's formula for one position of one tier (the maintenance amount 0); a venue
that reports a liquidation price is believed instead. Funding is left out.

ROE is the return on the initial margin: unrealized (or realized) PnL / initial margin x 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import Side

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class FuturesPosition:
    """An open linear position: its side, size (base units), average entry price, leverage,
    margin mode and the market's maintenance margin rate."""

    side: Side
    units: Decimal
    entry_price: Decimal
    leverage: Decimal
    margin_mode: MarginMode
    maintenance_rate: Decimal

    def __post_init__(self) -> None:
        if self.units < 0 or self.entry_price <= 0 or self.leverage < 1:
            raise ValueError("a position has units >= 0, an entry price > 0, leverage >= 1")
        if not ZERO <= self.maintenance_rate < 1:
            raise ValueError("a maintenance margin rate is in [0, 1)")
        if 1 / self.leverage <= self.maintenance_rate:
            # Its margin would be under its maintenance at once: no venue allows it.
            raise ValueError("leverage too high: the initial margin is not above maintenance")

    @property
    def notional(self) -> Decimal:
        """The position's value at its entry price, in quote."""
        return self.entry_price * self.units

    @property
    def initial_margin(self) -> Decimal:
        """The margin set aside to open it: notional / leverage."""
        return self.notional / self.leverage

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.side.sign * (mark - self.entry_price) * self.units + ZERO

    def maintenance_margin(self, mark: Decimal) -> Decimal:
        return self.maintenance_rate * mark * self.units

    def roe_percent(self, mark: Decimal) -> Decimal:
        """Unrealized PnL as a percentage of the initial margin (0 for no position)."""
        if not self.units:
            return ZERO
        return self.unrealized_pnl(mark) / self.initial_margin * HUNDRED

    def liquidation_price(self, wallet: Decimal | None = None) -> Decimal | None:
        """Where the venue liquidates: with isolated margin from the position's own margin;
        with cross margin from `wallet`, the account's margin balance that backs it (which
        must then be given). None when no price liquidates it (no position; a cross long
        whose wallet covers its notional)."""
        if not self.units:
            return None
        if self.margin_mode is MarginMode.ISOLATED:
            backing = self.initial_margin
        else:
            if wallet is None:
                raise ValueError("a cross-margin liquidation price needs the wallet balance")
            backing = wallet
        return self.liquidation_price_backed_by(backing)

    def liquidation_price_backed_by(self, backing: Decimal) -> Decimal | None:
        """Where equity `backing + PnL` meets the maintenance margin (None: no price above 0;
        no position). `liquidation_price` says what backs it by margin mode; a venue whose
        position margin is not notional / leverage (a fill at another leverage) gives its
        own."""
        if not self.units:
            return None
        sign = self.side.sign
        price = (backing - sign * self.entry_price * self.units) / (
            self.units * (self.maintenance_rate - sign)
        )
        return price if price > 0 else None

    def liquidated_at(self, mark: Decimal, wallet: Decimal | None = None) -> bool:
        """Whether a mark at or past the liquidation price liquidates the position."""
        price = self.liquidation_price(wallet)
        if price is None:
            return False
        return mark <= price if self.side is Side.BUY else mark >= price


def order_margin(notional: Decimal, leverage: Decimal, fee_rate: Decimal) -> Decimal:
    """What opening (or adding) `notional` of quote takes from the margin balance: its initial
    margin and its fee on the notional."""
    if leverage < 1:
        raise ValueError("leverage >= 1")
    return notional / leverage + notional * fee_rate


def fee_on(price: Decimal, units: Decimal, fee_rate: Decimal) -> Decimal:
    """A linear fill's fee: a rate on its notional, in quote."""
    return price * units * fee_rate


# ---- a futures trade's figures --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FuturesFigures:
    """What a futures trade shows of its open position: the margin it holds, its unrealized
    PnL and ROE at the last price, and its liquidation price (None when neither the venue
    reported one nor it can be computed: cross margin depends on the whole account)."""

    margin: Decimal
    unrealized_pnl: Decimal
    roe_percent: Decimal
    liquidation_price: Decimal | None


def position_of_trade(trade: SmartTrade) -> FuturesPosition | None:
    """A futures trade's open position as the venue holds it (None: flat, or not futures)."""
    if not trade.is_futures:
        return None
    position = position_of(trade)
    entry = position.average_entry_price
    if not position.units_held or entry is None:
        return None
    leverage = trade.spec.leverage
    return FuturesPosition(
        trade.spec.side,
        position.units_held,
        entry,
        leverage.value or Decimal(1),
        leverage.margin_mode or MarginMode.ISOLATED,
        trade.market.maintenance_rate,
    )


def liquidation_price_of(trade: SmartTrade) -> Decimal | None:
    """The venue's liquidation price where it reported one, else the isolated position's
    own (Binance's one-tier formula); None for cross margin until the venue reports."""
    position = position_of_trade(trade)
    if position is None:
        return None
    if trade.venue_liquidation_price is not None:
        return trade.venue_liquidation_price
    if position.margin_mode is MarginMode.ISOLATED:
        return position.liquidation_price()
    return None


def liquidation_reached(trade: SmartTrade, price: Decimal | None) -> bool:
    """Whether `price` is at or past the trade's liquidation price."""
    level = liquidation_price_of(trade)
    if level is None or price is None:
        return False
    return price <= level if trade.spec.side is Side.BUY else price >= level


def figures_of(trade: SmartTrade, last_price: Decimal | None) -> FuturesFigures | None:
    """The figures of a futures trade's open position (None: flat, or not futures)."""
    position = position_of_trade(trade)
    if position is None:
        return None
    mark = last_price if last_price is not None else position.entry_price
    return FuturesFigures(
        margin=position.initial_margin,
        unrealized_pnl=position.unrealized_pnl(mark),
        roe_percent=position.roe_percent(mark),
        liquidation_price=liquidation_price_of(trade),
    )
