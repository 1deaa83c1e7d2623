"""Opaque, tamper-proof page tokens (AIP-158): the cursor of the last item, bound to the
request's filters, signed with HMAC-SHA256. A token that was altered, or reused with other
filters, is refused as invalid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

from smarttrade.domain.errors import FieldViolation, InvalidSpec

SIGNATURE_BYTES = 16


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]

    def encode(self, after: tuple[datetime, str], filters: str) -> str:
        created, item_id = after
        payload = json.dumps([created.isoformat(), item_id, filters]).encode()
        return base64.urlsafe_b64encode(payload + self._sign(payload)).decode().rstrip("=")

    def decode(self, token: str, filters: str) -> tuple[datetime, str] | None:
        if not token:
            return None
        invalid = InvalidSpec([FieldViolation("page_token", "is not a valid page token")])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
            if not hmac.compare_digest(signature, self._sign(payload)):
                raise invalid
            created, item_id, bound = json.loads(payload)
            if bound != filters:
                raise InvalidSpec(
                    [FieldViolation("page_token", "belongs to a request with other filters")]
                )
            return datetime.fromisoformat(created), str(item_id)
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise invalid from error
