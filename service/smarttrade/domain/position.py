"""Position accounting, derived from the fills (DESIGN §2.4).

Nothing here is stored: the position is a pure function of the trade's fills, so the same
fills in any order, or repeated (fills are unique by trade id), give the same position.

Written for both sides with one rule for fees paid in base: a buy fill brings in
`amount - fee` base and a sell fill gives up `amount + fee` base. For a BUY trade entry fills
are buys and exits sells; for a SELL trade the reverse. "Units" are always base units of the
position (held long for BUY, owed short for SELL); "cost" is the quote value of the entry
fills and "proceeds" that of the exit fills.

So a SELL trade on spot owes back the base fees of its buy-backs too: its take-profit steps
top up to buy them back while that is a tradable order, and what stays owed at the end is
below the market minimum (it can be no order). A BUY trade ends with less than one lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from smarttrade.domain.model import ZERO, Order, SmartTrade
from smarttrade.domain.spec import EntryType
from smarttrade.domain.values import Fill, Side


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
        return self.units_bought - self.units_sold

    @property
    def realized_pnl(self) -> Decimal:
        """proceeds - average entry x units sold - quote fees (sign mirrored for SELL)."""
        average = self.average_entry_price
        if average is None:
            return ZERO - self.quote_fees
        # `+ ZERO` turns a SELL's -0 into 0, which is how a trader reads "nothing yet".
        return self.side.sign * (self.proceeds - average * self.units_sold) - self.quote_fees + ZERO

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
