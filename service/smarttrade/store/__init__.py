"""PostgreSQL, the store of record: schema, migrations, the trade repository."""
