"""The production default, end to end: a Binance account streams its prices and its orders
through ccxt.pro's websockets (the stub serves Binance's spot streams on 127.0.0.1), and a
stream the venue drops is polled meanwhile and subscribed again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.e2e.test_binance_trade import eventually_state
from tests.support.binance_service import API_KEY, SECRET, open_binance_account, stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.service import Client, request_id, running_service

TICKER = "btcusdt@miniTicker"


def ticker_polls(venue: BinanceStub) -> int:
    return len(venue.requests_to("GET", "/api/v3/ticker/price")) + len(
        venue.requests_to("GET", "/api/v3/ticker/24hr")
    )


@asynccontextmanager
async def streaming_trade(
    database_url: str, data_dir: Path
) -> AsyncIterator[tuple[BinanceStub, Client, str]]:
    """An ACTIVE market buy of 0.1 BTC at 100 with its take profit resting at 110, on a
    Binance account that streams. The order poll runs every 30 s: a fill seen sooner came by
    the order stream."""
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as venue:
        await venue.set_balance("USDT", Decimal(10000))
        await venue.set_price("BTC/USDT", Decimal(100))
        overrides = stub_overrides(venue, streaming=True, stream_retry=0.5)
        async with running_service(
            database_url, data_dir, exchange_overrides=overrides, order_poll_interval=30
        ) as service:
            client = service.a
            account = await open_binance_account(client, request_id())
            trade = await client.create(
                pb.SmartTrade(
                    account=account,
                    symbol="BTC/USDT",
                    side=pb.SIDE_BUY,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
                    take_profit=pb.TakeProfit(
                        steps=[pb.TakeProfitStep(price="110", volume_percent="100")]
                    ),
                    stop_loss=pb.StopLoss(price="90"),
                )
            )
            await eventually_state(client, trade.name, pb.SMART_TRADE_STATE_ACTIVE)
            await eventually(lambda: {TICKER, "userDataStream"} <= set(venue.subscriptions))
            yield venue, client, trade.name


async def eventually(condition: object, seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


async def test_a_streaming_binance_trade_gets_its_prices_and_its_fill_by_websocket(
    database_url: str, tmp_path: Path
) -> None:
    async with streaming_trade(database_url, tmp_path) as (venue, client, name):
        # Arrange: the streams are up; the REST ticker is not asked any more.
        polls = ticker_polls(venue)
        await asyncio.sleep(0.5)  # ten poll intervals
        assert ticker_polls(venue) == polls

        # Act: the price crosses the take profit, which fills at the venue.
        await venue.set_price("BTC/USDT", Decimal(111))

        # Assert: closed at its target, told by the streams alone, each order sent once.
        closed = await eventually_state(client, name, pb.SMART_TRADE_STATE_CLOSED)
        assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
        assert ticker_polls(venue) == polls
        assert len(venue.requests_to("POST", "/api/v3/order")) == 2
        assert venue.subscriptions.count(TICKER) == 1


async def test_a_dropped_stream_is_polled_meanwhile_and_subscribed_again(
    database_url: str, tmp_path: Path
) -> None:
    async with streaming_trade(database_url, tmp_path) as (venue, client, name):
        # Act: the venue hangs up every websocket and refuses new ones for 2 s.
        polls = ticker_polls(venue)
        await venue.drop_streams(refuse_for=2.0)

        # Assert: the prices are polled while the streams are away ...
        await eventually(lambda: ticker_polls(venue) > polls + 3)
        # ... and streamed again once the venue takes websockets again.
        await eventually(lambda: venue.subscriptions.count(TICKER) >= 2)
        await eventually(lambda: venue.subscriptions.count("userDataStream") >= 2)
        polls = ticker_polls(venue)
        await asyncio.sleep(0.5)
        assert ticker_polls(venue) == polls  # streaming, not polling

        await venue.set_price("BTC/USDT", Decimal(111))
        closed = await eventually_state(client, name, pb.SMART_TRADE_STATE_CLOSED)
        assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
        assert len(venue.requests_to("POST", "/api/v3/order")) == 2
