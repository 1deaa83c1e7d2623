"""A spot SELL buys back its fee in one order (DESIGN §2.9, issue 12 §5): each buy-back of N
base units is one order of N / (1 - fee rate) rounded up to the lot, at that step's price,
so the fee the venue takes in base leaves nothing owed; what the rounding bought beyond N is
the surplus, reported on the position.

BTC/USDT, lot 0.00001 BTC, tick 0.01, minimum 5 USDT; paper fees 0.1 % unless said.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import Edit, OpenNow, OrderReported, ReduceFunds
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import base_fee_rate, position_of
from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side
from tests.unit.builders import limit_entry, market_entry, step, stop, trade_spec, wallet
from tests.unit.driver import T0, Run

D = Decimal
TWO_STEPS = (step("50", price="49000"), step("50", price="48000"))


def sold_01_at_50000(settings: PaperSettings | None = None) -> Run:
    spec = trade_spec(Side.SELL, market_entry("0.1"), TWO_STEPS, stop(price="52000"))
    return Run.start(spec, "50000", balances=wallet(Side.SELL), settings=settings)


def orders_of(run: Run, leg_id: str) -> list[tuple[OrderType, Decimal]]:
    return [(p.type, p.amount) for p in run.placed() if p.leg_id == leg_id]


def test_a_spot_sell_stop_buys_back_the_position_and_its_fee_in_one_order() -> None:
    # Arrange: 0.1 BTC owed; the stop is 52,000.
    run = sold_01_at_50000()

    # Act
    run.tick("52000")

    # Assert: one market order of 0.1 / 0.999 = 0.1001001... -> 0.10011, no top-up; it
    # brings back 0.10000989: nothing owed, 0.00000989 BTC of surplus.
    assert orders_of(run, "sl") == [(OrderType.MARKET, D("0.10011"))]
    assert run.trade.close_reason is CloseReason.STOP_LOSS
    position = position_of(run.trade)
    assert (position.units_held, position.surplus) == (D(0), D("0.00000989"))
    assert run.balance("BTC") == D("1.00000989")


def test_each_take_profit_step_of_a_spot_sell_is_one_grossed_up_order() -> None:
    # Arrange / Act: both targets fill.
    run = sold_01_at_50000()
    run.tick("49000")
    run.tick("48000")

    # Assert: 0.05 / 0.999 -> 0.05006 per step, nothing more.
    assert orders_of(run, "tp1") == [(OrderType.LIMIT, D("0.05006"))]
    assert orders_of(run, "tp2") == [(OrderType.LIMIT, D("0.05006"))]
    assert run.trade.state is TradeState.CLOSED
    position = position_of(run.trade)
    assert (position.units_held, position.surplus) == (D(0), D("0.00001988"))


def test_reduce_funds_of_a_spot_sell_shrinks_the_short_by_the_units_asked() -> None:
    # Arrange: 0.1 BTC owed.
    run = sold_01_at_50000()

    # Act
    run.feed(ReduceFunds(run.now, units=D("0.04")))

    # Assert: 0.04 / 0.999 -> 0.04005 bought back, 0.04000995 net: at least 0.04 less owed.
    assert orders_of(run, "reduce1") == [(OrderType.MARKET, D("0.04005"))]
    assert position_of(run.trade).units_held == D("0.05999005")


def test_the_fee_rate_is_the_one_the_trade_s_own_fills_showed() -> None:
    # Arrange / Act: an account paying 0.2 %: the sale shows it (10 USDT on 5,000).
    run = sold_01_at_50000(PaperSettings(Decimal("0.002"), Decimal("0.002")))

    # Assert: 0.05 / 0.998 = 0.0501002... -> 0.05011.
    assert base_fee_rate(run.trade, OrderType.LIMIT) == D("0.002")
    assert orders_of(run, "tp1") == [(OrderType.LIMIT, D("0.05011"))]


def test_a_fee_paid_in_another_currency_is_not_bought_back() -> None:
    # Arrange: the venue reports the sale's fee in BNB (a fee discount): buys cost no base.
    spec = trade_spec(Side.SELL, market_entry("0.1"), TWO_STEPS)
    run = Run.start(spec, "50000", balances=wallet(Side.SELL), auto=False)
    entry = run.trade.entry_leg.orders[0]
    fill = Fill("f1", D(50000), D("0.1"), D("0.01"), "BNB", T0)

    # Act
    run.feed(OrderReported(entry.client_order_id, OrderStatus.FILLED, T0, (fill,)), auto=False)

    # Assert: the steps buy back exactly their shares.
    assert base_fee_rate(run.trade, OrderType.LIMIT) == 0
    assert orders_of(run, "tp1") == [(OrderType.LIMIT, D("0.05"))]


def test_a_surplus_re_places_no_other_step_and_every_buy_back_over_buys_by_under_a_lot() -> None:
    # Arrange: 0.01176 BTC sold short by Open Now at 50,000 (a limit at 51,000 dropped); four
    # steps of 4, 13, 24 and 59 %, whose shares 0.00047, 0.00152, 0.00283 and 0.00694 go out
    # grossed up: 0.00048, 0.00153, 0.00284 and 0.00695. The first and last lie above the
    # price and buy back at once, 0.00000952 and 0.00000305 beyond their shares.
    steps = (
        step("4", price="50490"),
        step("13", percent="0.5"),
        step("24", price="49470"),
        step("59", price="50745"),
    )
    spec = trade_spec(Side.SELL, limit_entry("51000", units="0.01176"), steps)
    run = Run.start(spec, "50000", balances=wallet(Side.SELL))

    # Act
    run.feed(OpenNow(run.now))

    # Assert: the two steps left keep their orders (nothing re-placed because a step
    # filled), which bring back 0.00436563 where 0.00433743 is owed: their own rounding and
    # the surplus the filled steps already brought in.
    placed = [(p.leg_id, p.amount) for p in run.placed() if p.leg_id.startswith("tp")]
    assert placed == [
        ("tp1", D("0.00048")),
        ("tp2", D("0.00153")),
        ("tp3", D("0.00284")),
        ("tp4", D("0.00695")),
    ]
    assert position_of(run.trade).units_held == D("0.00433743")

    # Act: both fill.
    run.tick("49750")
    run.tick("49470")

    # Assert: nothing owed; the four buy-backs brought in 0.0000282 beyond the position,
    # under one lot (0.00001) per order.
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    position = position_of(run.trade)
    assert (position.units_held, position.surplus) == (D(0), D("0.0000282"))
    assert len(run.placed()) == 6  # the entry's limit and market orders, one per step


def test_after_reduce_funds_the_step_left_buys_back_what_is_owed_not_the_surplus_again() -> None:
    # Arrange: the first step bought back 0.05006 -> 0.05000994, 0.00000994 beyond its
    # share; Reduce Funds of 0.02 frees the second step's order and buys back 0.02003.
    run = sold_01_at_50000()
    run.tick("49000")
    run.feed(ReduceFunds(run.now, units=D("0.02")))
    owed = position_of(run.trade).units_held
    assert owed == D("0.02998009")

    # Act
    run.tick("48900")

    # Assert: the second step is re-placed for what is owed, 0.02998009 / 0.999 -> 0.03002
    # (it used to ask for 0.00001 more than is owed, which no budget allowed: no order).
    assert orders_of(run, "tp2") == [
        (OrderType.LIMIT, D("0.05006")),
        (OrderType.LIMIT, D("0.03002")),
    ]
    run.tick("48000")
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    position = position_of(run.trade)
    assert (position.units_held, position.surplus) == (D(0), D("0.00000989"))


def test_an_edited_sell_step_is_re_placed_for_what_is_owed_after_a_step_s_surplus() -> None:
    # Arrange: the first step bought back 0.00000994 beyond its share; 0.04999006 is owed.
    run = sold_01_at_50000()
    run.tick("49000")
    steps = (step("50", price="49000"), step("50", price="47500"))

    # Act: the second target moves to 47,500.
    run.feed(Edit(run.now, replace(run.trade.spec, take_profit=steps), frozenset({"take_profit"})))

    # Assert: its order is re-placed there for what is owed, 0.04999006 / 0.999 -> 0.05005
    # (it used to ask for the first step's surplus again: cancelled, never re-placed).
    assert orders_of(run, "tp2") == [
        (OrderType.LIMIT, D("0.05006")),
        (OrderType.LIMIT, D("0.05005")),
    ]
    run.tick("47500")
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT
    assert position_of(run.trade).units_held == 0
