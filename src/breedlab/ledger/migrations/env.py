"""Alembic's entry point for the ledger migrations: always run programmatically by
:func:`breedlab.ledger.migrations.upgrade`, on the connection it passes in."""

from __future__ import annotations

from alembic import context

from breedlab.ledger import schema

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite's ALTER is limited
)
with context.begin_transaction():
    context.run_migrations()
