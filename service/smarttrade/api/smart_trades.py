"""SmartTradeService: convert (api/commands.py, parse.py), call one use case, convert back
(render.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc

from smarttrade.api import commands, parse, render
from smarttrade.api.auth import Authenticator, tenant
from smarttrade.api.commands import fields_under, requested
from smarttrade.api.errors import errors_as_status, unary
from smarttrade.api.memo import Memo
from smarttrade.api.parse import text_fields_clean
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.messages import Cancel, CloseAtMarket, Input, InputOf, OpenNow, StoredEvent
from smarttrade.domain.model import SmartTrade
from smarttrade.usecases.act import ActOnTrade, ActOnTrades
from smarttrade.usecases.create import CreateTrades
from smarttrade.usecases.reading import TradeReader
from smarttrade.usecases.refresh import RefreshTrades
from smarttrade.usecases.shares import RevokeShare, ShareResolver, ShareTrade, ShareTrades
from smarttrade.usecases.simulate import SimulateTrades
from smarttrade.usecases.watch import Watching
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as service_pb
from smarttrade.v1 import smart_trade_service_pb2_grpc as service_grpc

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_HEARTBEAT = 15.0
SHARE_NAME = re.compile(r"smartTrades/([0-9a-z-]{1,64})/shares/([0-9a-f]{1,64})")


@dataclass(frozen=True)
class TradeUseCases:
    """What SmartTradeService calls (built by the composition root)."""

    create: CreateTrades
    act: ActOnTrades
    refresh: RefreshTrades
    reader: TradeReader
    shares: ShareTrades
    resolver: ShareResolver
    watching: Watching
    simulate: SimulateTrades


class SmartTradeServicer(service_grpc.SmartTradeServiceServicer):
    scope = "trade"

    def __init__(
        self,
        use_cases: TradeUseCases,
        clock: Callable[[], datetime],
        authenticator: Authenticator,
    ) -> None:
        self.authenticator = authenticator
        self._use = use_cases
        self._clock = clock
        self._rendered_events: Memo[tuple[str, int], bytes] = Memo(10_000)
        self._rendered_trades: Memo[tuple[str, int, Decimal | None], pb.SmartTrade] = Memo(10_000)
        self._read_answers: Memo[tuple[str, int, Decimal | None], bytes] = Memo(10_000)

    def _view(self, trade: SmartTrade) -> pb.SmartTrade:
        """A trade is rendered once per version and price, however often it is read."""
        key = (trade.id, trade.version, trade.last_price)
        return self._rendered_trades.get(key, lambda: render.smart_trade(trade))

    async def _act(
        self, method: str, request: Any, trade_id: str, action: Input | InputOf, etag: str
    ) -> pb.SmartTrade:
        """An action on a trade, once per request id. The core names an edit's fields as the
        trade's (`stop_loss.price`: the request's `smart_trade.stop_loss.price`), and the
        other actions' as their request's own (`units`)."""
        editing = method == "UpdateSmartTrade"
        etag = parse.etag(etag, "smart_trade.etag" if editing else "etag")
        command = ActOnTrade(requested(request, method, request.request_id), trade_id, action, etag)
        with fields_under("smart_trade") if editing else nullcontext():
            return self._view(await self._use.act(command))

    @unary
    async def CreateSmartTrade(
        self, request: service_pb.CreateSmartTradeRequest, context: Context
    ) -> service_pb.CreateSmartTradeResponse:
        command = commands.create(request)
        with fields_under("smart_trade"):
            trade = await self._use.create(command)
        return service_pb.CreateSmartTradeResponse(smart_trade=self._view(trade))

    @unary
    async def GetSmartTrade(  # type: ignore[override]  # answers with ready bytes
        self, request: service_pb.GetSmartTradeRequest, context: Context
    ) -> bytes:
        trade = await self._use.reader.get(tenant(), commands.trade_id(request.name))
        return self._read_answers.get(
            (trade.id, trade.version, trade.last_price),
            lambda: service_pb.GetSmartTradeResponse(
                smart_trade=self._view(trade)
            ).SerializeToString(),
        )

    @unary
    async def ListSmartTrades(
        self, request: service_pb.ListSmartTradesRequest, context: Context
    ) -> service_pb.ListSmartTradesResponse:
        page = await self._use.reader.list(commands.list_query(request))
        return service_pb.ListSmartTradesResponse(
            smart_trades=[self._view(trade) for trade in page.trades],
            next_page_token=page.next_page_token,
        )

    @unary
    async def UpdateSmartTrade(
        self, request: service_pb.UpdateSmartTradeRequest, context: Context
    ) -> service_pb.UpdateSmartTradeResponse:
        trade_id = commands.trade_id(request.smart_trade.name, "smart_trade.name")
        edit = commands.edit(request, self._clock())
        trade = await self._act(
            "UpdateSmartTrade", request, trade_id, edit, request.smart_trade.etag
        )
        return service_pb.UpdateSmartTradeResponse(smart_trade=trade)

    @unary
    async def RefreshSmartTrade(
        self, request: service_pb.RefreshSmartTradeRequest, context: Context
    ) -> service_pb.RefreshSmartTradeResponse:
        trade = await self._use.refresh(tenant(), commands.trade_id(request.name))
        return service_pb.RefreshSmartTradeResponse(smart_trade=self._view(trade))

    @unary
    async def AddSmartTradeFunds(
        self, request: service_pb.AddSmartTradeFundsRequest, context: Context
    ) -> service_pb.AddSmartTradeFundsResponse:
        trade_id = commands.trade_id(request.name)
        add = commands.add_funds(request, self._clock())
        trade = await self._act("AddSmartTradeFunds", request, trade_id, add, request.etag)
        return service_pb.AddSmartTradeFundsResponse(smart_trade=trade)

    @unary
    async def ReduceSmartTradeFunds(
        self, request: service_pb.ReduceSmartTradeFundsRequest, context: Context
    ) -> service_pb.ReduceSmartTradeFundsResponse:
        trade_id = commands.trade_id(request.name)
        reduce = commands.reduce_funds(request, self._clock())
        trade = await self._act("ReduceSmartTradeFunds", request, trade_id, reduce, request.etag)
        return service_pb.ReduceSmartTradeFundsResponse(smart_trade=trade)

    @unary
    async def OpenSmartTrade(
        self, request: service_pb.OpenSmartTradeRequest, context: Context
    ) -> service_pb.OpenSmartTradeResponse:
        trade_id = commands.trade_id(request.name)
        open_now = OpenNow(self._clock())
        trade = await self._act("OpenSmartTrade", request, trade_id, open_now, request.etag)
        return service_pb.OpenSmartTradeResponse(smart_trade=trade)

    @unary
    async def CloseSmartTrade(
        self, request: service_pb.CloseSmartTradeRequest, context: Context
    ) -> service_pb.CloseSmartTradeResponse:
        trade_id = commands.trade_id(request.name)
        close = CloseAtMarket(self._clock())
        trade = await self._act("CloseSmartTrade", request, trade_id, close, request.etag)
        return service_pb.CloseSmartTradeResponse(smart_trade=trade)

    @unary
    async def CloseSmartTradeStep(
        self, request: service_pb.CloseSmartTradeStepRequest, context: Context
    ) -> service_pb.CloseSmartTradeStepResponse:
        trade_id = commands.trade_id(request.name)
        close = commands.close_step(request, self._clock())
        trade = await self._act("CloseSmartTradeStep", request, trade_id, close, request.etag)
        return service_pb.CloseSmartTradeStepResponse(smart_trade=trade)

    @unary
    async def CancelSmartTrade(
        self, request: service_pb.CancelSmartTradeRequest, context: Context
    ) -> service_pb.CancelSmartTradeResponse:
        trade_id = commands.trade_id(request.name)
        cancel = Cancel(self._clock())
        trade = await self._act("CancelSmartTrade", request, trade_id, cancel, request.etag)
        return service_pb.CancelSmartTradeResponse(smart_trade=trade)

    @unary
    async def ShareSmartTrade(
        self, request: service_pb.ShareSmartTradeRequest, context: Context
    ) -> service_pb.ShareSmartTradeResponse:
        trade_id = commands.trade_id(request.name)
        who = requested(request, "ShareSmartTrade", request.request_id)
        shared = await self._use.shares.share(
            ShareTrade(who, trade_id, commands.share_ttl(request))
        )
        return service_pb.ShareSmartTradeResponse(share=render.share(shared, for_owner=True))

    @unary
    async def GetSmartTradeShare(
        self, request: service_pb.GetSmartTradeShareRequest, context: Context
    ) -> service_pb.GetSmartTradeShareResponse:
        if request.name and request.token:
            raise InvalidSpec([FieldViolation("name", "give the token or the name, not both")])
        if request.name:
            trade_id, share_id = _share_name(request.name)
            owned = await self._use.shares.get(tenant(), trade_id, share_id)
            return service_pb.GetSmartTradeShareResponse(share=render.share(owned, for_owner=True))
        shared = await self._use.resolver.resolve(request.token)
        return service_pb.GetSmartTradeShareResponse(share=render.share(shared, for_owner=False))

    @unary
    async def ListSmartTradeShares(
        self, request: service_pb.ListSmartTradeSharesRequest, context: Context
    ) -> service_pb.ListSmartTradeSharesResponse:
        every = request.parent == "smartTrades/-"
        trade_id = None if every else commands.trade_id(request.parent, "parent")
        found, token = await self._use.shares.list(
            tenant(), trade_id, request.page_size, request.page_token
        )
        return service_pb.ListSmartTradeSharesResponse(
            shares=[render.share(shared, for_owner=True) for shared in found],
            next_page_token=token,
        )

    @unary
    async def DeleteSmartTradeShare(
        self, request: service_pb.DeleteSmartTradeShareRequest, context: Context
    ) -> service_pb.DeleteSmartTradeShareResponse:
        trade_id, share_id = _share_name(request.name)
        who = requested(request, "DeleteSmartTradeShare", request.request_id)
        await self._use.shares.revoke(RevokeShare(who, trade_id, share_id))
        return service_pb.DeleteSmartTradeShareResponse()

    @unary
    async def SimulateSmartTrade(
        self, request: service_pb.SimulateSmartTradeRequest, context: Context
    ) -> service_pb.SimulateSmartTradeResponse:
        command = commands.simulate(request)
        with commands.simulation_fields():
            simulation = await self._use.simulate(command)
        return render.simulation(simulation, request.smart_trade.account)

    async def WatchSmartTrades(  # type: ignore[override]  # answers with ready bytes
        self, request: service_pb.WatchSmartTradesRequest, context: Context
    ) -> AsyncIterator[bytes]:
        async with errors_as_status(context):
            self.authenticator.require(context.invocation_metadata(), self.scope)
            text_fields_clean(request)
            trade_id = commands.trade_id(request.name) if request.name else None
            if request.after_sequence < 0:
                raise InvalidSpec([FieldViolation("after_sequence", "must not be negative")])
            interval = parse.duration(
                request,
                "heartbeat_interval",
                rule="must be at least 1 second",
                minimum=timedelta(seconds=1),
            )
            heartbeat = interval.total_seconds() if interval else DEFAULT_HEARTBEAT
            if trade_id is not None:
                await self._use.reader.get(tenant(), trade_id)  # NOT_FOUND before the stream
            items = self._use.watching.watch(tenant(), trade_id, request.after_sequence, heartbeat)
            async for item in items:
                if isinstance(item, StoredEvent):
                    yield self._rendered(item)
                else:
                    yield render.stream_item(item).SerializeToString()

    def _rendered(self, event: StoredEvent) -> bytes:
        """An event is rendered and serialized once, however many watchers receive it (see
        registration.py)."""
        return self._rendered_events.get(
            (event.tenant_id, event.sequence),
            lambda: render.stream_item(event).SerializeToString(),
        )


def _share_name(name: str) -> tuple[str, str]:
    """(trade id, share id) of `smartTrades/{trade}/shares/{share}`."""
    match = SHARE_NAME.fullmatch(name)
    if match is None:
        raise InvalidSpec([FieldViolation("name", "must be smartTrades/{trade}/shares/{share}")])
    return commands.trade_id(f"smartTrades/{match[1]}"), match[2]
