"""The service's log lines: text on a terminal (the default), or JSON lines on request
(`--log-format json`, SMARTTRADE_LOG_FORMAT=json) for a log pipeline.

A JSON line is one object: `time` (UTC, ISO 8601), `level`, `logger`, `message`, `replica`,
and, when the line was written on behalf of one, `tenant`, `trade`, `request` (the caller's
request id) and `trace` (the OpenTelemetry trace id, when tracing is on), then `error` with
the traceback of a logged exception. The ids come from context variables: `trade` is set by
the engine while a trade handles an input, `request` by the API when a call carries a request
id, `tenant` by whoever `set_tenant` gives a reader of the caller's tenant (the API's
authentication), `trace` by OpenTelemetry.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import orjson

from smarttrade.tracing import current_trace_id

trade: contextvars.ContextVar[str | None] = contextvars.ContextVar("log_trade", default=None)
request: contextvars.ContextVar[str | None] = contextvars.ContextVar("log_request", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _no_tenant() -> str | None:
    return None


_tenant: Callable[[], str | None] = _no_tenant


def set_tenant(reader: Callable[[], str | None]) -> None:
    """How to read the tenant a line is written for (None: none)."""
    global _tenant
    _tenant = reader


class JsonLines(logging.Formatter):
    def __init__(self, replica: str) -> None:
        super().__init__()
        self._replica = replica

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "replica": self._replica,
        }
        for key, value in (
            ("tenant", _tenant()),
            ("trade", trade.get()),
            ("request", request.get()),
            ("trace", current_trace_id()),
        ):
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str, format: str, replica: str) -> None:
    """The root logger: text, or JSON lines; to stderr either way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(replica) if format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in ("pgserver", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


@contextmanager
def about_trade(trade_id: str) -> Iterator[None]:
    """Lines written inside are about this trade."""
    token = trade.set(trade_id)
    try:
        yield
    finally:
        trade.reset(token)
