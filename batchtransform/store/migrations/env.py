"""Alembic's entry point: runs the migrations on the connection ``migrate`` hands over.

``batchtransform.store.migrate`` opens the connection, takes the migration lock and
begins the transaction; Alembic then runs inside that transaction (its own
``begin_transaction`` does nothing when one is open), so on PostgreSQL a failed migration
leaves the database as it was.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    # SQLite cannot ALTER most things: Alembic's batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
