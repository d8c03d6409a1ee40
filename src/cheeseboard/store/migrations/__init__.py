"""Alembic migrations, applied at startup (upgrades happen in place)."""
