"""Helpers for tests/service: payloads, functions registered as source (so any
engine, in any process, can run them), an endpoint link the test drives by hand,
and row counts read straight from the database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from freight.serialize import ComputeSerializer
from freight.service.protocol import TaskMessage, TaskOutcome, TaskSink

SER = ComputeSerializer()

ECHO_SRC = """
def echo(value):
    return value
"""

# Blocks until DIR/release exists; says it started by creating DIR/started-NAME.
WAIT_SRC = """
def wait_for(marker_dir, name, value):
    import os, time
    open(os.path.join(marker_dir, "started-" + name), "w").close()
    while not os.path.exists(os.path.join(marker_dir, "release")):
        time.sleep(0.01)
    return value
"""

ENDPOINT_ID = "9f1f3c1e-4d1a-4f55-9a7e-2f5d7c1b0a01"


def text_payload(*args: Any, **kwargs: Any) -> str:
    """A task payload in the reference's text envelope."""
    return SER.pack_buffers([SER.serialize(args), SER.serialize(kwargs)])


def binary_payload(*args: Any, **kwargs: Any) -> list[Any]:
    """A task payload in freight's binary envelope (frames)."""
    return list(SER.dumps_frames((args, kwargs)))


def decode(result: str | bytes) -> Any:
    return SER.deserialize(result) if isinstance(result, str) else SER.loads(result)


def register_source(core: Any, name: str, source: str) -> str:
    body = {"function_name": name, "function_code": source, "serialized": False}
    return str(core.register_function(body)["function_uuid"])


def wait_until(
    condition: Callable[[], Any], timeout: float = 60.0, what: str = "a condition"
) -> Any:
    """Poll ``condition`` until it is truthy (for state in another process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def store_count(store: Any, table: str) -> int:
    """Rows in ``table`` of a ``SQLiteStore``'s file or a ``SqlStore``'s
    database, read beside the store."""
    engine = getattr(store, "_engine", None)
    if engine is None:
        return count_rows(Path(store.path), table)
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT task_id, status FROM tasks").fetchall())


class HoldingLink:
    """An endpoint that holds what it is sent until the test starts or finishes
    it: the service core's side of the seam, step by step."""

    def __init__(self, endpoint_id: str = ENDPOINT_ID) -> None:
        self._id = endpoint_id
        self.sink: TaskSink | None = None
        self.tasks: dict[str, TaskMessage] = {}
        self.refuse: Exception | None = None
        self.down = False

    @property
    def endpoint_id(self) -> str:
        return self._id

    def attach(self, sink: TaskSink) -> None:
        self.sink = sink

    def dispatch(self, tasks: Sequence[TaskMessage]) -> None:
        if self.refuse is not None:
            raise self.refuse
        for t in tasks:
            self.tasks[t.task_id] = t

    def start(self, task_ids: Sequence[str]) -> None:
        assert self.sink is not None
        self.sink.started(list(task_ids))

    def succeed(self, task_ids: Sequence[str], value: Any = "ok") -> None:
        assert self.sink is not None
        self.sink.finished(
            [
                TaskOutcome(t, "success", result=SER.serialize(value), completion_t=1.0)
                for t in task_ids
            ]
        )

    def fail(self, task_ids: Sequence[str], exc: Exception) -> None:
        from freight.serialize import exception_to_dict

        assert self.sink is not None
        self.sink.finished(
            [
                TaskOutcome(
                    t,
                    "failed",
                    exception=exception_to_dict(exc),
                    exception_text=repr(exc),
                )
                for t in task_ids
            ]
        )

    def cancel(self, task_ids: Sequence[str], *, terminate: bool) -> dict[str, str]:
        out = {}
        for t in task_ids:
            out[t] = "cancelled" if self.tasks.pop(t, None) is not None else "unknown"
        return out

    def status(self) -> dict[str, Any]:
        return {"status": "offline" if self.down else "online", "details": {}}

    def metadata(self) -> dict[str, Any]:
        return {"uuid": self._id, "name": "holding"}

    def allowed_functions(self) -> list[str] | None:
        return None

    def shutdown(self) -> None:
        self.down = True
