"""Fixtures for the engine tests: engines on the test targets, and leak checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engine_helpers import TARGETS_DIR, shm_segments, worker_children


@pytest.fixture
def no_leaks() -> Iterator[set[int]]:
    """Assert the test leaves no worker process and no shared-memory segment;
    the test adds the worker pids it saw to the set yielded, which must all be
    reaped (no zombies)."""
    before_shm = shm_segments()
    before_workers = worker_children()
    seen: set[int] = set()
    yield seen
    assert worker_children() - before_workers == set()
    assert not [pid for pid in seen if os.path.exists(f"/proc/{pid}")]
    assert shm_segments() - before_shm == set()


@pytest.fixture
def process_engine() -> Iterator[Callable[..., Any]]:
    """Make started ``ProcessEngine`` s on the test targets; all are shut down
    after the test, and must leave no worker and no segment behind."""
    from freight.endpoint.process import ProcessEngine

    made: list[ProcessEngine] = []
    before_shm = shm_segments()
    before_workers = worker_children()

    def make(target: str = "command", workers: int = 2, **options: Any) -> Any:
        options.setdefault("extra_path", [TARGETS_DIR])
        engine = ProcessEngine(
            workers, target=f"freight_engine_targets:{target}", **options
        )
        engine.start()
        made.append(engine)
        return engine

    yield make
    live = worker_children() - before_workers
    for engine in made:
        engine.shutdown(wait=False)
    assert worker_children() - before_workers == set()
    # Reaped, not left as zombies: their /proc entries are gone.
    assert not [pid for pid in live if os.path.exists(f"/proc/{pid}")]
    assert shm_segments() - before_shm == set()
