"""Price rules, written once for both sides.

For a BUY (long) trade "favourable" is up and "adverse" is down; a SELL (short) trade
mirrors every rule, which `Side.sign` does here: `sign * (a - b) >= 0` reads "a is at or
beyond b on the favourable side".
"""

from __future__ import annotations

from decimal import Decimal

from smarttrade.domain.fsm import LegState
from smarttrade.domain.model import Leg, SmartTrade
from smarttrade.domain.spec import StopLossSpec, TakeProfitStepSpec
from smarttrade.domain.values import Side

HUNDRED = Decimal(100)


def at_or_beyond(side: Side, price: Decimal, level: Decimal) -> bool:
    """`price` has reached `level` on the favourable side (BUY: price >= level)."""
    return side.sign * (price - level) >= 0


def at_or_before(side: Side, price: Decimal, level: Decimal) -> bool:
    """`price` has reached `level` on the adverse side (BUY: price <= level)."""
    return side.sign * (price - level) <= 0


def best(side: Side, *prices: Decimal) -> Decimal:
    """The most favourable of the prices (BUY: the highest)."""
    return max(prices) if side is Side.BUY else min(prices)


def worst(side: Side, *prices: Decimal) -> Decimal:
    """The least favourable of the prices (BUY: the lowest)."""
    return min(prices) if side is Side.BUY else max(prices)


def offset(side: Side, price: Decimal, percent: Decimal) -> Decimal:
    """`price` moved `percent` in the favourable direction (negative: adverse)."""
    return price * (1 + side.sign * percent / HUNDRED)


def take_profit_target(
    trade: SmartTrade, step: TakeProfitStepSpec, average: Decimal | None
) -> Decimal | None:
    """The absolute target of a step: its price, or percent beyond the average entry."""
    if step.price is not None:
        return trade.market.round_price(step.price)
    if average is None or step.percent is None:
        return None
    return trade.market.round_price(offset(trade.spec.side, average, step.percent))


def base_stop(trade: SmartTrade, stop: StopLossSpec, average: Decimal | None) -> Decimal | None:
    if stop.price is not None:
        return stop.price
    if average is None or stop.percent is None:
        return None
    return offset(trade.spec.side, average, -stop.percent)


def stop_trigger(trade: SmartTrade, average: Decimal | None) -> Decimal | None:
    """The stop-loss trigger in force: the best of the set stop, breakeven (once a step has
    filled) and the trailing level below the best price since the position opened.

    Breakeven is "the first take-profit step to complete", whichever step that is: with
    targets in order it is step 1. A step counts when it took a profit: one the trader
    closed at market below the average (a BUY's; above, a SELL's) cut a loss, and moving
    the stop to the average then would sell the rest at once (decided 2026-12-03). After an
    edit set a new level, it stands as given: a
    breakeven move made before the edit is spent, and the trailing level counts again only
    once the price has gone beyond the extreme at the edit (DESIGN §2.7).
    """
    stop = trade.spec.stop_loss
    leg = trade.stop_loss_leg
    if stop is None or leg is None:
        return None
    side = trade.spec.side
    candidates = []
    base = base_stop(trade, stop, average)
    if base is not None:
        candidates.append(base)
    if (
        stop.move_to_breakeven
        and average is not None
        and not leg.breakeven_spent
        and any(
            step.state is LegState.FILLED and _took_profit(step, side, average)
            for step in trade.take_profit_legs
        )
    ):
        candidates.append(average)
    extreme = leg.trailing_extreme
    if (
        stop.trailing_percent is not None
        and extreme is not None
        and (leg.trail_from is None or side.sign * (extreme - leg.trail_from) > 0)
    ):
        candidates.append(offset(side, extreme, -stop.trailing_percent))
    if not candidates:
        return None
    return trade.market.round_price(best(side, *candidates))


def _took_profit(step: Leg, side: Side, average: Decimal) -> bool:
    """Whether a completed take-profit step exited beyond the average entry (a step with no
    fills of its own, as a share rounded away, counts as its target says: it does)."""
    fills = [fill for order in step.orders for fill in order.fills]
    amount = sum((fill.amount for fill in fills), Decimal(0))
    if not amount:
        return True
    price = sum((fill.price * fill.amount for fill in fills), Decimal(0)) / amount
    return side.sign * (price - average) > 0
