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

And one change to what grpc.aio does with every handler (`checked`): request bytes that do
not decode as the method's request message are INVALID_ARGUMENT. Left to grpc.aio, they are
UNKNOWN with an ERROR traceback in the log per call, before any handler (so before
authentication) runs: the log would be anyone's to fill. They are counted instead, and the
count logged at DEBUG at most once a minute.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc

from smarttrade.api.errors import Undecodable, abort
from smarttrade.v1 import smart_trade_service_pb2_grpc

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]


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


def _unary_request(behavior: Any, method: str) -> Any:
    """The behavior of a unary-request method, refusing an undecodable request first."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if request is UNDECODABLE:
                await _refuse(context, method)
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
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler`, with its request deserializer and behavior wrapped as the module says."""
    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    if deserializer is None:
        return handler  # raw bytes: nothing to decode
    decode = _decoding(deserializer)
    stream = handler.unary_stream or handler.stream_unary or handler.stream_stream
    if stream and not (inspect.iscoroutinefunction(stream) or inspect.isasyncgenfunction(stream)):
        return handler  # a synchronous stream: none here; left to grpc.aio
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_request(handler.unary_unary, method), decode, serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _unary_request(handler.unary_stream, method), decode, serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _stream_request(handler.stream_unary, method), decode, serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_request(handler.stream_stream, method), decode, serializer
    )


class _Checked(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are `checked`, each wrapped once."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
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
            seen = self._wrapped[method] = (handler, checked(handler, method))
        return seen[1]


class _GenericOnly:
    """The server as the generated code sees it: registered method handlers are not kept."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Checked(handler) for handler in handlers))

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        return None  # the generated code adds the same handlers as generic ones too


def generic_only(server: grpc.aio.Server) -> grpc.aio.Server:
    """The server to hand to generated `add_*_to_server` functions."""
    return cast(grpc.aio.Server, _GenericOnly(server))


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
