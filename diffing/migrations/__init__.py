"""Alembic migrations for the parity store, applied programmatically by ``diffing.store`` at open."""
