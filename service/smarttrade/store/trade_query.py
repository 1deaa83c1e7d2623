"""A list's filter and order (domain/trade_query.py) as SQLAlchemy expressions on the
`smart_trades` table: every value a bound parameter, never text spliced into SQL.

A term is never NULL (a missing close reason, end time or label makes `=` false and `!=`
true), so NOT is always its opposite. Labels are read from the trade's `spec` document.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_

from smarttrade.domain.trade_query import AllOf, AnyOf, Filter, NotOf, Order, SortKey, Term
from smarttrade.store import tables

trades = tables.smart_trades

_COLUMNS = {
    "state": trades.c.state,
    "side": trades.c.side,
    "close_reason": trades.c.close_reason,
    "symbol": trades.c.symbol,
    "account": trades.c.account_id,
    "create_time": trades.c.created_at,
    "end_time": trades.c.ended_at,
}


def where(found: Filter) -> ColumnElement[bool]:
    match found:
        case AllOf(parts):
            return and_(*(where(part) for part in parts))
        case AnyOf(parts):
            return or_(*(where(part) for part in parts))
        case NotOf(part):
            return not_(where(part))
        case Term():
            return _term(found)
    raise AssertionError(found)


def _term(term: Term) -> ColumnElement[bool]:
    if term.field == "labels":
        labels = trades.c.spec["labels"]
        if term.op == ":":
            return func.coalesce(labels.has_key(term.key), false())
        label: ColumnElement[str] = labels[term.key].astext
        if term.op == "=":
            return func.coalesce(label == term.value, false())
        return label.is_distinct_from(term.value)
    column = _COLUMNS[term.field]
    value = term.value.value if isinstance(term.value, Enum) else term.value
    if term.op == "!=":
        return column.is_distinct_from(value)
    compared = {
        "=": column == value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[term.op]
    return func.coalesce(compared, false())


def sort_column(order: Order) -> ColumnElement[Any]:
    if order.key is SortKey.REALIZED_PNL:
        # NULL until a trade is first written by a replica of 0012 or later (a rolling
        # upgrade): it sorts as no PnL yet.
        return func.coalesce(trades.c.realized_pnl, 0)
    column = trades.c.created_at if order.key is SortKey.CREATE_TIME else trades.c.updated_at
    return column


def ordered_page(
    query: Select[Any],
    order: Order,
    after: tuple[datetime | Decimal, str] | None,
    limit: int,
) -> Select[Any]:
    """One page in `order` (ties by id, the same way), keyset-paged after the cursor: the
    sort value and id of the previous page's last trade."""
    key, row_id = sort_column(order), trades.c.id
    if after is not None:
        value, last_id = after
        if order.descending:
            query = query.where(or_(key < value, and_(key == value, row_id < last_id)))
        else:
            query = query.where(or_(key > value, and_(key == value, row_id > last_id)))
    if order.descending:
        return query.order_by(key.desc(), row_id.desc()).limit(limit)
    return query.order_by(key.asc(), row_id.asc()).limit(limit)
