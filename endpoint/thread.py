"""The ``thread`` engine: runs the target in a pool of threads of this process.

Cheap and without isolation: a task that crashes the interpreter takes the
endpoint with it, and a thread cannot be killed.  So:

* ``timeout_s``: at the limit the task's future fails with ``TaskTimeout``, but
  its thread runs on to the end (its result is dropped) and holds its slot
  until then;
* ``memory_mb`` is not enforced (use the ``process`` engine);
* ``cancel`` removes a task that has not started (``"cancelled"``); a running
  one is left running (``"running"``), even with ``terminate``;
* only the default environment (``None``) is supported: a task with an
  ``environment`` fails with ``EnvironmentUnavailable``.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from freight.endpoint.engine import EngineStatus, WorkItem
from freight.endpoint.errors import EnvironmentUnavailable, TaskTimeout
from freight.endpoint.worker import DEFAULT_TARGET, Target, load_target

__all__ = ["ThreadEngine", "resolve_target"]

#: ``"module:function"`` -> the function (the name main's first thread engine
#: exported).
resolve_target = load_target


@dataclass(slots=True)
class _Task:
    work: WorkItem
    packet: list[Any]
    future: Future[bytes]
    state: str = "queued"


class ThreadEngine:
    """Runs ``target`` (a ``"module:function"`` imported in this process, or a
    callable) on ``workers`` threads (default ``os.cpu_count()``).
    ``extra_path`` directories are added to ``sys.path`` before the target is
    imported.  Frames are copied into ``bytes`` in ``submit``.  A task's
    ``WorkItem.on_start`` is called on its thread when it starts."""

    name = "thread"

    def __init__(
        self,
        workers: int | None = None,
        target: str | Target = DEFAULT_TARGET,
        *,
        extra_path: Sequence[str] = (),
    ) -> None:
        n = (os.cpu_count() or 1) if workers is None else workers
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        if isinstance(extra_path, str):
            raise TypeError("extra_path must be a sequence of directories, not a str")
        self.workers = n
        self.target = target
        self.extra_path = tuple(os.path.abspath(p) for p in extra_path)
        self._fn: Target | None = None
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._queue: collections.deque[_Task] = collections.deque()
        self._tasks: dict[str, _Task] = {}
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._closing = False

    def start(self) -> None:
        """Import the target and start the threads; idempotent."""
        with self._lock:
            if self._closing:
                raise RuntimeError("the engine is shut down")
            if self._threads:
                return
            if isinstance(self.target, str):
                for p in reversed(self.extra_path):
                    if p not in sys.path:
                        sys.path.insert(0, p)
                self._fn = load_target(self.target)
            else:
                self._fn = self.target
            self._threads = [
                threading.Thread(
                    target=self._loop, name=f"freight-thread-{i}", daemon=True
                )
                for i in range(self.workers)
            ]
            for t in self._threads:
                t.start()

    def submit(self, work: WorkItem) -> Future[bytes]:
        if not isinstance(work, WorkItem):
            raise TypeError(f"submit takes a WorkItem, not {type(work).__name__}")
        self.start()
        future: Future[bytes] = Future()
        if work.environment is not None:
            env = work.environment if isinstance(work.environment, dict) else {}
            kind, loc = env.get("type"), env.get("location")
            future.set_exception(
                EnvironmentUnavailable(
                    work.task_id,
                    kind if isinstance(kind, str) else None,
                    loc if isinstance(loc, str) else None,
                    "the thread engine runs tasks only in its own interpreter",
                )
            )
            return future
        packet = [
            f if type(f) is bytes else memoryview(f).tobytes() for f in work.packet
        ]
        task = _Task(work, packet, future)
        with self._lock:
            if self._closing:
                raise RuntimeError("the engine is shut down")
            if work.task_id in self._tasks:
                raise ValueError(f"task {work.task_id!r} is already in the engine")
            self._tasks[work.task_id] = task
            self._queue.append(task)
            self._cv.notify()
        return future

    def cancel(self, task_id: str, *, terminate: bool) -> str:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return "unknown"
            if task.state != "queued":
                return "running"
            self._queue.remove(task)
            del self._tasks[task_id]
        task.future.cancel()
        return "cancelled"

    def status(self) -> EngineStatus:
        with self._lock:
            return EngineStatus(
                workers=sum(t.is_alive() for t in self._threads),
                queued=len(self._queue),
                running=self._running,
                capacity=self.workers,
            )

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads.  ``wait``: queued tasks run first, and this returns
        when all are done; otherwise queued tasks are cancelled and running ones
        are left to finish on their own.  Idempotent."""
        with self._lock:
            self._closing = True
            dropped: list[_Task] = []
            if not wait:
                dropped = list(self._queue)
                self._queue.clear()
                for t in dropped:
                    self._tasks.pop(t.work.task_id, None)
            self._cv.notify_all()
        for t in dropped:
            t.future.cancel()
        if wait:
            for th in self._threads:
                if th is not threading.current_thread():
                    th.join()

    def _loop(self) -> None:
        fn = self._fn
        assert fn is not None
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                task = self._queue.popleft()
                task.state = "running"
                self._running += 1
            try:
                self._run(fn, task)
            finally:
                with self._lock:
                    self._running -= 1
                    self._tasks.pop(task.work.task_id, None)

    def _run(self, fn: Target, task: _Task) -> None:
        future = task.future
        if not future.set_running_or_notify_cancel():
            return
        if task.work.on_start is not None:
            try:
                task.work.on_start()
            except Exception:  # a callback must not stop the pool
                pass
        timer: threading.Timer | None = None
        timeout = task.work.limits.timeout_s
        if timeout is not None:
            error = TaskTimeout(task.work.task_id, timeout)
            timer = threading.Timer(timeout, _fail, (future, error))
            timer.daemon = True
            timer.start()
        try:
            result = fn(task.packet)
            if not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(
                    f"the target returned {type(result).__name__}, not bytes"
                )
            _resolve(future, bytes(result))
        except BaseException as exc:
            _fail(
                future, exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
            )
        finally:
            if timer is not None:
                timer.cancel()
            task.packet = []


def _resolve(future: Future[bytes], value: bytes) -> None:
    try:
        future.set_result(value)
    except Exception:
        pass


def _fail(future: Future[bytes], error: BaseException) -> None:
    try:
        future.set_exception(error)
    except Exception:
        pass
