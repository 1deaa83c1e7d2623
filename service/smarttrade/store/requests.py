"""Request ids (AIP-155): each mutation's id, claimed in the same statement as its effect,
with the answer a retry gets.

The answer is a small document of the use case's own (a trade's id and version, an
account's id, a share's id and the key its token derives from), never the response's bytes,
and never a secret: what the first call returned is rebuilt from it. A claim and its effect
are one write, so a request either happened with its claim or not at all; a call that
carries on after its first write (a trade driving its orders) updates the answer with each
later write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from smarttrade.domain.model import SmartTrade
from smarttrade.store import tables

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

keys = tables.idempotency_keys

_FIND = (
    "SELECT method, request_hash, resource, answer FROM idempotency_keys "
    "WHERE tenant_id = $1 AND request_id = $2"
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A mutation's request as kept: who asked, with which id, a fingerprint of the whole
    request (the same id with another request is refused), what it concerns, and its answer
    (None: claimed before answers were kept)."""

    tenant_id: str
    request_id: str
    method: str
    fingerprint: str
    resource: str
    answer: Mapping[str, Any] | None = field(default=None, compare=False)

    def answered(self, answer: Mapping[str, Any]) -> RequestRecord:
        return replace(self, answer=answer)

    def same_request(self, other: RequestRecord) -> bool:
        return self.method == other.method and self.fingerprint == other.fingerprint

    @property
    def trade_version(self) -> int | None:
        """The version of the trade a trade request was answered with."""
        version = (self.answer or {}).get("version")
        return int(version) if version is not None else None


def trade_answer(trade: SmartTrade) -> dict[str, object]:
    """A request that changed a trade is answered with the trade at that version."""
    return {"trade": trade.id, "version": trade.version}


def claim_row(request: RequestRecord, at: datetime) -> dict[str, object]:
    return {
        "tenant_id": request.tenant_id,
        "request_id": request.request_id,
        "method": request.method,
        "request_hash": request.fingerprint,
        "resource": request.resource,
        "answer": request.answer,
        "created_at": at,
    }


def answer_row(request: RequestRecord) -> dict[str, object]:
    return {
        "tenant_id": request.tenant_id,
        "request_id": request.request_id,
        "answer": request.answer,
    }


class RequestRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def find(self, tenant_id: str, request_id: str) -> RequestRecord | None:
        rows = await self._uow.fetch(_FIND, tenant_id, request_id)
        if not rows:
            return None
        row = rows[0]
        return RequestRecord(
            tenant_id,
            request_id,
            row["method"],
            row["request_hash"],
            row["resource"],
            row["answer"],
        )

    def claim(self, request: RequestRecord, at: datetime) -> None:
        """Take the request id, with its answer, in this unit of work's writes: if another
        call took it first, `commit()` raises `AlreadyClaimed` and writes nothing."""
        self._uow.staged.claim = claim_row(request, at)

    def keep(self, request: RequestRecord, at: datetime) -> None:
        """Keep a request id and its answer with this unit of work's writes, without gating
        them: for an effect the caller applied before writing it (a paper venue's tick),
        having refused a duplicate beforehand (a second claim is then ignored)."""
        self._uow.staged.requests.append(claim_row(request, at))

    async def prune(self, before: datetime) -> int:
        """Forget the request ids taken before `before` (a retry after that is a new call)."""
        result = await self._uow.execute(delete(keys).where(keys.c.created_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
