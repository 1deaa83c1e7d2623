"""Replicas: a standby answers every call, forwarding those it cannot serve to the leader.

A standby (a replica that does not hold the leader lease, SMARTTRADE_LEASE_SECONDS) serves
the reads of trades (GetSmartTrade, ListSmartTrades) from the store and the watch stream
from its own bus, which hears every replica's events (engine/fanout.py). Every other call
(a mutation, an action, the paper sandbox, accounts) is sent on to the replica that holds
the lease, at the address it advertises in the lease, with the caller's metadata and what
is left of its deadline; the leader's answer, or its error with all its details, goes back
to the caller as it is. So a client (or a load balancer) may send any call to any replica.

A call that cannot be forwarded (no replica holds the lease, as during a takeover; the
holder cannot be reached) is UNAVAILABLE with reason NOT_LEADER and a RetryInfo, as a
standby answered every call before; one the holder did not answer in time is
DEADLINE_EXCEEDED, as it would have been from the holder itself. A forwarded call carries
`smarttrade-forwarded-by`: one that reaches a replica which is not the leader either (the
lease moved meanwhile) is answered NOT_LEADER there, never forwarded again, so nothing goes
round in circles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from smarttrade.api.errors import abort
from smarttrade.errors import NotLeader

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

FORWARDED_BY = "smarttrade-forwarded-by"
# The reads a standby serves itself (from the store); WatchSmartTrades, the one stream, too.
SERVED_BY_ANY = frozenset(
    {
        "/smarttrade.v1.SmartTradeService/GetSmartTrade",
        "/smarttrade.v1.SmartTradeService/ListSmartTrades",
    }
)
# Metadata that belongs to the connection or to gRPC itself, not to the call.
_NOT_PASSED = ("user-agent", "te", "content-type", "authority", "host")
LEADER_CACHE_SECONDS = 1.0

LeaderAddress = Callable[[], Awaitable[str | None]]


def _raw(answer: bytes) -> bytes:
    return answer


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


class Forwarder:
    """Sends a call on to the leader and returns its answer as bytes."""

    def __init__(
        self,
        leader_address: LeaderAddress,
        replica: str,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._leader_address = leader_address
        self._replica = replica
        self._credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._leader: str | None = None
        self._looked_up = 0.0

    async def __call__(self, method: str, request: Any, context: Context) -> bytes:
        metadata = context.invocation_metadata() or ()
        if any(key == FORWARDED_BY for key, _ in metadata):
            await abort(context, NotLeader())  # the lease moved on while it was forwarded
        address = await self._leader_now()
        if address is None:
            await abort(context, NotLeader())
        passed = [
            (key, value)
            for key, value in metadata
            if not key.startswith((":", "grpc-")) and key not in _NOT_PASSED
        ]
        passed.append((FORWARDED_BY, self._replica))
        call = self._channel(address).unary_unary(
            method, request_serializer=_serialize, response_deserializer=_raw
        )
        try:
            answer: bytes = await call(request, metadata=passed, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as error:
            trailers = error.trailing_metadata() or ()
            answered = any(key == "grpc-status-details-bin" for key, _ in trailers)
            if not answered and error.code() == grpc.StatusCode.UNAVAILABLE:
                # Not the service's answer: the leader went away (or was never there).
                self._leader = None
                log.info("forwarding %s to %s failed: %s", method, address, error.details())
                await abort(context, NotLeader())
            await context.abort(
                error.code(), error.details() or "", trailing_metadata=tuple(trailers)
            )
        return answer

    async def _leader_now(self) -> str | None:
        """The leader's address, looked up at most once a second (and again after a
        forwarding failed)."""
        now = time.monotonic()
        if self._leader is None or now - self._looked_up > LEADER_CACHE_SECONDS:
            try:
                self._leader = await self._leader_address()
            except Exception:  # the store away: no leader known
                self._leader = None
            self._looked_up = now
        return self._leader

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials)
            self._channels[address] = channel
        return channel
