"""How the position is split across the take-profit steps (DESIGN §2.2, §2.4).

The split is recomputed from facts every time, so it follows the position: Add Funds grows
it, Reduce Funds shrinks it, and fills never change it.

For the steps not yet done, the pool is `Q = units held + units those steps already exited`.
Each such step is allocated `Q x volume / (sum of their volumes)`, rounded down to the lot,
and the last one takes the remainder, so rounding dust never strands. A fill on a step moves
units from "held" to "exited by that step", leaving Q, hence every allocation, unchanged. A
step whose remaining part cannot be traded (below the market's minimum amount or cost) hands
it to the next step (the last hands it back to the previous one), so no rule ever produces a
dust order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from smarttrade.domain.model import ZERO, Leg, SmartTrade
from smarttrade.domain.position import Position, exited_units
from smarttrade.domain.prices import take_profit_target


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
    market = trade.market
    steps = [leg for leg in trade.take_profit_legs if not leg.state.is_done]
    if not steps:
        return []
    specs = trade.spec.take_profit
    average = position.average_entry_price
    exited = {leg.id: exited_units(leg.orders, market.base) for leg in steps}
    pool = max(position.units_held, ZERO) + sum(exited.values(), ZERO)
    volume = sum((specs[leg.step - 1].volume_percent for leg in steps), ZERO)
    plans: list[StepPlan] = []
    allocated = ZERO
    for index, leg in enumerate(steps):
        spec = specs[leg.step - 1]
        if index < len(steps) - 1:
            allocation = market.round_amount(pool * spec.volume_percent / volume)
        else:
            allocation = market.round_amount(pool - allocated)
        allocated += allocation
        plans.append(
            StepPlan(
                leg=leg,
                target=take_profit_target(trade, spec, average),
                allocation=allocation,
                exited=exited[leg.id],
                trailing=spec.trailing_percent is not None,
            )
        )
    _hand_on_dust(trade, plans)
    return plans


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
