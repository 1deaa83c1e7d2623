"""SmartTradeService: convert, call the application, convert back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from smarttrade.api import parse, render
from smarttrade.api.auth import Authenticator, tenant
from smarttrade.api.errors import errors_as_status, unary
from smarttrade.api.idempotency import Idempotency, require_request_id
from smarttrade.api.memo import Memo
from smarttrade.api.parse import text_fields_clean
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import (
    AddFunds,
    Cancel,
    CloseAtMarket,
    Edit,
    Input,
    OpenNow,
    ReduceFunds,
    Refresh,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import TradeSpec
from smarttrade.engine.errors import PreconditionFailed
from smarttrade.engine.shares import ShareService
from smarttrade.engine.trades import TradeService, trade_id_for
from smarttrade.engine.watch import WatchService
from smarttrade.store.idempotency import Claim
from smarttrade.store.reads import TradeFilter
from smarttrade.store.unit_of_work import StoredEvent
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as service_pb
from smarttrade.v1 import smart_trade_service_pb2_grpc as service_grpc

Context = grpc.aio.ServicerContext[Any, Any]
TRADES = "smartTrades"
STATES = {
    pb.SMART_TRADE_STATE_PENDING: TradeState.PENDING,
    pb.SMART_TRADE_STATE_ACTIVE: TradeState.ACTIVE,
    pb.SMART_TRADE_STATE_CLOSING: TradeState.CLOSING,
    pb.SMART_TRADE_STATE_CLOSED: TradeState.CLOSED,
    pb.SMART_TRADE_STATE_CANCELLED: TradeState.CANCELLED,
    pb.SMART_TRADE_STATE_FAILED: TradeState.FAILED,
}
DEFAULT_HEARTBEAT = 15.0
SHARE_NAME = re.compile(r"smartTrades/([0-9a-f]{1,64})/shares/([0-9a-f]{1,64})")
R = TypeVar("R", bound=Message)


@contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Report the core's field paths (`entry.units`) as request paths (`smart_trade.entry...`)."""
    try:
        yield
    except InvalidSpec as error:
        raise InvalidSpec(
            [FieldViolation(f"{prefix}.{v.field}", v.description) for v in error.violations]
        ) from error


class SmartTradeServicer(service_grpc.SmartTradeServiceServicer):
    scope = "trade"

    def __init__(
        self,
        trades: TradeService,
        shares: ShareService,
        watch: WatchService,
        idempotency: Idempotency,
        clock: Callable[[], datetime],
        authenticator: Authenticator,
    ) -> None:
        self.authenticator = authenticator
        self._trades = trades
        self._shares = shares
        self._watch = watch
        self._idempotency = idempotency
        self._clock = clock
        self._rendered_events: Memo[int, bytes] = Memo(10_000)
        self._rendered_trades: Memo[tuple[str, int, Decimal | None], pb.SmartTrade] = Memo(10_000)
        self._read_answers: Memo[tuple[str, int, Decimal | None], bytes] = Memo(10_000)

    def _view(self, trade: SmartTrade) -> pb.SmartTrade:
        """A trade is rendered once per version and price, however often it is read."""
        key = (trade.id, trade.version, trade.last_price)
        return self._rendered_trades.get(key, lambda: render.smart_trade(trade))

    async def _act(
        self,
        method: str,
        request: Any,
        trade_id: str,
        input: Input,
        etag: str,
        response_type: type[R],
    ) -> R:
        """An action on a trade, once per request id."""
        parse.etag(etag, "smart_trade.etag" if method == "UpdateSmartTrade" else "etag")

        async def perform(claim: Claim) -> R:
            with fields_under("smart_trade"):
                trade = await self._trades.act(tenant(), trade_id, input, etag, claim)
            return response_type(smart_trade=self._view(trade))

        async def current(name: str) -> R:
            trade = await self._trades.get(tenant(), trade_id)
            return response_type(smart_trade=self._view(trade))

        return await self._idempotency.once(
            method,
            request,
            request.request_id,
            f"{TRADES}/{trade_id}",
            response_type,
            perform,
            current,
        )

    @unary
    async def CreateSmartTrade(
        self, request: service_pb.CreateSmartTradeRequest, context: Context
    ) -> service_pb.CreateSmartTradeResponse:
        out = parse.Violations()
        with out.under("smart_trade"):
            account_id = parse.resource_id(
                request.smart_trade.account, "exchangeAccounts", "account", out
            )
            if request.share_token:
                spec = await self._spec_from_share(request, out)
            else:
                spec = parse.trade_spec(request.smart_trade, out)
        out.raise_any()
        require_request_id(request.request_id)
        assert spec is not None
        trade_id = trade_id_for(tenant(), request.request_id)

        async def perform(claim: Claim) -> service_pb.CreateSmartTradeResponse:
            assert spec is not None
            with fields_under("smart_trade"):
                trade = await self._trades.create(tenant(), account_id, spec, claim)
            return service_pb.CreateSmartTradeResponse(smart_trade=self._view(trade))

        async def current(name: str) -> service_pb.CreateSmartTradeResponse:
            trade = await self._trades.get(tenant(), trade_id)
            return service_pb.CreateSmartTradeResponse(smart_trade=self._view(trade))

        return await self._idempotency.once(
            "CreateSmartTrade",
            request,
            request.request_id,
            f"{TRADES}/{trade_id}",
            service_pb.CreateSmartTradeResponse,
            perform,
            current,
        )

    async def _spec_from_share(
        self, request: service_pb.CreateSmartTradeRequest, out: parse.Violations
    ) -> TradeSpec | None:
        """The shared settings with the caller's own size; anything else set is refused."""
        given = request.smart_trade
        for field, _ in given.ListFields():
            if field.name not in ("account", "entry"):
                out.add(field.name, "comes from the share; set only account and entry size")
        for field, _ in given.entry.ListFields():
            if field.name not in ("units", "total"):
                out.add(f"entry.{field.name}", "comes from the share; set only the size")
        size = given.entry.WhichOneof("size")
        units = parse.decimal(given.entry.units, "entry.units", out, positive=True)
        total = parse.decimal(given.entry.total, "entry.total", out, positive=True)
        if size is None:
            out.add("entry.units", "the size (units or total) is required")
        shared = await self._shares.resolve(request.share_token)
        if out.items:
            return None
        entry = replace(shared.spec.entry, units=units, total=total)
        return replace(shared.spec, entry=entry)

    @unary
    async def GetSmartTrade(  # type: ignore[override]  # answers with ready bytes
        self, request: service_pb.GetSmartTradeRequest, context: Context
    ) -> bytes:
        trade = await self._trades.get(tenant(), parse.name_id(request.name, TRADES))
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
        out = parse.Violations()
        states = [parse.enum(value, STATES, "states", out) for value in request.states]
        account_id = (
            parse.resource_id(request.account, "exchangeAccounts", "account", out)
            if request.account
            else ""
        )
        out.raise_any()
        where = TradeFilter(
            states=tuple(state for state in states if state is not None),
            symbol=request.symbol,
            account_id=account_id,
            created_from=parse.timestamp(request, "create_time_start"),
            created_before=parse.timestamp(request, "create_time_end"),
        )
        page = await self._trades.list(tenant(), where, request.page_size, request.page_token)
        return service_pb.ListSmartTradesResponse(
            smart_trades=[self._view(trade) for trade in page.trades],
            next_page_token=page.next_page_token,
        )

    @unary
    async def UpdateSmartTrade(
        self, request: service_pb.UpdateSmartTradeRequest, context: Context
    ) -> service_pb.UpdateSmartTradeResponse:
        trade_id = parse.name_id(request.smart_trade.name, TRADES, "smart_trade.name")
        mask: FieldMask = request.update_mask
        if not mask.paths or not mask.IsValidForDescriptor(pb.SmartTrade.DESCRIPTOR):
            raise InvalidSpec([FieldViolation("update_mask", "must name fields of SmartTrade")])
        current = await self._trades.get(tenant(), trade_id)
        merged = pb.SmartTrade()
        render.settings_into(merged, current.spec, None)
        mask.MergeMessage(
            request.smart_trade, merged, replace_message_field=True, replace_repeated_field=True
        )
        out = parse.Violations()
        with out.under("smart_trade"):
            spec = parse.trade_spec(merged, out)
        out.raise_any()
        assert spec is not None
        edit = Edit(self._clock(), spec, frozenset(mask.paths))
        return await self._act(
            "UpdateSmartTrade",
            request,
            trade_id,
            edit,
            request.smart_trade.etag,
            service_pb.UpdateSmartTradeResponse,
        )

    @unary
    async def RefreshSmartTrade(
        self, request: service_pb.RefreshSmartTradeRequest, context: Context
    ) -> service_pb.RefreshSmartTradeResponse:
        trade_id = parse.name_id(request.name, TRADES)
        trade = await self._trades.refresh(tenant(), trade_id, Refresh(self._clock()))
        return service_pb.RefreshSmartTradeResponse(smart_trade=self._view(trade))

    @unary
    async def AddSmartTradeFunds(
        self, request: service_pb.AddSmartTradeFundsRequest, context: Context
    ) -> service_pb.AddSmartTradeFundsResponse:
        trade_id = parse.name_id(request.name, TRADES)
        out = parse.Violations()
        size = request.WhichOneof("size")
        add = AddFunds(
            at=self._clock(),
            order_type=parse.order_type(request.order_type, "order_type", out),
            limit_price=parse.decimal(request.limit_price, "limit_price", out, positive=True),
            units=parse.decimal(request.units, "units", out, positive=True)
            if size == "units"
            else None,
            total=parse.decimal(request.total, "total", out, positive=True)
            if size == "total"
            else None,
        )
        out.raise_any()
        return await self._act(
            "AddSmartTradeFunds",
            request,
            trade_id,
            add,
            request.etag,
            service_pb.AddSmartTradeFundsResponse,
        )

    @unary
    async def ReduceSmartTradeFunds(
        self, request: service_pb.ReduceSmartTradeFundsRequest, context: Context
    ) -> service_pb.ReduceSmartTradeFundsResponse:
        trade_id = parse.name_id(request.name, TRADES)
        out = parse.Violations()
        amount = request.WhichOneof("amount")
        reduce = ReduceFunds(
            at=self._clock(),
            units=parse.decimal(request.units, "units", out, positive=True)
            if amount == "units"
            else None,
            percent=parse.decimal(request.percent, "percent", out, positive=True)
            if amount == "percent"
            else None,
        )
        out.raise_any()
        return await self._act(
            "ReduceSmartTradeFunds",
            request,
            trade_id,
            reduce,
            request.etag,
            service_pb.ReduceSmartTradeFundsResponse,
        )

    @unary
    async def OpenSmartTrade(
        self, request: service_pb.OpenSmartTradeRequest, context: Context
    ) -> service_pb.OpenSmartTradeResponse:
        trade_id = parse.name_id(request.name, TRADES)
        return await self._act(
            "OpenSmartTrade",
            request,
            trade_id,
            OpenNow(self._clock()),
            request.etag,
            service_pb.OpenSmartTradeResponse,
        )

    @unary
    async def CloseSmartTrade(
        self, request: service_pb.CloseSmartTradeRequest, context: Context
    ) -> service_pb.CloseSmartTradeResponse:
        trade_id = parse.name_id(request.name, TRADES)
        return await self._act(
            "CloseSmartTrade",
            request,
            trade_id,
            CloseAtMarket(self._clock()),
            request.etag,
            service_pb.CloseSmartTradeResponse,
        )

    @unary
    async def CancelSmartTrade(
        self, request: service_pb.CancelSmartTradeRequest, context: Context
    ) -> service_pb.CancelSmartTradeResponse:
        trade_id = parse.name_id(request.name, TRADES)
        return await self._act(
            "CancelSmartTrade",
            request,
            trade_id,
            Cancel(self._clock()),
            request.etag,
            service_pb.CancelSmartTradeResponse,
        )

    @unary
    async def ShareSmartTrade(
        self, request: service_pb.ShareSmartTradeRequest, context: Context
    ) -> service_pb.ShareSmartTradeResponse:
        trade_id = parse.name_id(request.name, TRADES)
        ttl = parse.duration(
            request,
            "ttl",
            rule="must be positive, at most 10 years",
            minimum=timedelta.resolution,
            maximum=timedelta(days=3650),
        )

        async def perform(claim: Claim) -> service_pb.ShareSmartTradeResponse:
            shared = await self._shares.share(tenant(), trade_id, ttl, claim)
            return service_pb.ShareSmartTradeResponse(share=render.share(shared, for_owner=True))

        async def current(name: str) -> service_pb.ShareSmartTradeResponse:
            raise PreconditionFailed(
                "REQUEST_INTERRUPTED", "the first call with this request_id did not finish"
            )

        return await self._idempotency.once(
            "ShareSmartTrade",
            request,
            request.request_id,
            request.name,
            service_pb.ShareSmartTradeResponse,
            perform,
            current,
        )

    @unary
    async def GetSmartTradeShare(
        self, request: service_pb.GetSmartTradeShareRequest, context: Context
    ) -> service_pb.GetSmartTradeShareResponse:
        shared = await self._shares.resolve(request.token)
        return service_pb.GetSmartTradeShareResponse(share=render.share(shared, for_owner=False))

    @unary
    async def DeleteSmartTradeShare(
        self, request: service_pb.DeleteSmartTradeShareRequest, context: Context
    ) -> service_pb.DeleteSmartTradeShareResponse:
        match = SHARE_NAME.fullmatch(request.name)
        if match is None:
            raise InvalidSpec(
                [FieldViolation("name", "must be smartTrades/{trade}/shares/{share}")]
            )
        trade_id, share_id = match.groups()

        async def perform(claim: Claim) -> service_pb.DeleteSmartTradeShareResponse:
            await self._shares.revoke(tenant(), trade_id, share_id, claim)
            return service_pb.DeleteSmartTradeShareResponse()

        async def current(name: str) -> service_pb.DeleteSmartTradeShareResponse:
            return service_pb.DeleteSmartTradeShareResponse()

        return await self._idempotency.once(
            "DeleteSmartTradeShare",
            request,
            request.request_id,
            request.name,
            service_pb.DeleteSmartTradeShareResponse,
            perform,
            current,
        )

    async def WatchSmartTrades(  # type: ignore[override]  # answers with ready bytes
        self, request: service_pb.WatchSmartTradesRequest, context: Context
    ) -> AsyncIterator[bytes]:
        async with errors_as_status(context):
            self.authenticator.require(context.invocation_metadata(), self.scope)
            text_fields_clean(request)
            trade_id = parse.name_id(request.name, TRADES) if request.name else None
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
                await self._trades.get(tenant(), trade_id)  # NOT_FOUND before the stream
            items = self._watch.watch(tenant(), trade_id, request.after_sequence, heartbeat)
            async for item in items:
                if isinstance(item, StoredEvent):
                    yield self._rendered(item)
                else:
                    yield render.stream_item(item).SerializeToString()

    def _rendered(self, event: StoredEvent) -> bytes:
        """An event is rendered and serialized once, however many watchers receive it (see
        registration.py)."""
        return self._rendered_events.get(
            event.sequence, lambda: render.stream_item(event).SerializeToString()
        )
