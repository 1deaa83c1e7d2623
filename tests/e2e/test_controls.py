"""Over gRPC on the paper venue: the trader's controls of issue 15 — Close Step, a stop-limit
that never strands a trade (its fallback; Close at Market and Cancel from CLOSING), and a
time limit on the position — in the states where they apply, and refused where they do not.

BTC/USDT at 1,000: a BUY of 10 holds 9.99 (the 0.1 % fee in BTC), 50/50 targets at 1,050 and
1,100, so 4.995 per step. A SELL of 10 owes 10 back; its buy-backs are grossed up (§2.9).
"""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, eventually, request_id, rich_error

BTC = "BTC/USDT"
SIDES = {"BUY": pb.SIDE_BUY, "SELL": pb.SIDE_SELL}


def mirrored(side: int, price: str) -> str:
    """A price as far from 1,000 on the other side for a SELL."""
    return price if side == pb.SIDE_BUY else str(2000 - int(price))


async def opened(
    client: Client,
    side: int,
    stop_loss: pb.StopLoss | None = None,
    time_limit: Duration | None = None,
) -> pb.SmartTrade:
    account = await client.paper_account(USDT="100000", BTC="100")
    await client.set_price(BTC, "1000")
    steps = [
        pb.TakeProfitStep(price=mirrored(side, "1050"), volume_percent="50"),
        pb.TakeProfitStep(price=mirrored(side, "1100"), volume_percent="50"),
    ]
    trade = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=side,  # type: ignore[arg-type]
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
            take_profit=pb.TakeProfit(steps=steps),
            stop_loss=stop_loss,
            time_limit=time_limit,
        )
    )
    assert trade.state == pb.SMART_TRADE_STATE_ACTIVE
    return trade


async def close_step(client: Client, name: str, step: int) -> pb.SmartTrade:
    response = await client.trades.CloseSmartTradeStep(
        trades_pb.CloseSmartTradeStepRequest(name=name, step=step, request_id=request_id()),
        metadata=client.metadata,
    )
    return response.smart_trade


async def refused(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return rich_error(error.value).code, error.value.details() or ""


def leg(trade: pb.SmartTrade, leg_id: str) -> pb.Leg:
    return next(item for item in trade.legs if item.id == leg_id)


# ---- Close Step ----------------------------------------------------------------------------


@pytest.mark.parametrize("side", list(SIDES.values()), ids=list(SIDES))
async def test_close_step_sells_that_step_at_market_and_the_other_keeps_working(
    service: Service, side: int
) -> None:
    client = service.a
    trade = await opened(client, side)
    assert pb.SMART_TRADE_ACTION_CLOSE_STEP in trade.available_actions

    closed = await close_step(client, trade.name, 1)

    tp1, tp2 = leg(closed, "tp1"), leg(closed, "tp2")
    assert [(o.type, o.status) for o in tp1.orders] == [
        (pb.ORDER_TYPE_LIMIT, pb.ORDER_STATUS_CANCELLED),
        (pb.ORDER_TYPE_MARKET, pb.ORDER_STATUS_FILLED),
    ]
    assert tp1.state == pb.LEG_STATE_FILLED
    assert [(o.status, o.price) for o in tp2.orders] == [
        (pb.ORDER_STATUS_OPEN, mirrored(side, "1100"))
    ]
    assert closed.state == pb.SMART_TRADE_STATE_ACTIVE
    if side == pb.SIDE_BUY:
        assert tp1.orders[1].amount == "4.995"
        assert closed.position.units_held == "4.995"


async def test_close_step_is_refused_for_a_filled_step_and_a_step_not_in_the_plan(
    service: Service,
) -> None:
    client = service.a
    trade = await opened(client, pb.SIDE_BUY)
    await client.set_price(BTC, "1050")  # step 1 fills at its target

    code, details = await refused(close_step(client, trade.name, 1))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "step 1 is already filled" in details
    code, _ = await refused(close_step(client, trade.name, 3))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await refused(close_step(client, trade.name, 0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_close_step_is_refused_while_pending(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await client.set_price(BTC, "1000")
    trade = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_BUY,
            entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="10", limit_price="900"),
            take_profit=pb.TakeProfit(
                steps=[pb.TakeProfitStep(price="1100", volume_percent="100")]
            ),
        )
    )
    assert pb.SMART_TRADE_ACTION_CLOSE_STEP not in trade.available_actions

    code, details = await refused(close_step(client, trade.name, 1))

    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "CLOSE_STEP is not allowed while the trade is PENDING" in details


# ---- a stop-limit that never strands a trade -------------------------------------------------


def stop_limit(side: int, **fallback: object) -> pb.StopLoss:
    """Trigger 950, limit 940 (SELL: 1,050 and 1,060)."""
    return pb.StopLoss(
        price=mirrored(side, "950"),
        order_type=pb.ORDER_TYPE_LIMIT,
        limit_price=mirrored(side, "940"),
        **fallback,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("side", list(SIDES.values()), ids=list(SIDES))
async def test_a_resting_stop_limit_falls_back_to_market_when_the_price_runs_past_it(
    service: Service, side: int
) -> None:
    client = service.a
    trade = await opened(client, side, stop_limit(side, fallback_percent="1"))
    await client.set_price(BTC, mirrored(side, "935"))  # past the limit: it rests
    closing = await client.get(trade.name)
    assert closing.state == pb.SMART_TRADE_STATE_CLOSING
    assert list(closing.available_actions) == [
        pb.SMART_TRADE_ACTION_REFRESH,
        pb.SMART_TRADE_ACTION_CLOSE_AT_MARKET,
        pb.SMART_TRADE_ACTION_SHARE,
        pb.SMART_TRADE_ACTION_CANCEL,
    ]

    await client.set_price(BTC, mirrored(side, "925"))  # 1 % past 940 is 930.6 (SELL: 1,070.6)

    closed = await client.get(trade.name)
    assert closed.state == pb.SMART_TRADE_STATE_CLOSED
    assert closed.close_reason == pb.CLOSE_REASON_STOP_LOSS
    assert [(o.type, o.status) for o in leg(closed, "sl").orders] == [
        (pb.ORDER_TYPE_LIMIT, pb.ORDER_STATUS_CANCELLED),
        (pb.ORDER_TYPE_MARKET, pb.ORDER_STATUS_FILLED),
    ]


async def test_a_resting_stop_limit_falls_back_to_market_after_its_time(service: Service) -> None:
    client = service.a
    trade = await opened(
        client, pb.SIDE_BUY, stop_limit(pb.SIDE_BUY, fallback_after=Duration(seconds=1))
    )
    await client.set_price(BTC, "935")
    assert (await client.get(trade.name)).state == pb.SMART_TRADE_STATE_CLOSING

    closed = await eventually(client, trade.name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED)

    assert closed.close_reason == pb.CLOSE_REASON_STOP_LOSS
    assert leg(closed, "sl").orders[-1].average_price == "935"


@pytest.mark.parametrize("side", list(SIDES.values()), ids=list(SIDES))
async def test_close_at_market_from_closing_cancels_the_resting_stop_limit_then_sells(
    service: Service, side: int
) -> None:
    client = service.a
    trade = await opened(client, side, stop_limit(side))
    await client.set_price(BTC, mirrored(side, "935"))

    response = await client.trades.CloseSmartTrade(
        trades_pb.CloseSmartTradeRequest(name=trade.name, request_id=request_id()),
        metadata=client.metadata,
    )

    await client.set_price(BTC, mirrored(side, "935"))  # the sandbox settles what was sent
    closed = await client.get(response.smart_trade.name)
    assert closed.state == pb.SMART_TRADE_STATE_CLOSED
    assert closed.close_reason == pb.CLOSE_REASON_CLOSED_AT_MARKET
    assert [o.status for o in leg(closed, "sl").orders] == [pb.ORDER_STATUS_CANCELLED]
    assert [o.type for o in leg(closed, "close").orders] == [pb.ORDER_TYPE_MARKET]


async def test_cancel_from_closing_cancels_the_resting_stop_limit_and_keeps_the_coins(
    service: Service,
) -> None:
    client = service.a
    trade = await opened(client, pb.SIDE_BUY, stop_limit(pb.SIDE_BUY))
    await client.set_price(BTC, "935")

    response = await client.trades.CancelSmartTrade(
        trades_pb.CancelSmartTradeRequest(name=trade.name, request_id=request_id()),
        metadata=client.metadata,
    )

    cancelled = response.smart_trade
    assert cancelled.state == pb.SMART_TRADE_STATE_CANCELLED
    assert cancelled.close_reason == pb.CLOSE_REASON_UNSPECIFIED
    assert cancelled.position.units_sold == "0"


async def test_close_at_market_is_refused_while_a_market_exit_is_in_flight(
    service: Service,
) -> None:
    # A CLOSED trade stands in for the refusal outside the menu: the in-flight market exit
    # itself is too short-lived on paper to catch over gRPC (see the unit tests).
    client = service.a
    trade = await opened(client, pb.SIDE_BUY, time_limit=None)
    close = trades_pb.CloseSmartTradeRequest(name=trade.name, request_id=request_id())
    await client.trades.CloseSmartTrade(close, metadata=client.metadata)

    again = trades_pb.CloseSmartTradeRequest(name=trade.name, request_id=request_id())
    code, _ = await refused(client.trades.CloseSmartTrade(again, metadata=client.metadata))

    assert code == grpc.StatusCode.FAILED_PRECONDITION


# ---- the time limit ------------------------------------------------------------------------


@pytest.mark.parametrize("side", list(SIDES.values()), ids=list(SIDES))
async def test_the_time_limit_closes_the_position_at_market_with_its_own_reason(
    service: Service, side: int
) -> None:
    client = service.a
    trade = await opened(client, side, time_limit=Duration(seconds=1))
    assert trade.time_limit.seconds == 1
    assert trade.HasField("time_limit_expire_time")

    closed = await eventually(client, trade.name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED)

    assert closed.close_reason == pb.CLOSE_REASON_TIME_LIMIT
    assert [o.type for o in leg(closed, "time-limit").orders] == [pb.ORDER_TYPE_MARKET]


async def test_the_time_limit_is_editable_while_active_and_refused_out_of_range(
    service: Service,
) -> None:
    client = service.a
    trade = await opened(client, pb.SIDE_BUY)

    def edit(limit: Duration) -> trades_pb.UpdateSmartTradeRequest:
        return trades_pb.UpdateSmartTradeRequest(
            smart_trade=pb.SmartTrade(name=trade.name, time_limit=limit),
            update_mask=FieldMask(paths=["time_limit"]),
            request_id=request_id(),
        )

    edited = await client.trades.UpdateSmartTrade(
        edit(Duration(seconds=3600)), metadata=client.metadata
    )
    assert edited.smart_trade.time_limit.seconds == 3600
    assert "time_limit" in edited.smart_trade.editable_fields

    for bad in (Duration(seconds=0), Duration(seconds=1, nanos=5), Duration(seconds=400 * 86400)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.trades.UpdateSmartTrade(edit(bad), metadata=client.metadata)
        details = rich_error(error.value)
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT
        assert list(details.fields) == ["smart_trade.time_limit"]
