"""The ``thread`` engine: runs the target in a thread pool of this process.

Threads cannot be killed, so this engine enforces no time or memory limit and
cannot terminate a running task; it cancels tasks that have not started.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from freight.endpoint.engine import EngineStatus, WorkItem

__all__ = ["ThreadEngine", "resolve_target"]

DEFAULT_TARGET = "freight.endpoint.execute:run_packet"


def resolve_target(spec: str) -> Callable[[Any], bytes]:
    """The function a ``"module:function"`` string names."""
    module, _, name = spec.partition(":")
    fn: Callable[[Any], bytes] = getattr(importlib.import_module(module), name)
    return fn


class ThreadEngine:
    """``workers`` threads (default: CPU count) running ``target``."""

    name = "thread"

    def __init__(
        self, workers: int | None = None, target: str = DEFAULT_TARGET
    ) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._target = resolve_target(target)
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future[bytes]] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, "freight-engine")

    def _run(self, work: WorkItem) -> bytes:
        with self._lock:
            self._running.add(work.task_id)
        if work.on_start is not None:
            work.on_start()
        try:
            return self._target(work.packet)
        finally:
            with self._lock:
                self._running.discard(work.task_id)
                self._futures.pop(work.task_id, None)

    def submit(self, work: WorkItem) -> Future[bytes]:
        if self._pool is None:
            self.start()
        assert self._pool is not None
        work.packet = [
            bytes(f) if isinstance(f, memoryview) else f for f in work.packet
        ]
        fut = self._pool.submit(self._run, work)
        with self._lock:
            if not fut.done():
                self._futures[work.task_id] = fut
        return fut

    def cancel(self, task_id: str, *, terminate: bool) -> str:
        with self._lock:
            fut = self._futures.get(task_id)
            running = task_id in self._running
        if fut is None:
            return "unknown"
        if not running and fut.cancel():
            return "cancelled"
        return "running"

    def status(self) -> EngineStatus:
        with self._lock:
            running = len(self._running)
            queued = len(self._futures) - running
        return EngineStatus(self._workers, max(queued, 0), running, self._workers)

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
