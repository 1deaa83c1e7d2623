"""How the client makes a unary call: bearer token, a deadline, bounded retries on
UNAVAILABLE, and the failure turned into a typed exception.

A retry is safe because every mutation carries a `request_id` chosen once, before the first
attempt, and reused by every retry: the service applies a request id once and answers a
repeat with the first answer (AIP-155).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from smarttrade_client.errors import Unavailable, from_rpc_error

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)

Metadata = Sequence[tuple[str, str]]


def new_request_id() -> str:
    """A fresh idempotency key (a UUID4)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a call that failed with UNAVAILABLE (the service restarting, the exchange
    unreachable, a dropped connection), reads and mutations alike.

    `attempts` counts the first try: 4 means up to 3 retries. The wait before retry n (from 0)
    is a random value between half and all of `initial_backoff * multiplier**n`, at most
    `max_backoff`, and never shorter than the `RetryInfo` delay the server asked for.
    `RetryPolicy(attempts=1)` turns retries off.
    """

    attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts the first try: at least 1")

    def delay(self, retry: int, asked: timedelta | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        wait = random.uniform(ceiling / 2, ceiling)
        if asked is not None:
            wait = max(wait, asked.total_seconds())
        return wait


class Caller:
    """Makes unary calls with the client's token, deadline and retry policy."""

    def __init__(self, metadata: Metadata, timeout: float, retry: RetryPolicy) -> None:
        self.metadata = tuple(metadata)
        self.timeout = timeout
        self.retry = retry

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> Response:
        """`request_id` is only reported in errors here: the caller put it in the request."""
        failures = 0
        while True:
            try:
                return await method(
                    request, timeout=timeout or self.timeout, metadata=self.metadata
                )
            except grpc.aio.AioRpcError as raw:
                error = from_rpc_error(raw, request_id)
                failures += 1
                if not isinstance(error, Unavailable) or failures >= self.retry.attempts:
                    raise error from raw
            await asyncio.sleep(self.retry.delay(failures - 1, error.retry_delay))
