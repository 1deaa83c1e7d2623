"""What units of work write at commit, as one SQL statement.

A trade's decision touches up to nine tables (the request's claim, the trade, its orders,
fills, snapshot, the intents it adds and those it completes, its events and their counter); a
paper venue's operation four (balances, orders, prices, futures positions). Sent one by one
inside BEGIN and COMMIT, that is a dozen round trips on the path from a tick to an order. Here
they are data-modifying CTEs of a single statement, each fed by one JSON parameter (rows of
plain values, dataclasses and all, written by `codec.dump_json`). Sent outside a transaction
block, PostgreSQL runs it atomically and commits it durably before answering: one round trip
is the whole write (the unit of work's fast path). Inside a unit of work that also read or
wrote through its connection, the same statement runs in that transaction.

One statement carries the writes of any number of units of work, of different trades (group
commit, see group_commit.py): every row is tagged with the index of its write, `w`, and
every part is gated per write. All or nothing holds for each write when a check fails: with
leases, nothing is written unless the fencing number holds its shard's lease; a write's trade
row is written only if its request's claim is new, and everything else of it only if the
trade's row was (a new trade's id is free, an existing one's version is still the one the
decision started from). A write whose claim was taken or whose version moved on therefore
writes nothing at all, the others are written, and the result says which is which. The
foreign keys hold (PostgreSQL checks them at the end of the statement), and the events are
numbered by their tenant's counter row in the same statement, which keeps that row locked
until the commit (see unit_of_work).

The statement's text depends only on which parts are present, not on how many writes it
carries, so it is built once per shape and cached (and asyncpg keeps it prepared per
connection).

Written ahead (`ahead_statement`): a decision on a venue's fact or the clock is first made
durable as one small row of `decisions_ahead`, the input it was decided on (gated by the
lease and by the trade's version, like the write itself), so its order can be sent after
the cheapest commit there is; the write proper then runs with one more part, deleting that
row (see unit_of_work.write_ahead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    ("paper_positions", tables.paper_positions, ("tenant_id", "account_id", "symbol")),
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
    paper_positions: list[dict[str, object]] = field(default_factory=list)
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

    @property
    def trade_id(self) -> str | None:
        trade = self.new_trade if self.new_trade is not None else self.trade_update
        return str(trade["id"]) if trade is not None else None

    @property
    def owner(self) -> str | None:
        """The tenant whose data this write changes (None: no one's); with leases, the lease
        of its shard fences the write."""
        rows = [
            *(row for row in (self.claim, self.answer, self.new_trade) if row is not None),
            *self.paper_balances,
            *self.paper_orders,
            *self.paper_prices,
            *self.paper_positions,
            *self.requests,
            *self.events,
        ]
        tenants = {str(row["tenant_id"]) for row in rows}
        tenants.update(snapshot["data"].tenant_id for snapshot in self.snapshots)  # type: ignore[attr-defined]
        assert len(tenants) <= 1, "one write changes one tenant's data"
        return tenants.pop() if tenants else None

    @property
    def tenant_id(self) -> str | None:
        """The tenant whose events this write appends (None: it appends none)."""
        tenants = {event["tenant_id"] for event in self.events}
        assert len(tenants) <= 1, "one write appends to one tenant's events"
        return str(tenants.pop()) if tenants else None


def statement(writes: Sequence[StagedWrites]) -> tuple[str, list[object]]:
    """The SQL (asyncpg's `$n` placeholders) and its arguments for any number of writes of
    one tenant's events (or none) under one fencing number, each with its own gates: a write
    whose claim was taken or whose trade's version moved on writes nothing, and the others
    are written all the same. The writes name different trades, and at most one names none
    (a paper venue's write: its rows overwrite by key). The statement returns a row per
    write, in order: `leased` (0: the fencing number holds no lease), `claimed` (0: the
    request id was taken), `written` (0: the trade's version moved on) and the `sequences`
    given to its events, in order."""
    assert writes, "a statement writes something"
    fences = {write.fence for write in writes}
    assert len(fences) == 1, "one statement carries one fencing number"
    assert len({write.tenant_id for write in writes if write.events}) <= 1
    trades = [write.trade_id for write in writes]
    assert len(set(trades)) == len(trades), "one statement writes a trade once"
    updates = [write.trade_update for write in writes if write.trade_update is not None]
    union = sorted({column for update in updates for column in update if column != "id"})
    shape = _Shape(
        fenced=fences != {None},
        claims=any(write.claim is not None for write in writes),
        answers=any(write.answer is not None for write in writes),
        new_trades=any(write.new_trade is not None for write in writes),
        update_columns=tuple(union),
        partial_columns=tuple(c for c in union if not all(c in update for update in updates)),
        row_sets=tuple(any(getattr(write, name) for write in writes) for name in _ROW_SET_NAMES),
        done_intents=any(write.done_intents for write in writes),
        ahead=any(write.ahead for write in writes),
        events=any(write.events for write in writes),
    )

    def rows(name: str) -> str | None:
        tagged = [{**row, "w": w} for w, write in enumerate(writes) for row in getattr(write, name)]
        return _json(tagged) if tagged else None

    def single(name: str, extra: Callable[[StagedWrites], dict[str, object]] | None = None) -> str:
        tagged = [
            {**row, **(extra(write) if extra else {}), "w": w}
            for w, write in enumerate(writes)
            if (row := getattr(write, name)) is not None
        ]
        return _json(tagged)

    values: dict[str, object] = {
        "fence": fences.pop(),
        "writes": _json(
            [
                {"w": w, "claim": write.claim is not None, "trade": write.trade_id}
                for w, write in enumerate(writes)
            ]
        ),
        "claims": single("claim"),
        "answers": single("answer"),
        "new_trades": single("new_trade"),
        "updates": single("trade_update", lambda write: {"expected": write.expected_version}),
        "update_ids": [update["id"] for update in updates],
        "ahead": _json(
            [
                {"w": w, "trade_id": write.trade_id, "version": _version(write)}
                for w, write in enumerate(writes)
                if write.ahead
            ]
        ),
        "tenant": next((write.tenant_id for write in writes if write.events), None),
    }
    for name in (*_ROW_SET_NAMES, "done_intents", "events"):
        values[name] = rows(name)
    sql, names = _statement(shape)
    return sql, [values[name] for name in names]


def _version(write: StagedWrites) -> object:
    trade = write.new_trade if write.new_trade is not None else write.trade_update
    assert trade is not None, "a decision written ahead is a trade's"
    return trade["version"]


@dataclass(frozen=True)
class _Shape:
    """What a statement's text depends on: which parts its writes have (not how many)."""

    fenced: bool
    claims: bool
    answers: bool
    new_trades: bool
    update_columns: tuple[str, ...]  # the trade columns some write updates
    partial_columns: tuple[str, ...]  # those some other write leaves as they are
    row_sets: tuple[bool, ...]
    done_intents: bool
    ahead: bool
    events: bool


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


def _elements(parameter: str) -> str:
    """The rows of a JSON array parameter, each as `e` with its write's index `w`."""
    return (
        f"(SELECT e, (e->>'w')::integer AS w FROM jsonb_array_elements(CAST({parameter} AS "
        "jsonb)) AS e)"
    )


@cache
def _statement(shape: _Shape) -> tuple[str, list[str]]:
    p = _Parameters()
    parts = []
    # Every part is written under a gate, a set of the writes' indexes: `writes` (all of
    # them, while the fencing number holds the lease), then `claimed` (the claims taken),
    # then `passed` (and the trade written at the version it was decided from).
    parts.append(
        "all_w AS (SELECT * FROM jsonb_to_recordset(CAST("
        f"{p('writes')} AS jsonb)) AS x(w integer, claim boolean, trade text))"
    )
    if shape.fenced:
        # Written only while this fencing number holds an unexpired lease (store/leases.py).
        parts.append(
            "lease_w AS (SELECT 1 FROM shard_leases WHERE fence = "
            f"CAST({p('fence')} AS bigint) AND expires_at > clock_timestamp())"
        )
        parts.append("writes AS (SELECT * FROM all_w WHERE EXISTS (SELECT 1 FROM lease_w))")
    else:
        parts.append("writes AS (SELECT * FROM all_w)")
    if shape.claims:
        parts.append(
            "claim_w AS (INSERT INTO idempotency_keys SELECT r.* FROM "
            f"{_elements(p('claims'))} AS x, jsonb_populate_record(NULL::idempotency_keys, x.e) "
            "AS r WHERE x.w IN (SELECT w FROM writes) ON CONFLICT DO NOTHING "
            "RETURNING tenant_id, request_id)"
        )
        parts.append(
            f"claimed AS (SELECT w FROM writes WHERE NOT claim UNION ALL SELECT x.w FROM "
            f"{_elements(p('claims'))} AS x JOIN claim_w AS c ON c.tenant_id = "
            "x.e->>'tenant_id' AND c.request_id = x.e->>'request_id')"
        )
    else:
        parts.append("claimed AS (SELECT w FROM writes)")
    written = []
    if shape.new_trades:
        parts.append(
            "new_w AS (INSERT INTO smart_trades SELECT r.* FROM "
            f"{_elements(p('new_trades'))} AS x, jsonb_populate_record(NULL::smart_trades, x.e) "
            "AS r WHERE x.w IN (SELECT w FROM claimed) ON CONFLICT (id) DO NOTHING "
            "RETURNING id)"
        )
        written.append("SELECT id FROM new_w")
    if shape.update_columns:
        assignments = ", ".join(
            f"{c} = CASE WHEN u.e ? '{c}' THEN u.{c} ELSE s.{c} END"
            if c in shape.partial_columns
            else f"{c} = u.{c}"
            for c in shape.update_columns
        )
        # The rows are found by their keys given as an array: a generic plan (planned once
        # per connection, maybe while the table was nearly empty) is then an index lookup.
        parts.append(
            f"update_w AS (UPDATE smart_trades AS s SET {assignments} FROM (SELECT x.e, x.w, "
            f"r.* FROM {_elements(p('updates'))} AS x, jsonb_populate_record("
            "NULL::smart_trades, x.e) AS r) AS u WHERE s.id = ANY(CAST("
            f"{p('update_ids')} AS text[])) AND s.id = u.id AND s.version = "
            "(u.e->>'expected')::integer AND u.w IN (SELECT w FROM claimed) RETURNING s.id)"
        )
        written.append("SELECT id FROM update_w")
    trades_written = " UNION ALL ".join(written) if written else "SELECT NULL::text WHERE false"
    parts.append(
        "passed AS (SELECT w FROM writes WHERE w IN (SELECT w FROM claimed) AND (trade IS "
        f"NULL OR trade IN ({trades_written})))"
    )
    if shape.answers:
        parts.append(
            "answer_w AS (UPDATE idempotency_keys AS k SET answer = x.e->'answer' FROM "
            f"{_elements(p('answers'))} AS x WHERE k.tenant_id = x.e->>'tenant_id' AND "
            "k.request_id = x.e->>'request_id' AND x.w IN (SELECT w FROM passed) RETURNING 1)"
        )
    for (name, table, keys), present in zip(_ROW_SETS, shape.row_sets, strict=True):
        if present:
            conflict = _set_all(table, keys) if keys else "ON CONFLICT DO NOTHING"
            parts.append(
                f"{name}_w AS (INSERT INTO {table.name} SELECT r.* FROM {_elements(p(name))} "
                f"AS x, jsonb_populate_record(NULL::{table.name}, x.e) AS r WHERE x.w IN "
                f"(SELECT w FROM passed) {conflict} RETURNING 1)"
            )
    if shape.done_intents:
        parts.append(
            "done_w AS (DELETE FROM order_intents AS o USING jsonb_to_recordset("
            f"CAST({p('done_intents')} AS jsonb)) AS x(client_order_id text, kind text, "
            "w integer) WHERE o.client_order_id = x.client_order_id AND o.kind = x.kind "
            "AND x.w IN (SELECT w FROM passed) RETURNING 1)"
        )
    if shape.ahead:
        parts.append(
            "ahead_w AS (DELETE FROM decisions_ahead AS d USING jsonb_to_recordset("
            f"CAST({p('ahead')} AS jsonb)) AS x(trade_id text, version integer, w integer) "
            "WHERE d.trade_id = x.trade_id AND d.version = x.version AND x.w IN "
            "(SELECT w FROM passed) RETURNING 1)"
        )
    if shape.events:
        # The tenant's counter row is updated by the statement that numbers the events, and
        # stays locked until its commit: commit order is sequence order within the tenant,
        # and a statement that writes no event numbers nothing (no gap is ever left).
        parts.append(
            "event_rows AS (SELECT x.e, (x.e->>'w')::integer AS w, x.n FROM "
            f"jsonb_array_elements(CAST({p('events')} AS jsonb)) WITH ORDINALITY AS x(e, n) "
            "WHERE (x.e->>'w')::integer IN (SELECT w FROM passed))"
        )
        parts.append(
            "seq_w AS (INSERT INTO event_sequences AS q (tenant_id, last, pruned_through) "
            f"SELECT CAST({p('tenant')} AS text), count(*), 0 FROM event_rows HAVING "
            "count(*) > 0 ON CONFLICT (tenant_id) DO UPDATE SET last = q.last + EXCLUDED.last "
            "RETURNING q.last - (SELECT count(*) FROM event_rows) AS prev)"
        )
        parts.append(
            "numbered AS (SELECT x.e, x.w, seq_w.prev + row_number() OVER (ORDER BY x.n) "
            "AS sequence FROM seq_w, event_rows AS x)"
        )
        parts.append(
            "events_w AS (INSERT INTO events (tenant_id, sequence, trade_id, trade_version, "
            f"type, at, facts) SELECT CAST({p('tenant')} AS text), sequence, e->>'trade_id', "
            "(e->>'trade_version')::integer, e->>'type', (e->>'at')::timestamptz, e->'facts' "
            "FROM numbered RETURNING 1)"
        )
    leased = "EXISTS (SELECT 1 FROM lease_w)" if shape.fenced else "true"
    sequences = (
        "ARRAY(SELECT n.sequence FROM numbered AS n WHERE n.w = a.w ORDER BY n.sequence)"
        if shape.events
        else "ARRAY[]::bigint[]"
    )
    body = (
        f"SELECT a.w, {leased} AS leased, a.w IN (SELECT w FROM claimed) AS claimed, "
        f"a.w IN (SELECT w FROM passed) AS written, {sequences} AS sequences FROM all_w AS a "
        "ORDER BY a.w"
    )
    return f"WITH {', '.join(parts)} {body}", p.names


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
        " AND EXISTS (SELECT 1 FROM shard_leases WHERE fence = "
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
