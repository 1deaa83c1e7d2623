"""Failover benchmark: how long a trade's stop waits when the replica running it is killed.

    .venv/bin/python -m bench.bench_failover [--trials 20] [--lease 2]

Each trial, on a fresh database at 127.0.0.1:5432: replicas A and B (`smarttrade serve` with
SMARTTRADE_LEASE_SECONDS) share the shards; the one running the tenant's shard gets a paper
trade with a stop at 90; it is SIGKILLed and, from that moment, the price is set below the
stop through the other, retried while it answers NOT_LEADER (the shard not taken over yet).
Measured: from the kill to the stop's sell order at the paper venue (the trade's stop order
existing, read through the other), p50 and max. Target: under the lease plus 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

import asyncpg
import grpc

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.replicas import BTC, TOKEN, long_with_stop, two_sharing
from tests.support.service import Client

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def trial(lease: float, root: Path) -> float:
    name = f"smarttrade_failover_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        async with two_sharing(url, root / name, lease) as (running, other):
            async with grpc.aio.insecure_channel(running.address) as channel:
                client = Client(channel, TOKEN)
                account = await client.paper_account(USDT="1000")
                await client.set_price(BTC, "100")
                trade = await client.create(long_with_stop(account))
            running.process.kill()
            killed = time.monotonic()
            async with grpc.aio.insecure_channel(other.address) as channel:
                client = Client(channel, TOKEN)
                while True:
                    try:
                        await client.set_price(BTC, "89")
                        seen = await client.get(trade.name)
                    except grpc.aio.AioRpcError:  # not taken over yet, or recovering
                        await asyncio.sleep(0.01)
                        continue
                    stops = [
                        order
                        for leg in seen.legs
                        if leg.kind == pb.LEG_KIND_STOP_LOSS
                        for order in leg.orders
                    ]
                    if stops:
                        return time.monotonic() - killed
                    await asyncio.sleep(0.01)
    finally:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(trials: int, lease: float) -> None:
    root = Path(f"/tmp/smarttrade_failover_{uuid.uuid4().hex[:8]}")
    times = [await trial(lease, root) for _ in range(trials)]
    print(
        f"failover, lease {lease:g} s, {trials} trials: kill to the stop's order "
        f"p50 {statistics.median(times):.2f} s, max {max(times):.2f} s "
        f"(target: under {lease + 2:g} s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--lease", type=float, default=2.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.trials, arguments.lease))
