"""`smarttrade serve` as users run it: a separate process on the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.process import serve_process
from tests.support.service import Client

BUF = Path(sys.executable).parent / "buf"
SERVICES = {
    "smarttrade.v1.SmartTradeService",
    "smarttrade.v1.ExchangeAccountService",
    "smarttrade.v1.PaperMarketService",
    "grpc.health.v1.Health",
}


@asynccontextmanager
async def serve(data_dir: Path) -> AsyncIterator[tuple[str, Client]]:
    """Run `smarttrade serve` on the embedded store in `data_dir`, with its local token."""
    async with serve_process(data_dir) as server:
        token = (data_dir / "local-token").read_text().strip()
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield server.address, Client(channel, token)


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
