"""A trade's wake levels hold every price its watchers react to: inside the band, a tick
changes nothing (no event, no intent, nothing to persist). This is what lets the engine's
trigger index skip the trades a price does not concern without ever missing a trigger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smarttrade.domain.decide import decide
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import PriceTicked, TimeElapsed
from smarttrade.domain.spec import TradeSpec
from tests.unit.driver import Run
from tests.unit.strategies import START, trade_specs

# Around the strategies' starting price: from half of it to one and a half times it.
prices = st.integers(min_value=5_000, max_value=15_000).map(lambda n: START * n / 10_000)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trade_specs(), st.lists(prices, max_size=12), prices)
def test_a_tick_inside_the_wake_band_changes_nothing(
    spec: TradeSpec, path: list[Decimal], probe: Decimal
) -> None:
    run = Run.start(spec, str(START), balances={"USDT": "1000000", "BTC": "1000"})
    for price in path:  # a random history: triggers, fills, trailing, timeouts under way
        run.tick(str(price))
    levels = wake_levels(run.trade)
    inside = (levels.below is None or probe > levels.below) and (
        levels.above is None or probe < levels.above
    )
    time_due = levels.at is not None and run.now + timedelta(seconds=1) >= levels.at

    decision = decide(run.trade, PriceTicked(probe, run.now + timedelta(seconds=1)))

    if inside and not time_due:
        assert not decision.persist, (levels, probe, decision.events)
        assert not decision.intents


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trade_specs(), st.lists(prices, max_size=12))
def test_the_clock_matters_only_at_the_wake_time(spec: TradeSpec, path: list[Decimal]) -> None:
    run = Run.start(spec, str(START), balances={"USDT": "1000000", "BTC": "1000"})
    for price in path:
        run.tick(str(price))
    levels = wake_levels(run.trade)
    soon = run.now + timedelta(milliseconds=1)

    decision = decide(run.trade, TimeElapsed(soon))

    if levels.at is None or soon < levels.at:
        assert not decision.persist
        assert not decision.intents
