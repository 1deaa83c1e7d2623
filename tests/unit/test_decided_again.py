"""A trigger's decision is made durable ahead of its order as the trigger alone (see
store/unit_of_work.py): after a crash it is decided again from the trade as stored. That is
sound only if deciding is a pure function of the two: the trade read back from its snapshot
decides, on the same trigger, exactly what the trade in memory decided."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smarttrade.domain.decide import decide
from smarttrade.domain.messages import PriceTicked, TimeElapsed
from smarttrade.domain.spec import TradeSpec
from smarttrade.store.codec import dump_json, trade_document, trade_from_document
from tests.unit.driver import Run
from tests.unit.strategies import START, trade_specs

prices = st.integers(min_value=5_000, max_value=15_000).map(lambda n: START * n / 10_000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trade_specs(), st.lists(prices, max_size=12), prices, st.booleans())
def test_the_trade_as_stored_decides_on_a_trigger_exactly_what_the_trade_in_memory_did(
    spec: TradeSpec, path: list[Decimal], trigger_price: Decimal, clock: bool
) -> None:
    run = Run.start(spec, str(START), balances={"USDT": "1000000", "BTC": "1000"})
    for price in path:  # a random history: triggers, fills, trailing, timeouts under way
        run.tick(str(price))
    at = run.now + timedelta(seconds=1)
    trigger = TimeElapsed(at + timedelta(days=1)) if clock else PriceTicked(trigger_price, at)
    stored = trade_from_document(orjson.loads(dump_json(trade_document(run.trade))))

    in_memory, again = decide(run.trade, trigger), decide(stored, trigger)

    assert stored == run.trade
    assert again == in_memory
