"""Replicas on one database with the leader lease (SMARTTRADE_LEASE_SECONDS; issue 13, first
part): one replica acts, the others stand by and take over when it dies or stops, and a
replica whose lease lapsed commits nothing (fencing). Each replica is `smarttrade serve` as
its own process."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from smarttrade_client.aio import AsyncSmartTradeClient
from smarttrade_client.calls import RetryPolicy
from smarttrade_client.errors import SmartTradeError
from smarttrade_client.models import Entry, Side
from tests.support.process import free_port
from tests.support.replicas import BTC, TOKEN, long_with_stop, replica
from tests.support.scrape import scrape
from tests.support.service import Client, WatchCall, rich_error
from tests.support.tcp_proxy import TcpProxy


async def test_a_standby_takes_over_a_killed_leaders_trade_within_the_lease_and_fires_its_stop_once(
    database_url: str, tmp_path: Path
) -> None:
    async with replica("a", database_url, tmp_path / "a") as a:
        await a.until_leading()  # the first: it holds the lease
        async with grpc.aio.insecure_channel(a.address) as channel:
            client = Client(channel, TOKEN)
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))
        async with replica("b", database_url, tmp_path / "b") as b:
            await b.until_listening()
            await asyncio.sleep(2.5)  # more than a lease: b had every chance to take it
            assert not await b.leading()

            a.process.kill()
            killed = time.monotonic()
            took_over = await b.until_leading()
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


async def test_a_standby_answers_every_call_reading_trades_itself_and_forwarding_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    async with replica("a", database_url, tmp_path / "a") as a:
        await a.until_leading()
        async with (
            replica("b", database_url, tmp_path / "b") as b,
            grpc.aio.insecure_channel(b.address) as to_b,
        ):
            await b.until_serving()  # a standby serves too
            via_b = Client(to_b, TOKEN)
            watching = via_b.trades.WatchSmartTrades(
                trades_pb.WatchSmartTradesRequest(), metadata=via_b.metadata
            )
            opened = await watching.read()  # served by b itself
            assert isinstance(opened, trades_pb.WatchSmartTradesResponse)
            account = await via_b.paper_account(USDT="1000")  # forwarded to a, as are ...
            await via_b.set_price(BTC, "100")
            trade = await via_b.create(long_with_stop(account))  # ... the trades a runs
            read_by_b = await via_b.get(trade.name)  # from the store
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # a's answer, details and all
                await via_b.create(
                    pb.SmartTrade(
                        account=account,
                        symbol=BTC,
                        side=pb.SIDE_BUY,
                        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="-1"),
                    )
                )
            await via_b.set_price(BTC, "89")  # the stop fires on a
            events = await events_of(watching, until_closed=True)  # heard of on b
            assert not await b.leading()

    assert opened.snapshot_end.sequence == 0
    assert read_by_b.state == pb.SMART_TRADE_STATE_ACTIVE
    assert read_by_b.etag == trade.etag
    error = rich_error(refused.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "smart_trade.entry.units" in error.fields
    assert events == list(range(1, len(events) + 1))  # every event of a's, once, in order


async def test_a_leader_stopped_by_sigterm_hands_over_at_once(
    database_url: str, tmp_path: Path
) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    watched = {"SMARTTRADE_METRICS_LISTEN": metrics}
    async with replica("a", database_url, tmp_path / "a", lease_seconds=4) as a:
        await a.until_leading()
        async with replica("b", database_url, tmp_path / "b", 4, settings=watched) as b:
            await b.until_listening()
            await asyncio.sleep(1)
            assert not await b.leading()
            standing_by = await scrape(metrics)
            a.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            took_over = await b.until_leading()
            assert await a.process.wait() == 0
            holding = await scrape(metrics)

    assert took_over - stopped < 4 / 2  # well before the lease would have lapsed
    assert standing_by.value("smarttrade_lease_held") == 0
    assert standing_by.value("smarttrade_leases_taken_total") == 0
    assert holding.value("smarttrade_lease_held") == 1
    assert holding.value("smarttrade_leases_taken_total") == 1


async def test_a_leader_cut_from_the_database_commits_nothing_after_its_lease_lapsed(
    proxy: TcpProxy, database_url: str, tmp_path: Path
) -> None:
    async with replica("a", proxy.url(database_url), tmp_path / "a") as a:
        await a.until_leading()
        async with (
            replica("b", database_url, tmp_path / "b") as b,
            grpc.aio.insecure_channel(a.address) as channel,
        ):
            client = Client(channel, TOKEN)
            await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            proxy.stall()  # a's writes wait on the line; its lease cannot be renewed
            late = asyncio.ensure_future(client.set_price(BTC, "95"))
            await b.until_leading()  # a's lease lapsed: b holds it now
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


async def events_of(stream: WatchCall, until_closed: bool) -> list[int]:
    """The event sequences a stream delivers: until the trade is CLOSED, or until the stream
    ends (a replica stopping ends it with UNAVAILABLE, to be resumed elsewhere)."""
    seen: list[int] = []
    while True:
        try:
            item = await asyncio.wait_for(stream.read(), timeout=20)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return seen
        assert isinstance(item, trades_pb.WatchSmartTradesResponse)
        if item.WhichOneof("payload") == "event":
            seen.append(item.event.sequence)
            if until_closed and item.event.state == pb.SMART_TRADE_STATE_CLOSED:
                return seen


async def test_a_watch_resumes_on_the_replica_that_took_over_and_sees_every_event_once(
    database_url: str, tmp_path: Path
) -> None:
    async with replica("a", database_url, tmp_path / "a") as a:
        await a.until_leading()
        async with (
            replica("b", database_url, tmp_path / "b") as b,
            grpc.aio.insecure_channel(a.address) as to_a,
            grpc.aio.insecure_channel(b.address) as to_b,
        ):
            on_a, on_b = Client(to_a, TOKEN), Client(to_b, TOKEN)
            account = await on_a.paper_account(USDT="1000")
            await on_a.set_price(BTC, "100")
            watching = on_a.trades.WatchSmartTrades(
                trades_pb.WatchSmartTradesRequest(), metadata=on_a.metadata
            )
            opened = await watching.read()  # no trade yet: the snapshot's end, at once
            assert isinstance(opened, trades_pb.WatchSmartTradesResponse)
            assert opened.snapshot_end.sequence == 0
            await on_a.create(long_with_stop(account))
            await asyncio.sleep(0.5)
            a.process.send_signal(signal.SIGTERM)  # its streams end, resumable
            before = await events_of(watching, until_closed=False)
            await b.until_leading()
            resumed = on_b.trades.WatchSmartTrades(
                trades_pb.WatchSmartTradesRequest(after_sequence=before[-1]),
                metadata=on_b.metadata,
            )
            await on_b.set_price(BTC, "89")  # the stop: the trade ends on b
            after = await events_of(resumed, until_closed=True)

    assert before  # a's stream delivered the first events before it ended
    events = before + after
    assert events == list(range(1, len(events) + 1))  # every event once, in order


# The channel of a client that knows every replica's address and sends calls only to one that
# says SERVING (gRPC client-side health checking): what a load balancer with the readiness
# probe does, in the test.
EVERY_REPLICA = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


async def test_a_rolling_restart_under_load_fails_no_call_of_a_client_that_retries(
    database_url: str, tmp_path: Path
) -> None:
    first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    target = f"ipv4:{first},{second}"
    options = [("grpc.service_config", EVERY_REPLICA), ("grpc.enable_retries", 0)]
    retry = RetryPolicy(attempts=10, initial_backoff=0.1, max_backoff=1.0)
    done, failed = 0, 0
    errors: list[str] = []
    running = True

    async def load(client: AsyncSmartTradeClient, account: str) -> None:
        nonlocal done, failed
        while running:
            try:
                trade = await client.create_trade(
                    account=account,
                    symbol=BTC,
                    side=Side.BUY,
                    entry=Entry.market(units=Decimal("0.1")),
                )
                await client.get_trade(trade.name)
                done += 1
            except SmartTradeError as error:
                failed += 1
                errors.append(repr(error)[:300])

    async with replica("a", database_url, tmp_path / "a", address=first) as a:
        await a.until_leading()
        async with AsyncSmartTradeClient(target, TOKEN, retry=retry, options=options) as client:
            account = await client.create_paper_account({"USDT": Decimal(10**9)})
            await client.set_price(BTC, Decimal(100))
            async with replica("b", database_url, tmp_path / "b", address=second) as b:
                await b.until_listening()
                workers = [asyncio.create_task(load(client, account.name)) for _ in range(4)]
                await asyncio.sleep(1)
                a.process.send_signal(signal.SIGTERM)  # a hands over to b
                assert await a.process.wait() == 0
                await b.until_leading()
                before_restart = done
                async with replica("a2", database_url, tmp_path / "a2", address=first) as a2:
                    await a2.until_listening()  # up and standing by, as a rollout waits for
                    b.process.send_signal(signal.SIGTERM)  # b hands over to a, restarted
                    assert await b.process.wait() == 0
                    await a2.until_leading()
                    await asyncio.sleep(1)
                    running = False
                    await asyncio.gather(*workers)

    assert failed == 0, errors[:3]
    assert before_restart > 0
    assert done > before_restart  # calls went on through both handovers
