"""What a unit of work writes at commit, as one SQL statement.

A trade's decision touches up to nine tables (the request's claim, the trade, its orders,
fills, snapshot, the intents it adds and those it completes, its events and their counter); a paper
venue's operation three (balances, orders, prices). Sent one by one inside BEGIN and
COMMIT, that is a dozen round trips on the path from a tick to an order. Here they are
data-modifying CTEs of a single statement, each fed by one JSON parameter (rows of plain
values, dataclasses and all, written by `codec.dump_json`). Sent outside a transaction
block, PostgreSQL runs it atomically and commits it durably before answering: one round trip
is the whole write (the unit of work's fast path). Inside a unit of work that also read or
wrote through its connection, the same statement runs in that transaction.

All or nothing holds when a check fails, because every part is gated: with leases, nothing is
written unless the write's fencing number holds the leader lease; the trade's row is
written only if the request's claim is new, and everything else only if the trade's row was
(a new trade's id is free, an existing one's version is still the one the decision started
from). A claim already taken or a version moved on therefore writes nothing at all, and the
result says which. The foreign keys hold (PostgreSQL checks them at the end of the
statement), and the events are numbered by their tenant's counter row in the same statement,
which keeps that row locked until the commit (see unit_of_work).

The statement's text depends only on which parts are present, so it is built once per shape
and cached (and asyncpg keeps it prepared per connection).

Written ahead (`ahead_statement`): a decision on a venue's fact or the clock is first made
durable as one small row of `decisions_ahead`, the input it was decided on (gated by the
lease and by the trade's version, like the write itself), so its order can be sent after
the cheapest commit there is; the write proper then runs with one more part, deleting that
row (see unit_of_work.write_ahead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import Table

from smarttrade.store import tables
from smarttrade.store.codec import dump_json


def _json(value: object) -> str:
    return dump_json(value).decode()


# The row-set parts, in the order they appear in the statement: (parameter, table, the key
# an existing row is overwritten on, or None to keep the existing row).
_ROW_SETS: tuple[tuple[str, Table, tuple[str, ...] | None], ...] = (
    ("orders", tables.orders, ("client_order_id",)),
    ("fills", tables.fills, None),
    ("snapshots", tables.trade_snapshots, None),
    ("intents", tables.order_intents, None),
    ("paper_balances", tables.paper_balances, ("account_id", "currency")),
    ("paper_orders", tables.paper_orders, ("account_id", "client_order_id")),
    ("paper_prices", tables.paper_prices, ("tenant_id", "symbol")),
    # Request ids kept with an effect already applied (see RequestRepository.keep).
    ("requests", tables.idempotency_keys, None),
)
_ROW_SET_NAMES = tuple(name for name, _, _ in _ROW_SETS)


@dataclass
class StagedWrites:
    """What one statement writes: rows by table, staged by the repositories."""

    # Replicas with leases: the fencing number this write must carry (None: no leases).
    fence: int | None = None
    claim: dict[str, object] | None = None  # a request id taken with this write
    answer: dict[str, object] | None = None  # a request id's answer, updated with this write
    new_trade: dict[str, object] | None = None
    trade_update: dict[str, object] | None = None
    expected_version: int = 0
    orders: list[dict[str, object]] = field(default_factory=list)
    fills: list[dict[str, object]] = field(default_factory=list)
    snapshots: list[dict[str, object]] = field(default_factory=list)
    intents: list[dict[str, object]] = field(default_factory=list)
    paper_balances: list[dict[str, object]] = field(default_factory=list)
    paper_orders: list[dict[str, object]] = field(default_factory=list)
    paper_prices: list[dict[str, object]] = field(default_factory=list)
    requests: list[dict[str, object]] = field(default_factory=list)
    done_intents: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)
    ahead: bool = False  # decided ahead: the write also deletes its row in decisions_ahead

    @property
    def empty(self) -> bool:
        return not (
            self.claim
            or self.answer
            or self.new_trade
            or self.trade_update
            or self.done_intents
            or any(getattr(self, name) for name in _ROW_SET_NAMES)
            or self.events
        )

    def statement(self) -> tuple[str, list[object]]:
        """The SQL (asyncpg's `$n` placeholders) and its arguments. The statement returns one
        row: `leased` (0: the fencing number holds no lease), `claimed` (0: the request id
        was taken), `written` (0: the trade's version moved on) and the `sequences` given to
        the events, in order."""
        update_columns = tuple(self.trade_update) if self.trade_update else ()
        shape = _Shape(
            fenced=self.fence is not None,
            claim=self.claim is not None,
            answer=self.answer is not None,
            new_trade=self.new_trade is not None,
            update_columns=update_columns,
            row_sets=tuple(bool(getattr(self, name)) for name in _ROW_SET_NAMES),
            done_intents=bool(self.done_intents),
            events=bool(self.events),
            ahead=self.ahead,
        )
        tenants = {event["tenant_id"] for event in self.events}
        assert len(tenants) <= 1, "one statement appends to one tenant's events"
        values: dict[str, object] = {
            "fence": self.fence,
            "expected": self.expected_version,
            "tenant": tenants.pop() if tenants else None,
            "count": len(self.events),
        }
        values["claim"] = _json(self.claim) if self.claim is not None else None
        values["answer"] = _json(self.answer) if self.answer is not None else None
        trade = self.new_trade if self.new_trade is not None else self.trade_update
        values["trade"] = _json(trade) if trade is not None else None
        values["trade_id"] = trade["id"] if trade is not None else None
        values["version"] = trade["version"] if trade is not None else None
        answer = self.answer or {}
        values["answer_tenant"] = answer.get("tenant_id")
        values["answer_request"] = answer.get("request_id")
        for name in (*_ROW_SET_NAMES, "done_intents", "events"):
            rows = getattr(self, name)
            values[name] = _json(rows) if rows else None
        sql, names = _statement(shape)
        return sql, [values[name] for name in names]


@dataclass(frozen=True)
class _Shape:
    fenced: bool
    claim: bool
    answer: bool
    new_trade: bool
    update_columns: tuple[str, ...]
    row_sets: tuple[bool, ...]
    done_intents: bool
    events: bool
    ahead: bool = False


class _Parameters:
    """Numbers the parameters in the order the statement first uses them."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"${self.names.index(name) + 1}"


def _set_all(table: Table, keys: tuple[str, ...]) -> str:
    columns = [c.name for c in table.columns if c.name not in keys]
    return (
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET ({', '.join(columns)}) = "
        f"({', '.join('EXCLUDED.' + c for c in columns)})"
    )


@cache
def _statement(shape: _Shape) -> tuple[str, list[str]]:
    p = _Parameters()
    parts = []
    gate = ""  # the condition every later part is written under
    if shape.fenced:
        # Written only while this fencing number holds an unexpired lease (store/leases.py).
        parts.append(
            "lease_w AS (SELECT 1 FROM leader_lease WHERE id = 1 AND fence = "
            f"CAST({p('fence')} AS bigint) AND expires_at > clock_timestamp())"
        )
        gate = "EXISTS (SELECT 1 FROM lease_w)"
    if shape.claim:
        parts.append(
            "claim_w AS (INSERT INTO idempotency_keys SELECT * FROM jsonb_populate_record("
            f"NULL::idempotency_keys, CAST({p('claim')} AS jsonb)) {_where(gate)} "
            "ON CONFLICT DO NOTHING RETURNING 1)"
        )
        gate = "EXISTS (SELECT 1 FROM claim_w)"
    if shape.new_trade:
        parts.append(
            "trade_w AS (INSERT INTO smart_trades SELECT * FROM jsonb_populate_record("
            f"NULL::smart_trades, CAST({p('trade')} AS jsonb)) {_where(gate)} "
            "ON CONFLICT (id) DO NOTHING RETURNING 1)"
        )
        gate = "EXISTS (SELECT 1 FROM trade_w)"
    elif shape.update_columns:
        assignments = ", ".join(f"{c} = r.{c}" for c in shape.update_columns if c != "id")
        # The row is found by its key given as a parameter: a generic plan (planned once
        # per connection, maybe while the table was nearly empty) is then an index lookup.
        parts.append(
            "trade_w AS (UPDATE smart_trades AS s SET "
            f"{assignments} FROM jsonb_populate_record(NULL::smart_trades, "
            f"CAST({p('trade')} AS jsonb)) AS r WHERE s.id = CAST({p('trade_id')} AS text) "
            f"AND s.version = {p('expected')}{_and(gate)} RETURNING 1)"
        )
        gate = "EXISTS (SELECT 1 FROM trade_w)"
    if shape.answer:
        parts.append(
            "answer_w AS (UPDATE idempotency_keys AS k SET answer = CAST("
            f"{p('answer')} AS jsonb)->'answer' WHERE k.tenant_id = CAST({p('answer_tenant')} "
            f"AS text) AND k.request_id = CAST({p('answer_request')} AS text){_and(gate)} "
            "RETURNING 1)"
        )
    for (name, table, keys), present in zip(_ROW_SETS, shape.row_sets, strict=True):
        if present:
            conflict = _set_all(table, keys) if keys else "ON CONFLICT DO NOTHING"
            parts.append(
                f"{name}_w AS (INSERT INTO {table.name} SELECT * FROM "
                f"jsonb_populate_recordset(NULL::{table.name}, CAST({p(name)} AS jsonb)) "
                f"{_where(gate)} {conflict} RETURNING 1)"
            )
    if shape.done_intents:
        parts.append(
            "done_w AS (DELETE FROM order_intents AS o USING jsonb_to_recordset("
            f"CAST({p('done_intents')} AS jsonb)) AS x(client_order_id text, kind text) "
            f"WHERE o.client_order_id = x.client_order_id AND o.kind = x.kind{_and(gate)} "
            "RETURNING 1)"
        )
    if shape.ahead:
        parts.append(
            "ahead_w AS (DELETE FROM decisions_ahead WHERE trade_id = "
            f"CAST({p('trade_id')} AS text) AND version = CAST({p('version')} AS integer)"
            f"{_and(gate)} RETURNING 1)"
        )
    if shape.events:
        # The tenant's counter row is updated by the statement that numbers the events, and
        # stays locked until its commit: commit order is sequence order within the tenant,
        # and a statement that writes nothing numbers nothing (no gap is ever left).
        parts.append(
            "seq_w AS (INSERT INTO event_sequences AS q (tenant_id, last, pruned_through) "
            f"SELECT CAST({p('tenant')} AS text), CAST({p('count')} AS bigint), 0 "
            f"{_where(gate)} ON CONFLICT (tenant_id) DO UPDATE SET last = q.last + "
            f"EXCLUDED.last RETURNING q.last - CAST({p('count')} AS bigint) AS prev)"
        )
        parts.append(
            "events_w AS (INSERT INTO events (tenant_id, sequence, trade_id, trade_version, "
            f"type, at, facts) SELECT CAST({p('tenant')} AS text), seq_w.prev + x.n, "
            "e->>'trade_id', (e->>'trade_version')::integer, e->>'type', "
            "(e->>'at')::timestamptz, e->'facts' FROM seq_w, "
            f"jsonb_array_elements(CAST({p('events')} AS jsonb)) WITH ORDINALITY AS x(e, n) "
            "RETURNING sequence)"
        )
    claimed = "(SELECT count(*) FROM claim_w)" if shape.claim else "1"
    written = "(SELECT count(*) FROM trade_w)" if shape.new_trade or shape.update_columns else "1"
    sequences = (
        "ARRAY(SELECT sequence FROM events_w ORDER BY sequence)"
        if shape.events
        else "ARRAY[]::bigint[]"
    )
    leased = "(SELECT count(*) FROM lease_w)" if shape.fenced else "1"
    body = (
        f"SELECT {leased} AS leased, {claimed} AS claimed, {written} AS written, "
        f"{sequences} AS sequences"
    )
    return (f"WITH {', '.join(parts)} {body}" if parts else body), p.names


def ahead_statement(
    fence: int | None, trade_id: str, expected: int, version: int, trigger: str
) -> tuple[str, list[object]]:
    """The row that makes a decision durable before its write: the input it was decided on
    (`trigger`, JSON), written only while the fencing number holds the lease and the trade's
    version is still `expected`. Returns a row when written, none when a gate held it back
    (a plain INSERT: the cheapest commit on the way to an order)."""
    sql, names = _ahead_statement(fence is not None)
    values = {
        "fence": fence,
        "trade_id": trade_id,
        "expected": expected,
        "version": version,
        "trigger": trigger,
    }
    return sql, [values[name] for name in names]


@cache
def _ahead_statement(fenced: bool) -> tuple[str, list[str]]:
    p = _Parameters()
    lease = (
        " AND EXISTS (SELECT 1 FROM leader_lease WHERE id = 1 AND fence = "
        f"CAST({p('fence')} AS bigint) AND expires_at > clock_timestamp())"
        if fenced
        else ""
    )
    return (
        "INSERT INTO decisions_ahead (trade_id, version, trigger, created_at) "
        f"SELECT CAST({p('trade_id')} AS text), CAST({p('version')} AS integer), "
        f"CAST({p('trigger')} AS text), now() WHERE EXISTS (SELECT 1 FROM smart_trades WHERE "
        f"id = CAST({p('trade_id')} AS text) AND version = CAST({p('expected')} AS integer))"
        f"{lease} "
        # A row already there is an earlier try of this very decision (the trade's version
        # is the one it started from), whose answer was lost: never acted on, replaced.
        "ON CONFLICT (trade_id) DO UPDATE SET (version, trigger, created_at) = "
        "(EXCLUDED.version, EXCLUDED.trigger, EXCLUDED.created_at) RETURNING 1"
    ), p.names


def _where(gate: str) -> str:
    return f"WHERE {gate}" if gate else ""


def _and(gate: str) -> str:
    return f" AND {gate}" if gate else ""
