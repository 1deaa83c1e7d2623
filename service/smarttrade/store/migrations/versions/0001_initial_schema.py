"""initial schema

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("sequence", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("trade_version", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
    )
    op.create_index("events_by_tenant", "events", ["tenant_id", "sequence"], unique=False)
    op.create_index("events_by_trade", "events", ["trade_id", "sequence"], unique=False)
    op.create_table(
        "exchange_accounts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), server_default="", nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("credentials", sa.LargeBinary(), nullable=True),
        sa.Column("paper_settings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "exchange_accounts_by_tenant",
        "exchange_accounts",
        ["tenant_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "request_id"),
    )
    op.create_table(
        "order_intents",
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_order_id", "kind"),
    )
    op.create_index("order_intents_by_trade", "order_intents", ["trade_id"], unique=False)
    op.create_table(
        "paper_balances",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("free", sa.Numeric(), nullable=False),
        sa.Column("locked", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "currency"),
    )
    op.create_table(
        "paper_orders",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("exchange_order_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("locked", sa.Numeric(), nullable=False),
        sa.Column("fills", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "client_order_id"),
    )
    op.create_table(
        "paper_prices",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "symbol"),
    )
    op.create_table(
        "trade_snapshots",
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("trade_id", "version"),
    )
    op.create_table(
        "smart_trades",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("market", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reference_price", sa.Numeric(), nullable=False),
        sa.Column("last_price", sa.Numeric(), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("exit_leg_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["exchange_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "smart_trades_by_tenant", "smart_trades", ["tenant_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "smart_trades_live",
        "smart_trades",
        ["state"],
        unique=False,
        postgresql_where=sa.text("state IN ('PENDING', 'ACTIVE', 'CLOSING')"),
    )
    op.create_table(
        "legs",
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=True),
        sa.Column("price", sa.Numeric(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("watch", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["trade_id"], ["smart_trades.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trade_id", "id"),
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("leg_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("exchange_order_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trade_id", "leg_id"], ["legs.trade_id", "legs.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    op.create_index("orders_by_trade", "orders", ["trade_id"], unique=False)
    op.create_table(
        "fills",
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.Text(), nullable=False),
        sa.Column("smart_trade_id", sa.Text(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("fee", sa.Numeric(), nullable=False),
        sa.Column("fee_currency", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_order_id"], ["orders.client_order_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("client_order_id", "trade_id"),
    )
    op.create_index("fills_by_smart_trade", "fills", ["smart_trade_id"], unique=False)


def downgrade() -> None:
    op.drop_index("fills_by_smart_trade", table_name="fills")
    op.drop_table("fills")
    op.drop_index("orders_by_trade", table_name="orders")
    op.drop_table("orders")
    op.drop_table("legs")
    op.drop_index(
        "smart_trades_live",
        table_name="smart_trades",
        postgresql_where=sa.text("state IN ('PENDING', 'ACTIVE', 'CLOSING')"),
    )
    op.drop_index("smart_trades_by_tenant", table_name="smart_trades")
    op.drop_table("smart_trades")
    op.drop_table("trade_snapshots")
    op.drop_table("paper_prices")
    op.drop_table("paper_orders")
    op.drop_table("paper_balances")
    op.drop_index("order_intents_by_trade", table_name="order_intents")
    op.drop_table("order_intents")
    op.drop_table("idempotency_keys")
    op.drop_index("exchange_accounts_by_tenant", table_name="exchange_accounts")
    op.drop_table("exchange_accounts")
    op.drop_index("events_by_trade", table_name="events")
    op.drop_index("events_by_tenant", table_name="events")
    op.drop_table("events")
