"""paper positions: a paper account's futures position and settings on each contract market

Paper futures (exchange/paper_futures.py) kept their positions and the leverage and margin
mode of each symbol in memory only, so a restart (or a shard taken over by another replica)
gave every paper account back its wallet without the positions that wallet's margin was in.
One row per tenant, account and symbol holds both: the position (`units` 0 when flat, then
`entry` and `margin` are 0 too) and the settings, so a flat symbol keeps the leverage and
margin mode set on it. Rows are overwritten by their key with each write of the tenant's
paper book, in the same statement as its balances and orders; none is deleted.

A paper order keeps whether it is reduce-only (`paper_orders.reduce_only`): a take-profit
resting on a position must come back as one, or after a restart it could open the other way
when it fills, and a liquidation would leave it resting. The column may be NULL, read as not
reduce-only (every order before, none of which was): a replica of the revision before, still
running during a rolling upgrade, writes its paper orders without it (a row's missing field
is NULL, not the column's default), and NOT NULL would refuse its writes.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paper_positions",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("units", sa.Numeric(), nullable=False),
        sa.Column("entry", sa.Numeric(), nullable=False),
        sa.Column("margin", sa.Numeric(), nullable=False),
        sa.Column("leverage", sa.Numeric(), nullable=False),
        sa.Column("margin_mode", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "symbol"),
    )
    op.add_column(
        "paper_orders",
        sa.Column("reduce_only", sa.Boolean(), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("paper_orders", "reduce_only")
    op.drop_table("paper_positions")
