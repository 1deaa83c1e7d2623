"""`trades simulate`: a price history read from CSV, and what the simulation printed for
people: the outcome, the fills and a plain-text chart of the price with the trade's levels."""

from __future__ import annotations

import argparse
import bisect
import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from smarttrade_client.cli.connection import UsageError
from smarttrade_client.cli.trade_settings import ascii_decimal
from smarttrade_client.cli.views import currencies, fields, number, state_text, table
from smarttrade_client.convert import text
from smarttrade_client.models import Candle, CandleSource, Side, Simulation, SmartTrade

COLUMNS = ("time", "open", "high", "low", "close")
CHART_WIDTH = 60
CHART_HEIGHT = 14


# --- the CSV ---------------------------------------------------------------------------------


def read_candles(path: str) -> list[Candle]:
    """Rows `time,open,high,low,close[,volume]`, a header line optional. A time is ISO 8601
    (UTC unless it says otherwise) or a Unix time in seconds or milliseconds."""
    try:
        with Path(path).open(newline="") as file:
            rows = list(csv.reader(file))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    if rows and rows[0] and rows[0][0].strip().lower() == "time":
        rows = rows[1:]
    candles = []
    for line, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) not in (5, 6):
            raise UsageError(f"{path}, row {line}: expected time,open,high,low,close[,volume]")
        try:
            prices = [ascii_decimal(cell.strip()) for cell in row[1:]]
            candles.append(Candle(_time(row[0].strip()), *prices))
        except (InvalidOperation, ValueError) as error:
            raise UsageError(f"{path}, row {line}: {error or 'not a number'}") from None
    if not candles:
        raise UsageError(f"{path} holds no candles")
    return candles


def history_of(args: argparse.Namespace) -> tuple[list[Candle], CandleSource | None]:
    """`--candles CSV`, or `--from-exchange` with `--timeframe`, `--start` and `--end`."""
    if bool(args.candles) == bool(args.from_exchange):
        raise UsageError("give the history: --candles CSV, or --from-exchange with --start/--end")
    if args.candles:
        if args.start or args.end or args.timeframe:
            raise UsageError("--timeframe, --start and --end are for --from-exchange")
        return read_candles(args.candles), None
    if not (args.start and args.end):
        raise UsageError("--from-exchange needs --start and --end")
    times = []
    for flag, given in (("--start", args.start), ("--end", args.end)):
        try:
            times.append(_time(given.strip()))
        except ValueError as error:
            raise UsageError(f"{flag}: {error}") from None
    start, end = times
    if start >= end:
        raise UsageError("--end must be after --start")
    return [], CandleSource(args.from_exchange, args.timeframe or "1m", start, end)


def _time(cell: str) -> datetime:
    """ISO 8601 (UTC unless it says otherwise) or Unix seconds or milliseconds, in UTC;
    ValueError for anything else, or a time before 1970 or after 9999."""
    try:
        if cell.isascii() and cell.isdigit():
            seconds = int(cell) / 1000 if len(cell) > 11 else int(cell)
            return datetime.fromtimestamp(seconds, UTC)
        at = datetime.fromisoformat(cell.replace("Z", "+00:00"))
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        utc = at.astimezone(UTC)
    except (OverflowError, OSError):
        raise ValueError(f"{cell[:40]!r} is out of range") from None
    if utc.year < 1970:
        raise ValueError(f"{cell[:40]!r} is before 1970")
    return utc


# --- for people ------------------------------------------------------------------------------


def simulation_detail(simulation: Simulation, candles: Sequence[Candle]) -> str:
    trade = simulation.trade
    base, quote = currencies(trade.symbol)
    position = trade.position
    pairs = [
        ("outcome", state_text(trade)),
        ("symbol", f"{trade.symbol} {trade.side.value}"),
        ("history", f"{simulation.candle_count} candles, {simulation.tick_count} ticks walked"),
    ]
    if position.average_entry_price is not None:
        pairs.append(
            (
                "entry",
                f"{text(position.units_bought)} {base} at {number(position.average_entry_price)}",
            )
        )
    pnl = f"realized {text(position.realized_pnl)} {quote}"
    if position.unrealized_pnl is not None and position.units_held:
        held = f"{text(position.units_held)} {base} held"
        pnl += f", unrealized {text(position.unrealized_pnl)} {quote} on {held}"
    pairs.append(("pnl", pnl))
    if position.fees:
        pairs.append(("fees", ", ".join(f"{text(a)} {c}" for c, a in position.fees.items())))
    if trade.last_error:
        pairs.append(("error", trade.last_error))
    if simulation.volume_shortfalls:
        first = simulation.volume_shortfalls[0]
        pairs.append(
            (
                "volume",
                f"filled more than was traded in {len(simulation.volume_shortfalls)} candle(s),"
                f" first at {_when(first.candle_time)}: {text(first.filled)} {base}"
                f" of {text(first.volume)}",
            )
        )
    fills = table(
        ["LEG", "SIDE", "PRICE", "AMOUNT", "FEE", "TIME"],
        [
            [
                leg.id,
                order.side.value,
                text(fill.price),
                text(fill.amount),
                f"{text(fill.fee)} {fill.fee_currency}",
                _when(fill.time),
            ]
            for leg in trade.legs
            for order in leg.orders
            for fill in order.fills
        ],
    )
    if not candles:  # fetched by the service: it does not send the history back
        return "\n".join([fields(pairs), "", fills])
    return "\n".join([fields(pairs), "", fills, "", chart(trade, candles)])


def _short(price: Decimal) -> str:
    """A level for the eye: seven significant digits (an average entry has many more)."""
    digits = max(price.adjusted() + 1, 0)
    return text(round(price, max(7 - digits, 0)))


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def levels(trade: SmartTrade) -> list[tuple[str, Decimal]]:
    """The trade's levels as they ended: the entry, each target, the stop."""
    found = []
    entry = (
        trade.position.average_entry_price or trade.entry.limit_price or trade.entry.trigger_price
    )
    if entry is not None:
        found.append(("entry", entry))
    for index, step in enumerate(trade.take_profit, start=1):
        target = step.target_price or step.price
        if target is not None:
            found.append((f"tp{index}", target))
    stop = trade.stop_loss
    trigger = stop.trigger_price or stop.price if stop is not None else None
    if trigger is not None:
        found.append(("stop", trigger))
    return found


def chart(
    trade: SmartTrade,
    candles: Sequence[Candle],
    width: int = CHART_WIDTH,
    height: int = CHART_HEIGHT,
) -> str:
    """The price over time, a column per slice of the history (`|` from its low to its
    high), the trade's levels as lines (`-`, named on the right), and its fills where and
    when they happened (`B` a buy, `S` a sell)."""
    width = min(width, len(candles))
    marks = levels(trade)
    low = min([c.low for c in candles] + [price for _, price in marks])
    high = max([c.high for c in candles] + [price for _, price in marks])
    span = high - low

    def row(price: Decimal) -> int:
        if not span:
            return height // 2
        return int(((high - price) / span * (height - 1)).to_integral_value())

    def column(index: int) -> int:
        return index * width // len(candles)

    grid = [[" "] * width for _ in range(height)]
    names: dict[int, list[str]] = {}
    for name, price in marks:
        names.setdefault(row(price), []).append(f"{name} {_short(price)}")
        grid[row(price)] = ["-"] * width
    for index, candle in enumerate(candles):
        for line in range(row(candle.high), row(candle.low) + 1):
            grid[line][column(index)] = "|"
    times = [candle.time for candle in candles]
    for leg in trade.legs:
        for order in leg.orders:
            for fill in order.fills:
                if fill.time is None:
                    continue
                index = max(bisect.bisect_right(times, fill.time) - 1, 0)
                grid[row(fill.price)][column(index)] = "B" if order.side is Side.BUY else "S"
    axis = {0: text(high), height - 1: text(low)}
    label_width = max(len(label) for label in axis.values())
    lines = [
        f"{axis.get(line, ''):>{label_width}} |{''.join(cells)}| "
        f"{', '.join(names.get(line, []))}".rstrip()
        for line, cells in enumerate(grid)
    ]
    start, end = _when(candles[0].time), _when(candles[-1].time)
    lines.append(f"{'':>{label_width}}  {start}{end:>{max(width - len(start), len(end) + 1)}}")
    return "\n".join(lines)
