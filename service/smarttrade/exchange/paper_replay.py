"""Replay a CSV of past prices into the paper venue: a price source for the sandbox.

Two layouts, told apart by the header row:

- ticks: `time,symbol,price` — each row is one tick;
- candles: `time,symbol,open,high,low,close` — each row becomes four ticks: the open, the
  high and the low in the order the candle most plausibly took them, then the close. A green
  candle (close above open) most plausibly dipped first and rallied to close near its high,
  so it goes open, low, high, close; a red one goes open, high, low, close. A doji (close
  equal to open) visits the nearer extreme first (the low on a tie). All four are pushed even
  when two are equal: the venue counts a tick equal to the last price as a tick.

`time` is ISO 8601 (a naive time is read as UTC) or a Unix time in seconds, milliseconds or
microseconds (told apart by size, as exchanges' exports use all three). Rows are pushed in file
order, and times must not go backwards. By default nothing waits: the file is pushed as fast
as the venue takes it (the sandbox's `SetPaperPrice` returns once every trade has reacted, so
a replay is deterministic). With `speed`, the replay waits between rows for the time the file
says passed, divided by `speed` (2 = twice as fast as it happened); a candle's four ticks
share its time.

Prices are read as `Decimal` from the text as written: never a float.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

PriceSink = Callable[[str, Decimal], Awaitable[object]]
Sleep = Callable[[float], Awaitable[object]]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECONDS_UNTIL_5000 = Decimal(95_617_584_000)
MILLISECONDS, MICROSECONDS = Decimal(1000), Decimal(1_000_000)
TICKS = ("time", "symbol", "price")
CANDLES = ("time", "symbol", "open", "high", "low", "close")


class ReplayError(ValueError):
    """The file cannot be replayed; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One row of the file: its time, its symbol and the ticks it stands for, in order."""

    line: int
    at: datetime
    symbol: str
    prices: tuple[Decimal, ...]


async def replay(
    path: Path | str,
    push: PriceSink,
    *,
    speed: Decimal | None = None,
    sleep: Sleep = asyncio.sleep,
) -> int:
    """Push every tick of the file through `push(symbol, price)`, awaiting each; returns how
    many were pushed. `speed` paces the replay by the time column (see the module's doc)."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be greater than 0")
    pushed = 0
    previous: datetime | None = None
    for row in read_rows(Path(path)):
        if speed is not None and previous is not None:
            waited = Decimal((row.at - previous).total_seconds()) / speed
            if waited > 0:
                await sleep(float(waited))  # asyncio.sleep takes seconds as a float
        previous = row.at
        for price in row.prices:
            await push(row.symbol, price)
            pushed += 1
    return pushed


def read_rows(path: Path) -> Iterator[ReplayRow]:
    """The file's rows, checked: times in order, prices positive, candles consistent."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = tuple(cell.strip().lower() for cell in next(reader, ()))
        if header not in (TICKS, CANDLES):
            raise ReplayError(
                f"{path}:1: the header must be {','.join(TICKS)} or {','.join(CANDLES)}"
            )
        previous: datetime | None = None
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise ReplayError(f"{path}:{line}: expected {len(header)} columns")
            try:
                row = _row(line, header, [cell.strip() for cell in cells])
            except ValueError as error:
                raise ReplayError(f"{path}:{line}: {error}") from error
            if previous is not None and row.at < previous:
                raise ReplayError(f"{path}:{line}: time goes backwards")
            previous = row.at
            yield row


def _row(line: int, header: tuple[str, ...], cells: list[str]) -> ReplayRow:
    at, symbol = _time(cells[0]), cells[1]
    if not symbol:
        raise ValueError("the symbol is empty")
    if header == TICKS:
        return ReplayRow(line, at, symbol, (_price(cells[2], "price"),))
    open_, high, low, close = (_price(cells[i], header[i]) for i in range(2, 6))
    if not low <= min(open_, close) or not high >= max(open_, close):
        raise ValueError("the high and low must enclose the open and the close")
    return ReplayRow(line, at, symbol, candle_ticks(open_, high, low, close))


def candle_ticks(
    open_: Decimal, high: Decimal, low: Decimal, close: Decimal
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The four ticks of a candle, in the order it most plausibly took them."""
    if close > open_ or (close == open_ and open_ - low <= high - open_):
        return open_, low, high, close
    return open_, high, low, close


def _price(text: str, column: str) -> Decimal:
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{column} {text!r} is not a decimal number") from None
    if not price.is_finite() or price <= 0:
        raise ValueError(f"{column} must be a number greater than 0")
    return price


def _time(text: str) -> datetime:
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"time {text!r} is neither ISO 8601 nor Unix seconds") from None
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not seconds.is_finite():
        raise ValueError(f"time {text!r} is not a time")
    # Exchanges' exports count milliseconds (Binance klines) or, lately, microseconds; no
    # time in seconds is that large before the year 5000.
    if abs(seconds) >= SECONDS_UNTIL_5000 * MILLISECONDS:
        seconds /= MICROSECONDS
    elif abs(seconds) >= SECONDS_UNTIL_5000:
        seconds /= MILLISECONDS
    return EPOCH + timedelta(microseconds=int(seconds * 1_000_000))
