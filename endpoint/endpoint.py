"""``LocalEndpoint``: an endpoint in this process, running tasks through an engine.

It implements the service's ``EndpointLink``: the service dispatches
``TaskMessage`` records; the endpoint checks the allowed functions and the
resource specification, builds each task's packet (``freight.endpoint.execute``)
and submits it to its engine; outcomes go back to the service in batches from one
reporter thread, so the service records many results per transaction.
"""

from __future__ import annotations

import os
import platform
import queue
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from freight.endpoint.engine import Engine, ResourceLimits, WorkItem
from freight.endpoint.execute import (
    DEFAULT_RESULT_SIZE_LIMIT,
    decode_outcome,
    encode_work,
    failed_outcome,
)
from freight.service.protocol import TaskMessage, TaskOutcome, TaskSink

__all__ = ["FunctionNotAllowed", "InvalidResourceSpecification", "LocalEndpoint"]

_BATCH = 512
_WAKE = "started"


class FunctionNotAllowed(Exception):
    """The endpoint's allowed functions do not include the task's function."""

    def __init__(self, function_id: str, endpoint_id: str) -> None:
        super().__init__(function_id, endpoint_id)
        self.function_id = function_id
        self.endpoint_id = endpoint_id

    def __str__(self) -> str:
        return (
            f"Function {self.function_id} not permitted on endpoint {self.endpoint_id}"
        )


class InvalidResourceSpecification(ValueError):
    """A ``resource_specification`` key or value the endpoint cannot honour."""


_LIMIT_KEYS = {"timeout_s": float, "memory_mb": int}


def resource_limits(spec: dict[str, Any] | None) -> ResourceLimits:
    """The limits a ``resource_specification`` asks for; raises
    ``InvalidResourceSpecification`` for a bad value.  Keys other than
    ``timeout_s`` and ``memory_mb`` are left to engines that understand them."""
    if not spec:
        return ResourceLimits()
    values: dict[str, Any] = {}
    for key, kind in _LIMIT_KEYS.items():
        value = spec.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidResourceSpecification(
                f"resource_specification[{key!r}] must be a number, got"
                f" {type(value).__name__}"
            )
        if value <= 0:
            raise InvalidResourceSpecification(
                f"resource_specification[{key!r}] must be positive, got {value!r}"
            )
        values[key] = kind(value)
    return ResourceLimits(**values)


class LocalEndpoint:
    """An endpoint of this process; see the module docstring.

    ``allowed_functions`` (ids) restricts what runs; ``allowlist`` restricts the
    strategies that may decode code and arguments (``ComputeSerializer``'s
    ``allowed_deserializer_types``); ``result_size_limit`` bounds a result.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        endpoint_id: str,
        name: str = "local",
        allowed_functions: Sequence[str] | None = None,
        allowlist: Sequence[str] | None = None,
        result_size_limit: int = DEFAULT_RESULT_SIZE_LIMIT,
    ) -> None:
        self._engine = engine
        self._id = endpoint_id
        self.name = name
        self._allowed = list(allowed_functions) if allowed_functions else None
        self._allowlist = list(allowlist) if allowlist else None
        self._result_size_limit = result_size_limit
        self._sink: TaskSink | None = None
        # Outcomes; _WAKE when a task started (its id is in _starts); None: stop.
        self._outcomes: queue.SimpleQueue[TaskOutcome | str | None] = (
            queue.SimpleQueue()
        )
        self._starts: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reporter: threading.Thread | None = None
        self._online = False
        self._started_t = 0.0

    @property
    def endpoint_id(self) -> str:
        return self._id

    def attach(self, sink: TaskSink) -> None:
        """Start the engine and the reporter thread."""
        self._sink = sink
        self._engine.start()
        self._reporter = threading.Thread(
            target=self._report, name=f"freight-endpoint-{self._id[:8]}", daemon=True
        )
        self._reporter.start()
        self._online = True
        self._started_t = time.time()

    def dispatch(self, tasks: Sequence[TaskMessage]) -> None:
        """Submit ``tasks`` to the engine; refused ones fail at once."""
        for task in tasks:
            try:
                self._submit(task)
            except Exception as exc:
                self._outcomes.put(failed_outcome(task.task_id, exc, self._details()))

    def _submit(self, task: TaskMessage) -> None:
        if self._allowed is not None and task.function_id not in self._allowed:
            raise FunctionNotAllowed(task.function_id, self._id)
        limits = resource_limits(task.resource_specification)
        packet = encode_work(
            task,
            endpoint_id=self._id,
            allowlist=self._allowlist,
            result_size_limit=self._result_size_limit,
        )
        task_id = task.task_id
        starts, outcomes = self._starts, self._outcomes

        def on_start() -> None:
            starts.put(task_id)
            outcomes.put(_WAKE)  # report "running" now, not with the next outcome

        work = WorkItem(
            task_id=task_id,
            packet=packet,
            limits=limits,
            environment=task.container,
            on_start=on_start,
        )
        future = self._engine.submit(work)
        future.add_done_callback(lambda f: self._done(task_id, f))

    def _done(self, task_id: str, future: Future[bytes]) -> None:
        if future.cancelled():
            return  # the service records a cancelled task itself
        exc = future.exception()
        if exc is not None:
            outcome = failed_outcome(task_id, exc, self._details())
        else:
            try:
                outcome = decode_outcome(task_id, future.result())
            except Exception as err:  # a worker's bytes we cannot read
                outcome = failed_outcome(task_id, err, self._details())
        self._outcomes.put(outcome)

    def _report(self) -> None:
        outcomes = self._outcomes
        while True:
            first = outcomes.get()
            batch: list[TaskOutcome] = []
            stop = first is None
            if isinstance(first, TaskOutcome):
                batch.append(first)
            while len(batch) < _BATCH:
                try:
                    item = outcomes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if isinstance(item, TaskOutcome):
                    batch.append(item)
            started = self._drain_starts()
            sink = self._sink
            if sink is not None:
                if started:
                    sink.started(started)
                if batch:
                    sink.finished(batch)
            if stop:
                return

    def _drain_starts(self) -> list[str]:
        started: list[str] = []
        while True:
            try:
                started.append(self._starts.get_nowait())
            except queue.Empty:
                return started

    def cancel(self, task_ids: Sequence[str], *, terminate: bool) -> dict[str, str]:
        """Ask the engine to stop each task; see ``EndpointLink.cancel``."""
        return {t: self._engine.cancel(t, terminate=terminate) for t in task_ids}

    def status(self) -> dict[str, Any]:
        """The reference's endpoint status body, with the engine's figures."""
        details: dict[str, Any] = {"engine": getattr(self._engine, "name", "?")}
        if self._online:
            details.update(self._engine.status().to_dict())
        details["uptime_s"] = round(time.time() - self._started_t, 3)
        return {"status": "online" if self._online else "offline", "details": details}

    def metadata(self) -> dict[str, Any]:
        """The reference's ``GET /v2/endpoints/{id}`` body."""
        return {
            "uuid": self._id,
            "name": self.name,
            "display_name": self.name,
            "multi_user": False,
            "public": False,
            "allowed_functions": self._allowed,
            "metadata": self._details(),
        }

    def _details(self) -> dict[str, Any]:
        return {
            "endpoint_id": self._id,
            "hostname": socket.gethostname(),
            "os": platform.system(),
            "python_version": platform.python_version(),
            "executable": sys.executable,
            "pid": os.getpid(),
        }

    def allowed_functions(self) -> list[str] | None:
        return list(self._allowed) if self._allowed is not None else None

    def shutdown(self) -> None:
        """Stop the engine, then the reporter once every outcome is out."""
        if not self._online:
            return
        self._online = False
        self._engine.shutdown(wait=True)
        self._outcomes.put(None)
        if self._reporter is not None:
            self._reporter.join(timeout=30)
