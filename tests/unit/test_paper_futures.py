"""Paper futures (exchange/paper_futures.py through PaperBook): margin, fees on the notional,
reduce-only orders, realized PnL and liquidation on a linear perpetual, worked by hand, and
money kept track of on any path of prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.paper_book import PaperBook
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.exchange.port import OrderRejected, OrderRequest
from tests.unit.driver import PERP

D = Decimal
AT = datetime(2026, 12, 3, tzinfo=UTC)
FEES = PaperSettings(maker_fee_rate=D("0.0002"), taker_fee_rate=D("0.0004"))
ACCOUNT = "acc"


def book(
    usdt: str = "1000", leverage: str = "10", mode: MarginMode = MarginMode.ISOLATED
) -> PaperBook:
    paper = PaperBook([PERP])
    paper.open_account(ACCOUNT, FEES)
    paper.set_balance(ACCOUNT, "USDT", D(usdt))
    paper.tick(PERP.symbol, D(100), AT)
    paper.prepare(ACCOUNT, PERP.symbol, D(leverage), mode)
    return paper


def order(
    client_order_id: str,
    side: Side,
    amount: str,
    price: str | None = None,
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(
        client_order_id,
        PERP.symbol,
        side,
        OrderType.LIMIT if price else OrderType.MARKET,
        D(amount),
        D(price) if price else None,
        reduce_only,
    )


def usdt(paper: PaperBook) -> tuple[Decimal, Decimal]:
    balance = paper.balances(ACCOUNT)["USDT"]
    return balance.free, balance.locked


def test_a_market_short_needs_no_coins_only_its_margin_and_fee() -> None:
    paper = book()

    report = paper.place(ACCOUNT, order("s1", Side.SELL, "2"), AT)

    # 2 x 100 = 200 notional: 20 margin at leverage 10, 0.08 taker fee (0.04 %).
    assert report.status is OrderStatus.FILLED
    assert report.fills[0].fee == D("0.08")
    assert report.fills[0].fee_currency == "USDT"
    assert usdt(paper) == (D("979.92"), D(0))
    (position,) = paper.positions(ACCOUNT, PERP.symbol)
    assert (position.side, position.units, position.entry_price) == (Side.SELL, D(2), D(100))
    assert (position.leverage, position.margin_mode) == (D(10), MarginMode.ISOLATED)
    # 20 + (100 - P) x 2 = 0.004 x P x 2  ->  2.008 P = 220  ->  P = 109.5617...
    assert position.liquidation_price is not None
    assert position.liquidation_price.quantize(D("0.0001")) == D("109.5618")


def test_a_reduce_only_buy_closes_the_short_and_pays_its_profit_and_margin_back() -> None:
    paper = book()
    paper.place(ACCOUNT, order("s1", Side.SELL, "2"), AT)
    paper.tick(PERP.symbol, D(90), AT)

    closed = paper.place(ACCOUNT, order("b1", Side.BUY, "2", reduce_only=True), AT)

    # +20 profit ((100 - 90) x 2), 20 margin back, 0.072 fee (180 x 0.04 %).
    assert closed.status is OrderStatus.FILLED
    assert usdt(paper) == (D("979.92") + 20 + 20 - D("0.072"), D(0))
    assert paper.positions(ACCOUNT, PERP.symbol) == []


def test_a_reduce_only_order_that_would_open_or_grow_the_position_is_refused() -> None:
    paper = book()
    with pytest.raises(OrderRejected, match="reduce-only"):
        paper.place(ACCOUNT, order("b0", Side.BUY, "1", reduce_only=True), AT)
    paper.place(ACCOUNT, order("s1", Side.SELL, "1"), AT)
    with pytest.raises(OrderRejected, match="reduce-only"):
        paper.place(ACCOUNT, order("s2", Side.SELL, "1", reduce_only=True), AT)
    with pytest.raises(OrderRejected, match="reduce-only"):
        paper.place(ACCOUNT, order("b2", Side.BUY, "1.5", reduce_only=True), AT)


def test_a_resting_limit_locks_its_margin_and_fee_until_it_fills_as_a_maker() -> None:
    paper = book()

    paper.place(ACCOUNT, order("b1", Side.BUY, "1", price="95"), AT)
    locked = usdt(paper)
    paper.tick(PERP.symbol, D(95), AT)

    # 95 notional: 9.5 margin and 0.038 taker fee locked; filled as a maker: 0.019 fee.
    assert locked == (1000 - D("9.538"), D("9.538"))
    assert usdt(paper) == (1000 - D("9.5") - D("0.019"), D(0))
    (position,) = paper.positions(ACCOUNT, PERP.symbol)
    assert (position.side, position.units, position.entry_price) == (Side.BUY, D(1), D(95))


def test_an_order_beyond_the_free_margin_is_refused() -> None:
    paper = book(usdt="10")

    with pytest.raises(OrderRejected, match="insufficient USDT"):
        paper.place(ACCOUNT, order("b1", Side.BUY, "1"), AT)  # 10 margin + 0.04 fee


def test_an_isolated_position_is_liquidated_at_its_price_and_loses_its_margin_only() -> None:
    paper = book()
    paper.place(ACCOUNT, order("b1", Side.BUY, "2"), AT)  # margin 20, fee 0.08
    paper.place(ACCOUNT, order("tp", Side.SELL, "2", price="120", reduce_only=True), AT)
    # 20 + (P - 100) x 2 = 0.004 x P x 2  ->  1.992 P = 180  ->  P = 90.3614...

    changed = paper.tick(PERP.symbol, D(90), AT)

    liquidation = next(o for o in changed if o.client_order_id.startswith("liquidation-"))
    assert liquidation.status is OrderStatus.FILLED
    assert liquidation.fills[0].price.quantize(D("0.0001")) == D("90.3614")
    assert [o.status for o in changed if o.client_order_id == "tp"] == [OrderStatus.CANCELLED]
    assert usdt(paper) == (D("979.92"), D(0))  # the margin is gone, nothing else
    assert paper.positions(ACCOUNT, PERP.symbol) == []


def test_a_cross_position_is_backed_by_the_wallet_and_spends_it_when_liquidated() -> None:
    paper = book(usdt="50", mode=MarginMode.CROSS)
    paper.place(ACCOUNT, order("b1", Side.BUY, "2"), AT)  # margin 20, fee 0.08: 29.92 free
    (position,) = paper.positions(ACCOUNT, PERP.symbol)
    # (20 + 29.92) + (P - 100) x 2 = 0.004 x P x 2  ->  1.992 P = 150.08  ->  P = 75.3413...
    assert position.liquidation_price is not None
    assert position.liquidation_price.quantize(D("0.0001")) == D("75.3414")

    assert paper.tick(PERP.symbol, D(76), AT) == []
    paper.tick(PERP.symbol, D(75), AT)

    free, locked = usdt(paper)
    assert (free.quantize(D("1e-12")), locked) == (D(0), D(0))  # what is left: rounding in 1e-27


def test_a_leverage_the_market_does_not_allow_and_a_mode_change_with_a_position_are_refused() -> (
    None
):
    paper = book()
    with pytest.raises(OrderRejected, match="leverage 126 is not allowed"):
        paper.prepare(ACCOUNT, PERP.symbol, D(126), None)
    paper.prepare(ACCOUNT, PERP.symbol, D(10), MarginMode.ISOLATED)  # as it is: fine
    paper.place(ACCOUNT, order("b1", Side.BUY, "1"), AT)
    with pytest.raises(OrderRejected, match="margin mode"):
        paper.prepare(ACCOUNT, PERP.symbol, None, MarginMode.CROSS)


def test_a_refused_leverage_leaves_the_margin_mode_asked_with_it_as_it_was() -> None:
    paper = book(leverage="10", mode=MarginMode.ISOLATED)

    with pytest.raises(OrderRejected, match="leverage 200"):
        paper.prepare(ACCOUNT, PERP.symbol, D(200), MarginMode.CROSS)

    setting = paper.futures.setting(ACCOUNT, PERP.symbol)
    assert (setting.leverage, setting.margin_mode) == (D(10), MarginMode.ISOLATED)


def test_the_default_paper_perpetuals_round_and_refuse_as_binance_usdm_does() -> None:
    paper = PaperBook(DEFAULT_MARKETS)
    paper.open_account(ACCOUNT, FEES)
    paper.set_balance(ACCOUNT, "USDT", D(10000))
    paper.tick("BTC/USDT:USDT", D("90000.04"), AT)
    paper.tick("ETH/USDT:USDT", D("3000.004"), AT)

    with pytest.raises(OrderRejected, match="below the minimum"):  # 90 USDT: under 100
        paper.place(
            ACCOUNT, OrderRequest("b0", "BTC/USDT:USDT", Side.BUY, OrderType.MARKET, D("0.001")), AT
        )
    with pytest.raises(OrderRejected, match="leverage 126"):
        paper.prepare(ACCOUNT, "BTC/USDT:USDT", D(126), None)
    with pytest.raises(OrderRejected, match="leverage 101"):
        paper.prepare(ACCOUNT, "ETH/USDT:USDT", D(101), None)
    paper.prepare(ACCOUNT, "BTC/USDT:USDT", D(125), None)
    btc = paper.place(
        ACCOUNT,
        OrderRequest("b1", "BTC/USDT:USDT", Side.BUY, OrderType.LIMIT, D("0.0029"), D("89000.06")),
        AT,
    )
    eth = paper.place(
        ACCOUNT, OrderRequest("e1", "ETH/USDT:USDT", Side.SELL, OrderType.MARKET, D("0.007")), AT
    )

    # BTC: 0.001 lots and 0.1 ticks; ETH: 0.01 ticks, and 0.007 x 3000 = 21 clears its 20.
    assert (btc.amount, btc.price) == (D("0.002"), D("89000.1"))
    assert (eth.fills[0].amount, eth.fills[0].price) == (D("0.007"), D("3000.00"))
    assert paper.balances(ACCOUNT).keys() == {"USDT"}  # a perpetual holds no coins


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(Side),
            st.integers(min_value=1, max_value=30),  # x 0.1 BTC
            st.integers(min_value=92, max_value=108),  # the price moved to before the order
        ),
        max_size=12,
    )
)
def test_no_money_is_made_or_lost_but_pnl_and_fees_on_any_path_without_liquidation(
    steps: list[tuple[Side, int, int]],
) -> None:
    paper = book(usdt="100000", leverage="5")  # far from liquidation
    fees = realized = D(0)
    for index, (side, tenths, price) in enumerate(steps):
        paper.tick(PERP.symbol, D(price), AT)
        before = paper.futures.holding(ACCOUNT, PERP.symbol)
        held_side, held_units, entry = before.side, before.units, before.entry
        report = paper.place(ACCOUNT, order(f"o{index}", side, str(D(tenths) / 10)), AT)
        fill = report.fills[0]
        fees += fill.fee
        if held_units and held_side is not side:
            realized += held_side.sign * (fill.price - entry) * min(fill.amount, held_units)
    free, locked = usdt(paper)
    held = paper.futures.holding(ACCOUNT, PERP.symbol)

    assert locked == 0
    # Equal but for Decimal's 28 digits (an average entry price is a repeating fraction).
    assert abs(free + held.margin - (D(100000) + realized - fees)) < D("1e-18")
