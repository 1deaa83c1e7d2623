"""How `watch` shows the stream: a table redrawn in place on a terminal, one line per item
when the output is a pipe or a file, JSON lines with `--json`."""

from __future__ import annotations

import json
from collections import deque
from typing import Protocol, TextIO

from smarttrade_client.cli import views
from smarttrade_client.jsonable import jsonable
from smarttrade_client.models import (
    Event,
    Heartbeat,
    SmartTrade,
    SnapshotEnd,
    TradeSnapshot,
    WatchItem,
)

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen
RECENT_EVENTS = 8


class WatchView(Protocol):
    def show(self, item: WatchItem) -> None: ...


class JsonLines:
    """One JSON object per stream message, keyed by the contract's payload name."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def show(self, item: WatchItem) -> None:
        if isinstance(item, TradeSnapshot):
            line = {"snapshot": jsonable(item.trade)}
        elif isinstance(item, SnapshotEnd):
            line = {"snapshot_end": {"sequence": item.sequence}}
        elif isinstance(item, Event):
            line = {"event": jsonable(item)}
        else:
            line = {"heartbeat": jsonable(item)}
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()


class PlainLines:
    """A line per snapshot trade and per event, for pipes, files and logs."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def show(self, item: WatchItem) -> None:
        if isinstance(item, TradeSnapshot):
            line = views.snapshot_line(item.trade)
        elif isinstance(item, SnapshotEnd):
            line = f"snapshot end at #{item.sequence}"
        elif isinstance(item, Event):
            line = views.event_line(item)
        else:
            return
        self._out.write(line + "\n")
        self._out.flush()


class LiveTable:
    """The watched trades as a table, redrawn in place, with the latest events under it."""

    def __init__(self, out: TextIO, title: str) -> None:
        self._out = out
        self._title = title
        self._trades: dict[str, SmartTrade] = {}
        self._recent: deque[str] = deque(maxlen=RECENT_EVENTS)
        self._sequence = 0
        self._clock = "-"
        self._ready = False

    def show(self, item: WatchItem) -> None:
        if isinstance(item, TradeSnapshot):
            self._trades[item.trade.name] = item.trade
            return  # drawn once the snapshot is complete
        if isinstance(item, SnapshotEnd):
            self._sequence, self._ready = item.sequence, True
        elif isinstance(item, Event):
            self._trades[item.trade_name] = item.trade
            self._sequence, self._clock = item.sequence, views.clock(item.time)
            self._recent.append(views.event_line(item))
            self._ready = True
        elif isinstance(item, Heartbeat):
            self._clock = views.clock(item.time)
        if self._ready:
            self._redraw()

    def _redraw(self) -> None:
        trades = list(self._trades.values())  # the snapshot's order, newer trades after it
        screen = [
            f"{self._title}  (last event #{self._sequence}, {self._clock} UTC; Ctrl-C to stop)",
            "",
            views.trades_table(trades) if trades else "no trades yet",
            "",
            *self._recent,
        ]
        self._out.write(CLEAR + "\n".join(screen) + "\n")
        self._out.flush()
