"""A SmartTrade using most of the spec at once, over gRPC on the paper venue, on a scripted
price path: a conditional trailing entry, three take-profit steps, and a trailing stop that
moves to breakeven after the first step, until the trailing stop closes it."""

from __future__ import annotations

from decimal import Decimal

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.service import Service

BTC = "BTC/USDT"


def leg(trade: pb.SmartTrade, leg_id: str) -> pb.Leg:
    return next(item for item in trade.legs if item.id == leg_id)


async def test_a_conditional_trailing_entry_three_steps_and_a_trailing_breakeven_stop_close(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    created = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_BUY,
            entry=pb.Entry(
                type=pb.ENTRY_TYPE_CONDITIONAL,
                units="1",
                trigger_price="95",
                trailing_percent="1",
            ),
            take_profit=pb.TakeProfit(
                steps=[
                    pb.TakeProfitStep(percent="5", volume_percent="30"),
                    pb.TakeProfitStep(percent="10", volume_percent="30"),
                    pb.TakeProfitStep(percent="15", volume_percent="40"),
                ]
            ),
            stop_loss=pb.StopLoss(percent="3", trailing_percent="5", move_to_breakeven=True),
        )
    )
    name = created.name
    assert created.state == pb.SMART_TRADE_STATE_PENDING

    for price in ("96", "95", "93", "92"):  # the trigger at 95, then the lowest is tracked
        await client.set_price(BTC, price)
    waiting = await client.get(name)
    assert waiting.state == pb.SMART_TRADE_STATE_PENDING
    assert leg(waiting, "entry").trailing_extreme == "92"

    await client.set_price(BTC, "93")  # 93 >= 92 x 1.01 = 92.92: bought at market
    active = await client.get(name)
    assert active.state == pb.SMART_TRADE_STATE_ACTIVE
    # 1 BTC at 93, fee 0.001 BTC: average 93 / 0.999 = 93.0930930930...
    assert active.position.average_entry_price == "93.093093093093"
    targets = [step.target_price for step in active.take_profit.steps]
    assert targets == ["97.75", "102.4", "107.06"]  # +5/10/15 % of the average, to the tick
    # The best of 3 % below the average (90.30) and 5 % below the best price (88.35).
    assert active.stop_loss.trigger_price == "90.3"
    assert [leg(active, f"tp{i}").state for i in (1, 2, 3)] == [pb.LEG_STATE_ORDER_PLACED] * 3

    await client.set_price(BTC, "97.75")  # step 1 fills: the stop moves to breakeven
    first = await client.get(name)
    assert leg(first, "tp1").state == pb.LEG_STATE_FILLED
    assert first.stop_loss.trigger_price == "93.09"  # above the trailing 97.75 x 0.95

    await client.set_price(BTC, "102.5")  # step 2 fills
    await client.set_price(BTC, "105")  # the trailing stop follows: 105 x 0.95 = 99.75
    second = await client.get(name)
    assert leg(second, "tp2").state == pb.LEG_STATE_FILLED
    assert second.stop_loss.trigger_price == "99.75"
    assert second.state == pb.SMART_TRADE_STATE_ACTIVE

    await client.set_price(BTC, "99.7")  # below the trailing stop: sold at market
    closed = await client.get(name)

    assert closed.state == pb.SMART_TRADE_STATE_CLOSED
    assert closed.close_reason == pb.CLOSE_REASON_STOP_LOSS
    assert leg(closed, "tp3").state == pb.LEG_STATE_CANCELLED
    assert leg(closed, "sl").orders[0].status == pb.ORDER_STATUS_FILLED
    assert Decimal(closed.position.units_held) < Decimal("0.00001")
    assert Decimal(closed.position.realized_pnl) > 0
    balances = await client.balances(account)
    assert Decimal(balances["BTC"]) < Decimal("0.00001")
    assert Decimal(balances["USDT"]) == 10000 + Decimal(closed.position.realized_pnl)
