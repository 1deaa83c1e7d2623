"""A price history as candles, and the one rule that turns a candle into ticks.

A candle says where the price opened, the extremes it reached and where it closed, not the
order it went in. The simulator walks each candle as four ticks: the open, the extreme
nearer to the open, the farther extreme, the close (equally near: the low first, the
cautious reading for a long). The ticks of a candle are spread evenly over its time:
at its start, a quarter, half and three quarters of the way to the next candle's time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.values import Fill

# A year of one-minute candles and a little more; inline rows are limited further by the
# API (a request's size), a fetched history by this.
MAX_CANDLES = 600_000
# The candle lengths a history may be fetched in (ccxt's notation), in seconds.
TIMEFRAMES = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400}


@dataclass(frozen=True, slots=True)
class Candle:
    """One period of a price history: its start time and its prices (quote currency)."""

    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VolumeShortfall:
    """A candle in which a simulated trade filled more of the base than the candle says
    was traded: the history could not have filled that much, so the simulated outcome is
    kinder there than a venue would have been."""

    candle_time: datetime
    volume: Decimal  # traded in the candle, as the history says
    filled: Decimal  # filled by the trade's orders in the candle


def volume_shortfalls(candles: Sequence[Candle], fills: Iterable[Fill]) -> list[VolumeShortfall]:
    """The candles (with a volume) in which `fills` add up to more than the volume, in time
    order. A fill belongs to the last candle that starts at or before it."""
    times = [candle.time for candle in candles]
    filled: dict[int, Decimal] = {}
    for fill in fills:
        index = bisect.bisect_right(times, fill.at) - 1
        if index >= 0 and candles[index].volume is not None:
            filled[index] = filled.get(index, Decimal(0)) + fill.amount
    shortfalls = []
    for index in sorted(filled):
        volume = candles[index].volume
        assert volume is not None
        if filled[index] > volume:
            shortfalls.append(VolumeShortfall(candles[index].time, volume, filled[index]))
    return shortfalls


def ticks_of(candle: Candle) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Open, nearer extreme, farther extreme, close."""
    if candle.high - candle.open < candle.open - candle.low:
        return candle.open, candle.high, candle.low, candle.close
    return candle.open, candle.low, candle.high, candle.close


def length_of(candles: Sequence[Candle], index: int) -> timedelta:
    """How long a candle lasts: to the next one's time (the last lasts as long as the one
    before it, or a minute when it is alone)."""
    if index + 1 < len(candles):
        return candles[index + 1].time - candles[index].time
    if index > 0:
        return candles[index].time - candles[index - 1].time
    return timedelta(minutes=1)


def ticks(candles: Sequence[Candle]) -> Iterator[tuple[datetime, Decimal]]:
    """Every tick of a history with its time."""
    for index, candle in enumerate(candles):
        quarter = length_of(candles, index) / 4
        for part, price in enumerate(ticks_of(candle)):
            yield candle.time + quarter * part, price


def check_candles(candles: Sequence[Candle], field: str = "candles") -> None:
    """Refuse a history that cannot be walked, naming the first bad row and what is wrong."""
    if not candles:
        raise InvalidSpec([FieldViolation(field, "the price history is empty")])
    if len(candles) > MAX_CANDLES:
        raise InvalidSpec(
            [FieldViolation(field, f"{len(candles)} candles: at most {MAX_CANDLES} are allowed")]
        )
    previous: datetime | None = None
    for index, candle in enumerate(candles):
        problem = _problem(candle, previous)
        if problem is not None:
            name, description = problem
            raise InvalidSpec([FieldViolation(f"{field}[{index}].{name}", description)])
        previous = candle.time


def _problem(candle: Candle, previous: datetime | None) -> tuple[str, str] | None:
    if previous is not None and candle.time <= previous:
        return "time", "times must increase from one candle to the next"
    low, high = candle.low, candle.high
    if (  # the usual case, in as few comparisons as it takes
        0 < low <= candle.open <= high
        and low <= candle.close <= high
        and (candle.volume is None or candle.volume >= 0)
    ):
        return None
    for name in ("open", "high", "low", "close"):
        if getattr(candle, name) <= 0:
            return name, "must be greater than 0"
    if candle.high < candle.low:
        return "high", "must not be below low"
    if not candle.low <= candle.open <= candle.high:
        return "open", "must lie between low and high"
    if not candle.low <= candle.close <= candle.high:
        return "close", "must lie between low and high"
    if candle.volume is not None and candle.volume < 0:
        return "volume", "must not be negative"
    return None
