"""Many calls in flight: each gets its answer, or UNAVAILABLE with a RetryInfo from the service;
never a CANCELLED that gRPC core chose in silence (see api/registration.py on load).

The burst test is the reproduction itself (2,000 GetSmartTrade on one channel, against the
real server, about a second): before the fix it lost 600-650 of 6,000 calls to CANCELLED.
The shedding test is its deterministic half: a budget of 3 calls, 8 callers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from smarttrade.api.registration import CallBudget, generic_only, server_options
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Service, rich_error


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return float(retry.retry_delay.ToTimedelta().total_seconds())
    return None


async def test_two_thousand_reads_in_flight_on_one_channel_all_get_an_answer(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await client.set_price("BTC/USDT", "100")
    trade = await client.create(
        pb.SmartTrade(
            account=account,
            symbol="BTC/USDT",
            side=pb.SIDE_BUY,
            entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="0.1", limit_price="90"),
        )
    )
    request = trades_pb.GetSmartTradeRequest(name=trade.name)
    outcomes: Counter[str] = Counter()

    async def read() -> None:
        try:
            await client.trades.GetSmartTrade(request, metadata=client.metadata, timeout=60)
            outcomes["OK"] += 1
        except grpc.aio.AioRpcError as error:
            retryable = error.code() == grpc.StatusCode.UNAVAILABLE and retry_delay(error)
            outcomes["shed with RetryInfo" if retryable else error.code().name] += 1

    for _ in range(3):
        await asyncio.gather(*(read() for _ in range(2000)))

    assert set(outcomes) <= {"OK", "shed with RetryInfo"}, outcomes
    assert outcomes.total() == 6000


Gated = tuple[grpc.aio.Channel, asyncio.Event, asyncio.Event]


@pytest.fixture
async def gated_server() -> AsyncIterator[Gated]:
    """A server whose one method waits for the gate, with a budget of 3 calls in flight; the
    second event is set once 3 calls are waiting."""
    gate, full, entered = asyncio.Event(), asyncio.Event(), [0]

    async def wait(request: bytes, context: Any) -> bytes:
        entered[0] += 1
        if entered[0] == 3:
            full.set()
        await gate.wait()
        return request

    server = grpc.aio.server(options=server_options())
    handler = grpc.method_handlers_generic_handler(
        "test.Gated", {"Wait": grpc.unary_unary_rpc_method_handler(wait)}
    )
    generic_only(server, CallBudget(limit=3)).add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, gate, full
    await server.stop(0)


async def test_calls_beyond_the_budget_are_unavailable_at_once_with_a_retry_delay(
    gated_server: Gated,
) -> None:
    channel, gate, full = gated_server
    wait: Any = channel.unary_unary("/test.Gated/Wait")
    held = [asyncio.ensure_future(wait(b"held")) for _ in range(3)]
    await asyncio.wait_for(full.wait(), timeout=10)

    refused = await asyncio.gather(*(wait(b"more") for _ in range(5)), return_exceptions=True)
    gate.set()
    answered = await asyncio.gather(*held)

    assert answered == [b"held"] * 3
    for error in refused:
        assert isinstance(error, grpc.aio.AioRpcError)
        assert (rich_error(error).code, rich_error(error).reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "OVERLOADED",
        )
        assert retry_delay(error) == 0.5
    assert await wait(b"again", timeout=10) == b"again"  # the budget is given back
