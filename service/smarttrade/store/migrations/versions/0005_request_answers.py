"""request ids keep their first answer as a document, written with the effect

The answer is what the use case needs to answer a retry (a trade's name and version, an
account's id, a share's id), never the response's bytes: a share's token is not kept.
Claims taken before this revision have no answer (a retry answers with the resource as it
is now). The index serves the pruning of old request ids.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("answer", postgresql.JSONB(), nullable=True))
    op.drop_column("idempotency_keys", "response")
    op.create_index("idempotency_keys_by_age", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("idempotency_keys_by_age", "idempotency_keys")
    op.add_column("idempotency_keys", sa.Column("response", sa.LargeBinary(), nullable=True))
    op.drop_column("idempotency_keys", "answer")
