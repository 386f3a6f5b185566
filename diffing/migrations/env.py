"""Alembic environment: runs online against the connection ``diffing.store`` passes in ``config.attributes``.

No ini file and no logging config: the store builds the Alembic ``Config`` in code (``diffing.store.migrate``).
"""

from __future__ import annotations

from alembic import context

from diffing.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from the alembic CLI
    raise RuntimeError("run migrations through diffing.store.migrate(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
