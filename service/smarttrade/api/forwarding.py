"""Replicas: any replica answers any call, forwarding those it cannot serve to the replica
that runs the caller's trades.

With replicas on one database (SMARTTRADE_LEASE_SECONDS), each runs the trades of the
tenants whose shards it holds (engine/ownership.py). A replica serves itself the calls of
those tenants, the reads of trades (GetSmartTrade, ListSmartTrades: from the store, for any
tenant) and the watch stream (its bus hears every replica's events, engine/fanout.py). Every
other call (a mutation, an action, the paper sandbox, accounts) of a tenant it does not run
is sent on to the replica that holds the tenant's shard, at the address it advertises in the
lease, with the caller's metadata and what is left of its deadline; the owner's answer, or
its error with all its details, goes back to the caller as it is. So a client (or a load
balancer) may send any call to any replica. A call whose tenant is not known (no valid
token) is answered here: UNAUTHENTICATED.

A call that cannot be forwarded (no replica holds the shard, as during a takeover; the
holder cannot be reached) is UNAVAILABLE with reason NOT_LEADER and a RetryInfo; one the
holder did not answer in time is DEADLINE_EXCEEDED, as it would have been from the holder
itself. A forwarded call carries `smarttrade-forwarded-by`: one that reaches a replica which
does not run the tenant either (the shard moved meanwhile) is answered NOT_LEADER there,
never forwarded again, so nothing goes round in circles.
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
        # Nothing of a tenant's trades: any replica can walk a history.
        "/smarttrade.v1.SmartTradeService/SimulateSmartTrade",
    }
)
# Metadata that belongs to the connection or to gRPC itself, not to the call.
_NOT_PASSED = ("user-agent", "te", "content-type", "authority", "host")
OWNERS_CACHE_SECONDS = 1.0

# The replicas that hold the shards now: shard -> (replica, address).
Owners = Callable[[], Awaitable[dict[int, tuple[str, str]]]]


def _raw(answer: bytes) -> bytes:
    return answer


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


class Forwarder:
    """Sends a call on to the replica that runs the caller's tenant, and returns its answer
    as bytes; or None when this replica serves the call itself."""

    def __init__(
        self,
        runs: Callable[[str], bool],
        owners: Owners,
        shard_of: Callable[[str], int],
        tenant_of: Callable[[Any], str | None],
        replica: str,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """`runs(tenant)`: whether this replica runs the tenant's trades now; `tenant_of(
        metadata)`: the caller's tenant by its token (None: not known)."""
        self._runs = runs
        self._owners = owners
        self._shard_of = shard_of
        self._tenant_of = tenant_of
        self._replica = replica
        self._credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._known: dict[int, tuple[str, str]] | None = None
        self._looked_up = 0.0

    async def __call__(self, method: str, request: Any, context: Context) -> bytes | None:
        metadata = context.invocation_metadata() or ()
        tenant = self._tenant_of(metadata)
        if tenant is None or self._runs(tenant):
            return None
        if any(key == FORWARDED_BY for key, _ in metadata):
            await abort(context, NotLeader())  # the shard moved on while it was forwarded
        owner = (await self._owners_now()).get(self._shard_of(tenant))
        if owner is None or owner[0] == self._replica:  # free, or being taken over here
            await abort(context, NotLeader())
        assert owner is not None
        address = owner[1]
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
                # Not the service's answer: the owner went away (or was never there).
                self._known = None
                log.info("forwarding %s to %s failed: %s", method, address, error.details())
                await abort(context, NotLeader())
            await context.abort(
                error.code(), error.details() or "", trailing_metadata=tuple(trailers)
            )
        return answer

    async def _owners_now(self) -> dict[int, tuple[str, str]]:
        """Who holds which shard, looked up at most once a second (and again after a
        forwarding failed)."""
        now = time.monotonic()
        if self._known is None or now - self._looked_up > OWNERS_CACHE_SECONDS:
            try:
                self._known = await self._owners()
            except Exception:  # the store away: no owner known
                self._known = {}
            self._looked_up = now
        return self._known

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials)
            self._channels[address] = channel
        return channel
