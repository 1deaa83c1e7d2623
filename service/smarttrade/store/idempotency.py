"""Request ids (AIP-155): a claim committed with the effect it guards, then the response.

The claim row goes into the same transaction as the first change a mutation makes, so a
mutation either happened with its claim or not at all; a second call with the same id finds
the claim and, instead of acting again, gets the first call's response (once stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from smarttrade.store import tables

keys = tables.idempotency_keys


@dataclass(frozen=True, slots=True)
class Claim:
    tenant_id: str
    request_id: str
    method: str
    fingerprint: str  # a hash of the whole request: the same id with another request is refused
    resource: str  # the resource the mutation creates or changes


@dataclass(frozen=True, slots=True)
class StoredRequest:
    method: str
    fingerprint: str
    resource: str
    response: bytes | None


class AlreadyClaimed(Exception):
    """Another call with this request id got there first."""


async def insert_claim(connection: AsyncConnection, claim: Claim, at: datetime) -> None:
    statement = (
        pg_insert(keys)
        .values(
            tenant_id=claim.tenant_id,
            request_id=claim.request_id,
            method=claim.method,
            request_hash=claim.fingerprint,
            resource=claim.resource,
            created_at=at,
        )
        .on_conflict_do_nothing()
        .returning(keys.c.request_id)
    )
    if (await connection.execute(statement)).first() is None:
        raise AlreadyClaimed(claim.request_id)


async def find_request(
    connection: AsyncConnection, tenant_id: str, request_id: str
) -> StoredRequest | None:
    row = (
        await connection.execute(
            select(keys.c.method, keys.c.request_hash, keys.c.resource, keys.c.response).where(
                keys.c.tenant_id == tenant_id, keys.c.request_id == request_id
            )
        )
    ).first()
    if row is None:
        return None
    return StoredRequest(row.method, row.request_hash, row.resource, row.response)


async def save_response(
    connection: AsyncConnection, tenant_id: str, request_id: str, response: bytes
) -> None:
    await connection.execute(
        update(keys)
        .where(keys.c.tenant_id == tenant_id, keys.c.request_id == request_id)
        .values(response=response)
    )
