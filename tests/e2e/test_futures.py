"""Futures over gRPC: until a venue adapter runs them (positions, reduce-only exits, leverage,
liquidation), a futures trade is refused at creation instead of being run as a spot one."""

from __future__ import annotations

import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Service, request_id, rich_error

BTC = "BTC/USDT"


async def test_a_futures_short_is_invalid_argument_naming_the_field_and_nothing_is_placed(
    service: Service,
) -> None:
    # Arrange: a paper account with no coins to sell, as a short would have.
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    before = await client.balances(account)

    # Act
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(
                smart_trade=pb.SmartTrade(
                    account=account,
                    symbol=BTC,
                    side=pb.SIDE_SELL,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
                    leverage=pb.Leverage(
                        market_type=pb.MARKET_TYPE_LINEAR,
                        value="3",
                        margin_mode=pb.MARGIN_MODE_ISOLATED,
                    ),
                ),
                request_id=request_id(),
            ),
            metadata=client.metadata,
        )

    # Assert: refused, naming the field; no trade, and the account untouched.
    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == ["smart_trade.leverage.market_type"]
    listed = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=client.metadata
    )
    assert list(listed.smart_trades) == []
    assert await client.balances(account) == before
