"""Position accounting, derived from the fills (DESIGN §2.4).

Nothing here is stored: the position is a pure function of the trade's fills, so the same
fills in any order, or repeated (fills are unique by trade id), give the same position.

Written for both sides with one rule for fees paid in base: a buy fill brings in
`amount - fee` base and a sell fill gives up `amount + fee` base. For a BUY trade entry fills
are buys and exits sells; for a SELL trade the reverse. "Units" are always base units of the
position (held long for BUY, owed short for SELL); "cost" is the quote value of the entry
fills and "proceeds" that of the exit fills.

So a SELL trade on spot owes back the base fees of its buy-backs too. Each buy-back is one
order sized N / (1 - fee rate), rounded up to the lot (DESIGN §2.9, `exit_size`), so it
delivers N net of its fee; what rounding buys beyond what was owed is the `surplus`: it
stays in the account and is reported; its cost is part of the buy-backs' (see
`realized_pnl`). The fee rate is the one the trade's own fills have shown
(venues charge per account, not per market); a fee the trade could not foresee (no fill yet
showed it, as for a SKIP entry's first buy-back) leaves a remainder owed, which the last
step buys back while that is a tradable order. A BUY trade ends with less than one lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from smarttrade.domain.model import ZERO, Order, SmartTrade
from smarttrade.domain.spec import EntryType, MarketType
from smarttrade.domain.values import Fill, OrderType, Side


def base_units(fill: Fill, order_side: Side, base: str) -> Decimal:
    """The base units a fill moves, net of a fee paid in base."""
    fee = fill.fee if fill.fee_currency == base else ZERO
    return fill.amount - fee if order_side is Side.BUY else fill.amount + fee


def exited_units(orders: list[Order], base: str) -> Decimal:
    return sum((base_units(f, o.side, base) for o in orders for f in o.fills), ZERO)


@dataclass(frozen=True, slots=True)
class Position:
    side: Side
    units_bought: Decimal
    cost: Decimal
    units_sold: Decimal
    proceeds: Decimal
    quote_fees: Decimal
    fees: tuple[tuple[str, Decimal], ...]

    @property
    def average_entry_price(self) -> Decimal | None:
        return self.cost / self.units_bought if self.units_bought > 0 else None

    @property
    def units_held(self) -> Decimal:
        """Held long (BUY) or owed short (SELL); never below 0 (see `surplus`)."""
        return max(self.units_bought - self.units_sold, ZERO)

    @property
    def surplus(self) -> Decimal:
        """Base units the exits brought in beyond the position: a spot SELL's buy-backs,
        rounded up to the lot to cover their base fee (DESIGN §2.9)."""
        return max(self.units_sold - self.units_bought, ZERO)

    @property
    def realized_pnl(self) -> Decimal:
        """proceeds - average entry x units sold - quote fees (sign mirrored for SELL). Units
        sold count up to the position: what a surplus cost is part of the buy-backs' cost,
        so the PnL is the quote the trade made, and the surplus is the base it left in the
        account, reported apart."""
        average = self.average_entry_price
        if average is None:
            return ZERO - self.quote_fees
        sold = min(self.units_sold, self.units_bought)
        # `+ ZERO` turns a SELL's -0 into 0, which is how a trader reads "nothing yet".
        return self.side.sign * (self.proceeds - average * sold) - self.quote_fees + ZERO

    def unrealized_pnl(self, last_price: Decimal | None) -> Decimal:
        average = self.average_entry_price
        if average is None or last_price is None:
            return ZERO
        return self.side.sign * (last_price - average) * self.units_held + ZERO


def position_of(trade: SmartTrade) -> Position:
    side, market = trade.spec.side, trade.market
    units_bought = cost = units_sold = proceeds = quote_fees = ZERO
    fees: dict[str, Decimal] = {}
    entry = trade.spec.entry
    if entry.type is EntryType.SKIP and entry.average_price is not None:
        units = skipped_entry_units(trade)
        units_bought, cost = units, units * entry.average_price
    for leg in trade.legs:
        for order in leg.orders:
            for fill in order.fills:
                units = base_units(fill, order.side, market.base)
                value = fill.price * fill.amount
                if order.side is side:
                    units_bought += units
                    cost += value
                else:
                    units_sold += units
                    proceeds += value
                if fill.fee:
                    fees[fill.fee_currency] = fees.get(fill.fee_currency, ZERO) + fill.fee
                    if fill.fee_currency == market.quote:
                        quote_fees += fill.fee
    return Position(
        side=side,
        units_bought=units_bought,
        cost=cost,
        units_sold=units_sold,
        proceeds=proceeds,
        quote_fees=quote_fees,
        fees=tuple(sorted(fees.items())),
    )


def skipped_entry_units(trade: SmartTrade) -> Decimal:
    """The size of a SKIP entry: the coins the trader already holds."""
    entry = trade.spec.entry
    if entry.units is not None:
        return trade.market.round_amount(entry.units)
    assert entry.total is not None
    assert entry.average_price is not None
    return trade.market.round_amount(entry.total / entry.average_price)


def base_fee_rate(trade: SmartTrade, order_type: OrderType) -> Decimal:
    """The fee rate a buy-back of a spot SELL trade pays in base, as the trade's own fills
    have shown it (0 for a BUY trade, whose exits are sells, and off spot).

    A fill paying its fee in the currency it received shows the venue's rate for that order
    type (a buy in base: fee / amount; a sell in quote: fee / value); the rate of the type
    asked for, else the highest seen (never owe for want of a rate). A venue that charges a
    fee in another currency (BNB, say) or a buy in quote charges buys nothing in base."""
    if trade.spec.side is not Side.SELL or trade.spec.leverage.market_type is not MarketType.SPOT:
        return ZERO
    market = trade.market
    rates: dict[OrderType, Decimal] = {}
    for order in trade.orders():
        for fill in order.fills:
            if not fill.fee:
                rate = ZERO
            elif order.side is Side.BUY and fill.fee_currency == market.base:
                rate = fill.fee / fill.amount
            elif order.side is Side.SELL and fill.fee_currency == market.quote:
                rate = fill.fee / (fill.price * fill.amount)
            else:
                return ZERO
            rates[order.type] = max(rates.get(order.type, ZERO), rate)
    if order_type in rates:
        return rates[order_type]
    return max(rates.values(), default=ZERO)


def exit_size(trade: SmartTrade, units: Decimal, order_type: OrderType) -> Decimal:
    """The size of the order that exits `units` of the position: a sell of `units` rounded
    down to the lot (never sell what is not held); a spot SELL's buy-back, whose fee is paid
    in base, N / (1 - fee rate) rounded up to the lot, so that it delivers N (DESIGN §2.9)."""
    market = trade.market
    if units <= 0:
        return ZERO
    rate = base_fee_rate(trade, order_type)
    if not rate:
        return market.round_amount(units)
    return market.round_amount_up(units / (1 - rate))


def delivered(trade: SmartTrade, size: Decimal, order_type: OrderType) -> Decimal:
    """What an exit order of `size` takes off the position once filled, net of a base fee."""
    return size * (1 - base_fee_rate(trade, order_type))
