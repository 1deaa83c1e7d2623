"""Named crash points, for the tests that kill the service at a chosen moment.

`failpoint(name)` kills the process with SIGKILL (no shutdown code runs: the crash itself)
when the environment variable SMARTTRADE_FAILPOINTS, read once at import, names it among its
comma-separated names; otherwise it does nothing, at the cost of one frozenset lookup.
"""

from __future__ import annotations

import os
import signal

_ARMED = frozenset(
    name.strip() for name in os.environ.get("SMARTTRADE_FAILPOINTS", "").split(",") if name.strip()
)


def failpoint(name: str) -> None:
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
