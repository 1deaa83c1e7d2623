"""A trigger's decision is made durable ahead of its order as the trigger alone, and written
after the send: a crash in between is decided again on that trigger, not on the price the
venue shows at restart.

`smarttrade serve` runs as its own process, stops out a trade on a tick to 94, and dies by a
failpoint just before or just after sending the stop's market sell. While it is down, the
venue's price goes back to 100 (above the stop). Started again on the same database, the
trade ends STOP_LOSS with one sell: the one sent before the crash, found at the venue, or,
when the crash stopped it, one sent now (the first confirmed missing at the venue).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.process import ServerProcess, serve_process
from tests.support.service import Client

BTC = "BTC/USDT"
ENV = {
    "SMARTTRADE_TOKENS": "tenant-a:token-a",
    "SMARTTRADE_LOG_LEVEL": "WARNING",
    # An order whose intent was written but never sent is looked up, found missing after
    # this grace, and placed.
    "SMARTTRADE_UNKNOWN_ORDER_GRACE": "0.5",
}


@asynccontextmanager
async def serving(
    database_url: str, data_dir: Path, failpoint: str = ""
) -> AsyncIterator[tuple[ServerProcess, Client]]:
    env = ENV | ({"SMARTTRADE_FAILPOINTS": failpoint} if failpoint else {})
    async with (
        serve_process(data_dir, database_url=database_url, env=env) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        yield server, Client(channel, "token-a")


def stopped_at_95(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="150", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="95"),
    )


async def sql(database_url: str, statement: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return list(await connection.fetch(statement))
    finally:
        await connection.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "sells", "sold_at"),
    [
        # never sent: looked up, confirmed missing, placed again under the next generation
        ("order:sl-0:before-send", [pb.ORDER_STATUS_CANCELLED, pb.ORDER_STATUS_FILLED], 100),
        # sent: found filled at the venue, at the price of the tick
        ("order:sl-0:after-send", [pb.ORDER_STATUS_FILLED], 94),
    ],
)
async def test_a_stop_decided_before_a_crash_holds_at_restart_though_the_price_came_back(
    point: str, sells: list[int], sold_at: int, database_url: str, tmp_path: Path
) -> None:
    # Arrange: a live trade; the tick through its stop kills the service at the point
    async with serving(database_url, tmp_path, point) as (server, client):
        account = await client.paper_account(USDT="10000")
        await client.set_price(BTC, "100")
        trade = await client.create(stopped_at_95(account))
        with pytest.raises(grpc.aio.AioRpcError):
            await client.set_price(BTC, "94")
        await asyncio.wait_for(server.process.wait(), timeout=10)
        server.killed = True
    kept = await sql(database_url, "SELECT trade_id, trigger FROM decisions_ahead")
    assert [row["trade_id"] for row in kept] == [trade.name.split("/")[-1]]
    await sql(database_url, "UPDATE paper_prices SET price = 100")  # back above the stop

    # Act
    async with serving(database_url, tmp_path) as (_, client):
        for _ in range(200):
            ended = await client.get(trade.name)
            if ended.state == pb.SMART_TRADE_STATE_CLOSED:
                break
            await asyncio.sleep(0.05)
        balances = await client.balances(account)

    # Assert: stopped out once, at the venue's price when the sell went out
    assert ended.state == pb.SMART_TRADE_STATE_CLOSED
    assert ended.close_reason == pb.CLOSE_REASON_STOP_LOSS
    orders = [o for leg in ended.legs if leg.id == "sl" for o in leg.orders]
    assert [o.status for o in orders] == sells
    assert Decimal(orders[-1].average_price) == sold_at
    assert Decimal(balances.get("BTC", "0")) == 0
    assert await sql(database_url, "SELECT * FROM decisions_ahead") == []
    stop_sells = "SELECT 1 FROM paper_orders WHERE side = 'SELL' AND type = 'MARKET'"
    assert len(await sql(database_url, stop_sells)) == 1  # one sell reached the venue
