"""request_id (AIP-155) and etag (AIP-154) over gRPC: retries and races make one effect."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id, rich_error

BTC = "BTC/USDT"


def limit_buy(account: str, price: str = "90") -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="1", limit_price=price),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(percent="10", volume_percent="100")]),
    )


async def create(client: Client, trade: pb.SmartTrade, key: str) -> bytes:
    response = await client.trades.CreateSmartTrade(
        trades_pb.CreateSmartTradeRequest(smart_trade=trade, request_id=key),
        metadata=client.metadata,
    )
    return response.SerializeToString(deterministic=True)


async def entry_orders(client: Client) -> list[str]:
    listed = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=client.metadata
    )
    return [o.client_order_id for t in listed.smart_trades for o in t.legs[0].orders]


async def test_creating_twice_with_one_request_id_makes_one_trade_and_one_order(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    key = request_id()

    first = await create(client, limit_buy(account), key)
    await client.set_price(BTC, "101")  # the trade changes between the two calls
    second = await create(client, limit_buy(account), key)

    assert first == second
    assert len(await entry_orders(client)) == 1


async def test_concurrent_creates_with_one_request_id_make_one_trade_with_identical_answers(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    key = request_id()

    answers = await asyncio.gather(*(create(client, limit_buy(account), key) for _ in range(5)))

    assert len(set(answers)) == 1
    assert len(await entry_orders(client)) == 1
    balances = await client.paper.GetPaperBalances(
        __import__(
            "smarttrade.v1.paper_market_service_pb2", fromlist=["_"]
        ).GetPaperBalancesRequest(account=account),
        metadata=client.metadata,
    )
    usdt = next(b for b in balances.balances if b.currency == "USDT")
    assert usdt.locked == "90"  # one resting limit order at the venue


async def test_one_request_id_with_a_different_request_is_invalid_argument(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    key = request_id()
    await create(client, limit_buy(account, "90"), key)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(client, limit_buy(account, "91"), key)

    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in error.fields


async def test_two_edits_with_the_same_etag_one_wins_the_other_is_aborted_untouched(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(limit_buy(account, "90"))

    def edit(price: str) -> trades_pb.UpdateSmartTradeRequest:
        changed = pb.SmartTrade(name=trade.name, etag=trade.etag)
        changed.entry.CopyFrom(trade.entry)
        changed.entry.limit_price = price
        return trades_pb.UpdateSmartTradeRequest(
            smart_trade=changed,
            update_mask=FieldMask(paths=["entry.limit_price"]),
            request_id=request_id(),
        )

    outcomes = await asyncio.gather(
        client.trades.UpdateSmartTrade(edit("91"), metadata=client.metadata),
        client.trades.UpdateSmartTrade(edit("92"), metadata=client.metadata),
        return_exceptions=True,
    )

    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert len(lost) == 1
    assert lost[0].code() == grpc.StatusCode.ABORTED
    assert rich_error(lost[0]).reason == "ETAG_MISMATCH"
    final = await client.get(trade.name)
    winner = won[0].smart_trade.entry.limit_price
    orders = final.legs[0].orders
    # The winner's edit replaced the entry order once; the loser sent nothing.
    assert [o.price for o in orders] == ["90", winner]
    assert orders[0].status == pb.ORDER_STATUS_CANCELLED
