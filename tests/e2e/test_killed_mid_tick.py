"""The service killed in the middle of a tick, at a named point, then started again on the
same database: a tick whose write landed but whose trades never reacted still moves them,
and an order decided on a tick but never sent goes out at once on the paper venue, before
the next tick, so the trade ends as in an uninterrupted run."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest

from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.service import PROCESS_ENV, Client, serving_process

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


async def run_conditional_trade(
    database_url: str, data_dir: Path, killed_at: str = ""
) -> pb.SmartTrade:
    """The conditional buy through 100, 103 (its trigger), 104 and 115 (its target), with
    the default unknown-order grace (10 s); with `killed_at`, the service dies there during
    the tick to 103 and starts again."""
    env = {k: v for k, v in PROCESS_ENV.items() if k != "SMARTTRADE_UNKNOWN_ORDER_GRACE"}
    async with serving_process(database_url, data_dir, killed_at, env) as (server, client):
        account = await client.paper_account(USDT="10000")
        await tick(client, "100", str(uuid.uuid4()))
        trade = await client.create(conditional_buy(account))
        crossing = str(uuid.uuid4())
        if not killed_at:
            return await rest_of_path(client, trade.name, crossing)
        with pytest.raises(grpc.aio.AioRpcError):
            await tick(client, "103", crossing)  # the process dies at `killed_at`
        await asyncio.wait_for(server.process.wait(), timeout=10)
        server.killed = True
    async with serving_process(database_url, data_dir, settings=env) as (_, client):
        return await rest_of_path(client, trade.name, crossing)


async def rest_of_path(client: Client, name: str, crossing: str) -> pb.SmartTrade:
    await tick(client, "103", crossing)  # the retry: its first answer, or the tick itself
    await tick(client, "104", str(uuid.uuid4()))
    await tick(client, "115", str(uuid.uuid4()))
    for _ in range(100):
        ended = await client.get(name)
        if ended.state == pb.SMART_TRADE_STATE_CLOSED:
            break
        await asyncio.sleep(0.05)
    return ended


def fills(trade: pb.SmartTrade) -> list[tuple[str, str, str]]:
    """What reached the venue: each leg's filled orders' fills (a never-sent order's next
    generation is the same order)."""
    return [
        (leg.id, fill.price, fill.amount)
        for leg in trade.legs
        for order in leg.orders
        if order.exchange_order_id
        for fill in order.fills
    ]


async def test_an_entry_decided_on_a_tick_and_killed_before_its_send_goes_out_before_the_next(
    database_url: str, reference_database_url: str, tmp_path: Path
) -> None:
    uninterrupted = await run_conditional_trade(reference_database_url, tmp_path / "reference")
    killed = await run_conditional_trade(
        database_url, tmp_path / "killed", "order:entry-0:before-send"
    )

    assert killed.state == uninterrupted.state == pb.SMART_TRADE_STATE_CLOSED
    assert killed.close_reason == uninterrupted.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    assert fills(killed) == fills(uninterrupted)  # the entry filled at 103, not at 104
    assert fills(killed)[0][:2] == ("entry", "103")
    assert killed.position.realized_pnl == uninterrupted.position.realized_pnl
