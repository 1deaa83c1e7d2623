"""Requests -> the use cases' commands: each request validated (every bad field named, with
its path in the request), converted to the core's types, and carrying who asks
(`Requested`: the tenant, the request id, the method and a fingerprint of the request's
bytes) when it is a mutation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from smarttrade import logs
from smarttrade.api import parse, render
from smarttrade.api.auth import tenant
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.labels import SERVICE_TRADE_ID, trade_id_violation
from smarttrade.domain.messages import AddFunds, CloseStep, Edit, Input, ReduceFunds
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.trade_query import order_by, parse_filter
from smarttrade.usecases.create import CreateFromShare, CreateTrade, trade_id_named
from smarttrade.usecases.reading import ListTrades
from smarttrade.usecases.requests import Requested, RequestIdRefused
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as service_pb

TRADES = "smartTrades"
ACCOUNTS = "exchangeAccounts"
STATES = {
    pb.SMART_TRADE_STATE_PENDING: TradeState.PENDING,
    pb.SMART_TRADE_STATE_ACTIVE: TradeState.ACTIVE,
    pb.SMART_TRADE_STATE_CLOSING: TradeState.CLOSING,
    pb.SMART_TRADE_STATE_CLOSED: TradeState.CLOSED,
    pb.SMART_TRADE_STATE_CANCELLED: TradeState.CANCELLED,
    pb.SMART_TRADE_STATE_FAILED: TradeState.FAILED,
}
# The settings a create from a share may still give: the caller's account and size.
FROM_SHARE = ("account", "entry")


def requested(request: Message, method: str, request_id: str) -> Requested:
    """Who asks, and a fingerprint of the whole request: the same request id with another
    request is refused."""
    fingerprint = hashlib.sha256(
        method.encode() + request.SerializeToString(deterministic=True)
    ).hexdigest()
    if request_id:
        logs.request.set(request_id)  # the call's own task: its lines carry the request id
    return Requested(tenant(), request_id, method, fingerprint)


@contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Report the core's field paths (`entry.units`) as request paths (`smart_trade.entry...`);
    the request's own `request_id` stays where it is."""
    try:
        yield
    except RequestIdRefused:
        raise
    except InvalidSpec as error:
        raise InvalidSpec(
            [FieldViolation(f"{prefix}.{v.field}", v.description) for v in error.violations]
        ) from error


def trade_id(name: str, field: str = "name") -> str:
    """The trade id behind a trade's name, `smartTrades/{id}`: the service's own id, or one
    the caller chose at creation (see `usecases.create.trade_id_named`)."""
    prefix = f"{TRADES}/"
    if name.startswith(prefix):
        resource_id = name[len(prefix) :]
        if SERVICE_TRADE_ID.fullmatch(resource_id) or trade_id_violation(resource_id) is None:
            return trade_id_named(tenant(), resource_id)
    return parse.name_id(name, TRADES, field)


def create(request: service_pb.CreateSmartTradeRequest) -> CreateTrade | CreateFromShare:
    who = requested(request, "CreateSmartTrade", request.request_id)
    given = request.smart_trade
    out = parse.Violations()
    chosen_id = request.smart_trade_id
    if chosen_id and (violation := trade_id_violation(chosen_id)) is not None:
        out.add(violation.field, violation.description)
    with out.under("smart_trade"):
        account_id = parse.resource_id(given.account, ACCOUNTS, "account", out)
        if not request.share_token:
            spec = parse.trade_spec(given, out)
            out.raise_any()
            assert spec is not None
            return CreateTrade(who, account_id, spec, chosen_id)
        for field, _ in given.ListFields():
            if field.name not in FROM_SHARE:
                out.add(field.name, "comes from the share; set only account and entry size")
        for field, _ in given.entry.ListFields():
            if field.name not in ("units", "total"):
                out.add(f"entry.{field.name}", "comes from the share; set only the size")
        if given.entry.WhichOneof("size") is None:
            out.add("entry.units", "the size (units or total) is required")
        units = parse.decimal(given.entry.units, "entry.units", out, positive=True)
        total = parse.decimal(given.entry.total, "entry.total", out, positive=True)
    out.raise_any()
    return CreateFromShare(who, account_id, request.share_token, units, total, chosen_id)


def list_query(request: service_pb.ListSmartTradesRequest) -> ListTrades:
    out = parse.Violations()
    states = [parse.enum(value, STATES, "states", out) for value in request.states]
    account_id = (
        parse.resource_id(request.account, ACCOUNTS, "account", out) if request.account else ""
    )
    out.raise_any()
    return ListTrades(
        tenant_id=tenant(),
        states=tuple(state for state in states if state is not None),
        symbol=request.symbol,
        account_id=account_id,
        created_from=parse.timestamp(request, "create_time_start"),
        created_before=parse.timestamp(request, "create_time_end"),
        page_size=request.page_size,
        page_token=request.page_token,
        expression=parse_filter(request.filter),
        order=order_by(request.order_by),
    )


def edit(
    request: service_pb.UpdateSmartTradeRequest, at: datetime
) -> Callable[[SmartTrade], Input]:
    """The edit as a function of the trade it applies to: the masked fields of the request
    over the trade's settings as they are when the trade's writer applies it, so that two
    concurrent edits of different fields both hold."""
    mask: FieldMask = request.update_mask
    if not mask.paths or not mask.IsValidForDescriptor(pb.SmartTrade.DESCRIPTOR):
        raise InvalidSpec([FieldViolation("update_mask", "must name fields of SmartTrade")])
    paths = frozenset(mask.paths)

    def applied_to(trade: SmartTrade) -> Edit:
        merged = pb.SmartTrade()
        render.settings_into(merged, trade.spec, None)
        mask.MergeMessage(
            request.smart_trade, merged, replace_message_field=True, replace_repeated_field=True
        )
        out = parse.Violations()  # paths of the trade: the caller reports them under it
        spec = parse.trade_spec(merged, out)
        out.raise_any()
        assert spec is not None
        return Edit(at, spec, paths)

    return applied_to


def add_funds(request: service_pb.AddSmartTradeFundsRequest, at: datetime) -> AddFunds:
    out = parse.Violations()
    size = request.WhichOneof("size")
    add = AddFunds(
        at=at,
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
    return add


def reduce_funds(request: service_pb.ReduceSmartTradeFundsRequest, at: datetime) -> ReduceFunds:
    out = parse.Violations()
    amount = request.WhichOneof("amount")
    reduce = ReduceFunds(
        at=at,
        units=parse.decimal(request.units, "units", out, positive=True)
        if amount == "units"
        else None,
        percent=parse.decimal(request.percent, "percent", out, positive=True)
        if amount == "percent"
        else None,
    )
    out.raise_any()
    return reduce


def close_step(request: service_pb.CloseSmartTradeStepRequest, at: datetime) -> CloseStep:
    if request.step <= 0:
        raise InvalidSpec([FieldViolation("step", "must be a take-profit step number, from 1")])
    return CloseStep(at, request.step)


def share_ttl(request: service_pb.ShareSmartTradeRequest) -> timedelta | None:
    return parse.duration(
        request,
        "ttl",
        rule="must be positive, at most 10 years",
        minimum=timedelta.resolution,
        maximum=timedelta(days=3650),
    )
