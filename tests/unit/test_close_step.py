"""Close one take-profit step at market (issue 15, 3Commas' close_by_market), worked by hand.

BTC/USDT, lot 0.00001 BTC, tick 0.01, minimum 5 USDT; paper fees 0.1 %, paid in the currency
received. A BUY of 0.1 at 50,000 holds 0.0999 BTC (the fee is 0.0001 BTC) at an average of
5,000 / 0.0999 = 50,050.05005...; targets +2 % (51,051.05) and +4 % (52,052.05), 50/50, so
each step exits 0.04995. A SELL of 0.1 at 50,000 owes 0.1 BTC back; each step buys back
0.05 net, an order of 0.05 / 0.999 = 0.0500500... rounded up to the lot: 0.05006 (§2.9).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from smarttrade.domain.decide import decide
from smarttrade.domain.errors import ActionNotAllowed, InvalidSpec
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.menu import available_actions
from smarttrade.domain.messages import CancelOrder, CloseStep
from smarttrade.domain.model import Action, CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.values import OrderStatus, OrderType, Side
from tests.unit.builders import TWO_STEPS, market_entry, step, stop, trade_spec, wallet
from tests.unit.driver import Run
from tests.unit.test_futures_trades import PERP, futures, mirrored, start

D = Decimal


def opened(side: Side, steps: object = TWO_STEPS, stop_loss: object = None) -> Run:
    spec = trade_spec(side, market_entry(), steps, stop_loss)  # type: ignore[arg-type]
    return Run.start(spec, "50000", balances=wallet(side))


def orders_of(run: Run, leg_id: str) -> list[tuple[OrderType, Decimal, OrderStatus]]:
    return [(o.type, o.amount, o.status) for o in run.trade.leg(leg_id).orders]


def test_closing_step_one_of_a_buy_sells_its_volume_at_market_and_step_two_keeps_its_order() -> (
    None
):
    # Arrange
    run = opened(Side.BUY)
    run.tick("50500")
    tp2_order = run.trade.leg("tp2").orders[0].client_order_id

    # Act
    run.feed(CloseStep(run.now, 1))

    # Assert: the limit went first, then 0.04995 sold at 50,500.
    assert orders_of(run, "tp1") == [
        (OrderType.LIMIT, D("0.04995"), OrderStatus.CANCELLED),
        (OrderType.MARKET, D("0.04995"), OrderStatus.FILLED),
    ]
    assert run.trade.leg("tp1").state is LegState.FILLED
    assert [o.client_order_id for o in run.trade.leg("tp2").live_orders] == [tp2_order]
    assert run.trade.leg("tp2").amount == D("0.04995")
    position = position_of(run.trade)
    assert position.units_held == D("0.04995")
    assert position.proceeds == D("0.04995") * 50500  # 2,522.475 USDT before its fee
    assert run.trade.state is TradeState.ACTIVE
    assert Action.CLOSE_STEP in available_actions(run.trade)  # step 2 is still open


def test_closing_step_one_of_a_sell_buys_its_share_back_grossed_up_and_step_two_keeps_its_order() -> (  # noqa: E501
    None
):
    # Arrange
    run = opened(Side.SELL)
    run.tick("49500")
    tp2_order = run.trade.leg("tp2").orders[0].client_order_id

    # Act
    run.feed(CloseStep(run.now, 1))

    # Assert
    market = [p for p in run.placed() if p.leg_id == "tp1" and p.type is OrderType.MARKET]
    assert [(p.side, p.amount) for p in market] == [(Side.BUY, D("0.05006"))]
    assert run.trade.leg("tp1").state is LegState.FILLED
    assert [o.client_order_id for o in run.trade.leg("tp2").live_orders] == [tp2_order]
    # 0.05006 bought, 0.05000994 delivered net of its fee: 0.1 - 0.05000994 still owed
    # (0.00000994 of it is the surplus of rounding up, not the step's share).
    assert position_of(run.trade).units_held == D("0.04999006")
    assert run.trade.state is TradeState.ACTIVE


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_the_other_step_then_fills_and_the_trade_closes_as_take_profit(side: Side) -> None:
    run = opened(side)
    run.feed(CloseStep(run.now, 1))

    run.tick("52100" if side is Side.BUY else "47900")

    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert position_of(run.trade).units_held == 0


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_closing_the_last_open_step_closes_the_trade_as_take_profit(side: Side) -> None:
    run = opened(side)
    run.tick("51100" if side is Side.BUY else "48900")  # step 1 fills at its target
    assert run.trade.leg("tp1").state is LegState.FILLED

    run.feed(CloseStep(run.now, 2))

    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_a_step_already_filled_is_refused_naming_the_reason(side: Side) -> None:
    run = opened(side)
    run.tick("51100" if side is Side.BUY else "48900")

    with pytest.raises(ActionNotAllowed) as refused:
        decide(run.trade, CloseStep(run.now, 1))

    assert "CLOSE_STEP is not allowed while the trade is ACTIVE" in str(refused.value)
    assert "step 1 is already filled" in str(refused.value)


@pytest.mark.parametrize("number", [0, 3, 9])
def test_a_step_not_in_the_plan_is_an_invalid_argument_naming_the_step(number: int) -> None:
    run = opened(Side.BUY)

    with pytest.raises(InvalidSpec) as refused:
        decide(run.trade, CloseStep(run.now, number))

    assert [v.field for v in refused.value.violations] == ["step"]
    assert "1 to 2" in refused.value.violations[0].description


def test_a_step_already_closing_is_refused_and_nothing_is_sent_twice() -> None:
    run = opened(Side.BUY)
    first = run.feed(CloseStep(run.now, 1), auto=False)
    assert [type(i) for i in first.intents] == [CancelOrder]

    with pytest.raises(ActionNotAllowed) as refused:
        decide(run.trade, CloseStep(run.now, 1))

    assert "already closing at market" in str(refused.value)


def test_a_step_whose_limit_fills_while_its_cancel_is_in_flight_sells_nothing_more() -> None:
    # Arrange: Close Step asked, the cancel not yet at the venue when the price reaches
    # the target and the venue fills the limit.
    run = opened(Side.BUY)
    cancel = run.feed(CloseStep(run.now, 1), auto=False).intents[0]
    run.tick("51100")

    # Act
    run.execute(cancel)

    # Assert: the step is done by its limit, and no market order was sent for it.
    assert [p.type for p in run.placed() if p.leg_id == "tp1"] == [OrderType.LIMIT]
    assert run.trade.leg("tp1").state is LegState.FILLED
    assert position_of(run.trade).units_held == D("0.04995")


def test_a_trailing_last_step_closed_at_market_stops_watching_and_sells_at_once() -> None:
    steps = (step("50", percent="2"), step("50", percent="4", trailing="1"))
    run = opened(Side.BUY, steps)
    run.tick("50500")
    assert run.trade.leg("tp2").state is LegState.WAITING  # watching for 52,052.05

    run.feed(CloseStep(run.now, 2))

    assert orders_of(run, "tp2") == [(OrderType.MARKET, D("0.04995"), OrderStatus.FILLED)]
    assert run.trade.leg("tp2").state is LegState.FILLED
    assert run.trade.state is TradeState.ACTIVE  # step 1's limit at 51,051.05 works on
    run.tick("51100")
    assert (run.trade.state, run.trade.close_reason) == (TradeState.CLOSED, CloseReason.TAKE_PROFIT)


def test_a_step_closed_at_market_at_a_profit_moves_a_breakeven_stop_to_the_average() -> None:
    run = opened(Side.BUY, TWO_STEPS, stop(percent="5", breakeven=True))
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.price == D("47547.55")  # 5 % below 50,050.05
    run.tick("50500")

    run.feed(CloseStep(run.now, 1))  # sold at 50,500, above the average

    assert run.trade.stop_loss_leg.price == D("50050.05")  # the average, on the tick
    assert run.trade.state is TradeState.ACTIVE


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_a_step_closed_at_market_at_a_loss_leaves_a_breakeven_stop_where_it_was(
    side: Side,
) -> None:
    # Arrange: 2 % against the trade (a BUY at 49,000, a SELL at 51,000).
    run = opened(side, TWO_STEPS, stop(percent="5", breakeven=True))
    assert run.trade.stop_loss_leg is not None
    before = run.trade.stop_loss_leg.price
    run.tick(mirrored_price(side, "49000"))

    # Act: the trader cuts part of the loss.
    run.feed(CloseStep(run.now, 1))
    run.tick(mirrored_price(side, "49000"))

    # Assert: the stop did not move to the average (beyond the price: it would have sold
    # the rest at once); the trade goes on with step 2.
    assert run.trade.leg("tp1").state is LegState.FILLED
    assert run.trade.stop_loss_leg.price == before
    assert run.trade.state is TradeState.ACTIVE


def mirrored_price(side: Side, price: str) -> str:
    """A price as far from 50,000 on the other side, for a SELL."""
    return price if side is Side.BUY else str(100000 - Decimal(price))


def test_close_step_is_on_the_menu_only_while_a_step_is_open() -> None:
    run = Run.start(trade_spec(Side.BUY, market_entry()), "50000")  # no take profit

    assert Action.CLOSE_STEP not in available_actions(run.trade)
    with pytest.raises(ActionNotAllowed) as refused:
        decide(run.trade, CloseStep(run.now, 1))
    assert "no take-profit step is left open" in str(refused.value)


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_a_futures_step_closed_at_market_is_reduce_only(side: Side) -> None:
    # 10 BTC on the perpetual at 100 (10x): 5 per step, targets 110 and 120 (90 and 80).
    steps = (step("50", price=mirrored(side, "110")), step("50", price=mirrored(side, "120")))
    run = start(futures(side, steps))

    run.feed(CloseStep(run.now, 1))

    market = [p for p in run.placed() if p.leg_id == "tp1" and p.type is OrderType.MARKET]
    assert [(p.side, p.amount, p.reduce_only) for p in market] == [(side.opposite, D(5), True)]
    assert run.book.futures.holding("acct-1", PERP.symbol).units == D(5)
