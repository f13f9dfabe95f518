"""Alembic revisions, oldest first: ``0001`` is ``SQLiteStore``'s schema 1."""
