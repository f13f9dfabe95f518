"""The service core's store path: submit + finish of N no-op tasks.

``python benchmarks/service_core.py [--tasks 10000] [--batch 128]``

Two figures, each on a fresh ``FREIGHT_HOME`` in a temporary directory:

* ``store path``: ``ServiceCore.submit`` in batches, then ``ServiceCore.finished``
  with one outcome batch per submit batch, against an endpoint link that runs
  nothing; this is the service's own cost per task (validation, SQLite, push).
* ``thread engine``: the same tasks through a ``LocalEndpoint`` on the ``thread``
  engine (2 workers), results pushed to a subscriber; wall time until the last
  result arrived.

Each figure is tasks per second of wall time and per second of this process's CPU
time (all threads), best of ``--repeat`` runs; on a busy machine the CPU figure is
the steadier one.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freight.serialize import ComputeSerializer
from freight.service.core import ServiceCore
from freight.service.protocol import TaskMessage, TaskOutcome, TaskSink
from freight.service.store import SQLiteStore

ENDPOINT_ID = "6e0f1b9c-3a55-4a1e-8c43-0c4e6f3f7a10"


def noop() -> None:
    return None


class NullLink:
    """An endpoint that keeps what it is sent, and runs nothing."""

    endpoint_id = ENDPOINT_ID

    def __init__(self) -> None:
        self.sent: list[list[TaskMessage]] = []

    def attach(self, sink: TaskSink) -> None:
        pass

    def dispatch(self, tasks: Sequence[TaskMessage]) -> None:
        self.sent.append(list(tasks))

    def cancel(self, task_ids: Sequence[str], *, terminate: bool) -> dict[str, str]:
        return {t: "unknown" for t in task_ids}

    def status(self) -> dict[str, Any]:
        return {"status": "online", "details": {}}

    def metadata(self) -> dict[str, Any]:
        return {"uuid": ENDPOINT_ID, "name": "null"}

    def allowed_functions(self) -> list[str] | None:
        return None

    def shutdown(self) -> None:
        pass


def _payload() -> str:
    s = ComputeSerializer()
    return s.pack_buffers([s.serialize(()), s.serialize({})])


Figure = tuple[float, float]


def store_path(home: Path, tasks: int, batch: int) -> Figure:
    """Tasks/s through submit + finished (with a subscriber) on a null link."""
    core = ServiceCore(SQLiteStore(home / "freight.db"))
    link = NullLink()
    core.add_endpoint(link)
    s = ComputeSerializer()
    fid = core.register_function(
        {"function_name": "noop", "function_code": s.serialize(noop)}
    )["function_uuid"]
    payload = _payload()
    got = 0

    def on_result(message: dict[str, Any]) -> None:
        nonlocal got
        got += 1

    tg = "0b7a54c1-5a0e-4a53-9a4c-5b1c2a1f0e11"
    sub = core.subscribe(tg, on_result)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, tasks, batch):
        n = min(batch, tasks - start)
        core.submit(ENDPOINT_ID, {"task_group_id": tg, "tasks": {fid: [payload] * n}})
        sent = link.sent.pop()
        core.started([m.task_id for m in sent])
        core.finished(
            [TaskOutcome(m.task_id, "success", result="00\ngARO.") for m in sent]
        )
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert got == tasks, got
    sub.close()
    core.shutdown()
    return tasks / elapsed, tasks / cpu


def thread_engine(home: Path, tasks: int, batch: int) -> Figure:
    """Tasks/s through a LocalEndpoint on the thread engine, results pushed."""
    from freight.endpoint.endpoint import LocalEndpoint
    from freight.endpoint.thread import ThreadEngine

    core = ServiceCore(SQLiteStore(home / "freight.db"))
    core.add_endpoint(LocalEndpoint(ThreadEngine(2), endpoint_id=ENDPOINT_ID))
    s = ComputeSerializer()
    fid = core.register_function(
        {"function_name": "noop", "function_code": s.serialize(noop)}
    )["function_uuid"]
    payload = _payload()
    done = threading.Event()
    got = 0

    def on_result(message: dict[str, Any]) -> None:
        nonlocal got
        got += 1
        if got == tasks:
            done.set()

    tg = "0b7a54c1-5a0e-4a53-9a4c-5b1c2a1f0e12"
    sub = core.subscribe(tg, on_result)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, tasks, batch):
        n = min(batch, tasks - start)
        core.submit(ENDPOINT_ID, {"task_group_id": tg, "tasks": {fid: [payload] * n}})
    if not done.wait(600):
        raise RuntimeError(f"only {got} of {tasks} results arrived")
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    sub.close()
    core.shutdown()
    return tasks / elapsed, tasks / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    for name, fn in (("store path", store_path), ("thread engine", thread_engine)):
        wall = cpu = 0.0
        for _ in range(opts.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                w, c = fn(Path(tmp), opts.tasks, opts.batch)
                wall, cpu = max(wall, w), max(cpu, c)
        print(
            f"{name:14} {opts.tasks} tasks, batches of {opts.batch}:"
            f" {wall:9,.0f} tasks/s wall, {cpu:9,.0f} tasks/CPU-s"
        )


if __name__ == "__main__":
    main()
