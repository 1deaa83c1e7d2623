"""Named failpoints: the deterministic crash points of the fault suite.

`failpoint("name")` does nothing unless the environment variable `SMARTTRADE_FAILPOINTS`
(read once, when the process starts; names separated by commas) names it: then the process
kills itself with SIGKILL right there, as a crash would, with nothing flushed or cleaned up.
Off, it costs a lookup in an empty frozenset; where even building the name would cost
something on a hot path, callers check `ARMED` first.
"""

from __future__ import annotations

import os
import signal

ARMED = frozenset(
    name.strip() for name in os.environ.get("SMARTTRADE_FAILPOINTS", "").split(",") if name.strip()
)


def failpoint(name: str) -> None:
    if name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
