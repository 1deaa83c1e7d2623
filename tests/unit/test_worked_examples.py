"""Worked examples with numbers: take profit, trailing, stops (DESIGN §2.2-§2.4).

BTC/USDT, lot 0.00001 BTC, tick 0.01, minimum 5 USDT; paper fees 0.1%, paid in the currency
received (a buy pays in BTC, a sell in USDT). Every example also checks that no order sent
was zero, off the lot or tick grid, or below the market minimum.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.messages import EventType
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.values import OrderType, Side
from tests.unit.builders import (
    dust_orders,
    market_entry,
    step,
    stop,
    trade_spec,
    trailing_entry,
    wallet,
)
from tests.unit.driver import Run

D = Decimal


def start(side: Side, *args: object, **kwargs: object) -> Run:
    return Run.start(trade_spec(side, *args, **kwargs), "50000", balances=wallet(side))  # type: ignore[arg-type]


def amounts(run: Run) -> list[tuple[str, Decimal]]:
    return [(p.leg_id, p.amount) for p in run.placed()]


# ---- a 3-step take profit, fees included -------------------------------------------------


def test_a_buy_with_three_targets_sells_30_30_40_of_the_coins_held_after_the_fee() -> None:
    # Arrange: buy 0.1 at 50,000 = 5,000 USDT; fee 0.0001 BTC, so 0.0999 BTC held and the
    # average entry is 5,000 / 0.0999 = 50,050.05005...
    steps = (step("30", price="51000"), step("30", price="52000"), step("40", price="53000"))
    run = start(Side.BUY, market_entry("0.1"), steps)

    # Act
    for price in ("51000", "52000", "53000"):
        run.tick(price)

    # Assert: 30% of 0.0999 = 0.02997 (twice); the last takes the rest, 0.03996.
    assert amounts(run) == [
        ("entry", D("0.1")),
        ("tp1", D("0.02997")),
        ("tp2", D("0.02997")),
        ("tp3", D("0.03996")),
    ]
    position = position_of(run.trade)
    assert position.average_entry_price == D(5000) / D("0.0999")
    assert (position.units_bought, position.units_sold, position.units_held) == (
        D("0.0999"),
        D("0.0999"),
        D(0),
    )
    # Proceeds 1,528.47 + 1,558.44 + 2,117.88 = 5,204.79; fees 0.1% = 5.20479 USDT;
    # cost of what was sold 50,050.05... x 0.0999 = 5,000. PnL = 204.79 - 5.20479.
    assert position.realized_pnl == D("199.58521")
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert (run.balance("BTC"), run.balance("USDT")) == (D(0), D("100199.58521"))
    assert dust_orders(run.placements) == []


def test_a_sell_with_three_targets_buys_back_each_share_and_its_fee_in_one_order() -> None:
    # Arrange: sell 0.1 at 50,000: 0.1 BTC owed, fee 5 USDT (0.1 %), average entry 50,000.
    steps = (step("30", price="49000"), step("30", price="48000"), step("40", price="47000"))
    run = start(Side.SELL, market_entry("0.1"), steps)

    # Act
    for price in ("49000", "48000", "47000"):
        run.tick(price)

    # Assert: each share N is bought back in one order of N / 0.999 rounded up to the lot:
    # 0.03 / 0.999 = 0.030030... -> 0.03004; 0.04 / 0.999 = 0.040040... -> 0.04005.
    assert amounts(run) == [
        ("entry", D("0.1")),
        ("tp1", D("0.03004")),
        ("tp2", D("0.03004")),
        ("tp3", D("0.04005")),
    ]
    # They bring back 0.03000996 + 0.03000996 + 0.04000995 = 0.10002987: nothing owed, a
    # surplus of 0.00002987 BTC stays in the account.
    position = position_of(run.trade)
    assert position.average_entry_price == D(50000)
    assert (position.units_held, position.surplus) == (D(0), D("0.00002987"))
    # Bought back for 1,471.96 + 1,441.92 + 1,882.35 = 4,796.23 (the surplus included);
    # PnL = 5,000 - 4,796.23 - 5 (the entry's fee) = 198.77, what the account made in USDT.
    assert position.realized_pnl == D("198.77")
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert (run.balance("BTC"), run.balance("USDT")) == (D("1.00002987"), D("100198.77"))
    assert dust_orders(run.placements) == []


def test_the_last_target_takes_the_remainder_so_only_a_fraction_of_a_lot_is_left() -> None:
    # Arrange: 0.12345 bought, fee 0.00012345 BTC: 0.12332655 held, off the 0.00001 lot.
    steps = (step("30", price="51000"), step("30", price="52000"), step("40", price="53000"))
    run = start(Side.BUY, market_entry("0.12345"), steps)

    # Act
    run.tick("53000")

    # Assert: cuts at floor(0.12332655 x 30%) = 0.03699 and floor(x 60%) = 0.07399; the
    # last step takes 0.12332655 - 0.07399 = 0.04933655, sent as 0.04933.
    assert amounts(run)[1:] == [("tp1", D("0.03699")), ("tp2", D("0.03700")), ("tp3", D("0.04933"))]
    assert position_of(run.trade).units_held == D("0.00000655")  # below one lot
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert dust_orders(run.placements) == []


# ---- trailing ----------------------------------------------------------------------------


def test_a_trailing_buy_entry_buys_when_the_price_rises_1_percent_off_its_lowest() -> None:
    # Arrange: trail 1% from the lowest price since creation.
    run = start(Side.BUY, trailing_entry("1"))

    # Act / Assert: lowest 49,000, so it buys at 49,000 x 1.01 = 49,490, not at 49,489.99.
    for price in ("49500", "49000", "49489.99"):
        run.tick(price)
        assert run.placed() == []
    run.tick("49490")
    assert amounts(run) == [("entry", D("0.1"))]
    assert run.trade.state is TradeState.ACTIVE
    # 4,949 USDT for 0.0999 BTC net of the fee.
    assert position_of(run.trade).average_entry_price == D(4949) / D("0.0999")


def test_a_trailing_sell_entry_sells_when_the_price_falls_1_percent_off_its_highest() -> None:
    run = start(Side.SELL, trailing_entry("1"))

    # Highest 51,000, so it sells at 51,000 x 0.99 = 50,490, not at 50,490.01.
    for price in ("50500", "51000", "50490.01"):
        run.tick(price)
        assert run.placed() == []
    run.tick("50490")
    assert amounts(run) == [("entry", D("0.1"))]
    assert position_of(run.trade).average_entry_price == D(50490)


def test_a_trailing_buy_target_sells_1_percent_off_the_highest_once_2_percent_up() -> None:
    # Arrange: average 50,050.05...; target +2% = 51,051.05 (on the tick); trail 1%.
    run = start(Side.BUY, market_entry(), (step("100", percent="2", trailing="1"),))

    # Act / Assert: no limit order is placed for a trailing target.
    run.tick("51051.04")
    assert [p.leg_id for p in run.placed()] == ["entry"]
    run.tick("51051.05")
    assert EventType.TRAILING_ACTIVATED in run.event_types()
    run.tick("52000")  # highest 52,000: exit at 52,000 x 0.99 = 51,480
    run.tick("51480.01")
    assert run.trade.state is TradeState.ACTIVE
    run.tick("51480")
    assert run.placed()[-1].type is OrderType.MARKET
    assert amounts(run)[-1] == ("tp1", D("0.0999"))
    # 0.0999 x 51,480 = 5,142.852; fee 5.142852; cost 5,000.
    assert position_of(run.trade).realized_pnl == D("137.709148")
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT


def test_a_trailing_sell_target_buys_back_1_percent_off_the_lowest_once_2_percent_down() -> None:
    # Arrange: sold at 50,000; target 2% below = 49,000; trail 1%.
    run = start(Side.SELL, market_entry(), (step("100", percent="2", trailing="1"),))

    # Act: lowest 48,000, so it buys back at 48,000 x 1.01 = 48,480.
    for price in ("49000", "48000", "48479.99"):
        run.tick(price)
    assert run.trade.state is TradeState.ACTIVE
    run.tick("48480")

    # Assert: 0.1 / 0.999 -> 0.10011 bought back at market for 4,853.3328 USDT, bringing
    # back 0.10000989 net of the fee: nothing owed. PnL = 5,000 - 4,853.3328 - 5.
    assert amounts(run)[-1] == ("tp1", D("0.10011"))
    position = position_of(run.trade)
    assert (position.units_held, position.surplus) == (D(0), D("0.00000989"))
    assert position.realized_pnl == D("141.6672")
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT


@pytest.mark.parametrize(
    ("side", "prices", "stops", "exit_price"),
    [
        # Highest since opening 50,000 -> 51,000 -> 52,000: stop 2% below = 49,000, 49,980,
        # 50,960 (above the 5% stop at 47,547.55); it fires at 50,960.
        (Side.BUY, ("51000", "52000", "51500"), ("49980", "50960"), "50960"),
        # Lowest 50,000 -> 49,000 -> 48,000: stop 2% above = 51,000, 49,980, 48,960.
        (Side.SELL, ("49000", "48000", "48500"), ("49980", "48960"), "48960"),
    ],
    ids=["buy", "sell"],
)
def test_a_trailing_stop_follows_the_best_price_and_fires_on_the_way_back(
    side: Side, prices: tuple[str, ...], stops: tuple[str, ...], exit_price: str
) -> None:
    # Arrange
    run = start(side, market_entry(), (), stop(percent="5", trailing="2"))
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D(49000 if side is Side.BUY else 51000)

    # Act
    for price in prices:
        run.tick(price)
    moved = [e.price for e in run.events if e.type is EventType.STOP_MOVED]
    run.tick(exit_price)

    # Assert
    assert moved == [D(price) for price in stops]
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    exit_order = run.trade.leg("sl").orders[0]
    assert exit_order.type is OrderType.MARKET
    assert exit_order.average_price == D(exit_price)
    assert dust_orders(run.placements) == []


# ---- breakeven ---------------------------------------------------------------------------


def test_a_buy_stop_moves_to_the_average_entry_once_the_first_target_fills() -> None:
    # Arrange: average 50,050.05...; targets 51,000 and 53,000 (half each); stop 48,000.
    run = start(
        Side.BUY,
        market_entry(),
        (step("50", price="51000"), step("50", price="53000")),
        stop(price="48000", breakeven=True),
    )

    # Act
    run.tick("51000")  # the first target sells 0.04995

    # Assert: the stop is now the average on the tick, 50,050.05.
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D("50050.05")
    run.tick("50050.06")
    assert run.trade.state is TradeState.ACTIVE
    run.tick("50050.05")
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    # 0.04995 x 51,000 = 2,547.45 and 0.04995 x 50,050.05 = 2,499.9999975; fees 0.1% of
    # both = 5.0474499975; cost 5,000. PnL = 5,047.4499975 - 5,000 - 5.0474499975.
    assert position_of(run.trade).realized_pnl == D("42.4025475025")


def test_a_sell_stop_moves_to_the_average_entry_once_the_first_target_fills() -> None:
    # Arrange: sold at 50,000; targets 49,000 and 47,000; stop 52,000.
    run = start(
        Side.SELL,
        market_entry(),
        (step("50", price="49000"), step("50", price="47000")),
        stop(price="52000", breakeven=True),
    )

    # Act: the first target buys back 0.05 (0.04995 net of the fee).
    run.tick("49000")

    # Assert
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D(50000)
    run.tick("50000")
    # The stop buys back all that is owed: 0.1 - 0.04995 = 0.05005 (0.05 of it was the
    # target's share, 0.00005 its fee, too small to buy back alone).
    assert amounts(run)[-1] == ("sl", D("0.05005"))
    assert run.trade.close_reason is CloseReason.STOP_LOSS


# ---- a stop with a timeout ---------------------------------------------------------------

TIMEOUT_CASES = [(Side.BUY, "48000", "47900", "48100"), (Side.SELL, "52000", "52100", "51900")]


@pytest.mark.parametrize(("side", "trigger", "beyond", "back"), TIMEOUT_CASES, ids=["buy", "sell"])
def test_a_stop_with_a_30s_timeout_interrupted_at_29s_does_not_fire(
    side: Side, trigger: str, beyond: str, back: str
) -> None:
    # Arrange
    run = start(side, market_entry(), (), stop(price=trigger, timeout=30))
    run.tick(beyond)  # t = 1 s: beyond the trigger
    run.wait(28)  # t = 29 s: 28 s beyond

    # Act
    run.tick(back)  # t = 30 s: back inside after 29 s
    run.tick(beyond)  # t = 31 s: beyond again, the timer restarts
    run.wait(29)  # t = 60 s: 29 s of the new breach

    # Assert
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.leg("sl").state is LegState.WAITING


@pytest.mark.parametrize(("side", "trigger", "beyond", "back"), TIMEOUT_CASES, ids=["buy", "sell"])
def test_a_stop_with_a_30s_timeout_fires_after_30s_beyond_the_trigger(
    side: Side, trigger: str, beyond: str, back: str
) -> None:
    # Arrange
    run = start(side, market_entry(), (), stop(price=trigger, timeout=30))
    run.tick(beyond)  # t = 1 s
    run.wait(29)  # t = 30 s: 29 s beyond
    assert run.trade.state is TradeState.ACTIVE

    # Act
    run.tick(beyond, seconds=1)  # t = 31 s: 30 s beyond, without interruption

    # Assert
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    assert run.trade.leg("sl").orders[0].average_price == D(beyond)
