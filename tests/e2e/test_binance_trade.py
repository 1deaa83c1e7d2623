"""A trade on a `binance` account, over gRPC, with a local stub of Binance as the venue: the
service's ccxt adapter, market-data polling and order tracking, end to end."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.binance_service import stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.service import Client, request_id, running_service

API_KEY = "e2e-binance-key-5b1f0c"
SECRET = "e2e-binance-secret-77aa01"


async def eventually_state(client: Client, name: str, state: int) -> pb.SmartTrade:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        trade = await client.get(name)
        if trade.state == state:
            return trade
        assert asyncio.get_running_loop().time() < deadline, f"still {trade.state}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "polling"])
async def test_a_binance_trade_enters_and_takes_profit_against_the_stub(
    database_url: str, tmp_path: Path, streaming: bool
) -> None:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as venue:
        await venue.set_balance("USDT", Decimal(10000))
        await venue.set_price("BTC/USDT", Decimal(100))
        overrides = stub_overrides(venue, streaming=streaming)
        async with running_service(
            database_url, tmp_path, exchange_overrides=overrides, order_poll_interval=0.05
        ) as service:
            client = service.a
            created = await client.accounts.CreateExchangeAccount(
                accounts_pb.CreateExchangeAccountRequest(
                    exchange_account=accounts_pb.ExchangeAccount(
                        exchange="binance",
                        credentials=accounts_pb.ExchangeCredentials(api_key=API_KEY, secret=SECRET),
                    ),
                    request_id=request_id(),
                ),
                metadata=client.metadata,
            )
            account = created.exchange_account
            assert account.has_credentials

            trade = await client.create(
                pb.SmartTrade(
                    account=account.name,
                    symbol="BTC/USDT",
                    side=pb.SIDE_BUY,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
                    take_profit=pb.TakeProfit(
                        steps=[pb.TakeProfitStep(price="110", volume_percent="100")]
                    ),
                    stop_loss=pb.StopLoss(price="90"),
                )
            )
            active = await eventually_state(client, trade.name, pb.SMART_TRADE_STATE_ACTIVE)
            take_profit = next(leg for leg in active.legs if leg.id == "tp1")
            assert take_profit.orders[0].price == "110"
            assert len(venue.requests_to("POST", "order")) == 2  # the entry, the take profit

            await venue.set_price("BTC/USDT", Decimal(111))

            closed = await eventually_state(client, trade.name, pb.SMART_TRADE_STATE_CLOSED)
            assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
            assert Decimal(closed.position.realized_pnl) > 0
            sent = venue.requests_to("POST", "order")
            assert len(sent) == 2
            ids = [request.params["newClientOrderId"] for request in sent]
            assert ids == [order.client_order_id for leg in closed.legs for order in leg.orders]
