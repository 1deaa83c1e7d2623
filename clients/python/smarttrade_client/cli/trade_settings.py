"""A trade's settings from command-line flags and from a YAML or JSON file.

Both become one plain mapping with the contract's field names (flags overriding the file),
which is then read into the client's models, so a file and flags mean exactly the same:

    account: exchangeAccounts/0123456789abcdef
    symbol: BTC/USDT
    side: buy
    entry: {type: limit, units: "0.5", limit_price: "95"}
    take_profit:
      - {price: "110", volume_percent: "50"}
      - {percent: "20", volume_percent: "50", trailing_percent: "1"}
    stop_loss: {percent: "3", move_to_breakeven: true, timeout: 30}
    note: swing trade
    labels: {bot: grid, signal: s-42}

A futures trade (a USDT-margined perpetual) names the perpetual and its leverage, as the
flags `--futures --leverage 5 --margin isolated` do:

    symbol: BTC/USDT:USDT
    leverage: {market_type: linear, value: "5", margin_mode: isolated}

Quote the numbers: YAML reads 0.1 as a binary float (it is converted through its shortest
text, so it still works, but quoting says what you mean).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from smarttrade_client.cli.connection import UsageError
from smarttrade_client.models import (
    Entry,
    EntryType,
    Leverage,
    MarginMode,
    MarketType,
    OrderType,
    Side,
    StopLoss,
    TakeProfitStep,
    TriggerPrice,
)

E = TypeVar("E", bound=StrEnum)

TRADE_KEYS = {
    "account",
    "symbol",
    "side",
    "entry",
    "take_profit",
    "stop_loss",
    "leverage",
    "note",
    "labels",
    "time_limit",
    "trigger_price",
}
EDIT_KEYS = {"entry", "take_profit", "stop_loss", "note", "labels", "time_limit"}
ENTRY_KEYS = {
    "type",
    "units",
    "total",
    "limit_price",
    "trigger_price",
    "order_type",
    "trailing_percent",
    "average_price",
}
STEP_KEYS = {"price", "percent", "volume_percent", "trailing_percent"}
STOP_KEYS = {
    "price",
    "percent",
    "order_type",
    "limit_price",
    "timeout",
    "trailing_percent",
    "move_to_breakeven",
    "fallback_after",
    "fallback_percent",
}
LEVERAGE_KEYS = {"market_type", "value", "margin_mode"}


def ascii_decimal(text: str) -> Decimal:
    """`Decimal(text)`, refusing what the service refuses and `Decimal` would take: digits of
    other scripts ("١٢٣", "１２３" are 123 to Python) and any other non-ASCII character."""
    if not text.isascii():
        raise InvalidOperation(text)
    return Decimal(text)


def decimal(text: str) -> Decimal:
    """argparse type: a finite decimal number, in ASCII digits."""
    try:
        value = ascii_decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def amount(text: str) -> tuple[str, Decimal]:
    """argparse type: CURRENCY=AMOUNT, e.g. USDT=10000."""
    currency, sep, value = text.partition("=")
    if not sep or not currency:
        raise argparse.ArgumentTypeError(f"expected CURRENCY=AMOUNT, e.g. USDT=10000: {text!r}")
    return currency.strip().upper(), decimal(value.strip())


def load_file(path: str) -> dict[str, Any]:
    """A YAML or JSON mapping from `path` ("-": standard input)."""
    try:
        content = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    try:
        data = (
            json.loads(content)
            if path.endswith(".json")
            else yaml.safe_load(content)  # YAML is a superset of JSON
        )
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(f"{path} is not valid YAML or JSON: {error}") from error
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a mapping of trade settings")
    return data


# --- flags -> the mapping --------------------------------------------------------------------


def take_profit_flags(targets: Sequence[str], trailing: Decimal | None) -> list[dict[str, Any]]:
    """`--tp TARGET[:VOLUME]` flags: TARGET a price (110) or a percent (5%), VOLUME the percent
    of the position to exit. Steps without a volume share what the others leave, evenly."""
    steps: list[dict[str, Any]] = []
    for flag in targets:
        target, _, volume = flag.partition(":")
        step: dict[str, Any] = {}
        if target.endswith("%"):
            step["percent"] = _flag_decimal(target[:-1], "--tp")
        else:
            step["price"] = _flag_decimal(target, "--tp")
        if volume:
            step["volume_percent"] = _flag_decimal(volume.rstrip("%"), "--tp")
        steps.append(step)
    sized = sum((step["volume_percent"] for step in steps if "volume_percent" in step), Decimal(0))
    unsized = [step for step in steps if "volume_percent" not in step]
    if unsized:
        left = Decimal(100) - sized
        share = (left / len(unsized)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        for step in unsized:
            step["volume_percent"] = share
        unsized[-1]["volume_percent"] = left - share * (len(unsized) - 1)
    if trailing is not None and steps:
        steps[-1]["trailing_percent"] = trailing
    return steps


def stop_loss_flags(arguments: argparse.Namespace) -> dict[str, Any] | None:
    """`--sl PRICE|PERCENT%` and its companions; None when no stop-loss flag was given."""
    stop: dict[str, Any] = {}
    if arguments.sl:
        if arguments.sl.endswith("%"):
            stop["percent"] = _flag_decimal(arguments.sl[:-1], "--sl")
        else:
            stop["price"] = _flag_decimal(arguments.sl, "--sl")
    if arguments.sl_limit is not None:
        stop["order_type"], stop["limit_price"] = "limit", arguments.sl_limit
    if arguments.sl_trailing is not None:
        stop["trailing_percent"] = arguments.sl_trailing
    if arguments.sl_timeout is not None:
        stop["timeout"] = arguments.sl_timeout
    if arguments.sl_fallback_after is not None:
        stop["fallback_after"] = arguments.sl_fallback_after
    if arguments.sl_fallback_percent is not None:
        stop["fallback_percent"] = arguments.sl_fallback_percent
    if arguments.breakeven:
        stop["move_to_breakeven"] = True
    return stop or None


def entry_flags(arguments: argparse.Namespace) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for flag, key in (
        ("entry", "type"),
        ("units", "units"),
        ("total", "total"),
        ("limit_price", "limit_price"),
        ("trigger_price", "trigger_price"),
        ("entry_order", "order_type"),
        ("trailing", "trailing_percent"),
        ("average_price", "average_price"),
    ):
        value = getattr(arguments, flag, None)
        if value is not None:
            entry[key] = value
    return entry


def trade_mapping(arguments: argparse.Namespace) -> dict[str, Any]:
    """The settings of `trades create`: the file's, overridden by the flags."""
    data = load_file(arguments.file) if arguments.file else {}
    _check_keys(data, TRADE_KEYS, "the trade file")
    for key in ("account", "symbol", "side", "note", "time_limit"):
        value = getattr(arguments, key, None)
        if value is not None:
            data[key] = value
    if getattr(arguments, "trigger_source", None) is not None:
        data["trigger_price"] = arguments.trigger_source
    if arguments.label:
        data["labels"] = label_flags(arguments.label)
    entry = dict(data.get("entry") or {})
    given = entry_flags(arguments)
    if {"units", "total"} & given.keys():
        entry.pop("units", None)
        entry.pop("total", None)
    entry.update(given)
    data["entry"] = entry
    if arguments.tp:
        data["take_profit"] = take_profit_flags(arguments.tp, arguments.tp_trailing)
    elif arguments.tp_trailing is not None and data.get("take_profit"):
        data["take_profit"][-1]["trailing_percent"] = arguments.tp_trailing
    stop = stop_loss_flags(arguments)
    if stop is not None:
        data["stop_loss"] = stop
    leverage = {
        key: value
        for key, value in (
            ("market_type", arguments.market),
            ("value", arguments.leverage),
            ("margin_mode", arguments.margin),
        )
        if value is not None
    }
    if leverage:
        data["leverage"] = {**_mapping(data.get("leverage") or {}, "leverage"), **leverage}
        _check_futures_flags(arguments, data["leverage"])
    return data


def label_flags(given: Sequence[str]) -> dict[str, str]:
    """`--label KEY=VALUE`, repeated (the service checks the keys and values)."""
    labels = {}
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UsageError(f"--label takes KEY=VALUE, not {item!r}")
        labels[key] = value
    return labels


def labels(data: Any) -> dict[str, str]:
    if not isinstance(data, Mapping):
        raise UsageError("labels must be a mapping of keys to values")
    return {str(key): "" if value is None else str(value) for key, value in data.items()}


def _check_futures_flags(arguments: argparse.Namespace, leverage: Mapping[str, Any]) -> None:
    """`--leverage` and `--margin` only mean something on futures. The service refuses a spot
    leverage other than 1 but ignores a spot margin mode, so without this `--margin cross`
    alone would run a spot trade as if nothing had been asked."""
    futures = str(leverage.get("market_type") or "").upper() == MarketType.LINEAR.value
    given = [
        flag
        for flag, value in (("--leverage", arguments.leverage), ("--margin", arguments.margin))
        if value is not None
    ]
    if given and not futures:
        verb = "needs" if len(given) == 1 else "need"
        raise UsageError(
            f"{' and '.join(given)} {verb} --futures (or leverage.market_type: linear in the file)"
        )


# --- the mapping -> models -------------------------------------------------------------------


def trade_settings(data: Mapping[str, Any], account_required: bool = True) -> dict[str, Any]:
    """Keyword arguments of `create_trade` (or, without a required account, `simulate`) from
    a settings mapping."""
    _check_keys(data, TRADE_KEYS, "the trade")
    for key in ("account", "symbol", "side") if account_required else ("symbol", "side"):
        if not data.get(key):
            raise UsageError(f"the trade needs --{key} (or `{key}:` in the file)")
    settings: dict[str, Any] = {
        "account": str(data.get("account") or ""),
        "symbol": str(data["symbol"]),
        "side": choice(Side, data["side"], "side"),
        "entry": entry(data.get("entry") or {}),
        "take_profit": take_profit(data.get("take_profit") or []),
        "stop_loss": stop_loss(data["stop_loss"]) if data.get("stop_loss") else None,
        "leverage": leverage(data["leverage"]) if data.get("leverage") else None,
        "note": str(data.get("note") or ""),
        "labels": labels(data.get("labels") or {}),
    }
    if data.get("time_limit") is not None:
        settings["time_limit"] = seconds(data["time_limit"], "time_limit")
    if data.get("trigger_price") is not None:
        settings["trigger_price"] = choice(TriggerPrice, data["trigger_price"], "trigger_price")
    return settings


def seconds(value: Any, where: str) -> timedelta:
    """A duration of the settings, given in seconds (a number, or a decimal string)."""
    amount = _decimal(value, where)
    if amount is None:
        raise UsageError(f"{where}: seconds are required")
    return timedelta(seconds=float(amount))


def entry(data: Mapping[str, Any]) -> Entry:
    _check_keys(data, ENTRY_KEYS, "entry")
    kind = data.get("type")
    if kind is None:
        # The kind follows from the prices given, so `--limit-price 95` alone is a limit entry.
        if "trigger_price" in data:
            kind = "conditional"
        elif "limit_price" in data:
            kind = "limit"
        elif "average_price" in data:
            kind = "skip"
        else:
            kind = "market"
    return Entry(
        type=choice(EntryType, kind, "entry.type"),
        units=_decimal(data.get("units"), "entry.units"),
        total=_decimal(data.get("total"), "entry.total"),
        limit_price=_decimal(data.get("limit_price"), "entry.limit_price"),
        trigger_price=_decimal(data.get("trigger_price"), "entry.trigger_price"),
        order_type=choice(OrderType, data["order_type"], "entry.order_type")
        if data.get("order_type")
        else None,
        trailing_percent=_decimal(data.get("trailing_percent"), "entry.trailing_percent"),
        average_price=_decimal(data.get("average_price"), "entry.average_price"),
    )


def take_profit(data: Any) -> list[TakeProfitStep]:
    if not isinstance(data, list):
        raise UsageError("take_profit must be a list of steps")
    steps = []
    for index, step in enumerate(data):
        where = f"take_profit[{index}]"
        if not isinstance(step, Mapping):
            raise UsageError(f"{where} must be a mapping")
        _check_keys(step, STEP_KEYS, where)
        volume = _decimal(step.get("volume_percent"), f"{where}.volume_percent")
        steps.append(
            TakeProfitStep(
                price=_decimal(step.get("price"), f"{where}.price"),
                percent=_decimal(step.get("percent"), f"{where}.percent"),
                volume_percent=Decimal(100) if volume is None else volume,
                trailing_percent=_decimal(step.get("trailing_percent"), f"{where}.trailing"),
            )
        )
    return steps


def stop_loss(data: Mapping[str, Any]) -> StopLoss:
    _check_keys(data, STOP_KEYS, "stop_loss")
    timeout = _decimal(data.get("timeout"), "stop_loss.timeout")
    return StopLoss(
        price=_decimal(data.get("price"), "stop_loss.price"),
        percent=_decimal(data.get("percent"), "stop_loss.percent"),
        order_type=choice(OrderType, data["order_type"], "stop_loss.order_type")
        if data.get("order_type")
        else None,
        limit_price=_decimal(data.get("limit_price"), "stop_loss.limit_price"),
        timeout=timedelta(seconds=float(timeout)) if timeout is not None else None,
        trailing_percent=_decimal(data.get("trailing_percent"), "stop_loss.trailing_percent"),
        move_to_breakeven=bool(data.get("move_to_breakeven", False)),
        fallback_after=seconds(data["fallback_after"], "stop_loss.fallback_after")
        if data.get("fallback_after") is not None
        else None,
        fallback_percent=_decimal(data.get("fallback_percent"), "stop_loss.fallback_percent"),
    )


def leverage(data: Any) -> Leverage:
    data = _mapping(data, "leverage")
    _check_keys(data, LEVERAGE_KEYS, "leverage")
    market, margin = data.get("market_type"), data.get("margin_mode")
    return Leverage(
        market_type=choice(MarketType, market, "leverage.market_type") if market else None,
        value=_decimal(data.get("value"), "leverage.value"),
        margin_mode=choice(MarginMode, margin, "leverage.margin_mode") if margin else None,
    )


def choice(kind: type[E], value: Any, where: str) -> E:
    """An enum member from its name, in any case (`buy`, `BUY`)."""
    try:
        return kind(str(value).upper())
    except ValueError:
        names = ", ".join(member.value.lower() for member in kind if member.value != "UNRECOGNIZED")
        raise UsageError(f"{where} must be one of {names}, not {value!r}") from None


def _decimal(value: Any, where: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UsageError(f"{where} must be a number, not {value!r}")
    try:
        # str() first: a YAML float 0.1 becomes Decimal("0.1"), not its binary expansion.
        number = ascii_decimal(str(value))
    except InvalidOperation:
        raise UsageError(f"{where} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise UsageError(f"{where} must be a finite number, not {value!r}")
    return number


def _flag_decimal(text: str, flag: str) -> Decimal:
    value = _decimal(text, flag)
    if value is None:
        raise UsageError(f"{flag} needs a number")
    return value


def _mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise UsageError(f"{where} must be a mapping, not {data!r}")
    return data


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown {'keys' if len(unknown) > 1 else 'key'} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(allowed))})"
        )
