"""The database out of reach: calls that need it are UNAVAILABLE with a retry hint, never
INTERNAL; health says NOT_SERVING meanwhile; nothing is half-written, and everything works
again once it is back.

The service talks to the real PostgreSQL through a loopback proxy that the test cuts (every
open connection dropped, new ones refused) and restores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from smarttrade import app
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.e2e.test_walking_trade import BTC, market_buy
from tests.support.outage import cut_at_paper_write, priced
from tests.support.service import (
    Service,
    request_id,
    rich_error,
    running_service,
)
from tests.support.tcp_proxy import TcpProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_NAMES = ("", *app.SERVICES)


@pytest.fixture
async def service(database_url: str, proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(
        proxy.url(database_url), tmp_path, reconcile_interval=3600
    ) as running:
        yield running


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: Duration = info.retry_delay
            return delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo")


async def test_calls_needing_the_database_are_unavailable_until_it_is_back(
    service: Service, proxy: TcpProxy
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price("BTC/USDT", "100")
    running = await client.create(market_buy(account, "1", take_profit="110", stop="90"))
    create = trades_pb.CreateSmartTradeRequest(
        smart_trade=market_buy(account, "1", take_profit="120", stop="80"),
        request_id=request_id(),
    )

    await proxy.cut()

    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await client.trades.ListSmartTrades(
            trades_pb.ListSmartTradesRequest(), metadata=client.metadata
        )
    with pytest.raises(grpc.aio.AioRpcError) as creating:
        await client.trades.CreateSmartTrade(create, metadata=client.metadata)
    for raised in (listing.value, creating.value):
        error = rich_error(raised)
        assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
        assert retry_delay(raised) > 0
    # A running trade is still read from memory.
    assert (await client.get(running.name)).state == pb.SMART_TRADE_STATE_ACTIVE

    await proxy.restore()

    created = await client.trades.CreateSmartTrade(create, metadata=client.metadata)
    again = await client.trades.CreateSmartTrade(create, metadata=client.metadata)
    assert created.smart_trade.name == again.smart_trade.name
    listed = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=client.metadata
    )
    assert sorted(trade.name for trade in listed.smart_trades) == sorted(
        [running.name, created.smart_trade.name]
    )
    assert created.smart_trade.state == pb.SMART_TRADE_STATE_ACTIVE
    entry = next(leg for leg in created.smart_trade.legs if leg.id == "entry")
    assert len(entry.orders) == 1  # the failed attempt placed nothing


# ---- health follows the store -----------------------------------------------------------


async def statuses(health: health_pb2_grpc.HealthStub) -> set[int]:
    answers = [
        await health.Check(health_pb2.HealthCheckRequest(service=name)) for name in HEALTH_NAMES
    ]
    return {answer.status for answer in answers}


async def until_health(health: health_pb2_grpc.HealthStub, status: int, seconds: float) -> float:
    """Wait until every service (and the server, "") reports `status`; how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while await statuses(health) != {status}:
        assert loop.time() - start < seconds, f"not all {status} within {seconds} s"
        await asyncio.sleep(0.01)
    return loop.time() - start


async def test_health_is_not_serving_while_the_store_is_cut_and_serving_once_it_is_back(
    service: Service, proxy: TcpProxy
) -> None:
    health = health_pb2_grpc.HealthStub(service.a.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    seen = [(await watch.read()).status]
    assert await statuses(health) == {SERVING}

    await proxy.cut()
    await until_health(health, NOT_SERVING, 2.0)
    seen.append((await watch.read()).status)
    await proxy.restore()
    await until_health(health, SERVING, 2.0)
    seen.append((await watch.read()).status)
    watch.cancel()

    assert seen == [SERVING, NOT_SERVING, SERVING]  # a load balancer watching hears it too


async def test_a_commit_that_finds_the_store_gone_turns_health_not_serving_at_once(
    database_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    """The probe would notice in an hour here; a trade's failed commit says it at once."""
    async with running_service(
        proxy.url(database_url), tmp_path, reconcile_interval=3600, store_probe_interval=3600
    ) as service:
        health = health_pb2_grpc.HealthStub(service.a.channel)
        account = await service.a.paper_account(USDT="10000")
        await service.a.set_price(BTC, "100")
        await service.a.create(market_buy(account, "1", take_profit="110", stop="90"))
        cut_at_paper_write(service, proxy, priced("89"), durable=True)

        await service.a.set_price(BTC, "89")  # the venue wrote it; the stop's decision cannot

        await until_health(health, NOT_SERVING, 0.5)
