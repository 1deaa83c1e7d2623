"""Hypothesis strategies for valid trade settings around a price of 50,000 USDT."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import strategies as st

from smarttrade.domain.spec import (
    EntrySpec,
    EntryType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
)
from smarttrade.domain.validation import entry_price_estimate, spec_violations
from smarttrade.domain.values import OrderType, Side
from tests.unit.builders import SYMBOL
from tests.unit.driver import BTC

START = Decimal(50000)
HUNDRED = Decimal(100)
PERCENTS = st.sampled_from([Decimal(p) for p in ("0.5", "1", "2", "3", "5")])
TRAILS = st.sampled_from([Decimal(p) for p in ("0.5", "1", "2")])


def away(side: Side, price: Decimal, percent: Decimal) -> Decimal:
    """`price` moved `percent` in the trade's favour (negative: against it), on the tick."""
    return BTC.round_price(price * (1 + side.sign * percent / HUNDRED))


@st.composite
def entries(draw: st.DrawFn, side: Side) -> EntrySpec:
    kind = draw(
        st.sampled_from(
            ["market", "limit", "when_market", "when_limit", "trailing", "when_trailing", "skip"]
        )
    )
    if draw(st.booleans()):
        units, total = (
            draw(st.sampled_from([Decimal("0.01"), Decimal("0.1"), Decimal("0.12345")])),
            None,
        )
    else:
        units, total = None, draw(st.sampled_from([Decimal(600), Decimal(5000), Decimal("1234.5")]))
    trigger = away(side, START, draw(st.sampled_from([Decimal(-2), Decimal(-1), Decimal(1)])))
    below = away(side, START, -draw(st.sampled_from([Decimal("0.5"), Decimal(1), Decimal(2)])))
    if kind == "market":
        return EntrySpec(EntryType.MARKET, units=units, total=total)
    if kind == "limit":
        return EntrySpec(EntryType.LIMIT, units=units, total=total, limit_price=below)
    if kind == "trailing":
        return EntrySpec(EntryType.MARKET, units=units, total=total, trailing_percent=draw(TRAILS))
    if kind == "skip":
        return EntrySpec(EntryType.SKIP, units=units, total=total, average_price=below)
    return EntrySpec(
        EntryType.CONDITIONAL,
        units=units,
        total=total,
        trigger_price=trigger,
        order_type=OrderType.LIMIT if kind == "when_limit" else OrderType.MARKET,
        limit_price=trigger if kind == "when_limit" else None,
        trailing_percent=draw(TRAILS) if kind == "when_trailing" else None,
    )


@st.composite
def take_profit_plans(
    draw: st.DrawFn, side: Side, entry_price: Decimal, max_steps: int = 4
) -> tuple[TakeProfitStepSpec, ...]:
    count = draw(st.integers(0, max_steps))
    if not count:
        return ()
    cuts = sorted(draw(st.sets(st.integers(1, 99), min_size=count - 1, max_size=count - 1)))
    volumes = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    steps = []
    for index, volume in enumerate(volumes):
        percent = draw(PERCENTS)
        trailing = draw(TRAILS) if index == count - 1 and draw(st.booleans()) else None
        if draw(st.booleans()):
            steps.append(
                TakeProfitStepSpec(Decimal(volume), percent=percent, trailing_percent=trailing)
            )
        else:
            price = away(side, entry_price, percent)
            steps.append(
                TakeProfitStepSpec(Decimal(volume), price=price, trailing_percent=trailing)
            )
    return tuple(steps)


@st.composite
def stop_losses(
    draw: st.DrawFn, side: Side, entry_price: Decimal, step_count: int
) -> StopLossSpec | None:
    if draw(st.integers(0, 3)) == 0:
        return None
    percent = draw(PERCENTS)
    by_percent = draw(st.booleans())
    trigger = away(side, entry_price, -percent)
    as_limit = draw(st.integers(0, 3)) == 0
    return StopLossSpec(
        price=None if by_percent else trigger,
        percent=percent if by_percent else None,
        order_type=OrderType.LIMIT if as_limit else OrderType.MARKET,
        limit_price=away(side, trigger, Decimal(-1)) if as_limit else None,
        timeout=draw(st.sampled_from([None, None, timedelta(seconds=5), timedelta(seconds=30)])),
        trailing_percent=draw(st.sampled_from([None, None, Decimal(1), Decimal(2)])),
        move_to_breakeven=step_count >= 2 and draw(st.booleans()),
        # A stop-limit's fallback (issue 15): after a time resting, or a distance past it.
        fallback_after=draw(st.sampled_from([None, timedelta(seconds=5), timedelta(seconds=30)]))
        if as_limit
        else None,
        fallback_percent=draw(st.sampled_from([None, Decimal("0.5"), Decimal(2)]))
        if as_limit
        else None,
    )


@st.composite
def trade_specs(draw: st.DrawFn, side: Side | None = None) -> TradeSpec:
    side = side or draw(st.sampled_from(Side))
    entry = draw(entries(side))
    entry_price = entry_price_estimate(entry, START)
    steps = draw(take_profit_plans(side, entry_price))
    spec = TradeSpec(
        symbol=SYMBOL,
        side=side,
        entry=entry,
        take_profit=steps,
        stop_loss=draw(stop_losses(side, entry_price, len(steps))),
        time_limit=draw(st.sampled_from([None, None, timedelta(seconds=3), timedelta(seconds=20)])),
    )
    assert not spec_violations(spec, BTC, START), spec_violations(spec, BTC, START)
    return spec
