"""Request ids (AIP-155), as every mutation's use case owns them.

A mutation's command carries `Requested`: the caller's tenant, its request id, the RPC and a
fingerprint of the whole request. The use case either finds the request answered (and
rebuilds the first answer from what was kept), or does the work and has the request claimed,
with its answer, in the same write as the effect (store/requests.py). So a retry after a
crash finds the answer only if the effect happened, and performs the effect otherwise; the
same request id with a different request is INVALID_ARGUMENT.

Where the effect is one trade's decision, no lookup comes first: the claim in the write
refuses a duplicate (nothing is written), and only then is the first answer looked up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.store.requests import RequestRecord
from smarttrade.store.unit_of_work import UnitOfWork

T = TypeVar("T")

MAX_REQUEST_ID = 128


@dataclass(frozen=True, slots=True)
class Requested:
    """Who asks, with which request id, through which method, and a fingerprint of the
    whole request (a hash the API computes from its bytes)."""

    tenant_id: str
    request_id: str
    method: str
    fingerprint: str

    def record(self, resource: str) -> RequestRecord:
        """The request as kept, concerning `resource`."""
        require_request_id(self.request_id)
        return RequestRecord(
            self.tenant_id, self.request_id, self.method, self.fingerprint, resource
        )


class RequestIdRefused(InvalidSpec):
    """The request's `request_id` (a field of the request itself, whatever else it holds)."""

    def __init__(self, description: str) -> None:
        super().__init__([FieldViolation("request_id", description)])


def require_request_id(request_id: str) -> None:
    if not request_id:
        raise RequestIdRefused("is required (a UUID per mutation)")
    if len(request_id) > MAX_REQUEST_ID:
        raise RequestIdRefused(f"must be at most {MAX_REQUEST_ID} characters")


def reused_for_another_request() -> RequestIdRefused:
    return RequestIdRefused("was already used for a different request")


async def answered(
    unit_of_work: Callable[[], UnitOfWork], request: RequestRecord
) -> RequestRecord | None:
    """The kept record of this request id if it was answered before (None if it is new);
    refuses the id if it was used for another request."""
    async with unit_of_work() as uow:
        stored = await uow.requests.find(request.tenant_id, request.request_id)
    if stored is not None and not stored.same_request(request):
        raise reused_for_another_request()
    return stored


class Turns:
    """One holder at a time per key, in this process; a holder may hand the turn on before
    its work is done (`async with turns.turn(key) as hand_on: ... hand_on() ...`)."""

    def __init__(self) -> None:
        self._keys: dict[Hashable, tuple[asyncio.Lock, int]] = {}  # lock, its users

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[Callable[[], None]]:
        lock, users = self._keys.get(key, (asyncio.Lock(), 0))
        self._keys[key] = (lock, users + 1)
        try:
            await lock.acquire()
            holding = True

            def hand_on() -> None:
                nonlocal holding
                if holding:
                    holding = False
                    lock.release()

            try:
                yield hand_on
            finally:
                hand_on()
        finally:
            lock, users = self._keys[key]
            if users == 1:
                del self._keys[key]
            else:
                self._keys[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys in use (held or waited for)."""
        return len(self._keys)


class InFlight(Turns):
    """Calls in progress in this process, by key: a duplicate waits for the first to finish
    instead of racing it (then finds its answer, or does the work if the first wrote
    nothing)."""

    async def once(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        async with self.turn(key):
            return await work()
