"""Domain values <-> JSON documents, for the JSONB columns and the trade snapshots.

One generic mapping driven by the dataclasses' type hints: Decimal as a string (exact),
datetime as ISO 8601, timedelta as seconds, Enum by value, nested dataclasses, lists and
tuples. A document written by an older version loads as long as fields are only added with
defaults, which is the rule for evolving these classes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union

from smarttrade.domain.market import Market
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import TradeSpec

T = TypeVar("T")


def to_document(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_document(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_document(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_document(item) for key, item in value.items()}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_document(cls: type[T], document: Any) -> T:
    return typing.cast(T, _load(cls, document))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _load(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _load(options[0], value)
    if origin in (list, tuple):
        item = typing.get_args(hint)[0]
        items = [_load(item, element) for element in value]
        return items if origin is list else tuple(items)
    if hint is Decimal:
        return Decimal(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is timedelta:
        return timedelta(seconds=value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        names = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{k: _load(hints[k], v) for k, v in value.items() if k in names})
    return value


def spec_document(spec: TradeSpec) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_document(spec))


def market_document(market: Market) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_document(market))


def trade_document(trade: SmartTrade) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_document(trade))


def trade_from_document(document: dict[str, Any]) -> SmartTrade:
    return from_document(SmartTrade, document)
