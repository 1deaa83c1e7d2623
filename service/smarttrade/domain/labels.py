"""A trade's labels and its caller-chosen id: the rules the contract states for them.

Labels follow Google's label rules (the ones AIPs point to): at most 64 per trade; a key is
1 to 63 characters of lowercase letters, digits, `_` and `-`, starting with a letter; a
value is at most 63 characters of the same set, and may be empty. Only ASCII: `str.islower`
and `re`'s classes would take other scripts' letters, which a label filter could then not
be typed with.

A caller-chosen trade id (AIP-133 `smart_trade_id`) is an AIP-122 resource id: 4 to 63
characters, lowercase letters, digits and hyphens, starting with a letter and not ending
with a hyphen. It is not the trade's internal id (see `usecases.create.trade_id_for`), so it
may be anything of that form except what the service's own ids look like: 16 hexadecimal
digits would be read as one (`internal_trade_id`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from smarttrade.domain.errors import FieldViolation

MAX_LABELS = 64
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
TRADE_ID = re.compile(r"[a-z](?:[a-z0-9-]{2,61})[a-z0-9]")
SERVICE_TRADE_ID = re.compile(r"[0-9a-f]{16}")


def label_violations(labels: Mapping[str, str], field: str = "labels") -> list[FieldViolation]:
    """What is wrong with `labels`, each named `labels[key]` (or `labels` for their count)."""
    violations = []
    if len(labels) > MAX_LABELS:
        violations.append(FieldViolation(field, f"must be at most {MAX_LABELS} labels"))
    for key in sorted(labels):
        if not LABEL_KEY.fullmatch(key):
            violations.append(
                FieldViolation(
                    f"{field}[{key}]",
                    "key must be 1 to 63 lowercase letters, digits, '_' or '-', "
                    "starting with a letter",
                )
            )
        elif not LABEL_VALUE.fullmatch(labels[key]):
            violations.append(
                FieldViolation(
                    f"{field}[{key}]",
                    "value must be at most 63 lowercase letters, digits, '_' or '-'",
                )
            )
    return violations


def trade_id_violation(trade_id: str, field: str = "smart_trade_id") -> FieldViolation | None:
    """Why `trade_id` cannot be a caller-chosen trade id, or None when it can."""
    if not TRADE_ID.fullmatch(trade_id):
        return FieldViolation(
            field,
            "must be 4 to 63 lowercase letters, digits or hyphens, starting with a letter "
            "and not ending with a hyphen",
        )
    if SERVICE_TRADE_ID.fullmatch(trade_id):
        return FieldViolation(field, "must not be 16 hexadecimal digits (the service's own ids)")
    return None
