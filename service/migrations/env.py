"""Alembic's environment: runs on the connection ``SqlStore`` hands over in
``config.attributes["connection"]`` (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
