"""Position accounting (DESIGN §2.4) as a property: the position is a function of the set
of fills, so the same fills in any order, or repeated, give the same position."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.decide import decide
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import Cancel, OrderReported
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.values import Side
from tests.unit.builders import market_entry, skip_entry, step, trade_spec, wallet
from tests.unit.driver import T0, Run
from tests.unit.strategies import START, away, trade_specs

BALANCES = {"USDT": "10000000", "BTC": "100"}


@st.composite
def finished_trades(draw: st.DrawFn) -> SmartTrade:
    """A trade run to its end on the paper book (cancelled if still open), with its fills."""
    spec = draw(trade_specs())
    partial = draw(st.booleans())
    run = Run.start(spec, "50000", BALANCES, PaperSettings(partial_fills=partial))
    price = START
    for move in draw(st.lists(st.integers(-4, 4), min_size=1, max_size=12)):
        price = away(Side.BUY, price, Decimal(move) / 2)
        run.tick(str(price))
    if run.trade.state in (TradeState.PENDING, TradeState.ACTIVE):
        run.feed(Cancel(run.now))
    return run.trade


@settings(max_examples=100, deadline=None)
@given(trade=finished_trades(), data=st.data())
def test_the_same_fills_in_any_order_or_repeated_give_the_same_position(
    trade: SmartTrade, data: st.DataObject
) -> None:
    # Arrange: every fill as its own report, shuffled, some sent twice or as a cumulative
    # report of the order's fills so far; replayed onto the trade with its fills removed.
    reports = [
        OrderReported(order.client_order_id, order.status, T0, fills=tuple(order.fills[: i + 1]))
        for order in trade.orders()
        for i in range(len(order.fills))
    ]
    assume(reports)
    shuffled = data.draw(st.permutations(reports))
    repeated = data.draw(st.lists(st.sampled_from(reports), max_size=5))
    blank = trade.clone()
    for order in blank.orders():
        order.fills.clear()

    # Act
    for report in [*shuffled, *repeated]:
        blank = decide(blank, report).trade

    # Assert
    assert position_of(blank) == position_of(trade)


def test_fees_are_recorded_per_currency_and_a_base_fee_reduces_the_units_held() -> None:
    # Arrange / Act: buy 0.1 at 50,000 (fee 0.0001 BTC), sell it all at 51,000 (fee 5.1 USDT).
    run = Run.start(trade_spec(Side.BUY, market_entry(), (step("100", price="51000"),)), "50000")
    run.tick("51000")

    # Assert
    position = position_of(run.trade)
    assert position.fees == (("BTC", Decimal("0.0001")), ("USDT", Decimal("5.0949")))
    assert position.units_bought == Decimal("0.0999")
    assert position.quote_fees == Decimal("5.0949")  # 0.0999 x 51,000 x 0.1%


@pytest.mark.parametrize(
    ("side", "last", "unrealized"),
    [
        # 0.0999 held at 5,000 / 0.0999; at 52,000: (52,000 - 50,050.05...) x 0.0999.
        (Side.BUY, "52000", Decimal(52000) * Decimal("0.0999") - Decimal(5000)),
        # 0.1 owed at 50,000; at 49,000: (50,000 - 49,000) x 0.1 = 100.
        (Side.SELL, "49000", Decimal(100)),
    ],
    ids=["buy", "sell"],
)
def test_unrealized_pnl_comes_from_the_last_price(
    side: Side, last: str, unrealized: Decimal
) -> None:
    run = Run.start(trade_spec(side, market_entry()), "50000", balances=wallet(side))
    position = position_of(run.trade)
    assert position.unrealized_pnl(Decimal(last)) == unrealized


def test_a_sell_trade_with_nothing_exited_reads_zero_not_minus_zero() -> None:
    run = Run.start(trade_spec(Side.SELL, skip_entry("50000")), "50000", balances=wallet(Side.SELL))
    assert str(position_of(run.trade).realized_pnl) == "0"
