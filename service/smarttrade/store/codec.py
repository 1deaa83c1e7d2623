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
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union

import orjson

from smarttrade.domain.market import Market
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import TradeSpec

T = TypeVar("T")


def _exact(item: Any) -> Any:
    if isinstance(item, Decimal):
        return str(item)  # exact: a JSON number would go through a float
    if isinstance(item, timedelta):
        return item.total_seconds()
    raise TypeError(f"cannot store {type(item).__name__}")


def dump_json(value: Any) -> bytes:
    """A value as a JSON document: dataclasses as objects of their fields, Decimal as its
    exact string, datetime as ISO 8601, timedelta as seconds, Enum by value, tuples as
    arrays. orjson writes it natively (a trade's snapshot is written on the path from a
    trigger to its order)."""
    return orjson.dumps(value, default=_exact)


def to_document(value: Any) -> Any:
    """The same document as Python values (for the JSON columns written through SQLAlchemy)."""
    return orjson.loads(dump_json(value))


def from_document(cls: type[T], document: Any) -> T:
    return typing.cast(T, _loader(typing.cast(Any, cls))(document))


Load = Callable[[Any], Any]


@cache
def _loader(hint: Any) -> Load:
    """A function that builds a value of type `hint` from its document; built once per type
    (reading a hundred thousand trades at startup must not re-inspect types each time)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        inner = _loader(options[0])
        return lambda value: None if value is None else inner(value)
    if origin in (list, tuple):
        item = _loader(typing.get_args(hint)[0])
        if origin is list:
            return lambda value: [item(element) for element in value]
        return lambda value: tuple(item(element) for element in value)
    if origin is dict:
        value_loader = _loader(typing.get_args(hint)[1])
        return lambda value: {key: value_loader(item) for key, item in value.items()}
    if hint is Decimal:
        return Decimal
    if hint is datetime:
        return datetime.fromisoformat
    if hint is timedelta:
        return lambda value: timedelta(seconds=value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {f.name: _loader(hints[f.name]) for f in dataclasses.fields(hint) if f.init}

        def build(value: Any) -> Any:
            return hint(
                **{
                    name: None if item is None else fields[name](item)
                    for name, item in value.items()
                    if name in fields
                }
            )

        return build
    return lambda value: value


def spec_document(spec: TradeSpec) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_document(spec))


def market_document(market: Market) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_document(market))


def trade_document(trade: SmartTrade) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_document(trade))


def trade_from_document(document: dict[str, Any]) -> SmartTrade:
    return from_document(SmartTrade, document)
