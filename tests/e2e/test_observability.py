"""What an operator sees (issue 13, "Eyes on it"): Prometheus metrics scraped over HTTP from a
running service, JSON log lines read from a `smarttrade serve` process, and the trace of a
call and of a tick in OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smarttrade import logs, tracing
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.process import free_port, wait_serving
from tests.support.scrape import Scrape, scrape
from tests.support.service import Client, Service, running_service
from tests.support.tcp_proxy import TcpProxy

BTC = "BTC/USDT"
REPLICA = "replica-a"


def long_with_stop(account: str, units: str = "1") -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units=units),
        stop_loss=pb.StopLoss(price="90"),
    )


@asynccontextmanager
async def with_metrics(
    database_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Service, str]]:
    address = f"127.0.0.1:{free_port()}"
    async with running_service(
        database_url, tmp_path, metrics_listen=address, replica_id=REPLICA, **overrides
    ) as service:
        yield service, address


async def test_every_call_is_counted_by_method_and_code_and_a_triggered_stop_is_timed(
    database_url: str, tmp_path: Path
) -> None:
    async with with_metrics(database_url, tmp_path) as (service, address):
        client = service.a
        account = await client.paper_account(USDT="1000")
        await client.set_price(BTC, "100")
        trade = await client.create(long_with_stop(account))
        await client.get(trade.name)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await client.get("smartTrades/0000000000000000")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        live = await scrape(address)
        await client.set_price(BTC, "89")  # crosses the stop: one market sell
        ended = await client.get(trade.name)
        after = await scrape(address)

    assert ended.state == pb.SMART_TRADE_STATE_CLOSED
    assert after.value("smarttrade_rpc_total", method="GetSmartTrade", code="OK") == 2
    assert after.value("smarttrade_rpc_total", method="GetSmartTrade", code="NOT_FOUND") == 1
    assert after.value("smarttrade_rpc_total", method="CreateSmartTrade", code="OK") == 1
    assert after.value("smarttrade_rpc_seconds_count", method="CreateSmartTrade") == 1
    # The entry was placed by a call, not by a tick: only the stop's sell is a tick's order.
    assert live.value("smarttrade_tick_to_order_seconds_count") == 0
    assert after.value("smarttrade_tick_to_order_seconds_count") == 1
    assert 0 < after.value("smarttrade_tick_to_order_seconds_sum") < 5
    assert live.value("smarttrade_live_trades") == 1
    assert after.value("smarttrade_live_trades") == 0
    assert after.value("smarttrade_events_total") > live.value("smarttrade_events_total") > 0
    assert after.value("smarttrade_store_write_seconds_count") >= 4
    statements = after.value("smarttrade_store_writes_per_statement_count")
    assert 0 < statements <= after.value("smarttrade_store_write_seconds_count")
    assert after.value("smarttrade_store_writes_per_statement_sum") >= statements
    assert after.value("smarttrade_store_available") == 1
    assert after.value("smarttrade_replica_info", version="0.1.0") == 1
    assert {s.labels["replica"] for s in after.samples} == {REPLICA}


async def test_an_order_the_venue_rejects_is_counted_as_a_venue_error(
    database_url: str, tmp_path: Path
) -> None:
    async with with_metrics(database_url, tmp_path) as (service, address):
        client = service.a
        account = await client.paper_account(USDT="10")  # a tenth of what the entry costs
        await client.set_price(BTC, "100")
        trade = await client.create(long_with_stop(account))
        seen = await scrape(address)

    assert trade.state == pb.SMART_TRADE_STATE_FAILED
    assert seen.value("smarttrade_venue_errors_total", kind="rejected") == 1


async def test_open_watch_streams_are_a_gauge(database_url: str, tmp_path: Path) -> None:
    async with with_metrics(database_url, tmp_path) as (service, address):
        client = service.a
        stream = client.trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(), metadata=client.metadata
        )
        while True:
            item = await stream.read()
            assert isinstance(item, trades_pb.WatchSmartTradesResponse)
            if item.WhichOneof("payload") == "snapshot_end":
                break
        watching = await scrape(address)
        stream.cancel()
        for _ in range(100):
            if (await scrape(address)).value("smarttrade_watchers") == 0:
                break
            await asyncio.sleep(0.05)
        gone = await scrape(address)

    assert watching.value("smarttrade_watchers") == 1
    assert gone.value("smarttrade_watchers") == 0


async def test_a_store_outage_shows_as_unavailable_and_is_counted_once(
    proxy: TcpProxy, database_url: str, tmp_path: Path
) -> None:
    via_proxy = proxy.url(database_url)
    async with with_metrics(via_proxy, tmp_path, store_probe_interval=0.05) as (_, address):
        before = await scrape(address)
        await proxy.cut()
        down = await _until(address, "smarttrade_store_available", 0)
        await proxy.restore()
        up = await _until(address, "smarttrade_store_available", 1)

    assert before.value("smarttrade_store_outages_total") == 0
    assert down.value("smarttrade_store_outages_total") == 1
    assert up.value("smarttrade_store_outages_total") == 1


async def _until(address: str, name: str, value: float) -> Scrape:
    for _ in range(200):
        seen = await scrape(address)
        if seen.value(name) == value:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became {value}")


async def test_json_logs_are_one_object_a_line_with_the_replica_tenant_trade_and_request(
    database_url: str, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    env["SMARTTRADE_TOKENS"] = "tenant-a:token-a"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smarttrade.cli",
        "serve",
        "--data-dir",
        str(tmp_path),
        "--listen",
        address,
        "--database-url",
        database_url,
        "--log-format",
        "json",
        "--replica-id",
        "replica-json",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_serving(address, process)
        async with grpc.aio.insecure_channel(address) as channel:
            client = Client(channel, "token-a")
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))
            await client.set_price(BTC, "89")
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = await asyncio.wait_for(process.communicate(), timeout=30)

    lines = [json.loads(line) for line in errors.decode().splitlines()]
    trade_id = trade.name.removeprefix("smartTrades/")
    assert lines
    assert all(line["replica"] == "replica-json" for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    about = [line for line in lines if line.get("trade") == trade_id]
    opened = [line for line in about if "PENDING -> ACTIVE" in line["message"]]
    stopped = [line for line in about if "-> CLOSED (STOP_LOSS)" in line["message"]]
    # Opened inside the CreateSmartTrade call (its tenant and request id); stopped by a tick.
    assert len(opened) == 1
    assert opened[0]["tenant"] == "tenant-a"
    assert opened[0]["request"]
    assert len(stopped) == 1


class Lines(logging.Handler):
    """The service's log lines, formatted as JSON lines would be."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonLines("in-process"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_one_trace_runs_from_the_rpc_through_the_decision_the_commit_and_the_venue(
    database_url: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    handler = Lines()
    service_log = logging.getLogger("smarttrade")
    level = service_log.level
    service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)
    try:
        async with running_service(database_url, tmp_path) as service:
            client = service.a
            account = await client.paper_account(USDT="1000")
            await client.set_price(BTC, "100")
            trade = await client.create(long_with_stop(account))
            await client.set_price(BTC, "89")  # the stop's market sell
    finally:
        service_log.removeHandler(handler)
        service_log.setLevel(level)
        tracing.install(None)

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}

    def rpc_of(span: ReadableSpan) -> str:
        """The name of the RPC span at the root of `span`'s trace."""
        while span.parent is not None:
            span = by_id[span.parent.span_id]
        return span.name

    def in_trace(rpc: str) -> list[str]:
        return sorted(
            s.name for s in spans if s.name.startswith("smarttrade.") and rpc_of(s) == rpc
        )

    create = "/smarttrade.v1.SmartTradeService/CreateSmartTrade"
    price = "/smarttrade.v1.PaperMarketService/SetPaperPrice"
    # The entry: decided, committed, sent, and its fill committed; all under the call.
    assert in_trace(create) == [
        "smarttrade.commit",
        "smarttrade.commit",
        "smarttrade.decide",
        "smarttrade.decide",
        "smarttrade.venue",
    ]
    # The stop, from the price that crossed it: the tick, its decision and commit, the sell.
    stop_trace = [n for n in in_trace(price) if n != "smarttrade.tick"]
    assert "smarttrade.tick" in in_trace(price)
    assert stop_trace.count("smarttrade.venue") == 1
    assert {"smarttrade.decide", "smarttrade.commit"} <= set(stop_trace)
    trade_id = trade.name.removeprefix("smartTrades/")
    opened = [
        line
        for line in handler.lines
        if line.get("trade") == trade_id and "PENDING -> ACTIVE" in line["message"]
    ]
    create_trace = {format(s.context.trace_id, "032x") for s in spans if s.name == create}
    assert len(opened) == 1
    assert {opened[0]["trace"]} == create_trace
