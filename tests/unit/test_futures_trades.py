"""Futures trades through the pure core and the paper book's futures (issue 14): a linear
perpetual's position on margin, long and short, mirrored as DESIGN §2 mirrors every rule.

BTC/USDT:USDT at 100: lot 0.001, tick 0.1, leverage up to 125, maintenance margin 0.4 %;
fees 0.1 % of the notional, in USDT. Every trade is 10 BTC (a notional of 1,000 USDT) at
10x on isolated margin unless it says otherwise, from a wallet of 100,000 USDT.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from smarttrade.domain.decide import decide
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.futures import figures_of
from smarttrade.domain.messages import PositionGone, PositionSeen
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import (
    LeverageSpec,
    MarginMode,
    MarketType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
)
from smarttrade.domain.validation import futures_defaults, shared_position_conflict
from smarttrade.domain.values import Fill, OrderType, Side
from tests.unit import driver
from tests.unit.builders import market_entry, step, stop
from tests.unit.driver import BTC, T0, Run, d

PERP = dataclasses.replace(driver.PERP, min_cost=Decimal("100"))  # Binance's minimum notional
START = Decimal(100000)


def futures(
    side: Side,
    steps: tuple[TakeProfitStepSpec, ...] = (),
    stop_loss: StopLossSpec | None = None,
    leverage: str = "10",
    margin_mode: MarginMode | None = MarginMode.ISOLATED,
) -> TradeSpec:
    """10 BTC at market on the perpetual, at `leverage` and `margin_mode`."""
    return TradeSpec(
        symbol=PERP.symbol,
        side=side,
        entry=market_entry("10"),
        take_profit=steps,
        stop_loss=stop_loss,
        leverage=LeverageSpec(MarketType.LINEAR, Decimal(leverage), margin_mode),
    )


def mirrored(side: Side, price: str) -> str:
    """A price as far from 100 on the other side for a short."""
    return price if side is Side.BUY else str(200 - Decimal(price))


def start(spec: TradeSpec) -> Run:
    return Run.start(spec, "100", balances={"USDT": "100000"}, market=PERP)


def usdt(run: Run) -> Decimal:
    return run.balance("USDT")


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_the_entry_sets_leverage_and_margin_mode_and_every_exit_only_reduces(side: Side) -> None:
    # Act
    run = start(
        futures(side, (step("100", price=mirrored(side, "110")),), stop(price=mirrored(side, "95")))
    )

    # Assert: the entry opened a position (no coins needed for a short) at 10x isolated.
    entry, target = run.placed()
    assert (entry.side, entry.leverage, entry.margin_mode, entry.reduce_only) == (
        side,
        Decimal(10),
        MarginMode.ISOLATED,
        False,
    )
    assert (target.side, target.leverage, target.reduce_only) == (side.opposite, None, True)
    assert run.book.futures.setting("acct-1", PERP.symbol).leverage == 10
    held = run.book.futures.holding("acct-1", PERP.symbol)
    assert (held.side, held.units, held.entry, held.margin) == (side, d(10), d(100), d(100))
    assert run.trade.state is TradeState.ACTIVE
    # The margin (100) and the entry's fee (1) left the free balance; nothing else moved.
    assert run.book.balances("acct-1")["USDT"].free == START - 100 - 1


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_take_profit_steps_close_a_futures_trade_at_a_profit_and_the_wallet_says_so(
    side: Side,
) -> None:
    # Arrange: 50 % at 110 and 50 % at 120 (90 and 80 for a short).
    steps = (step("50", price=mirrored(side, "110")), step("50", price=mirrored(side, "120")))
    run = start(futures(side, steps, stop(price=mirrored(side, "95"), trailing="5")))

    # Act
    run.tick(mirrored(side, "110"))
    run.tick(mirrored(side, "120"))

    # Assert: 5 x 10 + 5 x 20 = 150, less fees of 1 (entry) + 0.55 + 0.6 (a short's
    # buy-backs: 0.45 + 0.4). Exits are exactly the units: no base fee to gross up.
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    fees = Decimal("2.15") if side is Side.BUY else Decimal("1.85")
    position = position_of(run.trade)
    assert position.realized_pnl == 150 - fees
    assert [o.amount for o in run.placed()[1:]] == [5, 5]
    assert usdt(run) == START + 150 - fees
    assert not run.book.futures.holding("acct-1", PERP.symbol).units


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_a_trailing_stop_closes_a_futures_trade_at_a_loss(side: Side) -> None:
    # Arrange: the stop 5 % away, trailing.
    steps = (step("100", price=mirrored(side, "120")),)
    run = start(futures(side, steps, stop(percent="5", trailing="5")))

    # Act: the best price 104 (96 for a short) moves the stop to 104 x 0.95 = 98.8
    # (96 x 1.05 = 100.8); it fires there.
    best, fired = ("104", "98.8") if side is Side.BUY else ("96", "100.8")
    run.tick(best)
    run.tick(fired)

    # Assert: 10 x -1.2 = -12 (10 x -0.8 = -8), less fees 1 + 0.988 (1 + 1.008).
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    (exit_order,) = run.trade.leg("sl").orders
    assert (exit_order.type, exit_order.amount, exit_order.reduce_only) == (
        OrderType.MARKET,
        d(10),
        True,
    )
    loss = Decimal("13.988") if side is Side.BUY else Decimal("10.008")
    assert position_of(run.trade).realized_pnl == -loss
    assert usdt(run) == START - loss


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_a_futures_trade_shows_its_margin_roe_and_isolated_liquidation_price(side: Side) -> None:
    run = start(futures(side))

    # Act
    figures = figures_of(run.trade, d(mirrored(side, "104")))

    # Assert, by hand: margin 1,000 / 10 = 100; PnL 40 = 40 % of it; liquidation
    # 100 x 0.9 / 0.996 = 90.3614457... long, 100 x 1.1 / 1.004 = 109.561753... short.
    assert figures is not None
    assert (figures.margin, figures.unrealized_pnl, figures.roe_percent) == (d(100), d(40), d(40))
    assert figures.liquidation_price is not None
    expected = "90.36144578" if side is Side.BUY else "109.56175299"
    assert figures.liquidation_price.quantize(Decimal("0.00000001")) == Decimal(expected)


def test_a_cross_margin_trade_shows_the_liquidation_price_the_venue_reports() -> None:
    run = start(futures(Side.BUY, margin_mode=MarginMode.CROSS))
    assert figures_of(run.trade, d(100)).liquidation_price is None  # type: ignore[union-attr]

    # Act
    run.feed(PositionSeen(d("0.5"), T0))

    # Assert
    assert figures_of(run.trade, d(100)).liquidation_price == d("0.5")  # type: ignore[union-attr]


def spot_trade() -> Run:
    """The same trade on the spot market BTC/USDT."""
    spec = dataclasses.replace(futures(Side.BUY), symbol=BTC.symbol, leverage=LeverageSpec())
    return Run.start(spec, "100", balances={"USDT": "100000"})


def test_a_spot_trade_has_no_futures_figures() -> None:
    run = spot_trade()
    assert run.trade.state is TradeState.ACTIVE
    assert figures_of(run.trade, d(104)) is None


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_a_liquidation_the_venue_reports_ends_the_trade_liquidated_with_its_loss(
    side: Side,
) -> None:
    # Arrange: a step resting at 110 (90).
    run = start(futures(side, (step("100", price=mirrored(side, "110")),)))
    price = d(mirrored(side, "90.4"))

    # Act: the venue closed the 10 at 90.4 (109.6), keeping 3.616 of maintenance.
    share = ("liq-7", Fill("P9", price, d(10), d("3.616"), "USDT", T0))
    run.feed(PositionGone(d(0), T0, price, liquidated=True, liquidation=share))

    # Assert: LIQUIDATED, the target cancelled, and the loss in the trade's PnL:
    # 10 x -9.6 - 1 (entry fee) - 3.616 = -100.616 (the margin and the fees).
    trade = run.trade
    assert (trade.state, trade.close_reason) == (TradeState.CLOSED, CloseReason.LIQUIDATED)
    assert trade.leg("tp1").state is LegState.CANCELLED
    liquidation = trade.leg("liquidation")
    assert liquidation.state is LegState.FILLED
    assert liquidation.orders[0].exchange_order_id == "liq-7"
    position = position_of(trade)
    assert (position.units_held, position.realized_pnl) == (d(0), d("-100.616"))


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
@pytest.mark.parametrize(
    ("price", "reason"),
    [("95", CloseReason.CLOSED_EXTERNALLY), ("90.3", CloseReason.LIQUIDATED)],
    ids=["inside", "past the liquidation price"],
)
def test_a_futures_position_found_gone_is_liquidated_when_the_price_is_past_its_liquidation(
    side: Side, price: str, reason: CloseReason
) -> None:
    run = start(futures(side))

    # Act: reconciliation finds it flat at this price (no word from the venue).
    run.feed(PositionGone(d(0), T0, d(mirrored(side, price))))

    # Assert: the isolated liquidation price is 90.36 (109.56).
    assert run.trade.close_reason is reason


def test_a_spot_position_gone_is_closed_externally_whatever_the_venue_says() -> None:
    decision = decide(spot_trade().trade, PositionGone(d(0), T0, d(1), liquidated=True))
    assert decision.trade.close_reason is CloseReason.CLOSED_EXTERNALLY


def test_futures_defaults_are_isolated_margin_at_leverage_one() -> None:
    spec = futures(Side.SELL, leverage="1", margin_mode=None)
    spec = dataclasses.replace(spec, leverage=LeverageSpec(MarketType.LINEAR))

    # Act
    run = start(spec)

    # Assert
    leverage = run.trade.spec.leverage
    assert (leverage.value, leverage.margin_mode) == (d(1), MarginMode.ISOLATED)
    assert run.book.futures.setting("acct-1", PERP.symbol).margin_mode is MarginMode.ISOLATED


@pytest.mark.parametrize(
    ("other", "conflict"),
    [
        (futures(Side.BUY), None),
        (futures(Side.SELL), "one position per symbol"),
        (futures(Side.BUY, leverage="5"), "share its leverage"),
        (futures(Side.BUY, margin_mode=MarginMode.CROSS), "share its leverage"),
    ],
    ids=["same side and setting", "other side", "other leverage", "other margin mode"],
)
def test_trades_on_one_futures_position_share_its_side_leverage_and_margin_mode(
    other: TradeSpec, conflict: str | None
) -> None:
    found = shared_position_conflict(futures_defaults(futures(Side.BUY)), [("t0", other)])
    if conflict is None:
        assert found is None
    else:
        assert found is not None
        assert conflict in found
