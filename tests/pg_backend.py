"""The ``postgres_url`` fixture (imported by the conftests that use it): a fresh
PostgreSQL database per test, dropped afterwards.

PostgreSQL is ``$FREIGHT_TEST_POSTGRES`` (a libpq conninfo of a database the
tests may create databases from; default: ``host=127.0.0.1 port=5432
user=postgres dbname=test``).  When it is unreachable its tests skip with the
reason, except with ``CI=true``: then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ADMIN = os.environ.get(
    "FREIGHT_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
_REACHABLE: list[str | None] = []  # [None] reachable, [reason] not


def _admin_connect() -> object:
    import psycopg

    return psycopg.connect(ADMIN, autocommit=True, connect_timeout=5)


def _postgres_problem() -> str | None:
    if not _REACHABLE:
        try:
            _admin_connect().close()  # type: ignore[attr-defined]
            _REACHABLE.append(None)
        except Exception as e:
            _REACHABLE.append(f"PostgreSQL at {ADMIN!r} is unreachable: {e}")
    return _REACHABLE[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database's SQLAlchemy URL; dropped afterwards."""
    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {problem}")
        pytest.skip(problem)
    import psycopg

    name = f"freight_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        info = conn.info
        host, port, user = info.host, info.port, info.user
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
