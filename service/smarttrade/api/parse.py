r"""Requests -> domain values. Every bad field is collected and reported at once, by its path.

Decimal strings are strict: an optional minus sign, ASCII digits, an optional fraction, at
most 30 digits on each side; no exponent, no NaN or Infinity, no spaces, and no other script's
digits ("١٢٣", "１２３", "𝟏𝟎𝟎": Python's `Decimal` and `re`'s `\d` take them all, the contract
does not). Timestamps and durations are checked against the ranges their well-known types
document before they are converted (converting one out of range raises). Anything else is an
INVALID_ARGUMENT naming the field, never an exception further in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.labels import label_violations
from smarttrade.domain.spec import (
    EntrySpec,
    EntryType,
    LeverageSpec,
    MarginMode,
    MarketType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
    TriggerPrice,
)
from smarttrade.domain.values import OrderType, Side
from smarttrade.v1 import smart_trade_pb2 as pb

# [0-9], not \d: in a str pattern \d is any Unicode decimal digit.
DECIMAL = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?")
RESOURCE_ID = re.compile(r"[0-9a-f]{1,64}")  # the service's own ids (hex)
ETAG = re.compile(r"v[0-9]{1,18}")
SYMBOL = re.compile(r"[A-Za-z0-9._:-]+/[A-Za-z0-9._:-]+")
MAX_NOTE = 1000
MAX_SYMBOL = 64

E = TypeVar("E")


class Violations:
    """Collects field violations under a path prefix, then raises them all together."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []
        self._prefix: list[str] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(".".join([*self._prefix, field]), description))

    @contextmanager
    def under(self, prefix: str) -> Iterator[None]:
        self._prefix.append(prefix)
        try:
            yield
        finally:
            self._prefix.pop()

    def raise_any(self) -> None:
        if self.items:
            raise InvalidSpec(self.items)


def text_fields_clean(message: Message) -> None:
    """No string of the request holds a NUL character (PostgreSQL text cannot store one, and
    no legitimate value has it): refused up front, naming the field. On every request's
    path, so a clean field costs one test and a path is only spelt out for a bad one."""
    found: list[str] = []
    _scan(message, "", found)
    if found:
        raise InvalidSpec(
            [FieldViolation(path, "must not contain NUL characters") for path in found]
        )


_STRING = FieldDescriptor.TYPE_STRING
_STRING_OR_MESSAGE = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE)


def _scan(message: Message, prefix: str, found: list[str]) -> None:
    for field, value in message.ListFields():
        if field.type == _STRING and not field.is_repeated:
            if "\x00" in value:
                found.append(f"{prefix}{field.name}")
        elif field.type in _STRING_OR_MESSAGE:  # other scalars hold no text
            path = f"{prefix}{field.name}"
            if _is_map(field):
                for key, item in value.items():
                    if isinstance(key, str) and "\x00" in key:
                        found.append(path)
                    _check(item, path, found)
            elif field.is_repeated:
                for index, item in enumerate(value):
                    _check(item, f"{path}[{index}]", found)
            else:
                _check(value, path, found)


def _check(value: object, path: str, found: list[str]) -> None:
    if isinstance(value, str) and "\x00" in value:
        found.append(path)
    elif isinstance(value, Message):
        _scan(value, f"{path}.", found)


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return entry is not None and entry.GetOptions().map_entry


def decimal(
    text: str, field: str, out: Violations, *, required: bool = False, positive: bool = False
) -> Decimal | None:
    if not text:
        if required:
            out.add(field, "is required")
        return None
    if not DECIMAL.fullmatch(text):
        out.add(field, f"{text[:40]!r} is not a decimal number such as 12.5")
        return None
    value = Decimal(text)
    if positive and value <= 0:
        out.add(field, "must be greater than 0")
        return None
    return value


def resource_id(name: str, collection: str, field: str, out: Violations) -> str:
    """The id of `{collection}/{id}`; ids are the service's own (hex)."""
    prefix = f"{collection}/"
    if not name:
        out.add(field, "is required")
        return ""
    ident = name[len(prefix) :] if name.startswith(prefix) else ""
    if not ident or not RESOURCE_ID.fullmatch(ident):
        out.add(field, f"must be a resource name {prefix}{{id}}")
        return ""
    return ident


def name_id(name: str, collection: str, field: str = "name") -> str:
    prefix = f"{collection}/"
    if name.startswith(prefix) and RESOURCE_ID.fullmatch(name, len(prefix)):
        return name[len(prefix) :]  # on every read's path: no collector unless it is needed
    out = Violations()
    ident = resource_id(name, collection, field, out)
    out.raise_any()
    return ident


def etag(text: str, field: str) -> str:
    """An etag as the service issues them (`v<version>`); anything else cannot be current."""
    if text and not ETAG.fullmatch(text):
        raise InvalidSpec([FieldViolation(field, "is not an etag this service issued")])
    return text


# The ranges google/protobuf/timestamp.proto and duration.proto document: 0001-01-01T00:00:00Z
# to 9999-12-31T23:59:59.999999999Z, and +-10,000 years with nanos of the seconds' sign.
TIMESTAMP_SECONDS = range(-62_135_596_800, 253_402_300_799 + 1)
DURATION_SECONDS = range(-315_576_000_000, 315_576_000_000 + 1)
NANOS = 1_000_000_000


def _refuse(field: str, description: str, out: Violations | None) -> None:
    if out is None:
        raise InvalidSpec([FieldViolation(field, description)])
    out.add(field, description)


def timestamp(message: Message, field: str, out: Violations | None = None) -> datetime | None:
    """`message.field`, a Timestamp, as an aware UTC datetime; None when it is not set. Out of
    its documented range it is refused (into `out`, or raised at once without one)."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    if stamp.seconds not in TIMESTAMP_SECONDS or not 0 <= stamp.nanos < NANOS:
        _refuse(field, "must be a time from 0001-01-01 to 9999-12-31 (nanos 0 to 999999999)", out)
        return None
    result: datetime = stamp.ToDatetime(tzinfo=UTC)
    return result


def duration(
    message: Message,
    field: str,
    *,
    rule: str,
    minimum: timedelta,
    maximum: timedelta = timedelta.max,
    out: Violations | None = None,
) -> timedelta | None:
    """`message.field`, a Duration, as a timedelta; None when it is not set. A Duration its type
    does not allow (beyond 10,000 years, nanos out of range or of the other sign than the
    seconds, as `{seconds: 60, nanos: -1}`) or one outside [minimum, maximum] is refused,
    described by `rule` (for example "must be at least 1 second")."""
    if not message.HasField(field):
        return None
    given = getattr(message, field)
    seconds, nanos = given.seconds, given.nanos
    if (
        seconds not in DURATION_SECONDS
        or not -NANOS < nanos < NANOS
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        _refuse(field, f"is not a valid duration: {rule}", out)
        return None
    value: timedelta = given.ToTimedelta()
    if not minimum <= value <= maximum:
        _refuse(field, rule, out)
        return None
    return value


def symbol(text: str, field: str, out: Violations) -> str:
    """A unified market symbol (BASE/QUOTE); refused without quoting it back."""
    if not text:
        out.add(field, "is required")
    elif len(text) > MAX_SYMBOL or not SYMBOL.fullmatch(text):
        out.add(field, "must be a unified symbol such as BTC/USDT")
    return text


def enum(value: int, mapping: Mapping[Any, E], field: str, out: Violations) -> E | None:
    result = mapping.get(value)
    if result is None:
        out.add(field, "is required" if value == 0 else f"unknown value {value}")
    return result


SIDES = {pb.SIDE_BUY: Side.BUY, pb.SIDE_SELL: Side.SELL}
ORDER_TYPES = {pb.ORDER_TYPE_MARKET: OrderType.MARKET, pb.ORDER_TYPE_LIMIT: OrderType.LIMIT}
ENTRY_TYPES = {
    pb.ENTRY_TYPE_MARKET: EntryType.MARKET,
    pb.ENTRY_TYPE_LIMIT: EntryType.LIMIT,
    pb.ENTRY_TYPE_CONDITIONAL: EntryType.CONDITIONAL,
    pb.ENTRY_TYPE_SKIP: EntryType.SKIP,
}
MARKET_TYPES = {
    pb.MARKET_TYPE_UNSPECIFIED: MarketType.SPOT,
    pb.MARKET_TYPE_SPOT: MarketType.SPOT,
    pb.MARKET_TYPE_LINEAR: MarketType.LINEAR,
}
MARGIN_MODES = {
    pb.MARGIN_MODE_ISOLATED: MarginMode.ISOLATED,
    pb.MARGIN_MODE_CROSS: MarginMode.CROSS,
}
TRIGGER_PRICES = {
    pb.TRIGGER_PRICE_UNSPECIFIED: TriggerPrice.LAST,
    pb.TRIGGER_PRICE_LAST: TriggerPrice.LAST,
    pb.TRIGGER_PRICE_BID: TriggerPrice.BID,
    pb.TRIGGER_PRICE_ASK: TriggerPrice.ASK,
    pb.TRIGGER_PRICE_MARK: TriggerPrice.MARK,
}


def order_type(value: int, field: str, out: Violations) -> OrderType:
    """Unset means MARKET, as the contract documents."""
    if value == pb.ORDER_TYPE_UNSPECIFIED:
        return OrderType.MARKET
    return enum(value, ORDER_TYPES, field, out) or OrderType.MARKET


def trade_spec(message: pb.SmartTrade, out: Violations) -> TradeSpec | None:
    """The settings of a SmartTrade message (paths relative to it)."""
    market = symbol(message.symbol, "symbol", out)
    side = enum(message.side, SIDES, "side", out)
    entry = _entry(message.entry, out) if message.HasField("entry") else None
    if entry is None and not message.HasField("entry"):
        out.add("entry", "is required")
    steps = _take_profit(message.take_profit, out)
    stop = _stop_loss(message.stop_loss, out) if message.HasField("stop_loss") else None
    leverage = _leverage(message.leverage, out)
    time_limit = _settings_duration(message, "time_limit", out)
    trigger = enum(message.trigger_price, TRIGGER_PRICES, "trigger_price", out)
    if len(message.note) > MAX_NOTE:
        out.add("note", f"must be at most {MAX_NOTE} characters")
    labels = dict(message.labels)
    for violation in label_violations(labels):
        out.add(violation.field, violation.description)
    if side is None or entry is None or out.items:
        return None
    return TradeSpec(
        symbol=market,
        side=side,
        entry=entry,
        take_profit=steps,
        stop_loss=stop,
        leverage=leverage,
        note=message.note,
        labels=labels,
        time_limit=time_limit,
        trigger_price=trigger or TriggerPrice.LAST,
    )


def _entry(message: pb.Entry, out: Violations) -> EntrySpec | None:
    with out.under("entry"):
        kind = enum(message.type, ENTRY_TYPES, "type", out)
        size = message.WhichOneof("size")
        units = decimal(message.units, "units", out, positive=True) if size == "units" else None
        total = decimal(message.total, "total", out, positive=True) if size == "total" else None
        if size is None:
            out.add("units", "one of units or total is required")
        limit_price = decimal(message.limit_price, "limit_price", out, positive=True)
        trigger_price = decimal(message.trigger_price, "trigger_price", out, positive=True)
        then = order_type(message.order_type, "order_type", out)
        trailing = decimal(message.trailing_percent, "trailing_percent", out, positive=True)
        average = decimal(message.average_price, "average_price", out, positive=True)
    if kind is None:
        return None
    return EntrySpec(
        type=kind,
        units=units,
        total=total,
        limit_price=limit_price,
        trigger_price=trigger_price,
        order_type=then,
        trailing_percent=trailing,
        average_price=average,
    )


def _take_profit(message: pb.TakeProfit, out: Violations) -> tuple[TakeProfitStepSpec, ...]:
    steps = []
    if len(message.steps) > 8:
        out.add("take_profit.steps", "at most 8 steps allowed")
        return ()
    for index, step in enumerate(message.steps):
        with out.under(f"take_profit.steps[{index}]"):
            target = step.WhichOneof("target")
            price = decimal(step.price, "price", out, positive=True) if target == "price" else None
            percent = (
                decimal(step.percent, "percent", out, positive=True)
                if target == "percent"
                else None
            )
            if target is None:
                out.add("price", "one of price or percent is required")
            volume = decimal(step.volume_percent, "volume_percent", out, required=True)
            trailing = decimal(step.trailing_percent, "trailing_percent", out, positive=True)
        steps.append(
            TakeProfitStepSpec(
                volume_percent=volume if volume is not None else Decimal(0),
                price=price,
                percent=percent,
                trailing_percent=trailing,
            )
        )
    return tuple(steps)


def _stop_loss(message: pb.StopLoss, out: Violations) -> StopLossSpec:
    with out.under("stop_loss"):
        trigger = message.WhichOneof("trigger")
        price = decimal(message.price, "price", out, positive=True) if trigger == "price" else None
        percent = (
            decimal(message.percent, "percent", out, positive=True)
            if trigger == "percent"
            else None
        )
        if trigger is None:
            out.add("price", "one of price or percent is required")
        kind = order_type(message.order_type, "order_type", out)
        limit_price = decimal(message.limit_price, "limit_price", out, positive=True)
        trailing = decimal(message.trailing_percent, "trailing_percent", out, positive=True)
        timeout = _timeout(message, out) if message.HasField("timeout") else None
        fallback_after = _settings_duration(message, "fallback_after", out)
        fallback_percent = decimal(message.fallback_percent, "fallback_percent", out, positive=True)
    return StopLossSpec(
        price=price,
        percent=percent,
        order_type=kind,
        limit_price=limit_price,
        timeout=timeout,
        trailing_percent=trailing,
        move_to_breakeven=message.move_to_breakeven,
        fallback_after=fallback_after,
        fallback_percent=fallback_percent,
    )


def _timeout(message: pb.StopLoss, out: Violations) -> timedelta | None:
    duration: Duration = message.timeout
    if duration.nanos or duration.seconds <= 0 or duration.seconds > 365 * 86400:
        out.add("timeout", "must be whole seconds, more than 0 and at most a year")
        return None
    return timedelta(seconds=duration.seconds)


def _settings_duration(message: Message, field: str, out: Violations) -> timedelta | None:
    """A Duration of the settings (`time_limit`, `stop_loss.fallback_after`): whole seconds,
    more than 0 and at most a year; None when unset."""
    rule = "must be whole seconds, more than 0 and at most a year"
    value = duration(message, field, rule=rule, minimum=timedelta(seconds=1), maximum=YEAR, out=out)
    if value is not None and getattr(message, field).nanos:  # 5 ns is no timedelta's
        out.add(field, rule)
        return None
    return value


YEAR = timedelta(days=365)


def _leverage(message: pb.Leverage, out: Violations) -> LeverageSpec:
    with out.under("leverage"):
        market_type = enum(message.market_type, MARKET_TYPES, "market_type", out)
        value = decimal(message.value, "value", out, positive=True)
        mode = (
            enum(message.margin_mode, MARGIN_MODES, "margin_mode", out)
            if message.margin_mode
            else None
        )
    return LeverageSpec(market_type=market_type or MarketType.SPOT, value=value, margin_mode=mode)
