"""Requests -> the use cases' commands: each request validated (every bad field named, with
its path in the request), converted to the core's types, and carrying who asks
(`Requested`: the tenant, the request id, the method and a fingerprint of the request's
bytes) when it is a mutation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from smarttrade import logs
from smarttrade.api import parse, render
from smarttrade.api.auth import tenant
from smarttrade.domain.candles import TIMEFRAMES, Candle
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.labels import SERVICE_TRADE_ID, trade_id_violation
from smarttrade.domain.messages import AddFunds, CloseStep, Edit, Input, ReduceFunds
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.trade_query import order_by, parse_filter
from smarttrade.usecases.create import CreateFromShare, CreateTrade, trade_id_named
from smarttrade.usecases.reading import ListTrades
from smarttrade.usecases.requests import Requested, RequestIdRefused
from smarttrade.usecases.simulate import CandleRequest, SimulateTrade
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


# A simulation's own fields, at the request's root; the core names the trade's settings as
# the trade's (`entry.units`: the request's `smart_trade.entry.units`).
SIMULATION_FIELDS = ("candles", "candle_source", "balances", "smart_trade.")


@contextmanager
def simulation_fields() -> Iterator[None]:
    try:
        yield
    except InvalidSpec as error:
        raise InvalidSpec(
            [
                v
                if v.field.startswith(SIMULATION_FIELDS)
                else FieldViolation(f"smart_trade.{v.field}", v.description)
                for v in error.violations
            ]
        ) from error


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


# Candles a request may carry: a request stays well under gRPC's 4 MB message limit; a
# longer history (up to MAX_CANDLES) comes through a candle source.
MAX_REQUEST_CANDLES = 50_000
CURRENCY = re.compile(r"[A-Z0-9]{1,20}")


def simulate(request: service_pb.SimulateSmartTradeRequest) -> SimulateTrade:
    """A simulation's settings, history and balances, every bad field named (a candle's by
    its row: `candles[3].high`)."""
    given = request.smart_trade
    out = parse.Violations()
    with out.under("smart_trade"):
        account_id = (
            parse.resource_id(given.account, ACCOUNTS, "account", out) if given.account else ""
        )
        spec = parse.trade_spec(given, out)
    source = request.candle_source if request.HasField("candle_source") else None
    if source is None and not request.candles:
        out.add("candles", "a price history is required: candles or candle_source")
    elif source is not None and request.candles:
        out.add("candle_source", "give candles or candle_source, not both")
    elif len(request.candles) > MAX_REQUEST_CANDLES:
        out.add(
            "candles",
            f"{len(request.candles)} candles: at most {MAX_REQUEST_CANDLES} in a request "
            "(a longer history through candle_source)",
        )
    out.raise_any()
    candles = _candles(request, out)
    fetch = _candle_source(source, out) if source is not None else None
    balances = _balances(request, out)
    out.raise_any()
    assert spec is not None
    return SimulateTrade(tenant(), account_id, spec, candles, fetch, balances)


def _candles(request: service_pb.SimulateSmartTradeRequest, out: parse.Violations) -> list[Candle]:
    candles = []
    for index, row in enumerate(request.candles):
        with out.under(f"candles[{index}]"):
            time = parse.timestamp(row, "time", out)
            if time is None and not row.HasField("time"):
                out.add("time", "is required")
            prices = [
                parse.decimal(getattr(row, name), name, out, required=True, positive=True)
                for name in ("open", "high", "low", "close")
            ]
            volume = parse.decimal(row.volume, "volume", out)
        if time is None or None in prices:
            if len(out.items) >= 10:  # enough to say what is wrong
                break
            continue
        open_, high, low, close = (price for price in prices if price is not None)
        candles.append(Candle(time, open_, high, low, close, volume))
    return candles


def _candle_source(source: service_pb.CandleSource, out: parse.Violations) -> CandleRequest | None:
    with out.under("candle_source"):
        if not source.exchange:
            out.add("exchange", "is required")
        if source.timeframe not in TIMEFRAMES:
            out.add("timeframe", f"must be one of {', '.join(TIMEFRAMES)}")
        start = parse.timestamp(source, "start_time", out)
        end = parse.timestamp(source, "end_time", out)
        if not source.HasField("start_time"):
            out.add("start_time", "is required")
        if not source.HasField("end_time"):
            out.add("end_time", "is required")
        if start is not None and end is not None and end <= start:
            out.add("end_time", "must be after start_time")
    if out.items or start is None or end is None:
        return None
    return CandleRequest(source.exchange, source.timeframe, start, end)


def _balances(
    request: service_pb.SimulateSmartTradeRequest, out: parse.Violations
) -> dict[str, Decimal] | None:
    if not request.balances:
        return None
    balances = {}
    for currency, text in sorted(request.balances.items()):
        field = f"balances[{currency[:20]!r}]"
        if not CURRENCY.fullmatch(currency):
            out.add(field, "the currency must be an upper-case code such as USDT")
            continue
        amount = parse.decimal(text, field, out, required=True)
        if amount is not None and amount < 0:
            out.add(field, "must not be negative")
        elif amount is not None:
            balances[currency] = amount
    return balances
