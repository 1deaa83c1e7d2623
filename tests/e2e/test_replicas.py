"""Replicas on one database sharing the trades by tenant shard (SMARTTRADE_LEASE_SECONDS; issue
13): each runs the trades of the shards it holds, its fair share; they take a killed or
stopped replica's shards over; any replica answers any call, forwarding it to the replica
that runs the caller's trades; and a replica whose lease lapsed commits nothing (fencing).
Each replica is `smarttrade serve` as its own process."""

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
from tests.support.replicas import (
    BTC,
    TOKEN,
    TOKENS,
    long_with_stop,
    replica,
    shares,
    two_sharing,
    until_balanced,
    until_shares,
)
from tests.support.scrape import scrape
from tests.support.service import Client, WatchCall, rich_error
from tests.support.tcp_proxy import TcpProxy


async def test_two_replicas_share_the_shards_and_each_runs_its_own_tenants_trades(
    database_url: str, tmp_path: Path
) -> None:
    async with replica("a", database_url, tmp_path / "a") as a:
        await a.until_owns()
        alone = await shares(database_url)
        async with replica("b", database_url, tmp_path / "b") as b:
            await until_balanced(database_url, a, b)
            a_runs = {t for t in TOKENS if await a.owns(t)}
            b_runs = {t for t in TOKENS if await b.owns(t)}
            closed = {}
            for tenant, token in TOKENS.items():  # each through the replica that does not run it
                via = a if tenant in b_runs else b
                async with grpc.aio.insecure_channel(via.address) as channel:
                    client = Client(channel, token)
                    account = await client.paper_account(USDT="1000")
                    await client.set_price(BTC, "100")
                    trade = await client.create(long_with_stop(account))
                    await client.set_price(BTC, "89")
                    closed[tenant] = await client.get(trade.name)

    assert alone == {"a": 12}
    assert (a_runs, b_runs) == ({"tenant-c"}, {"tenant-a"})
    for trade in closed.values():
        assert trade.state == pb.SMART_TRADE_STATE_CLOSED
        assert trade.close_reason == pb.CLOSE_REASON_STOP_LOSS


async def stop_fires_once(address: str, trade: pb.SmartTrade, account: str) -> None:
    """Through the replica at `address`: the price under the stop closes the trade at its stop,
    with one stop order, and sells every coin."""
    async with grpc.aio.insecure_channel(address) as channel:
        client = Client(channel, TOKEN)
        await client.set_price(BTC, "89")
        for _ in range(200):
            ended = await client.get(trade.name)
            if ended.state == pb.SMART_TRADE_STATE_CLOSED:
                break
            await asyncio.sleep(0.05)
        balances = await client.balances(account)
    assert ended.state == pb.SMART_TRADE_STATE_CLOSED
    assert ended.close_reason == pb.CLOSE_REASON_STOP_LOSS
    stops = [o for leg in ended.legs if leg.kind == pb.LEG_KIND_STOP_LOSS for o in leg.orders]
    assert len(stops) == 1
    assert Decimal(balances.get("BTC", "0")) == 0


async def test_a_replica_takes_a_killed_ones_trade_over_within_the_lease_and_fires_its_stop_once(
    database_url: str, tmp_path: Path
) -> None:
    async with two_sharing(database_url, tmp_path) as (running, other):
        async with grpc.aio.insecure_channel(running.address) as channel:
            client = Client(channel, TOKEN)
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))

        running.process.kill()
        killed = time.monotonic()
        took_over = await other.until_owns()
        await stop_fires_once(other.address, trade, account)
        after = await shares(database_url)

    assert took_over - killed < 2.0 + 2.0  # the lease, plus 2 s
    assert after == {other.name: 12}  # every shard of the dead one


async def test_any_replica_answers_every_call_reading_trades_itself_and_forwarding_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        two_sharing(database_url, tmp_path) as (_, other),
        grpc.aio.insecure_channel(other.address) as to_other,
    ):
        via = Client(to_other, TOKEN)
        watching = via.trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(), metadata=via.metadata
        )
        opened = await watching.read()  # served by the other replica itself
        assert isinstance(opened, trades_pb.WatchSmartTradesResponse)
        account = await via.paper_account(USDT="1000")  # forwarded to the owner, as are
        await via.set_price(BTC, "100")
        trade = await via.create(long_with_stop(account))  # ... the trades it runs
        read_by_other = await via.get(trade.name)  # from the store
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # the owner's answer, in full
            await via.create(
                pb.SmartTrade(
                    account=account,
                    symbol=BTC,
                    side=pb.SIDE_BUY,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="-1"),
                )
            )
        await via.set_price(BTC, "89")  # the stop fires on the owner
        events = await events_of(watching, until_closed=True)  # heard of on the other
        assert not await other.owns()

    assert opened.snapshot_end.sequence == 0
    assert read_by_other.state == pb.SMART_TRADE_STATE_ACTIVE
    assert read_by_other.etag == trade.etag
    error = rich_error(refused.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "smart_trade.entry.units" in error.fields
    assert events == list(range(1, len(events) + 1))  # every event of the owner's, once, in order


async def test_a_replica_stopped_by_sigterm_hands_its_shards_over_at_once(
    database_url: str, tmp_path: Path
) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    watched = {"SMARTTRADE_METRICS_LISTEN": metrics}
    async with replica("a", database_url, tmp_path / "a", lease_seconds=4) as a:
        await a.until_owns()
        async with replica("b", database_url, tmp_path / "b", 4, settings=watched) as b:
            await until_balanced(database_url, a, b)
            sharing = await scrape(metrics)
            a.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            took_over = await until_shares(database_url, {"b": 12})
            await b.until_owns(tenant="tenant-c")  # a's, running on b
            assert await a.process.wait() == 0
            holding = await scrape(metrics)

    assert took_over - stopped < 4 / 2  # well before the leases would have lapsed
    assert sharing.value("smarttrade_lease_held") == 1
    assert sharing.value("smarttrade_leases_taken_total") == 6
    assert holding.value("smarttrade_lease_held") == 1
    assert holding.value("smarttrade_leases_taken_total") == 12


async def test_a_replica_cut_from_the_database_commits_nothing_after_its_lease_lapsed(
    proxy: TcpProxy, database_url: str, tmp_path: Path
) -> None:
    async with replica("a", proxy.url(database_url), tmp_path / "a") as a:
        await a.until_owns()
        async with (
            replica("b", database_url, tmp_path / "b") as b,
            grpc.aio.insecure_channel(a.address) as channel,
        ):
            await until_balanced(database_url, a, b)
            tenant = "tenant-c"  # a keeps running tenant-c's trades (tests/support/replicas.py)
            assert await a.owns(tenant)
            client = Client(channel, TOKENS[tenant])
            await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            proxy.stall()  # a's writes wait on the line; its leases cannot be renewed
            late = asyncio.ensure_future(client.set_price(BTC, "95"))
            await b.until_owns(tenant=tenant)  # a's lease lapsed: b holds it now
            proxy.flow()  # a's write reaches the database, with a's old fencing number
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await late
            await until_balanced(database_url, a, b)  # a rejoins, and takes its share again

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    connection = await asyncpg.connect(database_url)
    try:
        prices = await connection.fetch(
            "SELECT price FROM paper_prices WHERE symbol = $1 AND tenant_id = $2", BTC, tenant
        )
    finally:
        await connection.close()
    assert [row["price"] for row in prices] == [Decimal("100")]


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
    async with (
        two_sharing(database_url, tmp_path) as (running, other),
        grpc.aio.insecure_channel(running.address) as to_owner,
        grpc.aio.insecure_channel(other.address) as to_other,
    ):
        on_owner, on_other = Client(to_owner, TOKEN), Client(to_other, TOKEN)
        account = await on_owner.paper_account(USDT="1000")
        await on_owner.set_price(BTC, "100")
        watching = on_owner.trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(), metadata=on_owner.metadata
        )
        opened = await watching.read()  # no trade yet: the snapshot's end, at once
        assert isinstance(opened, trades_pb.WatchSmartTradesResponse)
        assert opened.snapshot_end.sequence == 0
        await on_owner.create(long_with_stop(account))
        await asyncio.sleep(0.5)
        running.process.send_signal(signal.SIGTERM)  # its streams end, resumable
        before = await events_of(watching, until_closed=False)
        await other.until_owns()
        resumed = on_other.trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(after_sequence=before[-1]),
            metadata=on_other.metadata,
        )
        await on_other.set_price(BTC, "89")  # the stop: the trade ends on the other
        after = await events_of(resumed, until_closed=True)

    assert before  # the owner's stream delivered the first events before it ended
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
        await a.until_owns()  # alone: every shard
        async with AsyncSmartTradeClient(target, TOKEN, retry=retry, options=options) as client:
            account = await client.create_paper_account({"USDT": Decimal(10**9)})
            await client.set_price(BTC, Decimal(100))
            async with replica("b", database_url, tmp_path / "b", address=second) as b:
                await until_balanced(database_url, a, b)
                workers = [asyncio.create_task(load(client, account.name)) for _ in range(4)]
                await asyncio.sleep(1)
                a.process.send_signal(signal.SIGTERM)  # a hands its shards over to b
                assert await a.process.wait() == 0
                await b.until_owns()
                before_restart = done
                async with replica("a2", database_url, tmp_path / "a2", address=first) as a2:
                    await until_balanced(database_url, a2, b)  # as a rollout waits for
                    b.process.send_signal(signal.SIGTERM)  # b hands over to a, restarted
                    assert await b.process.wait() == 0
                    await a2.until_owns()
                    await asyncio.sleep(1)
                    running = False
                    await asyncio.gather(*workers)

    assert failed == 0, errors[:3]
    assert before_restart > 0
    assert done > before_restart  # calls went on through both handovers


async def test_a_replica_killed_while_handing_a_shard_over_leaves_it_to_the_other_in_the_lease(
    database_url: str, tmp_path: Path
) -> None:
    # tenant-a's shard, 9, is one a gives up when b joins: a dies with its trades stopped
    # and its lease not released (store/leases.py), so b takes it when the lease lapses.
    dies = {"SMARTTRADE_FAILPOINTS": "shard:9:before-release"}
    async with replica("a", database_url, tmp_path / "a", settings=dies) as a:
        await a.until_owns()
        async with grpc.aio.insecure_channel(a.address) as channel:
            client = Client(channel, TOKEN)
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))
        async with replica("b", database_url, tmp_path / "b") as b:
            status = await asyncio.wait_for(a.process.wait(), 30)
            await b.until_owns()
            await stop_fires_once(b.address, trade, account)
            after = await shares(database_url)

    assert status == -signal.SIGKILL  # at the failpoint
    assert after == {"b": 12}


async def test_a_replica_killed_right_after_taking_a_shard_leaves_it_to_the_other_in_the_lease(
    database_url: str, tmp_path: Path
) -> None:
    # b takes tenant-a's shard from a and dies before recovering anything of it: a takes
    # it back once b's lease and heartbeat lapse.
    dies = {"SMARTTRADE_FAILPOINTS": "shard:9:taken"}
    async with replica("a", database_url, tmp_path / "a") as a:
        await a.until_owns()
        async with grpc.aio.insecure_channel(a.address) as channel:
            client = Client(channel, TOKEN)
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))
        async with replica("b", database_url, tmp_path / "b", settings=dies) as b:
            status = await asyncio.wait_for(b.process.wait(), 30)
            await until_shares(database_url, {"a": 12})
            await a.until_owns()
            await stop_fires_once(a.address, trade, account)

    assert status == -signal.SIGKILL  # at the failpoint
