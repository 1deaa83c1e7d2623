"""The schema, as SQLAlchemy Core tables. Migrations (store/migrations) create and evolve it.

Money and sizes are NUMERIC (exact); JSONB holds the parts that are documents (a trade's
settings, a leg's watch state, an event's snapshot) rather than things queried by column.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

TIMESTAMP = DateTime(timezone=True)

exchange_accounts = Table(
    "exchange_accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("exchange", Text, nullable=False),
    # AES-256-GCM ciphertext of the credentials, its data key wrapped by the master key.
    Column("credentials", LargeBinary),
    Column("paper_settings", JSONB),
    Column("created_at", TIMESTAMP, nullable=False),
    # Deleted accounts stay as rows: their finished trades still name them.
    Column("deleted_at", TIMESTAMP),
    Index("exchange_accounts_by_tenant", "tenant_id", "created_at", "id"),
)

smart_trades = Table(
    "smart_trades",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("account_id", Text, ForeignKey("exchange_accounts.id"), nullable=False),
    Column("exchange", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("close_reason", Text),
    Column("spec", JSONB, nullable=False),
    Column("market", JSONB, nullable=False),
    Column("reference_price", Numeric, nullable=False),
    Column("last_price", Numeric),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("exit_leg_id", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    Column("ended_at", TIMESTAMP),
    # What the engine needs of an idle trade without loading it (domain.levels, position):
    # the price band it reacts outside of, when it needs the clock, and the coins it holds.
    Column("wake_below", Numeric),
    Column("wake_above", Numeric),
    Column("wake_at", TIMESTAMP),
    Column("units_held", Numeric, nullable=False, server_default="0"),
    # The realized PnL (quote) as of the last write, for ordering a list by it (0012). NULL:
    # written before 0012, or by a replica of an older revision during a rolling upgrade.
    Column("realized_pnl", Numeric),
    Index("smart_trades_by_tenant", "tenant_id", "created_at", "id"),
    Index(
        "smart_trades_live",
        "state",
        postgresql_where=text("state IN ('PENDING', 'ACTIVE', 'CLOSING')"),
    ),
    # Room on each page for the updated row: most updates change no indexed column (HOT).
    postgresql_with={"fillfactor": 70},
)

orders = Table(
    "orders",
    metadata,
    Column("client_order_id", Text, primary_key=True),
    Column("trade_id", Text, nullable=False),
    Column("leg_id", Text, nullable=False),
    Column("position", Integer, nullable=False),  # order within the leg
    Column("side", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("price", Numeric),
    Column("status", Text, nullable=False),
    Column("exchange_order_id", Text),
    Column("error", Text, nullable=False, server_default=""),
    Column("cancel_requested", Boolean, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    Index("orders_by_trade", "trade_id"),
)

fills = Table(
    "fills",
    metadata,
    Column("client_order_id", Text, ForeignKey("orders.client_order_id", ondelete="CASCADE")),
    Column("trade_id", Text, nullable=False),  # the exchange's trade id: fills are unique by it
    Column("smart_trade_id", Text, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("fee", Numeric, nullable=False),
    Column("fee_currency", Text, nullable=False),
    Column("at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("client_order_id", "trade_id"),
    Index("fills_by_smart_trade", "smart_trade_id"),
)

# The outbox: an order to send or cancel, committed with the decision that wants it and
# deleted in the transaction that records the venue's answer. What is left after a crash
# is looked up at the venue by client order id before anything is sent again.
order_intents = Table(
    "order_intents",
    metadata,
    Column("client_order_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # PLACE or CANCEL
    Column("trade_id", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("client_order_id", "kind"),
)

# One row per committed decision: the trade as it was right after it. Events point here.
trade_snapshots = Table(
    "trade_snapshots",
    metadata,
    Column("trade_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("data", JSONB, nullable=False),
    PrimaryKeyConstraint("trade_id", "version"),
)

# A tenant's events, numbered in its own sequence (DESIGN §2.8): commit order within the tenant.
events = Table(
    "events",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False, autoincrement=False),
    Column("trade_id", Text, nullable=False),
    Column("trade_version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("at", TIMESTAMP, nullable=False),
    Column("facts", JSONB, nullable=False),
    PrimaryKeyConstraint("tenant_id", "sequence"),
    Index("events_by_trade", "trade_id", "sequence"),
)

# Each tenant's last event sequence (the row is locked by the commit appending to it, so
# commit order is sequence order within the tenant), and how far its history was pruned: a
# watcher resuming from before `pruned_through` is told OUT_OF_RANGE, not given a gap.
event_sequences = Table(
    "event_sequences",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("last", BigInteger, nullable=False),
    Column("pruned_through", BigInteger, nullable=False),
)

# The paper venue keeps one book per tenant: a tenant's sandbox prices move only its trades.
paper_balances = Table(
    "paper_balances",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("free", Numeric, nullable=False),
    Column("locked", Numeric, nullable=False),
    PrimaryKeyConstraint("account_id", "currency"),
)

paper_orders = Table(
    "paper_orders",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("client_order_id", Text, nullable=False),
    Column("exchange_order_id", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("price", Numeric),
    Column("status", Text, nullable=False),
    Column("locked", Numeric, nullable=False),
    Column("fills", JSONB, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    # Contract markets: it may only reduce the position (NULL: written before revision 0011,
    # or by a replica of the revision before: not reduce-only).
    Column("reduce_only", Boolean),
    PrimaryKeyConstraint("account_id", "client_order_id"),
)

paper_prices = Table(
    "paper_prices",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("tenant_id", "symbol"),
)

# A paper account's position and settings on a contract market (units 0: flat, its leverage
# and margin mode kept all the same), overwritten by key with each write of the paper book.
paper_positions = Table(
    "paper_positions",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("units", Numeric, nullable=False),
    Column("entry", Numeric, nullable=False),
    Column("margin", Numeric, nullable=False),
    Column("leverage", Numeric, nullable=False),
    Column("margin_mode", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "account_id", "symbol"),
)

# AIP-155: a retried mutation gets its first answer; kept for the request-id retention.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("resource", Text, nullable=False),  # what the first call created or changed
    # What a retry is answered with (store/requests.py), written with the effect.
    Column("answer", JSONB),
    Column("created_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("tenant_id", "request_id"),
    Index("idempotency_keys_by_age", "created_at", postgresql_using="brin"),
)

# A trade's settings shared by link: the token is kept only as its SHA-256 hash.
shares = Table(
    "shares",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("trade_id", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("settings", JSONB, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("expires_at", TIMESTAMP),
    Column("revoked_at", TIMESTAMP),
)

# Replicas on one database (revision 0010): one lease per shard of the tenants, saying which
# replica runs the shard's trades, until when, and the fencing number (from the sequence
# `lease_fences`) every write of those trades must carry (see store/leases.py); and the
# replicas alive, each with its heartbeat.
shard_leases = Table(
    "shard_leases",
    metadata,
    Column("shard", Integer, primary_key=True),
    Column("fence", BigInteger, nullable=False, unique=True),
    Column("holder", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
)
replicas = Table(
    "replicas",
    metadata,
    Column("id", Text, primary_key=True),
    Column("address", Text, nullable=False),
    Column("expires_at", TIMESTAMP, nullable=False),
)

# A decision made durable ahead of its order (revision 0009): the input it was decided on
# (a venue's fact or the clock), the version it makes, the intents it sends and completes;
# written to the tables once the order is sent, or decided again at the next start (see
# unit_of_work.write_ahead).
decisions_ahead = Table(
    "decisions_ahead",
    metadata,
    Column("trade_id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
)
