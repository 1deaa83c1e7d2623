"""the leader lease: replicas on one database, one of them acting at a time

One row: which replica holds the lease, until when (the database's clock), and its fencing
number, raised by every new holder. Every write of a replica that runs with leases carries
the number it was given and is written only while that number holds an unexpired lease
(store/one_statement.py): a replica that lost the lease (paused, partitioned, presumed dead)
can commit no decision, and so send no order.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_lease",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="leader_lease_one_row"),
    )


def downgrade() -> None:
    op.drop_table("leader_lease")
