"""Over gRPC on the paper venue: edits in the middle of a trade, the examples a reference run
found wrong (issue 12, §4b; DESIGN §2.7). The trade is shown only the ticks that leave its
wake band; an action is decided at the venue's latest price all the same."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id, rich_error

BTC = "BTC/USDT"


async def edit(client: Client, trade: pb.SmartTrade, path: str, **fields: object) -> pb.SmartTrade:
    changed = pb.SmartTrade(name=trade.name, **fields)  # type: ignore[arg-type]
    response = await client.trades.UpdateSmartTrade(
        trades_pb.UpdateSmartTradeRequest(
            smart_trade=changed, update_mask=FieldMask(paths=[path]), request_id=request_id()
        ),
        metadata=client.metadata,
    )
    return response.smart_trade


async def bought_10_at_1000(
    client: Client, take_profit: pb.TakeProfit, stop_loss: pb.StopLoss | None = None
) -> pb.SmartTrade:
    account = await client.paper_account(USDT="100000")
    await client.set_price(BTC, "1000")
    trade = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_BUY,
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
            take_profit=take_profit,
            stop_loss=stop_loss,
        )
    )
    assert trade.state == pb.SMART_TRADE_STATE_ACTIVE
    return trade


async def test_a_take_profit_edited_into_a_trailing_step_drops_its_limit_and_trails(
    service: Service,
) -> None:
    # Arrange: 9.99 held; TP 1,050 x 100 % working as a limit.
    client = service.a
    trade = await bought_10_at_1000(
        client, pb.TakeProfit(steps=[pb.TakeProfitStep(price="1050", volume_percent="100")])
    )

    # Act: 1,020 x 100 % trailing 0.5 %; ticks 1,025, 1,045, 1,030.
    trailing = pb.TakeProfit(
        steps=[pb.TakeProfitStep(price="1020", volume_percent="100", trailing_percent="0.5")]
    )
    await edit(client, trade, "take_profit", take_profit=trailing)
    for price in ("1025", "1045", "1030"):
        await client.set_price(BTC, price)

    # Assert: 9.99 sold at market at 1,030; the 1,050 limit cancelled.
    closed = await client.get(trade.name)
    assert closed.state == pb.SMART_TRADE_STATE_CLOSED
    assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    tp1 = next(leg for leg in closed.legs if leg.id == "tp1")
    limit, market = tp1.orders
    assert (limit.price, limit.status) == ("1050", pb.ORDER_STATUS_CANCELLED)
    assert (market.type, market.amount, market.average_price) == (
        pb.ORDER_TYPE_MARKET,
        "9.99",
        "1030",
    )


async def test_a_sell_stop_is_edited_against_the_average_entry_not_the_trigger(
    service: Service,
) -> None:
    # Arrange: a SELL conditional at 990 (from 1,000), opened by a gap to 950.
    client = service.a
    account = await client.paper_account(BTC="2", USDT="1000")
    await client.set_price(BTC, "1000")
    trade = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_SELL,
            entry=pb.Entry(type=pb.ENTRY_TYPE_CONDITIONAL, units="1", trigger_price="990"),
            stop_loss=pb.StopLoss(price="1100"),
        )
    )
    await client.set_price(BTC, "950")

    # Act: the stop to 970, above the average 950.
    edited = await edit(client, trade, "stop_loss", stop_loss=pb.StopLoss(price="970"))

    # Assert
    assert edited.stop_loss.trigger_price == "970"
    await client.set_price(BTC, "970")
    stopped = await client.get(trade.name)
    assert stopped.close_reason == pb.CLOSE_REASON_STOP_LOSS


async def test_a_buy_stop_moved_into_profit_is_judged_at_the_latest_price(
    service: Service,
) -> None:
    # Arrange: bought at 1,000; 1,040 is inside the trade's band (stop 950, TP 1,100), so
    # the trade itself was not shown it.
    client = service.a
    trade = await bought_10_at_1000(
        client,
        pb.TakeProfit(steps=[pb.TakeProfitStep(price="1100", volume_percent="100")]),
        pb.StopLoss(price="950"),
    )
    await client.set_price(BTC, "1040")

    # Act: the stop to 1,020 (below 1,040, above the average 1,001).
    edited = await edit(client, trade, "stop_loss", stop_loss=pb.StopLoss(price="1020"))

    # Assert: accepted; a stop at 1,045, above the price, is refused naming the field.
    assert edited.stop_loss.trigger_price == "1020"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await edit(client, trade, "stop_loss", stop_loss=pb.StopLoss(price="1045"))
    error = rich_error(refused.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == {
        "smart_trade.stop_loss.price": "puts the stop at 1045, not below the last price 1040"
    }
