"""How the position is split across the take-profit steps (DESIGN §2.2, §2.4).

The split is recomputed from facts every time, so it follows the position: Add Funds grows
it, Reduce Funds shrinks it, and fills never change it.

The plan's pool is `P = units held + units exited by every step of the plan` (done or not;
units sold by Reduce Funds or a close are not in it). Each step's nominal share is cut from P
at cumulative boundaries, each rounded down to the lot: step i gets
`floor(P x C(i) / 100) - floor(P x C(i-1) / 100)`, C being the cumulative volume in step
order, and the last step ends at P itself. A fill moves units from "held" to "exited by that
step", leaving P, hence every share, unchanged; and a step that completes its share changes
no other step's, so no resting order is ever re-placed because another one filled.

The steps not yet done ("open") must together exit `T = units held + units they exited`;
their nominal shares add up to N.
- T = N: each open step works its nominal share.
- T > N: funds were added after a step was done, or the done steps left something unsold
  (a remainder below the market minimum, a step the venue refused, base fees a SELL trade's
  buy-back could not foresee): the open steps share the excess by volume (DESIGN §2.7: Add
  Funds after a fill spreads the added units over the unfilled steps in proportion), each
  rounded down to the lot, the last taking the remainder, as the last step sells whatever
  remains. (Then a step completing may move a later step's share by a lot's rounding.)
- T < N: the position shrank (Reduce Funds, or a step that sold more than its share): the
  open steps share T by volume, rounded down to the lot, the last taking the remainder, so
  every target's volume scales down alike.
A spot SELL's done step that bought back beyond its share because its order was rounded up
to the lot (the surplus, DESIGN §2.9) counts as having exited just its share: the surplus
changes no other step's share, so no resting order is re-placed because of it. That surplus
is not owed, though: an order placed later (after Reduce Funds, an edit or Add Funds
replaced the orders, say) is bounded by what is owed and not covered by the orders working
(see `plan`), so it does not buy the surplus back again.
A step whose remaining part cannot be traded (below the market's minimum amount or cost)
hands it to the next step (the last hands it back to the previous one), so no rule ever
produces a dust order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from smarttrade.domain.model import ZERO, Leg, SmartTrade
from smarttrade.domain.position import Position, base_fee_rate, exited_units
from smarttrade.domain.prices import take_profit_target
from smarttrade.domain.values import OrderType


@dataclass(slots=True)
class StepPlan:
    leg: Leg
    target: Decimal | None
    allocation: Decimal
    exited: Decimal
    trailing: bool

    @property
    def remaining(self) -> Decimal:
        return max(self.allocation - self.exited, ZERO)


def plan_steps(trade: SmartTrade, position: Position) -> list[StepPlan]:
    """The plan for every take-profit step not yet done, in step order."""
    steps = trade.take_profit_legs
    open_steps = [leg for leg in steps if not leg.state.is_done]
    if not open_steps:
        return []
    specs = trade.spec.take_profit
    exited = {leg.id: exited_units(leg.orders, trade.market.base) for leg in steps}
    held = position.units_held - position.surplus  # what a surplus bought counts here
    shares = _nominal_shares(trade, steps, held + sum(exited.values(), ZERO))
    # What a done step's buy-backs bought beyond its share by rounding up to the lot is the
    # surplus (DESIGN §2.9): it leaves the other steps' shares as they were (no order is
    # re-placed because another step filled).
    held += sum(
        (
            _rounded_up(trade, leg, exited[leg.id] - shares[leg.id])
            for leg in steps
            if leg.state.is_done
        ),
        ZERO,
    )
    held = max(held, ZERO)
    owed = held + sum((exited[leg.id] for leg in open_steps), ZERO)
    nominal = sum((shares[leg.id] for leg in open_steps), ZERO)
    if owed >= nominal:
        excess = _split_by_volume(trade, open_steps, owed - nominal)
        allocations = [
            shares[leg.id] + extra for leg, extra in zip(open_steps, excess, strict=True)
        ]
    else:
        allocations = _split_by_volume(trade, open_steps, owed)
    average = position.average_entry_price
    plans = [
        StepPlan(
            leg=leg,
            target=take_profit_target(trade, specs[leg.step - 1], average),
            allocation=allocation,
            exited=exited[leg.id],
            trailing=specs[leg.step - 1].trailing_percent is not None,
        )
        for leg, allocation in zip(open_steps, allocations, strict=True)
    ]
    _hand_on_dust(trade, plans)
    return plans


def _rounded_up(trade: SmartTrade, leg: Leg, beyond: Decimal) -> Decimal:
    """What a done step bought beyond its share by its spot SELL buy-backs' rounding up to
    the lot: under one lot per order that filled (more is a step that exited too much)."""
    if beyond <= 0 or not base_fee_rate(trade, OrderType.LIMIT):
        return ZERO
    orders = sum(1 for order in leg.orders if order.fills)
    return min(beyond, trade.market.amount_step * orders)


def _nominal_shares(trade: SmartTrade, steps: list[Leg], pool: Decimal) -> dict[str, Decimal]:
    specs = trade.spec.take_profit
    total = sum((specs[leg.step - 1].volume_percent for leg in steps), ZERO)
    shares: dict[str, Decimal] = {}
    cumulative = ZERO
    boundary = ZERO
    for index, leg in enumerate(steps):
        cumulative += specs[leg.step - 1].volume_percent
        last = index == len(steps) - 1
        end = pool if last else trade.market.round_amount(pool * cumulative / total)
        shares[leg.id] = end - boundary
        boundary = end
    return shares


def _split_by_volume(trade: SmartTrade, steps: list[Leg], pool: Decimal) -> list[Decimal]:
    specs = trade.spec.take_profit
    volume = sum((specs[leg.step - 1].volume_percent for leg in steps), ZERO)
    allocations = [
        trade.market.round_amount(pool * specs[leg.step - 1].volume_percent / volume)
        for leg in steps[:-1]
    ]
    return [*allocations, pool - sum(allocations, ZERO)]


def _tradable(trade: SmartTrade, plan: StepPlan, amount: Decimal) -> bool:
    price = plan.target or trade.last_price
    return price is not None and trade.market.is_tradable(amount, price)


def _hand_on_dust(trade: SmartTrade, plans: list[StepPlan]) -> None:
    for current, following in pairwise(plans):
        dust = current.remaining
        if dust and not _tradable(trade, current, dust):
            current.allocation -= dust
            following.allocation += dust
    last = plans[-1]
    dust = last.remaining
    if dust and not _tradable(trade, last, dust):
        for previous in reversed(plans[:-1]):
            if previous.remaining:
                last.allocation -= dust
                previous.allocation += dust
                break
