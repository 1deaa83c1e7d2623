"""Opaque, tamper-proof page tokens (AIP-158): the cursor of the last item (its sort value,
a time or a decimal, and its id), bound to the request's filters and order, signed with
HMAC-SHA256. A token that was altered, or reused with other filters, is refused as
invalid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.errors import FieldViolation, InvalidSpec

SIGNATURE_BYTES = 16


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]

    def encode(self, after: tuple[datetime | Decimal, str], filters: str) -> str:
        value, item_id = after
        # A time as ISO 8601 (the form every token had before other orders came), a decimal
        # as {"decimal": text}.
        key = value.isoformat() if isinstance(value, datetime) else {"decimal": str(value)}
        payload = json.dumps([key, item_id, filters]).encode()
        return base64.urlsafe_b64encode(payload + self._sign(payload)).decode().rstrip("=")

    def decode(self, token: str, filters: str) -> tuple[datetime | Decimal, str] | None:
        if not token:
            return None
        invalid = InvalidSpec([FieldViolation("page_token", "is not a valid page token")])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
            if not hmac.compare_digest(signature, self._sign(payload)):
                raise invalid
            key, item_id, bound = json.loads(payload)
            if bound != filters:
                raise InvalidSpec(
                    [FieldViolation("page_token", "belongs to a request with other filters")]
                )
            value = (
                Decimal(key["decimal"]) if isinstance(key, dict) else datetime.fromisoformat(key)
            )
            return value, str(item_id)
        except (ValueError, TypeError, KeyError, ArithmeticError, UnicodeDecodeError) as error:
            raise invalid from error

    def decode_time(self, token: str, filters: str) -> tuple[datetime, str] | None:
        """A token of a list ordered by a time (`decode`)."""
        after = self.decode(token, filters)
        if after is not None and not isinstance(after[0], datetime):
            raise InvalidSpec([FieldViolation("page_token", "is not a valid page token")])
        return after  # type: ignore[return-value]  # checked: a time
