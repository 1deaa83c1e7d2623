"""Plain JSON values of the client's models, for scripts and logs: decimals as strings (as
the contract writes them), enums by name, times in RFC 3339 UTC, durations in seconds."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from smarttrade_client.convert import text


def jsonable(value: Any) -> Any:
    """`value` (a model, or lists and dicts of them) as JSON-serializable values.

    `json.dumps(jsonable(trade))` gives {"name": "smartTrades/...", "state": "ACTIVE",
    "position": {"units_held": "0.999", ...}, ...}.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: jsonable(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.repr  # secrets (credentials) are never shown
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return text(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
