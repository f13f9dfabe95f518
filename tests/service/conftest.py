"""Fixtures for the service core's tests: a temporary FREIGHT_HOME (never the
user's), the engine from $FREIGHT_ENGINE (default ``process``, the embedded
default), and a core over a hand-driven endpoint link."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_backend import postgres_url  # noqa: F401  (a fixture)
from service_helpers import HoldingLink

from freight.service.core import ServiceCore
from freight.service.embedded import shutdown_embedded
from freight.service.sql_store import SqlStore
from freight.service.store import SQLiteStore

ENGINE = os.environ.get("FREIGHT_ENGINE") or "process"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh FREIGHT_HOME; embedded services are stopped afterwards."""
    path = tmp_path / "home"
    monkeypatch.setenv("FREIGHT_HOME", str(path))
    monkeypatch.setenv("FREIGHT_ENGINE", ENGINE)
    monkeypatch.delenv("FREIGHT_RESULT_RETENTION_S", raising=False)
    monkeypatch.delenv("FREIGHT_MAX_PAYLOAD_BYTES", raising=False)
    monkeypatch.delenv("FREIGHT_WORKERS", raising=False)
    monkeypatch.delenv("FREIGHT_DATABASE_URL", raising=False)
    yield path
    shutdown_embedded()


@pytest.fixture
def link() -> HoldingLink:
    return HoldingLink()


@pytest.fixture(params=["sqlite", "postgresql"])
def core(
    request: pytest.FixtureRequest, home: Path, link: HoldingLink
) -> Iterator[ServiceCore]:
    """A service core with the hand-driven ``link`` attached, on each backend:
    ``SQLiteStore`` on ``home`` (the embedded default), and ``SqlStore`` on a
    fresh PostgreSQL database (``pg_backend``: skipped when unreachable, failed
    with ``CI=true``)."""
    if request.param == "sqlite":
        store: SQLiteStore | SqlStore = SQLiteStore(home / "freight.db")
    else:
        store = SqlStore(request.getfixturevalue("postgres_url"))
    c = ServiceCore(store)
    c.add_endpoint(link)
    yield c
    c.shutdown()
