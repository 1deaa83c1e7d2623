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
"""

from __future__ import annotations

from typing import Any, cast

import grpc

from smarttrade.v1 import smart_trade_service_pb2_grpc


class _GenericOnly:
    """The server as the generated code sees it: registered method handlers are not kept."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

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
