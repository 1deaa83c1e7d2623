"""WatchSmartTrades: resumable without gap or duplicate, heartbeats, slow consumers, shutdown,
and history retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from smarttrade import app
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.process import serve_process
from tests.support.service import Client, Service, WatchCall, rich_error, running_service

BTC = "BTC/USDT"
Response = trades_pb.WatchSmartTradesResponse


def market_buy(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="110", volume_percent="100")]),
    )


def watch(client: Client, after: int = 0, heartbeat: int = 0) -> WatchCall:
    request = trades_pb.WatchSmartTradesRequest(after_sequence=after)
    if heartbeat:
        request.heartbeat_interval.CopyFrom(Duration(seconds=heartbeat))
    return client.trades.WatchSmartTrades(request, metadata=client.metadata)


async def past_snapshot(stream: WatchCall) -> int:
    while True:
        item = await stream.read()
        assert isinstance(item, Response)
        if item.WhichOneof("payload") == "snapshot_end":
            return int(item.snapshot_end.sequence)


async def events_until(stream: WatchCall, last: int) -> list[int]:
    """The event sequences read until (and including) `last`."""
    seen: list[int] = []
    while not seen or seen[-1] < last:
        item = await asyncio.wait_for(stream.read(), timeout=10)
        assert isinstance(item, Response)
        if item.WhichOneof("payload") == "event":
            seen.append(item.event.sequence)
    return seen


async def round_trip(client: Client, account: str) -> None:
    """One trade from creation to CLOSED: a dozen events."""
    await client.set_price(BTC, "100")
    await client.create(market_buy(account))
    await client.set_price(BTC, "111")


async def test_a_watcher_resuming_after_n_gets_exactly_the_events_it_missed(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    reference = watch(client)
    start = await past_snapshot(reference)
    leaving = watch(client)
    await past_snapshot(leaving)
    await round_trip(client, account)
    first = await events_until(reference, service.running.bus.head("tenant-a"))
    seen_before = await events_until(leaving, first[len(first) // 2])
    leaving.cancel()
    last_seen = seen_before[-1]

    await round_trip(client, account)
    everything = first + await events_until(reference, service.running.bus.head("tenant-a"))
    back = watch(client, after=last_seen)
    resumed = await events_until(back, everything[-1])

    assert resumed == [s for s in everything if s > last_seen]
    assert everything == sorted(set(everything))
    assert everything[0] > start
    reference.cancel()
    back.cancel()


async def test_an_idle_stream_sends_heartbeats(service: Service) -> None:
    stream = watch(service.a, heartbeat=1)
    sequence = await past_snapshot(stream)

    item = await asyncio.wait_for(stream.read(), timeout=5)

    assert isinstance(item, Response)
    assert item.WhichOneof("payload") == "heartbeat"
    assert item.heartbeat.sequence == sequence
    stream.cancel()


async def test_a_resumed_stream_with_nothing_to_catch_up_on_says_at_once_that_it_is_live(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await round_trip(client, account)
    head = service.running.bus.head("tenant-a")
    stream = watch(client, after=head)  # the default heartbeat: 15 s

    item = await asyncio.wait_for(stream.read(), timeout=5)

    assert isinstance(item, Response)
    assert item.WhichOneof("payload") == "heartbeat"
    assert item.heartbeat.sequence == head
    await client.set_price(BTC, "100")
    await client.create(market_buy(account))  # then the events, as ever
    assert (await events_until(stream, head + 1))[0] == head + 1
    stream.cancel()


async def test_a_stalled_watcher_is_cut_off_while_a_thousand_others_keep_receiving(
    database_url: str, tmp_path: Path
) -> None:
    # A buffer of 48 events: one event loop writes to the thousand active watchers in turn,
    # and commits can come faster than a round of a thousand writes, so an active watcher may
    # lag by a few dozen events on a busy machine (16 cut one off now and then); the stalled
    # one, which reads nothing, is past 48 plus its 4 KiB window well before ~100 events.
    env = {"SMARTTRADE_TOKENS": "tenant-a:token-a", "SMARTTRADE_WATCH_BUFFER": "48"}
    async with serve_process(tmp_path, database_url=database_url, env=env) as server:
        channels = [grpc.aio.insecure_channel(server.address) for _ in range(11)]
        # The stalled consumer's channel advertises a 4 KiB HTTP/2 window (no BDP probing), so
        # not reading soon pushes back on the server instead of filling client memory.
        narrow = grpc.aio.insecure_channel(
            server.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 4096)],
        )
        channels.append(narrow)
        try:
            clients = [Client(channel, "token-a") for channel in channels]
            client = clients[10]
            account = await client.paper_account(USDT="1000000")
            watchers = [watch(clients[i % 10]) for i in range(1000)]
            stalled = watch(Client(narrow, "token-a"))
            await asyncio.gather(*(past_snapshot(w) for w in [*watchers, stalled]))

            for _ in range(8):  # ~100 events: beyond the stalled one's buffer and window
                await round_trip(client, account)
            reference = watch(client, after=1)
            last = (await events_until_quiet(reference))[-1]
            counts = await asyncio.gather(*(events_until(w, last) for w in watchers))

            assert {len(c) for c in counts} == {len(counts[0])}
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await drain(stalled)
            error = rich_error(raised.value)
            assert error.code == grpc.StatusCode.UNAVAILABLE
            assert error.reason == "STREAM_OVERFLOW"
            assert int(error.metadata["last_sequence"]) < last
        finally:
            for channel in channels:
                await channel.close()


async def drain(stream: WatchCall) -> None:
    while True:
        item = await asyncio.wait_for(stream.read(), timeout=10)
        assert item is not grpc.aio.EOF


async def events_until_quiet(stream: WatchCall) -> list[int]:
    """Every event sequence until a heartbeat-free pause of a second."""
    seen: list[int] = []
    while True:
        try:
            item = await asyncio.wait_for(stream.read(), timeout=1)
        except TimeoutError:
            stream.cancel()
            return seen
        assert isinstance(item, Response)
        if item.WhichOneof("payload") == "event":
            seen.append(item.event.sequence)


async def test_shutting_down_ends_streams_with_a_resumable_unavailable(
    database_url: str, tmp_path: Path
) -> None:
    async with running_service(database_url, tmp_path) as service:
        stream = watch(service.a)
        sequence = await past_snapshot(stream)
        await service.running.health.enter_graceful_shutdown()
        service.running.bus.close_all()

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await asyncio.wait_for(stream.read(), timeout=5)

        error = rich_error(raised.value)
        assert error.code == grpc.StatusCode.UNAVAILABLE
        assert error.reason == "SHUTTING_DOWN"
        assert int(error.metadata["last_sequence"]) == sequence


async def test_resuming_from_before_the_retained_history_is_out_of_range(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await round_trip(client, account)
    async with service.running.unit_of_work() as uow:
        await uow.events.prune(datetime.now(UTC) + timedelta(seconds=1))
        await uow.commit()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await watch(client, after=1).read()

    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.OUT_OF_RANGE
    fresh = watch(client)
    first = await fresh.read()
    assert isinstance(first, Response)
    assert first.WhichOneof("payload") in ("snapshot", "snapshot_end")
    fresh.cancel()


_ = app


async def test_a_tenants_sequence_counts_its_own_events_only(service: Service) -> None:
    """DESIGN §2.8: one tenant's cursor reveals nothing of another tenant's activity."""
    a, b = service.a, service.b
    account_a = await a.paper_account(USDT="100000")
    account_b = await b.paper_account(USDT="100000")
    stream = watch(a)
    start = await past_snapshot(stream)
    for _ in range(3):  # another tenant, busy
        await round_trip(b, account_b)
    await round_trip(a, account_a)

    seen = await events_until(stream, service.running.bus.head("tenant-a"))

    assert seen == list(range(start + 1, start + 1 + len(seen)))
    assert service.running.bus.head("tenant-b") == len(seen) * 3  # b's own count, from 1
    stream.cancel()
