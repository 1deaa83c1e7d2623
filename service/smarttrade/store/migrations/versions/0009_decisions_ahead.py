"""decisions ahead: a decision made durable as one small row before its order is sent

A decision that sends orders on a venue's fact or the clock (a stop crossed, a step filled;
no trader's request in it) is committed first as one small row, the input it was decided
on; the order is sent; then the decision's write runs, deleting the row in the same
statement. A service that stops in between decides again on the same input at its next
start, from the same version of the trade (the domain's decisions are pure functions of the
two), and writes that before it loads any trade: the intents are then looked up at the
venue like any left pending.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions_ahead",
        sa.Column("trade_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("decisions_ahead")
