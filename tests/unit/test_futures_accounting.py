"""Futures accounting (domain/futures.py) against values worked by hand, long and short,
isolated and cross, and the liquidation price held to its definition for any position."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smarttrade.domain.futures import FuturesPosition, fee_on, order_margin
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import Side

D = Decimal
EIGHT = D("0.00000001")
ISOLATED, CROSS = MarginMode.ISOLATED, MarginMode.CROSS


def position(side: Side, mode: MarginMode = ISOLATED, leverage: str = "10") -> FuturesPosition:
    """2 BTC at 100 USDT, leverage 10, maintenance margin rate 0.5 %."""
    return FuturesPosition(side, D(2), D(100), D(leverage), mode, D("0.005"))


def test_a_long_at_leverage_10_takes_a_tenth_of_its_notional_as_margin() -> None:
    long = position(Side.BUY)

    assert long.notional == 200  # 2 x 100
    assert long.initial_margin == 20  # 200 / 10


def test_a_long_gains_what_the_price_rose_times_its_units_and_returns_it_on_its_margin() -> None:
    long = position(Side.BUY)

    assert long.unrealized_pnl(D(110)) == 20  # (110 - 100) x 2
    assert long.roe_percent(D(110)) == 100  # 20 / 20 margin
    assert long.unrealized_pnl(D(95)) == -10
    assert long.roe_percent(D(95)) == -50


def test_a_short_gains_what_the_price_fell_times_its_units() -> None:
    short = position(Side.SELL)

    assert short.unrealized_pnl(D(90)) == 20  # -(90 - 100) x 2
    assert short.roe_percent(D(90)) == 100
    assert short.unrealized_pnl(D(104)) == -8
    assert short.roe_percent(D(104)) == -40


def test_an_isolated_long_is_liquidated_where_its_margin_left_meets_its_maintenance() -> None:
    # 20 + (P - 100) x 2 = 0.005 x P x 2  ->  1.99 P = 180  ->  P = 90.452261306...
    price = position(Side.BUY).liquidation_price()

    assert price is not None
    assert price.quantize(EIGHT) == D("90.45226131")
    assert position(Side.BUY).liquidated_at(D("90.45"))
    assert not position(Side.BUY).liquidated_at(D("90.46"))


def test_an_isolated_short_is_liquidated_above_its_entry() -> None:
    # 20 + (100 - P) x 2 = 0.005 x P x 2  ->  2.01 P = 220  ->  P = 109.452736318...
    price = position(Side.SELL).liquidation_price()

    assert price is not None
    assert price.quantize(EIGHT) == D("109.45273632")
    assert position(Side.SELL).liquidated_at(D("109.46"))
    assert not position(Side.SELL).liquidated_at(D("109.45"))


def test_a_cross_long_is_backed_by_the_accounts_whole_margin_balance() -> None:
    # 50 + (P - 100) x 2 = 0.005 x P x 2  ->  1.99 P = 150  ->  P = 75.376884422...
    price = position(Side.BUY, CROSS).liquidation_price(wallet=D(50))

    assert price is not None
    assert price.quantize(EIGHT) == D("75.37688442")


def test_a_cross_short_is_backed_by_the_accounts_whole_margin_balance() -> None:
    # 50 + (100 - P) x 2 = 0.005 x P x 2  ->  2.01 P = 250  ->  P = 124.378109452...
    price = position(Side.SELL, CROSS).liquidation_price(wallet=D(50))

    assert price is not None
    assert price.quantize(EIGHT) == D("124.37810945")


def test_a_long_backed_by_its_whole_notional_cannot_be_liquidated() -> None:
    assert position(Side.BUY, CROSS).liquidation_price(wallet=D(200)) is None
    assert position(Side.BUY, leverage="1").liquidation_price() is None
    assert not position(Side.BUY, leverage="1").liquidated_at(D("0.01"))
    # A short at leverage 1 still is: 200 + (100 - P) x 2 = 0.01 P  ->  P = 199.004975...
    short = position(Side.SELL, leverage="1").liquidation_price()
    assert short is not None
    assert short.quantize(EIGHT) == D("199.00497512")


def test_a_cross_position_needs_the_wallet_balance_for_its_liquidation_price() -> None:
    with pytest.raises(ValueError, match="wallet"):
        position(Side.BUY, CROSS).liquidation_price()


def test_opening_takes_the_initial_margin_and_the_fee_on_the_notional() -> None:
    assert order_margin(D(1000), D(5), D("0.0004")) == D("200.4")  # 1000 / 5 + 1000 x 0.0004
    assert fee_on(D(100), D(2), D("0.0004")) == D("0.08")


def test_no_position_has_no_margin_no_roe_and_no_liquidation() -> None:
    empty = FuturesPosition(Side.BUY, D(0), D(100), D(10), ISOLATED, D("0.005"))

    assert empty.initial_margin == 0
    assert empty.roe_percent(D(120)) == 0
    assert empty.liquidation_price() is None


@pytest.mark.parametrize(
    ("units", "entry", "leverage", "rate", "said"),
    [
        ("-1", "100", "10", "0.005", "units >= 0"),
        ("1", "0", "10", "0.005", "entry price > 0"),
        ("1", "100", "0.5", "0.005", "leverage >= 1"),
        ("1", "100", "10", "1", "maintenance margin rate"),
        ("1", "100", "64", "0.0157", "leverage too high"),  # margin 1.5625 % < 1.57 %
    ],
)
def test_a_position_that_cannot_exist_is_refused(
    units: str, entry: str, leverage: str, rate: str, said: str
) -> None:
    with pytest.raises(ValueError, match=said):
        FuturesPosition(Side.BUY, D(units), D(entry), D(leverage), ISOLATED, D(rate))


decimals = st.decimals(min_value=D("0.001"), max_value=D(100000), places=3)


@given(
    side=st.sampled_from(Side),
    units=decimals,
    entry=decimals,
    leverage=st.integers(min_value=1, max_value=125),
    rate=st.decimals(min_value=D(0), max_value=D("0.1"), places=4),
)
def test_at_the_isolated_liquidation_price_the_equity_left_is_the_maintenance_margin(
    side: Side, units: Decimal, entry: Decimal, leverage: int, rate: Decimal
) -> None:
    assume(1 / D(leverage) > rate)  # else refused (above)
    held = FuturesPosition(side, units, entry, D(leverage), ISOLATED, rate)
    price = held.liquidation_price()
    if price is None:  # only a long that its margin covers whole
        assert side is Side.BUY
        assert leverage == 1
        return
    equity = held.initial_margin + held.unrealized_pnl(price)
    assert abs(equity - held.maintenance_margin(price)) <= held.notional * D("1e-20")
    # and it lies on the losing side of the entry
    assert (price < entry) if side is Side.BUY else (price > entry)
