"""`request_id` on every mutation (AIP-155): a retry returns the first call's response.

The claim is committed with the mutation's first change (see store.idempotency); the
response is stored once the call finishes. A second call with the same id and the same
request gets that response (waiting for it while the first call is still running); the same
id with a different request is INVALID_ARGUMENT. If the first call died after its change but
before its response was stored, the retry answers with the resource as it is now.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from smarttrade.api.auth import tenant
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.store.idempotency import AlreadyClaimed, Claim, find_request, save_response

M = TypeVar("M", bound=Message)

WAIT_FOR_FIRST = 10.0
POLL = 0.02


def require_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidSpec([FieldViolation("request_id", "is required (a UUID per mutation)")])
    if len(request_id) > 128:
        raise InvalidSpec([FieldViolation("request_id", "must be at most 128 characters")])


class Idempotency:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def once(
        self,
        method: str,
        request: Message,
        request_id: str,
        resource: str,
        response_type: type[M],
        perform: Callable[[Claim], Awaitable[M]],
        current: Callable[[str], Awaitable[M]],
    ) -> M:
        require_request_id(request_id)
        fingerprint = hashlib.sha256(
            method.encode() + request.SerializeToString(deterministic=True)
        ).hexdigest()
        claim = Claim(tenant(), request_id, method, fingerprint, resource)
        async with self._engine.connect() as connection:
            seen = await find_request(connection, claim.tenant_id, request_id)
        if seen is not None:
            return await self._first_response(claim, response_type, current)
        try:
            response = await perform(claim)
        except AlreadyClaimed:
            return await self._first_response(claim, response_type, current)
        async with self._engine.begin() as connection:
            await save_response(
                connection, claim.tenant_id, request_id, response.SerializeToString()
            )
        return response

    async def _first_response(
        self, claim: Claim, response_type: type[M], current: Callable[[str], Awaitable[M]]
    ) -> M:
        deadline = asyncio.get_running_loop().time() + WAIT_FOR_FIRST
        while True:
            async with self._engine.connect() as connection:
                stored = await find_request(connection, claim.tenant_id, claim.request_id)
            if stored is not None and (
                stored.method != claim.method or stored.fingerprint != claim.fingerprint
            ):
                raise InvalidSpec(
                    [FieldViolation("request_id", "was already used for a different request")]
                )
            if stored is not None and stored.response is not None:
                return response_type.FromString(stored.response)
            if asyncio.get_running_loop().time() > deadline:
                return await current(stored.resource if stored else claim.resource)
            await asyncio.sleep(POLL)
