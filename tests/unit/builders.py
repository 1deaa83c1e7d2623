"""Settings written the way a trader fills in the form, and trades brought to each state.

Every number here is a plain decimal string so a test reads like the trade it sets up.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import Cancel, CloseAtMarket, PlaceOrder
from smarttrade.domain.spec import (
    EntrySpec,
    EntryType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
)
from smarttrade.domain.values import OrderType, Side
from tests.unit.driver import BTC, Placement, Run

SYMBOL = BTC.symbol


def dec(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


def market_entry(units: str | None = "0.1", total: str | None = None) -> EntrySpec:
    return EntrySpec(
        EntryType.MARKET, units=dec(units if total is None else None), total=dec(total)
    )


def limit_entry(price: str, units: str = "0.1") -> EntrySpec:
    return EntrySpec(EntryType.LIMIT, units=dec(units), limit_price=dec(price))


def conditional_entry(
    trigger: str, units: str = "0.1", limit: str | None = None, trailing: str | None = None
) -> EntrySpec:
    return EntrySpec(
        EntryType.CONDITIONAL,
        units=dec(units),
        trigger_price=dec(trigger),
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        limit_price=dec(limit),
        trailing_percent=dec(trailing),
    )


def trailing_entry(percent: str, units: str = "0.1") -> EntrySpec:
    return EntrySpec(EntryType.MARKET, units=dec(units), trailing_percent=dec(percent))


def skip_entry(average: str, units: str = "0.1") -> EntrySpec:
    return EntrySpec(EntryType.SKIP, units=dec(units), average_price=dec(average))


def step(
    volume: str,
    price: str | None = None,
    percent: str | None = None,
    trailing: str | None = None,
) -> TakeProfitStepSpec:
    return TakeProfitStepSpec(
        volume_percent=Decimal(volume),
        price=dec(price),
        percent=dec(percent),
        trailing_percent=dec(trailing),
    )


def stop(
    price: str | None = None,
    percent: str | None = None,
    timeout: int | None = None,
    trailing: str | None = None,
    breakeven: bool = False,
    limit: str | None = None,
    fallback_after: int | None = None,
    fallback_percent: str | None = None,
) -> StopLossSpec:
    return StopLossSpec(
        price=dec(price),
        percent=dec(percent),
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        limit_price=dec(limit),
        timeout=timedelta(seconds=timeout) if timeout is not None else None,
        trailing_percent=dec(trailing),
        move_to_breakeven=breakeven,
        fallback_after=timedelta(seconds=fallback_after) if fallback_after is not None else None,
        fallback_percent=dec(fallback_percent),
    )


def trade_spec(
    side: Side = Side.BUY,
    entry: EntrySpec | None = None,
    steps: tuple[TakeProfitStepSpec, ...] = (),
    stop_loss: StopLossSpec | None = None,
) -> TradeSpec:
    return TradeSpec(
        symbol=SYMBOL,
        side=side,
        entry=entry or market_entry(),
        take_profit=steps,
        stop_loss=stop_loss,
    )


def wallet(side: Side) -> dict[str, str]:
    """Enough to enter either way: quote to buy with, coins to sell short on spot."""
    return {"USDT": "100000"} if side is Side.BUY else {"BTC": "1", "USDT": "100000"}


# ---- trades in each state ----------------------------------------------------------------

TWO_STEPS = (step("50", percent="2"), step("50", percent="4"))


def pending_trade(side: Side = Side.BUY) -> Run:
    """A limit entry resting 2% away from the price: nothing bought yet."""
    limit = "49000" if side is Side.BUY else "51000"
    spec = trade_spec(side, limit_entry(limit), TWO_STEPS, stop(percent="5"))
    return Run.start(spec, "50000", balances=wallet(side))


def active_trade(side: Side = Side.BUY) -> Run:
    spec = trade_spec(side, market_entry(), TWO_STEPS, stop(percent="5"))
    return Run.start(spec, "50000", balances=wallet(side))


def closing_trade(side: Side = Side.BUY) -> Run:
    """Close at Market asked; the venue has not yet answered the cancels of the targets."""
    run = active_trade(side)
    run.feed(CloseAtMarket(run.now), auto=False)
    assert run.trade.state is TradeState.CLOSING
    return run


def closing_on_a_stop_limit(
    side: Side = Side.BUY,
    fallback_after: int | None = None,
    fallback_percent: str | None = None,
    gap: str | None = None,
) -> Run:
    """A stop-limit that did not fill: bought at 50,000, stop at 47,500 with its limit at
    47,400; the price gaps to 47,000, below the limit, so the sell limit rests (SELL: stop
    52,500, limit 52,600, gap to 53,000)."""
    trigger, limit, gapped = (
        ("47500", "47400", "47000") if side is Side.BUY else ("52500", "52600", "53000")
    )
    sl = stop(
        price=trigger,
        limit=limit,
        fallback_after=fallback_after,
        fallback_percent=fallback_percent,
    )
    spec = trade_spec(side, market_entry(), TWO_STEPS, sl)
    run = Run.start(spec, "50000", balances=wallet(side))
    run.tick(gap or gapped)
    return run


def closed_trade(side: Side = Side.BUY) -> Run:
    run = active_trade(side)
    run.feed(CloseAtMarket(run.now))
    assert run.trade.state is TradeState.CLOSED
    return run


def cancelled_trade(side: Side = Side.BUY) -> Run:
    run = pending_trade(side)
    run.feed(Cancel(run.now))
    assert run.trade.state is TradeState.CANCELLED
    return run


def failed_trade(side: Side = Side.BUY) -> Run:
    """The venue refuses the market entry: the account has no funds."""
    run = Run.start(trade_spec(side, market_entry(), TWO_STEPS), "50000", balances={"USDT": "0"})
    assert run.trade.state is TradeState.FAILED
    return run


TRADE_IN = {
    TradeState.PENDING: pending_trade,
    TradeState.ACTIVE: active_trade,
    TradeState.CLOSING: closing_trade,
    TradeState.CLOSED: closed_trade,
    TradeState.CANCELLED: cancelled_trade,
    TradeState.FAILED: failed_trade,
}


def dust_orders(placements: list[Placement]) -> list[PlaceOrder]:
    """Every order sent that the market would refuse or that leaves a fraction of a lot:
    zero, below the minimum amount or cost, or not on the lot and tick grid."""
    bad = []
    for placement in placements:
        order = placement.intent
        reference = order.price if order.price is not None else placement.last_price
        assert reference is not None
        on_grid = BTC.round_amount(order.amount) == order.amount and (
            order.price is None or BTC.round_price(order.price) == order.price
        )
        if not on_grid or not BTC.is_tradable(order.amount, reference):
            bad.append(order)
    return bad
