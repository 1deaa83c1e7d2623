"""A tick whose write landed but whose trades never reacted (the service killed in between)
still moves them: after a restart, and when its retry gets the first answer."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest

from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.service import Client, serving_process

BTC = "BTC/USDT"


def conditional_buy(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_CONDITIONAL, units="0.5", trigger_price="103"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="115", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="97"),
    )


async def tick(client: Client, price: str, request_id: str) -> None:
    await client.paper.SetPaperPrice(
        paper_pb.SetPaperPriceRequest(symbol=BTC, price=price, request_id=request_id),
        metadata=client.metadata,
    )


async def test_a_tick_killed_after_its_write_fires_the_trigger_it_crossed_after_the_restart(
    database_url: str, tmp_path: Path
) -> None:
    crossing = str(uuid.uuid4())
    point = f"request:{crossing}:after-commit"
    async with serving_process(database_url, tmp_path, point) as (server, client):
        account = await client.paper_account(USDT="10000")
        await tick(client, "100", str(uuid.uuid4()))
        trade = await client.create(conditional_buy(account))
        with pytest.raises(grpc.aio.AioRpcError):
            await tick(client, "103", crossing)  # written; the process dies before any reaction
        await asyncio.wait_for(server.process.wait(), timeout=10)
        server.killed = True

    async with serving_process(database_url, tmp_path) as (_, client):
        await tick(client, "103", crossing)  # the retry: its first answer
        for _ in range(100):
            opened = await client.get(trade.name)
            if opened.state == pb.SMART_TRADE_STATE_ACTIVE:
                break
            await asyncio.sleep(0.05)

    assert opened.state == pb.SMART_TRADE_STATE_ACTIVE
