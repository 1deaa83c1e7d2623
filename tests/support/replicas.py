"""Replicas of the service as processes on one database, sharing the trades by tenant shard."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smarttrade.app import shard_health
from smarttrade.store.leases import SHARDS, shard_of
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.process import free_port

TOKEN = "token-a"  # tenant-a's
TENANT = "tenant-a"
# The replicas' tenants: tenant-a's shard is 9, tenant-c's 0. Of two replicas, the first up
# holds every shard until the second comes, then gives the highest six up: tenant-c's
# trades stay on the first, tenant-a's move to the second.
TOKENS = {TENANT: TOKEN, "tenant-c": "token-c"}
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

    async def owns(self, tenant: str = TENANT) -> bool:
        """Whether it runs the trades of the tenant (it holds the tenant's shard, recovered)."""
        return await self.serving(shard_health(shard_of(tenant)))

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

    async def until_owns(self, seconds: float = 30, tenant: str = TENANT) -> float:
        """Wait until it runs the tenant's trades; when it happened (time.monotonic)."""
        return await self.until_serving(seconds, shard_health(shard_of(tenant)))


async def held(database_url: str) -> dict[str, list[int]]:
    """The shards each replica holds now (by its name)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT holder, shard FROM shard_leases"
            " WHERE expires_at > clock_timestamp() ORDER BY shard"
        )
    except asyncpg.UndefinedTableError:  # no replica has migrated the database yet
        return {}
    finally:
        await connection.close()
    found: dict[str, list[int]] = {}
    for row in rows:
        found.setdefault(row["holder"], []).append(row["shard"])
    return found


async def shares(database_url: str) -> dict[str, int]:
    """How many shards each replica holds now (by its name)."""
    return {holder: len(shards) for holder, shards in (await held(database_url)).items()}


async def until_shares(database_url: str, expected: dict[str, int], seconds: float = 30) -> float:
    """Wait until the replicas hold the shards `expected`; when it happened (monotonic)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await shares(database_url) == expected:
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise AssertionError(f"the shards never went {expected}: {await shares(database_url)}")


async def until_balanced(database_url: str, *replicas: Replica, seconds: float = 30) -> None:
    """Wait until the replicas hold every shard between them, each its fair share, and each
    runs the trades of its shards (recovered)."""
    fair = {r.name: SHARDS // len(replicas) for r in replicas}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = await held(database_url)
        if {name: len(shards) for name, shards in now.items()} == fair and all(
            [await r.serving(shard_health(s)) for r in replicas for s in now[r.name]]
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never balanced: {await shares(database_url)}")


async def owner(*replicas: Replica, tenant: str = TENANT, seconds: float = 30) -> Replica:
    """The replica that runs the tenant's trades (waiting until one does)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for candidate in replicas:
            if await candidate.owns(tenant):
                return candidate
        await asyncio.sleep(0.05)
    raise AssertionError(f"no replica runs {tenant}'s trades")


@asynccontextmanager
async def two_sharing(
    database_url: str, base: Path, lease_seconds: float = 2.0
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replicas `a` and `b` sharing the shards, each running its own: (the one that runs
    tenant-a's trades, the other)."""
    async with (
        replica("a", database_url, base / "a", lease_seconds) as a,
        replica("b", database_url, base / "b", lease_seconds) as b,
    ):
        await until_balanced(database_url, a, b, seconds=60)
        running = await owner(a, b)
        yield running, (b if running is a else a)


def replica_environment(lease_seconds: float, **settings: str) -> dict[str, str]:
    """This environment without its SMARTTRADE_ settings, then a replica's (tenant-a's token,
    the lease, a quick store probe) and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    return env | {
        "SMARTTRADE_TOKENS": ",".join(f"{t}:{token}" for t, token in TOKENS.items()),
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
