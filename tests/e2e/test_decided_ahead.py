"""A decision on a price (or any venue's fact) is made durable ahead of its order as that
input alone, and written after the send: a crash in between is decided again on that
input, not on the price the venue shows at restart.

`smarttrade serve` runs as its own process, stops out a trade on a tick to 94, and dies by a
failpoint just before or just after sending the stop's market sell. While it is down, the
venue's price goes back to 100 (above the stop). Started again on the same database, the
trade ends STOP_LOSS with one sell: the one sent before the crash, found at the venue, or,
when the crash stopped it, one sent now (the first confirmed missing at the venue).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.e2e.test_crash_between_claim_and_effect import trade_settings
from tests.support.service import serving_process

BTC = "BTC/USDT"


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
    async with serving_process(database_url, tmp_path, point) as (server, client):
        account = await client.paper_account(USDT="10000")
        await client.set_price(BTC, "100")
        trade = await client.create(trade_settings(account))  # TP 150, stop 95
        with pytest.raises(grpc.aio.AioRpcError):
            await client.set_price(BTC, "94")
        await asyncio.wait_for(server.process.wait(), timeout=10)
        server.killed = True
    kept = await sql(database_url, "SELECT trade_id, trigger FROM decisions_ahead")
    assert [row["trade_id"] for row in kept] == [trade.name.split("/")[-1]]
    await sql(database_url, "UPDATE paper_prices SET price = 100")  # back above the stop

    # Act
    async with serving_process(database_url, tmp_path) as (_, client):
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
