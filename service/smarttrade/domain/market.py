"""A market's trading rules: precision and limits, and the rounding the core applies."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal


@dataclass(frozen=True, slots=True)
class Market:
    """One symbol of one venue, as its exchange defines it.

    `amount_step` is the lot size and `price_tick` the tick size: ccxt's precision in
    TICK_SIZE mode. Sizes are rounded down to the lot (never sell what is not held), prices
    to the nearest tick (as ccxt's `price_to_precision` does). A linear contract (a
    perpetual settled in `settle`) has the highest leverage it allows and the maintenance
    margin rate of its first tier.
    """

    symbol: str
    base: str
    quote: str
    amount_step: Decimal
    price_tick: Decimal
    min_amount: Decimal = Decimal(0)
    min_cost: Decimal = Decimal(0)
    max_amount: Decimal | None = None
    settle: str | None = None  # a linear contract's settle currency; None: spot
    max_leverage: Decimal | None = None
    maintenance_rate: Decimal = Decimal(0)

    @property
    def is_contract(self) -> bool:
        return self.settle is not None

    def round_amount(self, amount: Decimal) -> Decimal:
        steps = (amount / self.amount_step).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.amount_step).normalize() if steps else Decimal(0)

    def round_amount_up(self, amount: Decimal) -> Decimal:
        """Up to the lot: a buy that must deliver at least `amount`."""
        steps = (amount / self.amount_step).to_integral_value(rounding=ROUND_UP)
        return (steps * self.amount_step).normalize() if steps > 0 else Decimal(0)

    def round_price(self, price: Decimal) -> Decimal:
        ticks = (price / self.price_tick).to_integral_value(rounding=ROUND_HALF_UP)
        return (ticks * self.price_tick).normalize()

    def is_tradable(self, amount: Decimal, price: Decimal) -> bool:
        """Whether an order of `amount` at about `price` meets the minimum amount and cost."""
        return amount > 0 and amount >= self.min_amount and amount * price >= self.min_cost
