"""each tenant's events are numbered in its own sequence (DESIGN §2.8)

A tenant's cursor says nothing of other tenants' activity, and commits of different tenants
no longer queue behind one lock: `event_sequences` holds each tenant's last sequence (its row
is locked by the commit that appends, until that commit ends) and how far its history was
pruned. Existing events keep their numbers, so the cursors clients hold stay valid: a
tenant's sequence carries on from its own last event (or, for a tenant whose events were all
pruned, from the old global mark, so an old cursor is never mistaken for a new one).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_sequences",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.execute(
        """
        INSERT INTO event_sequences (tenant_id, last, pruned_through)
        SELECT tenants.tenant_id,
               greatest(coalesce(heads.last, 0), retention.pruned_through),
               retention.pruned_through
        FROM (SELECT tenant_id FROM events UNION SELECT tenant_id FROM smart_trades) AS tenants
        CROSS JOIN (SELECT coalesce(max(pruned_through), 0) AS pruned_through
                    FROM stream_retention) AS retention
        LEFT JOIN (SELECT tenant_id, max(sequence) AS last FROM events GROUP BY tenant_id)
             AS heads ON heads.tenant_id = tenants.tenant_id
        """
    )
    op.drop_index("events_by_tenant", "events")
    op.drop_constraint("events_pkey", "events", type_="primary")
    op.alter_column("events", "sequence", server_default=None)
    op.execute("DROP SEQUENCE IF EXISTS events_sequence_seq")
    op.create_primary_key("events_pkey", "events", ["tenant_id", "sequence"])
    op.drop_table("stream_retention")


def downgrade() -> None:
    table = op.create_table(
        "stream_retention",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "pruned_through": 0}])
    op.execute(
        "UPDATE stream_retention SET pruned_through = "
        "(SELECT coalesce(max(pruned_through), 0) FROM event_sequences)"
    )
    op.drop_constraint("events_pkey", "events", type_="primary")
    op.execute("CREATE SEQUENCE events_sequence_seq OWNED BY events.sequence")
    op.execute(
        "SELECT setval('events_sequence_seq', (SELECT coalesce(max(sequence), 0) + 1 FROM events))"
    )
    op.alter_column("events", "sequence", server_default=sa.text("nextval('events_sequence_seq')"))
    op.create_primary_key("events_pkey", "events", ["sequence"])
    op.create_index("events_by_tenant", "events", ["tenant_id", "sequence"], unique=False)
    op.drop_table("event_sequences")
