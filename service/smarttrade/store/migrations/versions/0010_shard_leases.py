"""shard leases: the live trades shared between replicas, by tenant shard

The one leader lease (revision 0008) gives way to one lease per shard of the tenants
(store/leases.py: a tenant's shard is a hash of its id): a replica runs the trades, the
paper book and the event sequence of the tenants whose shards it holds. Every new holder of
a shard gets a fencing number from one sequence, so a number names one holding of one
shard, and a write carrying it is written only while that holding has not expired. The
replicas say they are alive in `replicas` (heartbeats), so that each takes its fair share.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("leader_lease")
    op.execute("CREATE SEQUENCE lease_fences")
    op.create_table(
        "shard_leases",
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("fence", sa.BigInteger, nullable=False, unique=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    op.drop_table("shard_leases")
    op.execute("DROP SEQUENCE lease_fences")
    op.create_table(
        "leader_lease",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="leader_lease_one_row"),
    )
