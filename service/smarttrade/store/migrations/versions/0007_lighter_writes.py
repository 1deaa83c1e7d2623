"""lighter writes: what every decision wrote and nothing read goes

- The `legs` table was written with every decision and read by nothing: a trade is read
  back from its snapshot, and the queries of the store (what is live, held, open at a
  venue, left to send) use the trade, order, fill and intent rows. Dropping it takes a
  table, an index and a foreign-key check off every decision's write.
- `order_intents_by_trade` was maintained on every intent added and completed, and no query
  reads intents by trade.
- The request ids' age index becomes a BRIN index (rows arrive in time order): pruning
  still finds the old ones, and a claim no longer updates a B-tree.
- The trade rows leave room on their pages (fillfactor 70), so the updates that change no
  indexed column (most: a price moves a stop, an order is placed) are HOT, without index
  maintenance.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("orders_trade_id_leg_id_fkey", "orders", type_="foreignkey")
    op.drop_table("legs")
    op.drop_index("order_intents_by_trade", "order_intents")
    op.drop_index("idempotency_keys_by_age", "idempotency_keys")
    op.create_index(
        "idempotency_keys_by_age", "idempotency_keys", ["created_at"], postgresql_using="brin"
    )
    op.execute("ALTER TABLE smart_trades SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE smart_trades RESET (fillfactor)")
    op.drop_index("idempotency_keys_by_age", "idempotency_keys")
    op.create_index("idempotency_keys_by_age", "idempotency_keys", ["created_at"])
    op.create_index("order_intents_by_trade", "order_intents", ["trade_id"])
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
        sa.Column("watch", postgresql.JSONB(), nullable=False),
        sa.Column("params", postgresql.JSONB(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["trade_id"], ["smart_trades.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trade_id", "id"),
    )
    # The legs of the trades written meanwhile are in their snapshots only: not checked.
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT orders_trade_id_leg_id_fkey FOREIGN KEY "
        "(trade_id, leg_id) REFERENCES legs (trade_id, id) ON DELETE CASCADE NOT VALID"
    )
