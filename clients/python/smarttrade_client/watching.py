"""The watch iterator: a `WatchSmartTrades` stream that survives disconnects.

The service numbers every event with a global `sequence` and lets a watcher resume "after N"
with nothing missed and nothing repeated. The iterator remembers the last sequence it handed
out and, when the stream breaks with UNAVAILABLE (a dropped connection, the server's
STREAM_OVERFLOW for a consumer that fell behind, SHUTTING_DOWN on a restart) or goes silent
for longer than three heartbeats, opens it again after that sequence. Whatever arrives at or
below it is dropped, so no event is yielded twice. (STREAM_OVERFLOW and SHUTTING_DOWN name
the same sequence in their `last_sequence` metadata; the iterator trusts its own count, which
is exactly what it handed out.)

The initial snapshot is held back until its `SnapshotEnd` arrived, so a stream broken in the
middle of the snapshot is restarted without yielding part of it twice. Until the first event
exists, there is no sequence to resume after (`after_sequence` 0 asks for a snapshot), so a
stream broken then starts over with a new snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta

import grpc

from smarttrade_client import convert
from smarttrade_client.calls import RetryPolicy
from smarttrade_client.errors import Unavailable, from_rpc_error
from smarttrade_client.models import Event, Heartbeat, SnapshotEnd, TradeSnapshot, WatchItem
from smarttrade_client.v1 import smart_trade_service_pb2 as trades_pb

OpenStream = Callable[
    [trades_pb.WatchSmartTradesRequest],
    grpc.aio.UnaryStreamCall[trades_pb.WatchSmartTradesRequest, trades_pb.WatchSmartTradesResponse],
]


class Silence(Exception):
    """No message, not even a heartbeat, for too long: the connection is presumed dead."""


async def resuming_watch(
    open_stream: OpenStream,
    *,
    name: str,
    after_sequence: int,
    heartbeat: timedelta,
    retry: RetryPolicy,
    heartbeats: bool,
) -> AsyncGenerator[WatchItem, None]:
    """Yield the stream's items, resuming after the last sequence on UNAVAILABLE.

    `retry` bounds the reconnections in a row that receive nothing; a stream that delivered
    something starts the count again.
    """
    last = after_sequence
    failures = 0
    silence = 3 * heartbeat.total_seconds() + 2
    while True:
        request = trades_pb.WatchSmartTradesRequest(name=name, after_sequence=last)
        request.heartbeat_interval.FromTimedelta(heartbeat)
        call = open_stream(request)
        snapshot: list[TradeSnapshot] = []
        try:
            while True:
                try:
                    message = await asyncio.wait_for(call.read(), silence)
                except TimeoutError:
                    raise Silence from None
                if not isinstance(message, trades_pb.WatchSmartTradesResponse):
                    # EOF: the contract never ends a stream without a status; treat it as a drop.
                    raise Silence
                failures = 0
                item = convert.watch_item(message)
                if isinstance(item, TradeSnapshot):
                    snapshot.append(item)
                elif isinstance(item, SnapshotEnd):
                    for trade in snapshot:
                        yield trade
                    snapshot.clear()
                    last = max(last, item.sequence)
                    yield item
                elif isinstance(item, Event):
                    if item.sequence > last:
                        last = item.sequence
                        yield item
                elif isinstance(item, Heartbeat) and heartbeats:
                    yield item
        except grpc.aio.AioRpcError as raw:
            error = from_rpc_error(raw)
            if not isinstance(error, Unavailable) or failures + 1 >= retry.attempts:
                raise error from raw
            delay = retry.delay(failures, error.retry_delay)
        except Silence:
            if failures + 1 >= retry.attempts:
                raise Unavailable("the watch stream went silent and could not be resumed") from None
            delay = retry.delay(failures)
        finally:
            call.cancel()
        failures += 1
        await asyncio.sleep(delay)
