"""The ``database_url`` fixture: each test of tests/sql runs on a fresh SQLite
file and on a fresh PostgreSQL database (``pg_backend.postgres_url``: skipped
with the reason when unreachable, failed instead with ``CI=true``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_backend import postgres_url  # noqa: F401  (a fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend, as a SQLAlchemy URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'freight.db'}"
    return str(request.getfixturevalue("postgres_url"))
