"""wake levels and units held on the trade row: idle trades stay unloaded

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("smart_trades", sa.Column("wake_below", sa.Numeric(), nullable=True))
    op.add_column("smart_trades", sa.Column("wake_above", sa.Numeric(), nullable=True))
    op.add_column("smart_trades", sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "smart_trades",
        sa.Column("units_held", sa.Numeric(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    for column in ("units_held", "wake_at", "wake_above", "wake_below"):
        op.drop_column("smart_trades", column)
