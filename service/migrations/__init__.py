"""Alembic migrations of the service's database (run by ``SqlStore`` on open)."""
