"""Paper trading on a live market: the paper venue takes a real venue's public prices (here
the Binance stub, through real ccxt) instead of the sandbox's."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.integration.test_ccxt_exchange import STUB_OPTIONS
from tests.support.binance_stub import BinanceStub
from tests.support.service import running_service


async def test_a_paper_trade_follows_the_live_prices_of_a_real_venue(
    database_url: str, tmp_path: Path
) -> None:
    async with BinanceStub(api_key="k", secret="s") as live:
        await live.set_price("BTC/USDT", Decimal(100))
        overrides = {
            "binance": {
                "urls": {"api": {"public": live.url, "private": live.url}},
                "options": STUB_OPTIONS,
                "poll_interval": 0.05,
                "rate_limit_ms": 1,
                "streaming": False,  # polled (test_binance_streams.py covers the streams)
            }
        }
        async with running_service(
            database_url, tmp_path, paper_prices="binance", exchange_overrides=overrides
        ) as service:
            client = service.a
            account = await client.paper_account(USDT="10000")
            trade = await client.create(
                pb.SmartTrade(
                    account=account,
                    symbol="BTC/USDT",
                    side=pb.SIDE_BUY,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
                    take_profit=pb.TakeProfit(
                        steps=[pb.TakeProfitStep(price="110", volume_percent="100")]
                    ),
                )
            )
            assert trade.state == pb.SMART_TRADE_STATE_ACTIVE
            assert trade.legs[0].orders[0].fills[0].price == "100"  # the live price

            await live.set_price("BTC/USDT", Decimal(111))

            deadline = asyncio.get_running_loop().time() + 10
            while (await client.get(trade.name)).state != pb.SMART_TRADE_STATE_CLOSED:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            closed = await client.get(trade.name)
            assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
            assert await client.balances(account) == {"BTC": "0", "USDT": "10009.78011"}
            assert live.requests_to("POST", "order") == []  # nothing was sent to the real venue
