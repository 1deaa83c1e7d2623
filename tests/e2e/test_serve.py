"""`smarttrade serve` as users run it: a separate process on the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client

BUF = Path(sys.executable).parent / "buf"
SERVICES = {
    "smarttrade.v1.SmartTradeService",
    "smarttrade.v1.ExchangeAccountService",
    "smarttrade.v1.PaperMarketService",
    "grpc.health.v1.Health",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_serving(address: str, process: asyncio.subprocess.Process) -> None:
    """Poll health until SERVING (the service says so only after recovering its trades)."""
    deadline = asyncio.get_running_loop().time() + 60
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.returncode is None, "smarttrade serve exited early"
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "not SERVING within 60 s"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def serve(data_dir: Path) -> AsyncIterator[tuple[str, Client]]:
    """Run `smarttrade serve` on the embedded store in `data_dir`; SIGTERM it afterwards."""
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smarttrade.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        address,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_serving(address, process)
        token = (data_dir / "local-token").read_text().strip()
        async with grpc.aio.insecure_channel(address) as channel:
            yield address, Client(channel, token)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, errors = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, errors.decode()[-2000:]


async def test_serve_reports_serving_and_lists_its_services_by_reflection(tmp_path: Path) -> None:
    async with serve(tmp_path / "data") as (address, _):
        listed = await asyncio.to_thread(
            subprocess.run,
            [
                str(BUF),
                "curl",
                "--protocol",
                "grpc",
                "--http2-prior-knowledge",
                "--list-services",
                f"http://{address}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    assert set(listed.stdout.split()) >= SERVICES


async def test_a_second_start_on_the_same_data_directory_carries_on_the_first_ones_trades(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    async with serve(data_dir) as (_, client):
        account = await client.paper_account(USDT="10000")
        await client.set_price("BTC/USDT", "100")
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

    async with serve(data_dir) as (_, client):
        again = await client.get(trade.name)
        assert again.state == pb.SMART_TRADE_STATE_ACTIVE
        assert again.etag == trade.etag
        listed = await client.trades.ListSmartTrades(
            trades_pb.ListSmartTradesRequest(), metadata=client.metadata
        )
        assert [t.name for t in listed.smart_trades] == [trade.name]
        # The paper venue kept the take-profit order: the trade still closes.
        await client.set_price("BTC/USDT", "110")
        closed = await client.get(trade.name)
        assert closed.state == pb.SMART_TRADE_STATE_CLOSED
        assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
