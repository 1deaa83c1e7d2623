"""How much Reduce Funds accepts now, shown on the trade (3Commas' `reduce_funds_info`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smarttrade.domain.actions import reducible_units
from smarttrade.domain.decide import decide
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import ReduceFunds
from smarttrade.domain.model import LegKind
from smarttrade.domain.values import Side
from tests.unit.builders import active_trade, closed_trade, pending_trade
from tests.unit.driver import Run


def test_an_active_buy_can_be_reduced_by_all_it_holds_but_the_market_minimum() -> None:
    # 0.1 BTC bought at 50,000, 0.0999 held after the fee; the market's minimum at 50,000 is
    # 5 USDT / 50,000 = 0.0001 BTC (above its 0.00001 BTC): 0.0999 - 0.0001 = 0.0998.
    assert reducible_units(active_trade().trade) == Decimal("0.0998")


@pytest.mark.parametrize("build", [pending_trade, closed_trade], ids=["pending", "closed"])
def test_a_trade_without_reduce_funds_on_its_menu_has_nothing_reducible(
    build: Callable[[], Run],
) -> None:
    assert reducible_units(build().trade) is None


@given(side=st.sampled_from(Side), price=st.integers(49_200, 50_900))
@settings(max_examples=40, deadline=None)
def test_reduce_funds_accepts_the_reducible_units_and_refuses_a_step_more(
    side: Side, price: int
) -> None:
    # Arrange: an active trade at a last price between its stop and its first target.
    run = active_trade(side)
    run.tick(str(price))
    trade = run.trade
    assert trade.state is TradeState.ACTIVE
    units = reducible_units(trade)
    assert units is not None
    assert units > 0

    # Act
    decision = decide(trade, ReduceFunds(run.now, units=units))

    # Assert
    reduce = decision.trade.legs_of(LegKind.REDUCE_FUNDS)
    assert [leg.amount for leg in reduce] == [units]
    with pytest.raises(InvalidSpec):
        decide(trade, ReduceFunds(run.now, units=units + trade.market.amount_step))
