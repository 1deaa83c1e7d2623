"""API benchmark: unary throughput beside a bare echo server, and stream delivery latency.

    .venv/bin/python -m bench.bench_api [--seconds 5] [--concurrency 32] [--stream-seconds 20]

Runs, in one go and on this machine, each its own process on uvloop: a bare grpc.aio echo
server, a bare grpc.aio server whose handler does one INSERT and COMMIT on asyncpg (the
ceiling of a call that writes), and `smarttrade serve` on PostgreSQL at 127.0.0.1:5432 in a
fresh database. Then from this process, with the same client harness and a fixed
concurrency: GetSmartTrade against echo, and CreateSmartTrade (paper, limit entry) against
the INSERT+COMMIT ceiling, each pair in alternating rounds (the machine's noise hits both
alike), reported as the median of the per-round ratios; then 1, 100 and 1,000 watchers of
the tenant's trades while a trailing stop moves on 10 ticks a second, reporting the latency
from each event's time to its receipt (p50/p99). The p99 is taken over 10 x stream-seconds
events: with few events, one event held up by anything else on the machine is more than
1 % of the deliveries and decides it alone. Figures are noisy on a shared 2-core machine:
read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import grpc

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.process import free_port, serve_process
from tests.support.service import Client, WatchCall

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-token"
Answer = trades_pb.WatchSmartTradesResponse
STREAM_TOKEN = "bench-stream-token"  # another tenant: its snapshot holds only the streamed trades


async def throughput(
    call: Callable[[int], Awaitable[object]], seconds: float, workers: int
) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        i = index
        while time.perf_counter() < stop:
            await call(i)
            done += 1
            i += workers

    for _ in range(workers):  # warm up the channel
        await call(0)
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return done / (time.perf_counter() - started)


@asynccontextmanager
async def bare_server(script: str, *arguments: str) -> AsyncIterator[grpc.aio.Channel]:
    """A bare grpc.aio server of `bench/` as its own process, and a channel to it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / script),
        str(port),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    await process.stdout.readline()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        process.terminate()
        await process.wait()


@asynccontextmanager
async def echo_server(answer: bytes) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    """The bare server, and a call echoing a GetSmartTrade answer with the same metadata,
    parsed by the client as GetSmartTrade's is: the difference to GetSmartTrade is then the
    service's own work, not the client's."""
    async with bare_server("echo_server.py") as channel:
        echo: grpc.aio.UnaryUnaryMultiCallable[bytes, trades_pb.GetSmartTradeResponse] = (
            channel.unary_unary(
                "/bench.Echo/Echo",
                response_deserializer=trades_pb.GetSmartTradeResponse.FromString,
            )
        )
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        yield lambda i: echo(answer, metadata=metadata)


@asynccontextmanager
async def insert_server(
    url: str, request: bytes, answer: bytes
) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    """The ceiling of a call that writes: a bare server whose handler does one INSERT and
    COMMIT on asyncpg (bench/insert_server.py), called with a CreateSmartTrade request's
    bytes and metadata, answering a real CreateSmartTrade response that the client parses as
    CreateSmartTrade's: the same client harness, so the ratio is the service's own work."""
    async with bare_server("insert_server.py", url, answer.hex()) as channel:
        insert: grpc.aio.UnaryUnaryMultiCallable[bytes, trades_pb.CreateSmartTradeResponse] = (
            channel.unary_unary(
                "/bench.Ceiling/Insert",
                response_deserializer=trades_pb.CreateSmartTradeResponse.FromString,
            )
        )
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        yield lambda i: insert(request, metadata=metadata)


async def alternating(
    first: Callable[[int], Awaitable[object]],
    second: Callable[[int], Awaitable[object]],
    seconds: float,
    workers: int,
    rounds: int = 30,
) -> tuple[float, float, list[float]]:
    """Throughputs measured in alternating rounds (the machine's noise hits both alike):
    the medians of each, and the per-round ratios second/first, sorted."""
    ones, twos, ratios = [], [], []
    for _ in range(rounds):
        one = await throughput(first, seconds / rounds, workers)
        two = await throughput(second, seconds / rounds, workers)
        ones.append(one)
        twos.append(two)
        ratios.append(two / one)
    return statistics.median(ones), statistics.median(twos), sorted(ratios)


def trailing_trade(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol="BTC/USDT",
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.001"),
        stop_loss=pb.StopLoss(percent="50", trailing_percent="1"),
    )


def limit_trade(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol="BTC/USDT",
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="0.001", limit_price="5000"),
    )


async def stream_latency(
    channels: list[grpc.aio.Channel], events_per_second: int, watchers: int, seconds: float
) -> tuple[float, float, int]:
    """p50/p99 (ms) from event time to receipt for 1,000 watchers; events come from trailing
    stops moving on rising ticks (one STOP_MOVED per trade per tick)."""
    client = Client(channels[0], STREAM_TOKEN)
    account = await client.paper_account(USDT="100000000")
    await client.set_price("BTC/USDT", "20000")
    trades = 1  # one decision, one commit, one STOP_MOVED event per tick
    for _ in range(trades):
        await client.create(trailing_trade(account))
    ticks_per_second = events_per_second / trades
    latencies: list[float] = []
    clients = [Client(channel, STREAM_TOKEN) for channel in channels]
    streams = [
        clients[i % len(clients)].trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(), metadata=clients[0].metadata
        )
        for i in range(watchers)
    ]

    async def snapshot(stream: WatchCall) -> None:
        while True:
            item = await stream.read()
            if not isinstance(item, Answer) or item.WhichOneof("payload") == "snapshot_end":
                return

    await asyncio.gather(*(snapshot(s) for s in streams))
    running = True

    async def read(stream: WatchCall) -> None:
        while running:
            item = await stream.read()
            if not isinstance(item, Answer):  # the end of the stream
                return
            if item.HasField("event"):  # read cheaply: the reader's time is in the figure
                sent = item.event.time
                latencies.append((time.time() - sent.seconds - sent.nanos / 1e9) * 1000)

    readers = [asyncio.create_task(read(s)) for s in streams]
    price = 20000
    for _ in range(int(ticks_per_second * seconds)):
        price += 10
        started = time.perf_counter()
        await client.set_price("BTC/USDT", str(price))
        await asyncio.sleep(max(0.0, 1 / ticks_per_second - (time.perf_counter() - started)))
    await asyncio.sleep(2)
    running = False
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return statistics.median(ordered), p99, len(ordered)


@asynccontextmanager
async def fresh_database(prefix: str) -> AsyncIterator[tuple[str, Path]]:
    """A new database on the local PostgreSQL (its URL), and a data directory named after it
    (made by the service), dropped when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}", Path(f"/tmp/{name}")
    finally:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(seconds: float, workers: int, stream_seconds: float) -> None:
    env = {
        "SMARTTRADE_TOKENS": f"bench:{TOKEN},stream:{STREAM_TOKEN}",
        "SMARTTRADE_LOG_LEVEL": "WARNING",
    }
    async with (
        fresh_database("smarttrade_bench") as (url, data_dir),
        serve_process(data_dir, database_url=url, env=env) as server,
    ):
        channels = [grpc.aio.insecure_channel(server.address) for _ in range(10)]
        client = Client(channels[0], TOKEN)
        account = await client.paper_account(USDT="100000000", BTC="0")
        await client.set_price("BTC/USDT", "20000")
        names = [(await client.create(limit_trade(account))).name for _ in range(100)]
        answer = trades_pb.GetSmartTradeResponse(smart_trade=await client.get(names[0]))
        size = len(answer.SerializeToString())
        async with echo_server(answer.SerializeToString()) as echo_call:
            echo, get, ratios = await alternating(
                echo_call,
                lambda i: client.get(names[i % len(names)]),
                seconds * 6,  # 30 rounds of 1 s each: single rounds spread widely
                workers,
            )
        create_request = trades_pb.CreateSmartTradeRequest(
            smart_trade=limit_trade(account), request_id=str(uuid.uuid4())
        )
        create_answer = trades_pb.CreateSmartTradeResponse(
            smart_trade=await client.create(limit_trade(account))
        )
        async with insert_server(
            url, create_request.SerializeToString(), create_answer.SerializeToString()
        ) as insert_call:
            ceiling, create, create_ratios = await alternating(
                insert_call,
                lambda i: client.create(limit_trade(account)),
                seconds * 2,
                workers,
                rounds=10,
            )
        streams = [
            (n, await stream_latency(channels, 10, n, stream_seconds))
            for n in ((1, 100, 1000) if stream_seconds else ())
        ]
        for channel in channels:
            await channel.close()
    print(f"concurrency {workers}, {seconds:g} s per measure, {os.cpu_count()} cores")
    print(f"echo (bare grpc.aio, {size} B) {echo:8.0f} calls/s")
    print(
        f"GetSmartTrade              {get:8.0f} calls/s  ({statistics.median(ratios):.0%} of "
        f"echo, median of {len(ratios)} rounds; {ratios[0]:.0%} to {ratios[-1]:.0%})"
    )
    print(f"one INSERT+COMMIT (bare)   {ceiling:8.0f} calls/s  (the ceiling of a writing call)")
    print(
        f"CreateSmartTrade (paper)   {create:8.0f} calls/s  "
        f"({statistics.median(create_ratios):.0%} of the ceiling, median of "
        f"{len(create_ratios)} rounds; {create_ratios[0]:.0%} to {create_ratios[-1]:.0%})"
    )
    for watchers, (p50, p99, delivered) in streams:
        print(
            f"stream, {watchers:>4} watchers x 10 events/s: p50 {p50:6.1f} ms, "
            f"p99 {p99:6.1f} ms ({delivered} deliveries)"
        )


if __name__ == "__main__":
    gc.set_threshold(50_000, 50, 100)  # the client's own collections would show up as latency
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--stream-seconds", type=float, default=20, help="0 skips the stream measures"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.concurrency, arguments.stream_seconds))
