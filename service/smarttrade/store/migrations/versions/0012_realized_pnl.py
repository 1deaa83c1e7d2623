"""realized PnL on the trade row: ListSmartTrades orders by it (issue 15)

`realized_pnl` is written with every write of a trade, as `units_held` is (computed from
the trade by the core's own rule, `domain.position`). The rows already there are filled in
from each trade's current snapshot by that same rule, so a finished trade (never written
again) sorts by its PnL too. The column is nullable: a replica of 0011, still running during
a rolling upgrade, writes its rows without it (a row's missing field is NULL, not the
column's default); a list orders NULL as 0 until the trade's next write.

Labels need no column: they are part of the trade's settings (`spec`), where a list's
label filter reads them.

Revision ID: 0012
Revises: 0011
"""

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("smart_trades", sa.Column("realized_pnl", sa.Numeric(), nullable=True))
    _backfill()


def _backfill() -> None:
    # The service's rule, imported here on purpose: the stored figure must be the one a
    # write stores (a copy of the rule in SQL would drift from it).
    from smarttrade.domain.position import position_of
    from smarttrade.store.codec import trade_from_document

    connection = op.get_bind()
    after = ""
    while True:
        rows = connection.execute(
            sa.text(
                "SELECT t.id, s.data FROM smart_trades AS t JOIN trade_snapshots AS s "
                "ON s.trade_id = t.id AND s.version = t.version "
                "WHERE t.id > :after ORDER BY t.id LIMIT :batch"
            ),
            {"after": after, "batch": BATCH},
        ).all()
        if not rows:
            return
        figures: list[dict[str, Any]] = []
        for trade_id, data in rows:
            document = orjson.loads(data) if isinstance(data, str | bytes) else data
            pnl = position_of(trade_from_document(document)).realized_pnl
            figures.append({"id": trade_id, "pnl": pnl})
        connection.execute(
            sa.text("UPDATE smart_trades SET realized_pnl = :pnl WHERE id = :id"), figures
        )
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_column("smart_trades", "realized_pnl")
