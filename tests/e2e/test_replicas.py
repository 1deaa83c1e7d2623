"""Replicas on one database with the leader lease (SMARTTRADE_LEASE_SECONDS; issue 13, first
part): one replica acts, the others stand by and take over when it dies or stops, and a
replica whose lease lapsed commits nothing (fencing). Each replica is `smarttrade serve` as
its own process."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.replicas import TOKEN, replica
from tests.support.service import Client, rich_error
from tests.support.tcp_proxy import TcpProxy

BTC = "BTC/USDT"


def long_with_stop(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
        stop_loss=pb.StopLoss(price="90"),
    )


async def test_a_standby_takes_over_a_killed_leaders_trade_within_the_lease_and_fires_its_stop_once(
    database_url: str, tmp_path: Path
) -> None:
    async with replica("a", database_url, tmp_path / "a") as a:
        await a.until_serving()  # the first: it holds the lease
        async with grpc.aio.insecure_channel(a.address) as channel:
            client = Client(channel, TOKEN)
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))
        async with replica("b", database_url, tmp_path / "b") as b:
            await asyncio.sleep(2.5)  # more than a lease: b had every chance to take it
            assert not await b.serving()
            async with grpc.aio.insecure_channel(b.address) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await Client(channel, TOKEN).get(trade.name)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert rich_error(refused.value).reason == "NOT_LEADER"

            a.process.kill()
            killed = time.monotonic()
            took_over = await b.until_serving()
            async with grpc.aio.insecure_channel(b.address) as channel:
                client = Client(channel, TOKEN)
                await client.set_price(BTC, "89")
                for _ in range(100):
                    ended = await client.get(trade.name)
                    if ended.state == pb.SMART_TRADE_STATE_CLOSED:
                        break
                    await asyncio.sleep(0.05)
                balances = await client.balances(account)

    assert took_over - killed < 2.0 + 2.0  # the lease, plus 2 s
    assert ended.state == pb.SMART_TRADE_STATE_CLOSED
    assert ended.close_reason == pb.CLOSE_REASON_STOP_LOSS
    stop_orders = [o for leg in ended.legs if leg.kind == pb.LEG_KIND_STOP_LOSS for o in leg.orders]
    assert len(stop_orders) == 1
    assert Decimal(balances.get("BTC", "0")) == 0


async def test_a_leader_stopped_by_sigterm_hands_over_at_once(
    database_url: str, tmp_path: Path
) -> None:
    async with replica("a", database_url, tmp_path / "a", lease_seconds=4) as a:
        await a.until_serving()
        async with replica("b", database_url, tmp_path / "b", lease_seconds=4) as b:
            await asyncio.sleep(1)
            assert not await b.serving()
            a.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            took_over = await b.until_serving()
            assert await a.process.wait() == 0

    assert took_over - stopped < 4 / 2  # well before the lease would have lapsed


async def test_a_leader_cut_from_the_database_commits_nothing_after_its_lease_lapsed(
    proxy: TcpProxy, database_url: str, tmp_path: Path
) -> None:
    async with replica("a", proxy.url(database_url), tmp_path / "a") as a:
        await a.until_serving()
        async with (
            replica("b", database_url, tmp_path / "b") as b,
            grpc.aio.insecure_channel(a.address) as channel,
        ):
            client = Client(channel, TOKEN)
            await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            proxy.stall()  # a's writes wait on the line; its lease cannot be renewed
            late = asyncio.ensure_future(client.set_price(BTC, "95"))
            await b.until_serving()  # a's lease lapsed: b holds it now
            proxy.flow()  # a's write reaches the database, with a's old fencing number
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await late
        status = await asyncio.wait_for(a.process.wait(), timeout=10)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    connection = await asyncpg.connect(database_url)
    try:
        prices = await connection.fetch("SELECT price FROM paper_prices WHERE symbol = $1", BTC)
    finally:
        await connection.close()
    assert [row["price"] for row in prices] == [Decimal("100")]
    assert status == 3  # it said it lost the lease, and stopped
