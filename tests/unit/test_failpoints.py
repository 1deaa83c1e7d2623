"""The failpoints' names and their cost when off (the crash-point suite arms them in a
process of its own: tests/e2e/test_crash_points.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from smarttrade import failpoints
from smarttrade.domain.messages import CancelOrder, PlaceOrder
from smarttrade.domain.values import OrderType, Side


def test_an_order_is_named_by_its_leg_and_generation_without_the_trade() -> None:
    place = PlaceOrder(
        "0123456789abcdef-tp1-2-1",
        "tp1-2",
        "BTC/USDT",
        Side.SELL,
        OrderType.LIMIT,
        Decimal(1),
        Decimal(150),
    )
    cancel = CancelOrder("0123456789abcdef-entry-0", "entry", "BTC/USDT")

    assert failpoints.order_point("order", place, "before-send") == "order:tp1-2-1:before-send"
    assert failpoints.order_point("cancel", cancel, "after-send") == "cancel:entry-0:after-send"


def test_nothing_is_armed_unless_the_environment_names_it() -> None:
    assert "SMARTTRADE_FAILPOINTS" not in os.environ
    assert frozenset() == failpoints.ARMED
    failpoints.failpoint("order:entry-0:before-send")  # off: returns


def test_an_armed_failpoint_kills_its_process_and_a_trace_lists_what_was_reached(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "reached"
    script = (
        "from smarttrade import failpoints\n"
        "failpoints.failpoint('passed-by')\n"
        "failpoints.failpoint('the-point')\n"
        "print('survived')\n"
    )
    env = os.environ | {
        "SMARTTRADE_FAILPOINTS": "the-point, other",
        "SMARTTRADE_FAILPOINTS_TRACE": str(trace),
    }

    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)

    assert done.returncode == -signal.SIGKILL
    assert done.stdout == b""
    assert trace.read_text().split() == ["passed-by", "the-point"]
