"""The trades: a decision staged as rows (only what changed), and every query of trades.

Rows are mapped to domain objects explicitly: a trade is read back from its snapshot (the
whole trade as a document, written with every decision), the other tables serve queries
(what is live, what is held, what was sent to a venue, what is left to send).
Every query a caller can reach is tenant-scoped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Select, and_, func, select

from smarttrade.domain.fsm import TradeState
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import (
    CancelOrder,
    Decision,
    Event,
    Intent,
    OrderMissing,
    OrderReported,
    PlaceOrder,
    PriceTicked,
    TimeElapsed,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import TradeSpec, TriggerPrice
from smarttrade.domain.trade_query import NEWEST_FIRST, Filter, Order
from smarttrade.domain.values import OrderStatus, Side
from smarttrade.store import tables
from smarttrade.store.codec import dump_json, from_document, trade_from_document
from smarttrade.store.requests import RequestRecord, answer_row, claim_row, trade_answer
from smarttrade.store.trade_query import ordered_page, sort_column
from smarttrade.store.trade_query import where as filter_clause

if TYPE_CHECKING:
    from smarttrade.store.unit_of_work import UnitOfWork

LIVE_STATES = [TradeState.PENDING.value, TradeState.ACTIVE.value, TradeState.CLOSING.value]

trades = tables.smart_trades
snapshots = tables.trade_snapshots

# The trade as last recorded (of this tenant, when one is given): the hot read.
_CURRENT = (
    "SELECT s.data FROM smart_trades AS t JOIN trade_snapshots AS s "
    "ON s.trade_id = t.id AND s.version = t.version "
    "WHERE t.id = $1 AND ($2::text IS NULL OR t.tenant_id = $2)"
)
_AT_VERSION = (
    "SELECT s.data FROM smart_trades AS t JOIN trade_snapshots AS s ON s.trade_id = t.id "
    "WHERE t.id = $1 AND t.tenant_id = $2 AND s.version = $3"
)


@dataclass(frozen=True, slots=True)
class TradeHead:
    """What the engine keeps of an idle live trade: where it trades and when it wakes."""

    id: str
    tenant_id: str
    account_id: str
    symbol: str
    wake_below: Decimal | None
    wake_above: Decimal | None
    wake_at: datetime | None
    trigger_price: TriggerPrice = TriggerPrice.LAST  # which of the venue's prices it watches


@dataclass(frozen=True, slots=True)
class SentOrder:
    """An order of a live trade as the trade knows it: for comparing with the venue."""

    trade_id: str
    client_order_id: str
    status: OrderStatus
    filled: Decimal


# The inputs a decision made durable ahead can be made on: the venue's facts and the clock,
# never a trader's action (its request is claimed with its effect).
Trigger = PriceTicked | TimeElapsed | OrderReported | OrderMissing
TRIGGERS: tuple[type[Trigger], ...] = (PriceTicked, TimeElapsed, OrderReported, OrderMissing)
_TRIGGER_BY_NAME = {kind.__name__: kind for kind in TRIGGERS}


@dataclass(frozen=True, slots=True)
class Ahead:
    """A decision made durable ahead of its write: the input it was decided on, the version it
    makes, and the intents it sent (kind, client order id), to check a decision made again
    against."""

    trade_id: str
    version: int
    trigger: Trigger
    intents: list[tuple[str, str]]
    done: list[tuple[str, str]]  # the intents the decision completes


@dataclass(frozen=True, slots=True)
class TradeFilter:
    states: Sequence[TradeState] = ()
    symbol: str = ""
    account_id: str = ""
    created_from: datetime | None = None
    created_before: datetime | None = None
    expression: Filter | None = None  # ListSmartTrades' `filter` (AIP-160)


class TradeRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    # ---- writing -------------------------------------------------------------------------

    def record(
        self,
        decision: Decision | None,
        before: SmartTrade | None,
        done: Sequence[tuple[str, str]] = (),
        request: RequestRecord | None = None,
        first_of_request: bool = True,
        decided_ahead: bool = False,
    ) -> None:
        """Stage a decision (only what changed since `before`, the trade as stored; None if
        new) and the intents it completes (`(kind, client order id)`). With a `request`, the
        trade as decided is that request's answer: claimed with it (the request's first
        write) or updated to it (a later write of the same call). `decided_ahead`: the
        decision was made durable ahead (`written_ahead`), and its row goes with this write."""
        staged = self._uow.staged
        staged.ahead = decided_ahead
        if decision is not None and decision.persist:
            _stage_decision(self._uow, decision, before)
            if request is not None:
                answered = request.answered(trade_answer(decision.trade))
                if first_of_request:
                    staged.claim = claim_row(answered, decision.trade.updated_at)
                else:
                    staged.answer = answer_row(answered)
        elif request is not None and before is not None and first_of_request:
            # Nothing to store of the trade (an edit that changed nothing): the request is
            # still answered, with the trade as it is.
            staged.claim = claim_row(request.answered(trade_answer(before)), before.updated_at)
        staged.done_intents.extend(
            {"client_order_id": client_order_id, "kind": kind} for kind, client_order_id in done
        )

    async def write_ahead(
        self,
        decision: Decision,
        before: SmartTrade,
        trigger: Trigger,
        done: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Make a decision durable ahead of its write: the input it was decided on from
        `before` (the trade as stored), the version it makes, the intents it sends and those
        it completes. Its write (`record` with `decided_ahead`) follows; `written_ahead`
        finds it if not."""
        document = {
            "type": type(trigger).__name__,
            "trigger": trigger,
            "intents": [_intent_key(intent) for intent in decision.intents],
            "done": list(done),
        }
        await self._uow.write_ahead(
            before.tenant_id,
            before.id,
            before.version,
            decision.trade.version,
            dump_json(document).decode(),
        )

    # ---- one trade -----------------------------------------------------------------------

    async def get(self, trade_id: str, tenant_id: str | None = None) -> SmartTrade | None:
        """The trade as last recorded (of this tenant, when one is given)."""
        rows = await self._uow.fetch(_CURRENT, trade_id, tenant_id)
        return trade_from_document(rows[0]["data"]) if rows else None

    async def at_version(self, tenant_id: str, trade_id: str, version: int) -> SmartTrade | None:
        """The trade as it was at a version (None once that snapshot was pruned)."""
        rows = await self._uow.fetch(_AT_VERSION, trade_id, tenant_id, version)
        return trade_from_document(rows[0]["data"]) if rows else None

    # ---- queries -------------------------------------------------------------------------

    async def page(
        self,
        tenant_id: str,
        where: TradeFilter,
        after: tuple[datetime | Decimal, str] | None,
        limit: int,
        order: Order = NEWEST_FIRST,
    ) -> list[tuple[SmartTrade, datetime | Decimal]]:
        """The trades in `order`, each with its sort value as stored (the cursor of a next
        page); `after` is the (sort value, id) of the previous page's last trade."""
        query = _current_snapshot().add_columns(sort_column(order))
        query = query.where(trades.c.tenant_id == tenant_id)
        if where.states:
            query = query.where(trades.c.state.in_([state.value for state in where.states]))
        if where.symbol:
            query = query.where(trades.c.symbol == where.symbol)
        if where.account_id:
            query = query.where(trades.c.account_id == where.account_id)
        if where.created_from is not None:
            query = query.where(trades.c.created_at >= where.created_from)
        if where.created_before is not None:
            query = query.where(trades.c.created_at < where.created_before)
        if where.expression is not None:
            query = query.where(filter_clause(where.expression))
        query = ordered_page(query, order, after, limit)
        rows = await self._uow.execute(query)
        return [(trade_from_document(data), value) for data, value in rows]

    async def live_of_tenant(self, tenant_id: str) -> list[SmartTrade]:
        query = _current_snapshot().where(
            trades.c.tenant_id == tenant_id, trades.c.state.in_(LIVE_STATES)
        )
        query = query.order_by(trades.c.created_at, trades.c.id)
        return [trade_from_document(data) for data in (await self._uow.execute(query)).scalars()]

    async def live_tenants(self) -> list[str]:
        """The tenants that have trades not terminal."""
        query = select(trades.c.tenant_id).where(trades.c.state.in_(LIVE_STATES)).distinct()
        return [row.tenant_id for row in await self._uow.execute(query)]

    async def live_heads(self, tenant_ids: Sequence[str] | None = None) -> list[TradeHead]:
        """Every trade the engine must run (not terminal; of the `tenant_ids`, when given),
        without loading them."""
        query = select(
            trades.c.id,
            trades.c.tenant_id,
            trades.c.account_id,
            trades.c.symbol,
            trades.c.wake_below,
            trades.c.wake_above,
            trades.c.wake_at,
            trades.c.spec["trigger_price"].astext,
        ).where(trades.c.state.in_(LIVE_STATES))
        if tenant_ids is not None:
            query = query.where(trades.c.tenant_id.in_(tenant_ids))
        connection = await self._uow.connection()
        result = await connection.stream(query.execution_options(yield_per=5000))
        return [
            TradeHead(*row[:7], TriggerPrice(row[7] or TriggerPrice.LAST.value))
            async for row in result
        ]

    async def live_specs(self, account_id: str, symbol: str) -> list[tuple[str, TradeSpec]]:
        """The settings of the live trades of an account and symbol: (trade id, spec)."""
        query = select(trades.c.id, trades.c.spec).where(
            trades.c.account_id == account_id,
            trades.c.symbol == symbol,
            trades.c.state.in_(LIVE_STATES),
        )
        rows = await self._uow.execute(query)
        return [(row.id, from_document(TradeSpec, row.spec)) for row in rows]

    async def holdings(self, account_id: str, symbol: str) -> list[tuple[str, Side, Decimal]]:
        """The open trades holding a position on an account and symbol, either side:
        (trade id, side, units held)."""
        query = select(trades.c.id, trades.c.side, trades.c.units_held).where(
            trades.c.account_id == account_id,
            trades.c.symbol == symbol,
            trades.c.state.in_([TradeState.ACTIVE.value, TradeState.CLOSING.value]),
            trades.c.units_held > 0,
        )
        rows = await self._uow.execute(query)
        return [(row.id, Side(row.side), row.units_held) for row in rows]

    async def sent_orders(
        self, account_id: str, symbol: str, statuses: Collection[OrderStatus]
    ) -> list[SentOrder]:
        """The orders of the live trades of an account and symbol that are in one of
        `statuses`, with what the trades believe filled."""
        orders, fills = tables.orders, tables.fills
        filled = (
            select(fills.c.client_order_id, func.sum(fills.c.amount).label("filled"))
            .group_by(fills.c.client_order_id)
            .subquery()
        )
        query = (
            select(
                orders.c.trade_id,
                orders.c.client_order_id,
                orders.c.status,
                func.coalesce(filled.c.filled, 0),
            )
            .join(trades, trades.c.id == orders.c.trade_id)
            .outerjoin(filled, filled.c.client_order_id == orders.c.client_order_id)
            .where(
                trades.c.account_id == account_id,
                trades.c.symbol == symbol,
                trades.c.state.in_(LIVE_STATES),
                orders.c.status.in_([status.value for status in statuses]),
            )
        )
        return [
            SentOrder(trade_id, client_order_id, OrderStatus(status), amount)
            for trade_id, client_order_id, status, amount in await self._uow.execute(query)
        ]

    async def written_ahead(self) -> list[Ahead]:
        """The decisions made durable ahead and not written (the service stopped in between),
        oldest first."""
        rows = await self._uow.fetch(
            "SELECT trade_id, version, trigger FROM decisions_ahead ORDER BY created_at, trade_id"
        )
        found = []
        for row in rows:
            document = orjson.loads(row["trigger"])
            trigger = from_document(_TRIGGER_BY_NAME[document["type"]], document["trigger"])
            intents = [(kind, order_id) for kind, order_id in document["intents"]]
            done = [(kind, order_id) for kind, order_id in document["done"]]
            found.append(Ahead(row["trade_id"], row["version"], trigger, intents, done))
        return found

    async def forget_ahead(self, trade_id: str) -> None:
        """Drop a decision made durable ahead that no longer applies (its trade moved on)."""
        await self._uow.fetch("DELETE FROM decisions_ahead WHERE trade_id = $1", trade_id)

    async def pending_intents_of(self, trade_id: str) -> list[Intent]:
        """The intents of one trade not yet carried out, oldest first."""
        return (await self.pending_intents(trade_id)).get(trade_id, [])

    async def pending_intents(self, trade_id: str | None = None) -> dict[str, list[Intent]]:
        """Every intent not yet carried out (of one trade, when given), by trade, oldest
        first."""
        intents = tables.order_intents
        query = select(intents.c.trade_id, intents.c.kind, intents.c.payload).order_by(
            intents.c.created_at
        )
        if trade_id is not None:
            query = query.where(intents.c.trade_id == trade_id)
        found: dict[str, list[Intent]] = {}
        for trade_id, kind, payload in (await self._uow.execute(query)).all():
            intent: Intent = (
                from_document(PlaceOrder, payload)
                if kind == "PLACE"
                else from_document(CancelOrder, payload)
            )
            found.setdefault(trade_id, []).append(intent)
        return found


def _current_snapshot() -> Select[tuple[dict[str, Any]]]:
    return select(snapshots.c.data).join(
        trades, and_(snapshots.c.trade_id == trades.c.id, snapshots.c.version == trades.c.version)
    )


# ---- a decision as rows ------------------------------------------------------------------


def _stage_decision(uow: UnitOfWork, decision: Decision, before: SmartTrade | None) -> None:
    """The trade's rows, its snapshot, its intents and its events; only what changed since
    `before`: this is the hot path of a trigger. Values stay as they are (dataclasses,
    Decimals, enums): the rows are written as JSON by `codec.dump_json`."""
    staged = uow.staged
    trade = decision.trade
    row = _trade_row(trade)
    if before is None:
        row |= _fixed_columns(trade)
        staged.new_trade = row
    else:
        if trade.spec != before.spec:
            row["spec"] = trade.spec
        staged.trade_update = row
        staged.expected_version = before.version
    _changed_rows(uow, trade, before)
    staged.snapshots.append({"trade_id": trade.id, "version": trade.version, "data": trade})
    staged.intents.extend(_intent_row(trade, intent) for intent in decision.intents)
    staged.events.extend(_event_row(trade, event) for event in decision.events)
    uow.stage_events(trade, decision.events)


def _fixed_columns(trade: SmartTrade) -> dict[str, object]:
    """Set at creation, never changed by a decision."""
    return {
        "tenant_id": trade.tenant_id,
        "account_id": trade.account_id,
        "exchange": trade.exchange_id,
        "symbol": trade.spec.symbol,
        "side": trade.spec.side,
        "spec": trade.spec,
        "market": trade.market,
        "created_at": trade.created_at,
    }


def _trade_row(trade: SmartTrade) -> dict[str, object]:
    levels = wake_levels(trade)
    position = position_of(trade)
    return {
        "id": trade.id,
        "state": trade.state,
        "close_reason": trade.close_reason,
        "reference_price": trade.reference_price,
        "last_price": trade.last_price,
        "last_error": trade.last_error,
        "exit_leg_id": trade.exit_leg_id,
        "version": trade.version,
        "updated_at": trade.updated_at,
        "ended_at": trade.ended_at,
        "wake_below": levels.below,
        "wake_above": levels.above,
        "wake_at": levels.at,
        "units_held": position.units_held,
        "realized_pnl": position.realized_pnl,
    }


def _changed_rows(uow: UnitOfWork, trade: SmartTrade, before: SmartTrade | None) -> None:
    """The orders and fills of the legs that changed since `before` (all when new). The legs
    themselves are in the snapshot."""
    staged = uow.staged
    order_rows, fill_rows = staged.orders, staged.fills
    unchanged = {leg.id: leg for leg in before.legs} if before is not None else {}
    for leg in trade.legs:
        if unchanged.get(leg.id) == leg:
            continue
        for index, order in enumerate(leg.orders):
            order_rows.append(
                {
                    "client_order_id": order.client_order_id,
                    "trade_id": trade.id,
                    "leg_id": leg.id,
                    "position": index,
                    "side": order.side,
                    "type": order.type,
                    "amount": order.amount,
                    "price": order.price,
                    "status": order.status,
                    "exchange_order_id": order.exchange_order_id,
                    "error": order.error,
                    "cancel_requested": order.cancel_requested,
                    "reduce_only": order.reduce_only,
                    "created_at": order.created_at,
                    "updated_at": order.updated_at,
                }
            )
            fill_rows.extend(
                {
                    "client_order_id": order.client_order_id,
                    "trade_id": fill.trade_id,
                    "smart_trade_id": trade.id,
                    "price": fill.price,
                    "amount": fill.amount,
                    "fee": fill.fee,
                    "fee_currency": fill.fee_currency,
                    "at": fill.at,
                }
                for fill in order.fills
            )


def _intent_key(intent: Intent) -> tuple[str, str]:
    return ("PLACE" if isinstance(intent, PlaceOrder) else "CANCEL", intent.client_order_id)


def _intent_row(trade: SmartTrade, intent: Intent) -> dict[str, object]:
    return {
        "client_order_id": intent.client_order_id,
        "kind": _intent_key(intent)[0],
        "trade_id": trade.id,
        "payload": intent,
        "created_at": trade.updated_at,
    }


def _event_row(trade: SmartTrade, event: Event) -> dict[str, object]:
    return {
        "tenant_id": trade.tenant_id,
        "trade_id": trade.id,
        "trade_version": trade.version,
        "type": event.type,
        "at": event.at,
        "facts": event,
    }
