"""A trader's action on a trade: Edit, Add Funds, Reduce Funds, Open Now, Close at Market,
Cancel.

An action goes to the trade's single writer (its runner), which decides, writes the decision
with the request's claim, and carries on (orders placed, fills applied), updating the
request's answer with each write. A duplicate waits for the trade's writer like any action;
then either its own write is refused by the claim, or its decision is (the first call
changed the state, the etag moved on): in both cases, and only then, the first answer is
looked up, and returned if the request is the same one. A trade that is no longer running
(terminal) still answers: the core refuses what its state does not allow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smarttrade.domain.decide import decide
from smarttrade.domain.errors import ActionNotAllowed, InvalidSpec
from smarttrade.domain.messages import Input, InputOf
from smarttrade.domain.model import SmartTrade
from smarttrade.engine.ownership import Engines
from smarttrade.errors import EtagMismatch, NotLeader
from smarttrade.store.errors import AlreadyClaimed
from smarttrade.store.requests import RequestRecord
from smarttrade.store.unit_of_work import UnitOfWork
from smarttrade.usecases.reading import TradeReader
from smarttrade.usecases.requests import Requested, answered

# What a retry of an answered action runs into, instead of its first answer.
REFUSALS_OF_A_RETRY = (AlreadyClaimed, EtagMismatch, ActionNotAllowed, InvalidSpec)


@dataclass(frozen=True, slots=True)
class ActOnTrade:
    requested: Requested
    trade_id: str
    # One of the core's trader commands (domain.messages), or a function making it from
    # the trade as its writer has it (an edit of some fields).
    action: Input | InputOf
    etag: str = ""  # when set, the trade's current etag (AIP-154)


class ActOnTrades:
    def __init__(
        self, engine: Engines, unit_of_work: Callable[[], UnitOfWork], reader: TradeReader
    ) -> None:
        self._engine = engine
        self._unit_of_work = unit_of_work
        self._reader = reader

    async def __call__(self, command: ActOnTrade) -> SmartTrade:
        tenant_id, trade_id = command.requested.tenant_id, command.trade_id
        request = command.requested.record(f"smartTrades/{trade_id}")
        if self._engine.tenant_of(trade_id) != tenant_id:
            return await self._not_running(command, request)
        try:
            return await self._engine.submit(trade_id, command.action, command.etag, request)
        except REFUSALS_OF_A_RETRY:
            stored = await answered(self._unit_of_work, request)
            if stored is None:
                raise
            return await self._reader.at_version(tenant_id, trade_id, stored.trade_version)

    async def _not_running(self, command: ActOnTrade, request: RequestRecord) -> SmartTrade:
        stored = await answered(self._unit_of_work, request)
        if stored is not None:
            return await self._reader.at_version(
                request.tenant_id, command.trade_id, stored.trade_version
            )
        trade = await self._reader.get(request.tenant_id, command.trade_id)
        if command.etag and command.etag != trade.etag:
            raise EtagMismatch(f"smartTrades/{command.trade_id}")
        action = command.action
        decide(trade, action(trade) if callable(action) else action)  # refuses the rest
        if not trade.state.is_terminal:
            # Live, and not run here: its shard changed hands while the call was on its way.
            raise NotLeader()
        return trade
