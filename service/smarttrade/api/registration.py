"""Registering the servicers with the server.

Two changes to what the generated `add_*_to_server` functions do:

- Handlers are added as generic handlers only (`generic_only`). grpc.aio (1.85) keeps one
  pending call request per *registered* method and waits on all of them, with
  `asyncio.wait`, for every RPC it serves: with the 25 methods of the servicers here that
  cost about 40 us of CPU per call, more than the GetSmartTrade handler itself. A generic
  handler costs a dict lookup per servicer.
- GetSmartTrade and WatchSmartTrades answer with bytes already serialized, written as they
  are. An event goes to every watcher of its tenant, and a trade is read far more often
  than it changes: each is rendered and serialized once (not once per watcher or per read)
  and the same bytes are written to each call.

And two changes to what grpc.aio does with every handler (`checked`):

- Request bytes that do not decode as the method's request message are INVALID_ARGUMENT.
  Left to grpc.aio, they are UNKNOWN with an ERROR traceback in the log per call, before any
  handler (so before authentication) runs: the log would be anyone's to fill. They are
  counted instead, and the count logged at DEBUG at most once a minute.
- Load is shed by the service, with an answer, never by gRPC core in silence. Core queues a
  call that arrived before the application asked for one (grpc.aio asks for one call at a
  time, from the event loop); past `grpc.server.max_pending_requests` (1,000) queued calls
  it drops new ones at random, and all past the hard limit (3,000), and a dropped call
  reaches its client as CANCELLED, with nothing in the server's log. 2,000 unary calls in
  flight on one channel lost 1-10 % that way. `server_options` raise both limits far above
  what the service lets in: it answers a unary call beyond `MAX_CALLS_IN_FLIGHT` at once with
  UNAVAILABLE and a RetryInfo (the Python client retries it), which drains core's queue
  faster than serving would. Health and reflection are not shed: a load balancer asks them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from smarttrade import metrics
from smarttrade.api.errors import Overloaded, Undecodable, abort
from smarttrade.api.forwarding import SERVED_BY_ANY
from smarttrade.errors import NotLeader
from smarttrade.v1 import smart_trade_service_pb2_grpc

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

MAX_CALLS_IN_FLIGHT = 5_000
# Calls core may hold before the application takes them: far above what one event loop lets
# in, so only a flood from many connections at once could reach it (each queued call holds
# its stream and headers, a few KiB).
MAX_PENDING_CALLS = 100_000
UNSHED = ("/grpc.health.", "/grpc.reflection.")
Forward = Callable[[str, Any, Context], Awaitable[bytes | None]]


def server_options() -> list[tuple[str, int]]:
    """Options for `grpc.aio.server`: see the module's docstring on load."""
    return [
        ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
    ]


class CallBudget:
    """How many unary calls the service is serving now, and how many it takes at most."""

    def __init__(self, limit: int = MAX_CALLS_IN_FLIGHT) -> None:
        self.limit = limit
        self.in_flight = 0
        # False while the service stops: a call is refused (UNAVAILABLE, NOT_LEADER).
        self.accepting = True
        # Replicas with leases: what sends a call on to the replica that runs its tenant (the
        # reads of SERVED_BY_ANY and the watch stream are served here); None without.
        self.forward: Forward | None = None


class _UndecodableRequest:
    """What a checked deserializer returns for bytes that are not a request message."""


UNDECODABLE = _UndecodableRequest()


class _Tally:
    """Undecodable requests, logged as a count at most once per `every` seconds."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.count = 0
        self._next_report = 0.0

    def add(self, method: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self._next_report:
            log.debug("refused %d undecodable requests (the latest to %s)", self.count, method)
            self.count, self._next_report = 0, now + self.every


UNDECODABLE_REQUESTS = _Tally()


def _decoding(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, or any other way the bytes are not the message
            return UNDECODABLE

    return decode


async def _refuse(context: Context, method: str) -> None:
    UNDECODABLE_REQUESTS.add(method)
    await abort(context, Undecodable())


def _unary_request(behavior: Any, method: str, budget: CallBudget | None = None) -> Any:
    """The behavior of a unary-request method, refusing an undecodable request first (and a
    stream on a standby, when `budget` says it is one)."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if request is UNDECODABLE:
                await _refuse(context, method)
            if budget is not None and not budget.accepting:
                await abort(context, NotLeader())
            async for response in behavior(request, context):
                yield response

        return stream

    if not inspect.iscoroutinefunction(behavior):
        # grpc.aio would run it in a thread. The only synchronous behaviors here are generated
        # base-class stubs (Health.List in grpcio-health-checking 1.85), which raise
        # NotImplementedError at once; grpc.aio logs that with a traceback per call.
        async def stub(request: Any, context: Context) -> Any:
            if request is UNDECODABLE:
                await _refuse(context, method)
            try:
                return behavior(request, context)
            except NotImplementedError:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")

        return stub

    async def call(request: Any, context: Context) -> Any:
        if request is UNDECODABLE:
            await _refuse(context, method)
        return await behavior(request, context)

    return call


def _budgeted(behavior: Any, budget: CallBudget, method: str) -> Any:
    """A unary-unary behavior that refuses an undecodable request, and answers UNAVAILABLE,
    with a RetryInfo, when `budget` is spent: cheaply, so that shedding frees the event loop
    to take the calls queued in core. One wrapper for both: it is on every call's path."""

    async def call(request: Any, context: Context) -> Any:
        if request is UNDECODABLE:
            await _refuse(context, method)
        if budget.in_flight >= budget.limit:
            await abort(context, Overloaded())
        if not budget.accepting:
            await abort(context, NotLeader())
        forward = budget.forward
        budget.in_flight += 1
        try:
            if forward is not None and method not in SERVED_BY_ANY:
                answer = await forward(method, request, context)  # the owner's, as bytes
                if answer is not None:
                    return answer
            return await behavior(request, context)
        finally:
            budget.in_flight -= 1

    return call


def _timed(behavior: Any, method: str) -> Any:
    """A unary-unary behavior whose calls are counted by status code and timed (metrics on
    only: off, nothing wraps the call)."""
    name = method.rsplit("/", 1)[-1]

    async def call(request: Any, context: Context) -> Any:
        started = time.perf_counter()
        code = "OK"
        try:
            return await behavior(request, context)
        except asyncio.CancelledError:  # the caller went away
            code = "CANCELLED"
            raise
        except BaseException:
            status = context.code()  # set by abort; an unexpected error is UNKNOWN
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        finally:
            metrics.recorder.rpc(name, code, time.perf_counter() - started)

    return call


def _stream_request(behavior: Any, method: str) -> Any:
    """The behavior of a client-streaming method, refusing an undecodable message when the
    handler reaches it."""

    async def checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for request in requests:
            if request is UNDECODABLE:
                await _refuse(context, method)
            yield request

    if inspect.isasyncgenfunction(behavior):

        async def stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async for response in behavior(checked(requests, context), context):
                yield response

        return stream

    async def call(requests: AsyncIterator[Any], context: Context) -> Any:
        return await behavior(checked(requests, context), context)

    return call


def checked(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, budget: CallBudget | None = None
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler`, with its request deserializer and behavior wrapped as the module says
    (unary calls counted against `budget`, unless the method is health or reflection)."""
    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    stream = handler.unary_stream or handler.stream_unary or handler.stream_stream
    if stream and not (inspect.iscoroutinefunction(stream) or inspect.isasyncgenfunction(stream)):
        return handler  # a synchronous stream: none here; left to grpc.aio
    decode = _decoding(deserializer) if deserializer else None  # None: raw bytes
    if handler.unary_unary:
        behavior = handler.unary_unary
        if budget and inspect.iscoroutinefunction(behavior) and not method.startswith(UNSHED):
            behavior = _budgeted(behavior, budget, method)
            serializer = _passing_bytes(serializer)  # a forwarded call's answer
        else:
            behavior = _unary_request(behavior, method)
        if metrics.recorder.enabled:
            behavior = _timed(behavior, method)
        return grpc.unary_unary_rpc_method_handler(behavior, decode, serializer)
    if handler.unary_stream:
        gated = budget if not method.startswith(UNSHED) else None
        return grpc.unary_stream_rpc_method_handler(
            _unary_request(handler.unary_stream, method, gated), decode, serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _stream_request(handler.stream_unary, method), decode, serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_request(handler.stream_stream, method), decode, serializer
    )


def _passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A response serializer that writes bytes as they are (an answer serialized already)."""
    if serializer is None:
        return None
    inner = serializer

    def serialize(response: Any) -> bytes:
        return response if isinstance(response, bytes) else inner(response)

    return serialize


class _Checked(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are `checked`, each wrapped once."""

    def __init__(self, inner: grpc.GenericRpcHandler, budget: CallBudget) -> None:
        self._inner = inner
        self._budget = budget
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        seen = self._wrapped.get(method)
        if seen is None or seen[0] is not handler:
            seen = self._wrapped[method] = (handler, checked(handler, method, self._budget))
        return seen[1]


class _GenericOnly:
    """The server as the generated code sees it: registered method handlers are not kept."""

    def __init__(self, server: grpc.aio.Server, budget: CallBudget) -> None:
        self._server = server
        self._budget = budget

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        checked = tuple(_Checked(handler, self._budget) for handler in handlers)
        self._server.add_generic_rpc_handlers(checked)

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        return None  # the generated code adds the same handlers as generic ones too


def generic_only(server: grpc.aio.Server, budget: CallBudget | None = None) -> grpc.aio.Server:
    """The server to hand to generated `add_*_to_server` functions; the unary calls of what
    is added through it share `budget` (by default, MAX_CALLS_IN_FLIGHT)."""
    return cast(grpc.aio.Server, _GenericOnly(server, budget or CallBudget()))


class _Captured:
    """Stands in for the server while the generated code registers its handlers."""

    def __init__(self) -> None:
        self.name = ""
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        return None

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.name, self.handlers = name, handlers


def add_smart_trade_service(servicer: Any, server: grpc.aio.Server) -> None:
    captured = _Captured()
    smart_trade_service_pb2_grpc.add_SmartTradeServiceServicer_to_server(
        servicer,
        captured,  # type: ignore[arg-type]  # records the handlers instead of serving
    )
    watch = captured.handlers["WatchSmartTrades"]
    captured.handlers["WatchSmartTrades"] = grpc.unary_stream_rpc_method_handler(
        watch.unary_stream, request_deserializer=watch.request_deserializer
    )
    get = captured.handlers["GetSmartTrade"]
    captured.handlers["GetSmartTrade"] = grpc.unary_unary_rpc_method_handler(
        get.unary_unary, request_deserializer=get.request_deserializer
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(captured.name, captured.handlers),)
    )
