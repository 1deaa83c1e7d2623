"""Alembic environment: runs on the connection `store.migrate` hands it (no ini file)."""

from __future__ import annotations

from alembic import context

from smarttrade.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
