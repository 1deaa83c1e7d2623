"""Simulator benchmark: one trade walked through a year of one-minute candles.

    .venv/bin/python -m bench.bench_simulate [--candles 525600] [--runs 3] [--seed 1]

The history is a seeded random walk of BTC/USDT from 40,000: log returns of 0.06 % a minute
(about 45 % a year annualized), each minute's high and low the extremes of four sub-steps,
prices rounded to the cent and written as decimal strings, as they arrive on the wire or in
a CSV. The trade buys 0.1 BTC at market at the first open, takes profit in three steps
(30 % at +40 %, 30 % at +60 %, the rest at +80 % trailing 3 %) and has a stop 35 % below
the entry trailing 35 %: on the default seed it is still open at the end of the year, so
it walks every candle, and every new high since the entry wakes it (the stop moves).

Each run reports, side by side:
- parse: the decimal strings into candles (what any simulation of this history costs);
- iterate: walking every candle's four ticks in the simulator's order (`ticks_of`), doing
  nothing with them: the floor of a simulation that looks at every tick;
- simulate: `engine.simulator.simulate` on the parsed candles, and its ratio to each floor;
and what the trade did: its state and close reason, when it ended, how many inputs it
decided on. No test asserts a time: the figures go to the README.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from smarttrade.domain.candles import Candle, ticks_of
from smarttrade.domain.spec import EntrySpec, EntryType, StopLossSpec, TakeProfitStepSpec, TradeSpec
from smarttrade.domain.values import OrderType, Side
from smarttrade.engine.simulator import simulate
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS

T = TypeVar("T")

BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTC/USDT")
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SIGMA = 0.0006 / 2  # per sub-step: four sub-steps make a minute's 0.06 %

SPEC = TradeSpec(
    symbol="BTC/USDT",
    side=Side.BUY,
    entry=EntrySpec(EntryType.MARKET, units=Decimal("0.1")),
    take_profit=(
        TakeProfitStepSpec(volume_percent=Decimal(30), percent=Decimal(40)),
        TakeProfitStepSpec(volume_percent=Decimal(30), percent=Decimal(60)),
        TakeProfitStepSpec(
            volume_percent=Decimal(40), percent=Decimal(80), trailing_percent=Decimal(3)
        ),
    ),
    stop_loss=StopLossSpec(
        percent=Decimal(35), order_type=OrderType.MARKET, trailing_percent=Decimal(35)
    ),
)


def random_walk(count: int, seed: int) -> list[tuple[datetime, str, str, str, str]]:
    """`count` one-minute candles as (time, open, high, low, close) decimal strings."""
    rng = random.Random(seed)
    rows = []
    price = 40_000.0
    for minute in range(count):
        open_ = price
        high = low = open_
        for _ in range(4):
            price *= math.exp(rng.gauss(0.0, SIGMA))
            high, low = max(high, price), min(low, price)
        rows.append(
            (
                T0 + timedelta(minutes=minute),
                f"{open_:.2f}",
                f"{high:.2f}",
                f"{low:.2f}",
                f"{price:.2f}",
            )
        )
    return rows


def parse(rows: list[tuple[datetime, str, str, str, str]]) -> list[Candle]:
    return [
        Candle(at, Decimal(open_), Decimal(high), Decimal(low), Decimal(close))
        for at, open_, high, low, close in rows
    ]


def iterate(candles: list[Candle]) -> int:
    seen = 0
    for candle in candles:
        for _ in ticks_of(candle):
            seen += 1
    return seen


def timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=525_600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = random_walk(args.candles, args.seed)
    print(f"{len(rows):,} candles, {4 * len(rows):,} ticks")
    print("| run | parse | iterate | simulate | / parse | / iterate | outcome | ended | decided |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        candles, parsing = timed(lambda: parse(rows))
        _, iterating = timed(lambda: iterate(candles))  # noqa: B023
        simulation, simulating = timed(lambda: simulate(SPEC, BTC, candles))  # noqa: B023
        trade = simulation.trade
        reason = trade.close_reason.value if trade.close_reason else "-"
        ended = f"day {(trade.ended_at - T0).days}" if trade.ended_at else "open"
        print(
            f"| {run} | {parsing:.2f} s | {iterating:.2f} s | {simulating:.2f} s "
            f"| {simulating / parsing:.2f}x | {simulating / iterating:.2f}x "
            f"| {trade.state.value} {reason} | {ended} | {simulation.decided:,} |"
        )


if __name__ == "__main__":
    main()
