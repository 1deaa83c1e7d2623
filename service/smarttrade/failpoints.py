"""Named failpoints: the deterministic crash points of the fault suite.

`failpoint("name")` does nothing unless the environment variable `SMARTTRADE_FAILPOINTS`
(read once, when the process starts; names separated by commas) names it: then the process
kills itself with SIGKILL right there, as a crash would, with nothing flushed or cleaned up.
Off, it costs a test of an empty string and a lookup in an empty frozenset; where even
building the name would cost something on a hot path, callers check `ARMED` first.

The points, named so a test targets one write or one order. An order is named by its key in
its trade, `{leg}-{generation}` (its client order id without the trade id: `entry-0`,
`tp1-1`, `sl-0`, `close-0`, `add1-0`, `reduce1-0`), so the replacement of an order is a
point of its own:

- `request:{request_id}:before-commit`, `...:after-commit` (store/unit_of_work.py): a
  mutating call's write, which takes its request id with its effect.
- `order:{order}:before-send` (engine/executor.py, `Executor._place`): the intent is
  committed, nothing is sent.
- `order:{order}:after-send` (same): the venue accepted the order; its answer is not
  recorded.
- `cancel:{order}:before-send`, `cancel:{order}:after-send` (`Executor._cancel`): the same
  for a cancel; after it the venue has ended the order.
- `paper-fill:{order}:before-applied` (exchange/paper.py, `PaperVenue.set_price`): a tick
  filled the resting order and the paper venue has written the fill (and the tick); no trade
  has applied it. `paper-fills-recorded` is the same moment, for any tick that filled.
- `shard:{n}:taken` (engine/ownership.py, replicas): the replica holds shard n's lease and
  has recovered nothing of it yet; `shard:{n}:before-release`: giving shard n up, its
  trades are stopped and its paper book written, its lease not released.

tests/e2e/test_crash_points.py hits each of them, restarts the service on the same database
and compares the outcome with an uninterrupted run. Its long variant first learns which
points a run reaches: `SMARTTRADE_FAILPOINTS_TRACE` names a file to which every failpoint
reached is appended, one name a line (tracing arms `ARMED`, so names are built).
"""

from __future__ import annotations

import os
import signal
from typing import Protocol

TRACE = os.environ.get("SMARTTRADE_FAILPOINTS_TRACE", "")
ARMED = frozenset(
    name.strip() for name in os.environ.get("SMARTTRADE_FAILPOINTS", "").split(",") if name.strip()
) | ({"(tracing)"} if TRACE else set())


class _Order(Protocol):
    @property
    def client_order_id(self) -> str: ...


def failpoint(name: str) -> None:
    if TRACE:
        with open(TRACE, "a") as trace:
            trace.write(name + "\n")
    if name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)


def order_point(what: str, order: _Order, when: str) -> str:
    """`{what}:{leg}-{generation}:{when}`: client order ids are `{trade}-{leg}-{generation}`,
    and the trade id has no dash."""
    return f"{what}:{order.client_order_id.split('-', 1)[-1]}:{when}"
