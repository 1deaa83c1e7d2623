"""Replicas of the service as processes on one database, with the leader lease."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smarttrade.app import LEADER_HEALTH
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.process import free_port

TOKEN = "token-a"  # tenant-a's
BTC = "BTC/USDT"
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class Replica:
    name: str
    address: str
    process: asyncio.subprocess.Process

    async def serving(self, service: str = "") -> bool:
        async with grpc.aio.insecure_channel(self.address) as channel:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(answer.status == SERVING)

    async def leading(self) -> bool:
        """Whether it holds the leader lease and runs the trades."""
        return await self.serving(LEADER_HEALTH)

    async def until_listening(self, seconds: float = 30) -> None:
        """Wait until it answers health (SERVING, or NOT_SERVING while standing by)."""
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(self.address) as channel:
            while time.monotonic() < deadline:
                try:
                    await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    return
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} never listened")

    async def until_serving(self, seconds: float = 30, service: str = "") -> float:
        """Wait until SERVING; when it happened (time.monotonic)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await self.serving(service):
                return time.monotonic()
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} never served {service}")

    async def until_leading(self, seconds: float = 30) -> float:
        """Wait until it leads; when it happened (time.monotonic)."""
        return await self.until_serving(seconds, LEADER_HEALTH)


def replica_environment(lease_seconds: float, **settings: str) -> dict[str, str]:
    """This environment without its SMARTTRADE_ settings, then a replica's (tenant-a's token,
    the lease, a quick store probe) and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    return env | {
        "SMARTTRADE_TOKENS": f"tenant-a:{TOKEN}",
        "SMARTTRADE_LEASE_SECONDS": str(lease_seconds),
        "SMARTTRADE_STORE_PROBE_INTERVAL": "0.1",
        **settings,
    }


@asynccontextmanager
async def replica(
    name: str,
    database_url: str,
    data_dir: Path,
    lease_seconds: float = 2.0,
    address: str | None = None,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Replica]:
    address = address or f"127.0.0.1:{free_port()}"
    env = replica_environment(lease_seconds, SMARTTRADE_REPLICA_ID=name, **(settings or {}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smarttrade.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        address,
        "--database-url",
        database_url,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Replica(name, address, process)
    finally:
        if process.returncode is None:
            process.kill()
        _, errors = await process.communicate()
        print(f"--- {name}:", errors.decode()[-3000:])  # shown when the test fails


def long_with_stop(account: str) -> pb.SmartTrade:
    """A market buy of 1 BTC with its stop at 90 (the replica tests' trade, at a price of 100)."""
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
        stop_loss=pb.StopLoss(price="90"),
    )
