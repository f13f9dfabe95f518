"""``Executor``: a ``concurrent.futures.Executor`` whose tasks run on an endpoint.

The reference's names and call shapes (``submit``,
``submit_to_registered_function``, ``register_function``, ``reload_tasks``,
``shutdown``), plus what it lacks:

* ``map(fn, *iterables, timeout=None, chunksize=1)``: ordered and lazy; it keeps
  a bounded window of tasks in flight, so a million-item map holds only the window
  in memory, and ``chunksize`` packs that many calls into one task message;
* real cancellation: ``future.cancel()`` stops a task that has not started (it
  never runs, and the service records it failed with ``TaskCancelled``); with
  ``cancel_running=True``, or by ``future.terminate()``, a running one is stopped
  too;
* results are pushed: the executor subscribes to its task group's result stream
  when it is created, and a finished task resolves its future without polling.

Submissions are serialized on the caller's thread (so later changes to the
arguments do not leak in, and a bad argument raises at ``submit``) and sent in
batches of up to ``batch_size`` by one submitter thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import Executor as _BaseExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from typing import Any

from freight.client.client import Client
from freight.client.errors import task_exception
from freight.serialize import (
    ComputeSerializer,
    Strategylike,
    exception_from_dict,
    validate_strategylike,
)

__all__ = ["ComputeFuture", "Executor"]


class ComputeFuture(Future[Any]):
    """A ``Future`` with the task's id (``task_id``, set once the service has
    the task) and the means to stop it (``cancel``, ``terminate``)."""

    def __init__(self, task_id: str | None = None) -> None:
        super().__init__()
        self.task_id = task_id
        self._executor: weakref.ReferenceType[Executor] | None = None
        self._metadata: dict[str, Any] = {}

    def cancel(self) -> bool:
        """Cancel the task: one not yet sent, or sent but not started, never runs
        (True); a running one is stopped only if its executor has
        ``cancel_running`` set.  False if it finished or keeps running."""
        if self.done():
            return self.cancelled()
        ex = self._executor() if self._executor is not None else None
        if ex is None or self.task_id is None:
            return super().cancel()
        return ex._cancel_future(self, terminate=ex.cancel_running)

    def terminate(self) -> bool:
        """Stop the task even if it is running; True if it was stopped."""
        if self.done():
            return self.cancelled()
        ex = self._executor() if self._executor is not None else None
        if ex is None or self.task_id is None:
            return super().cancel()
        return ex._cancel_future(self, terminate=True)


@dataclass(slots=True)
class _Pending:
    future: ComputeFuture
    function_id: str
    payload: Any
    chunk: bool


_STOP = object()


class Executor(_BaseExecutor):
    """Runs functions on an endpoint; see the module docstring.

    With the embedded service, ``endpoint_id=None`` means the local endpoint.
    ``serializer`` (default: the client's) serializes arguments;
    ``result_serializers`` are strategy-likes the endpoint uses for results.
    ``amqp_port``, ``api_burst_limit`` and ``api_burst_window_s`` are accepted for
    the reference's sake and unused here.
    """

    def __init__(
        self,
        endpoint_id: str | uuid.UUID | None = None,
        client: Client | None = None,
        task_group_id: str | uuid.UUID | None = None,
        resource_specification: dict[str, Any] | None = None,
        user_endpoint_config: dict[str, Any] | None = None,
        label: str = "",
        batch_size: int = 128,
        amqp_port: int | None = None,
        api_burst_limit: int = 4,
        api_burst_window_s: int = 16,
        serializer: ComputeSerializer | None = None,
        result_serializers: Iterable[Strategylike] | None = None,
        *,
        cancel_running: bool = False,
        **kwargs: Any,
    ) -> None:
        for key in kwargs:
            raise TypeError(f"'{key}' is an invalid argument for {type(self).__name__}")
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"client: expected a Client, got {type(client).__name__}")
        if serializer is not None and not isinstance(serializer, ComputeSerializer):
            raise TypeError(
                f"serializer: expected a ComputeSerializer, got"
                f" {type(serializer).__name__}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool):
            raise TypeError("batch_size: expected an int")
        self.client = client or Client()
        self.serializer = serializer or self.client.fx_serializer
        self.label = label
        self.batch_size = max(1, batch_size)
        self.amqp_port = amqp_port
        self.api_burst_limit = min(8, max(1, api_burst_limit))
        self.api_burst_window_s = min(32, max(1, api_burst_window_s))
        self.cancel_running = cancel_running
        self.resource_specification = resource_specification
        self.user_endpoint_config = user_endpoint_config
        self.result_serializers = result_serializers
        self._endpoint_id: str | None = None
        self.endpoint_id = endpoint_id
        self._lock = threading.RLock()
        self._futures: dict[str, ComputeFuture] = {}
        self._early: dict[str, dict[str, Any]] = {}
        self._functions: dict[Any, str] = {}
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._unsent = 0
        self._stopped = False
        self._task_group_id = str(task_group_id or uuid.uuid4())
        self._subscription = self.client.transport.subscribe(
            self._task_group_id, self._on_result
        )
        self.task_count_submitted = 0
        self._submitter = threading.Thread(
            target=self._submit_loop, name="freight-submitter", daemon=True
        )
        self._submitter.start()

    def __repr__(self) -> str:
        label = f"{self.label}; " if self.label else ""
        return (
            f"{type(self).__name__}<{label}ep_id:{self._endpoint_id};"
            f" tg_id:{self._task_group_id}; bs:{self.batch_size}>"
        )

    # -- settings ------------------------------------------------------------------
    @property
    def endpoint_id(self) -> str | None:
        """The endpoint tasks go to (the local one on the embedded service)."""
        return self._endpoint_id

    @endpoint_id.setter
    def endpoint_id(self, value: str | uuid.UUID | None) -> None:
        if value is None:
            self._endpoint_id = None
            if self.client.binary_payloads:
                self._endpoint_id = self.client.local_endpoint_id
            return
        if isinstance(value, uuid.UUID):
            value = str(value)
        if not isinstance(value, str):
            raise TypeError(f"endpoint_id: expected a UUID string, got {type(value)}")
        self._endpoint_id = str(uuid.UUID(value))

    @property
    def task_group_id(self) -> str:
        """The task group of this executor's tasks."""
        return self._task_group_id

    @property
    def result_serializers(self) -> list[str] | None:
        """The import paths of the result strategies, or ``None``."""
        return self._result_serializers

    @result_serializers.setter
    def result_serializers(self, value: Iterable[Strategylike] | None) -> None:
        if value is None:
            self._result_serializers: list[str] | None = None
            return
        if isinstance(value, str):
            raise TypeError("result_serializers: expected a list of strategy-likes")
        paths = [validate_strategylike(v).import_path for v in value]
        self._result_serializers = paths or None

    # -- functions -----------------------------------------------------------------
    def register_function(
        self, fn: Callable[..., Any], function_id: str | None = None, **kwargs: Any
    ) -> str:
        """Register ``fn`` (or associate the known ``function_id``) in this
        executor's cache; raises ``ValueError`` if it is registered already with
        another id."""
        if self._stopped:
            raise RuntimeError(f"{self!r} is shutdown; refusing to register function")
        with self._lock:
            known = self._functions.get(fn)
        if known is not None:
            if function_id is None or function_id == known:
                return known
            raise ValueError(
                f"Function already registered as function id: {known}"
                f" (attempted id: {function_id})"
            )
        fid = function_id or self.client.register_function(fn, **kwargs)
        with self._lock:
            self._functions[fn] = fid
        return fid

    def _function_id(self, fn: Callable[..., Any]) -> str:
        if not callable(fn):
            raise TypeError(f"expected a callable, got {type(fn).__name__}")
        with self._lock:
            known = self._functions.get(fn)
        return known if known is not None else self.register_function(fn)

    # -- submission ----------------------------------------------------------------
    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> ComputeFuture:
        """Run ``fn(*args, **kwargs)`` on the endpoint; returns its future."""
        self._check_open()
        return self.submit_to_registered_function(self._function_id(fn), args, kwargs)

    def submit_to_registered_function(
        self,
        function_id: str,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> ComputeFuture:
        """Run a registered function by id; returns its future.  Raises
        ``SerializationError`` if the arguments cannot be serialized."""
        self._check_open()
        if not isinstance(function_id, str | uuid.UUID):
            raise TypeError(
                f"function_id: expected a UUID string, got {type(function_id).__name__}"
            )
        args = () if args is None else args
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(args, tuple | list):
            raise TypeError(f"args: expected a tuple, got {type(args).__name__}")
        if not isinstance(kwargs, dict):
            raise TypeError(f"kwargs: expected a dict, got {type(kwargs).__name__}")
        payload = self._encode((tuple(args), kwargs))
        return self._enqueue(str(function_id), payload, chunk=False)

    def _check_open(self) -> None:
        if self._stopped:
            raise RuntimeError(
                f"{self!r} is shutdown; no new functions may be executed"
            )
        if self._endpoint_id is None:
            raise ValueError(
                "No endpoint_id set.  Did you forget to set it at construction?\n"
                "  Hint:\n\n    gce = Executor(endpoint_id=<ep_id>)"
            )

    def _encode(self, obj: Any) -> Any:
        serde = self.serializer
        if self.client.binary_payloads:
            return serde.dumps_frames(obj)
        if isinstance(obj, list):  # a map chunk
            return serde.pack_buffers([serde.serialize(obj)])
        args, kwargs = obj
        return serde.pack_buffers([serde.serialize(args), serde.serialize(kwargs)])

    def _enqueue(self, function_id: str, payload: Any, *, chunk: bool) -> ComputeFuture:
        fut = ComputeFuture()
        fut._executor = weakref.ref(self)
        with self._lock:
            self._unsent += 1
        self._queue.put(_Pending(fut, function_id, payload, chunk))
        return fut

    def _submit_loop(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is _STOP:
                return
            batch: list[_Pending] = [first]
            stop = False
            while len(batch) < self.batch_size:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            live = [p for p in batch if not p.future.cancelled()]
            for chunk in (False, True):
                part = [p for p in live if p.chunk is chunk]
                if part:
                    self._send(part, chunk)
            with self._lock:
                self._unsent -= len(batch)
            if stop:
                return

    def _send(self, part: list[_Pending], chunk: bool) -> None:
        tasks: dict[str, list[Any]] = {}
        for p in part:
            tasks.setdefault(p.function_id, []).append(p.payload)
        body: dict[str, Any] = {
            "create_queue": False,
            "tasks": tasks,
            "task_group_id": self._task_group_id,
        }
        if self.resource_specification:
            body["resource_specification"] = self.resource_specification
        if self.user_endpoint_config:
            body["user_endpoint_config"] = self.user_endpoint_config
        if self._result_serializers:
            body["result_serializers"] = self._result_serializers
        if chunk:
            body["freight_chunked"] = True
        assert self._endpoint_id is not None
        try:
            r = self.client.transport.submit(self._endpoint_id, body)
        except Exception as exc:  # the service refused: fail these futures
            for p in part:
                _set_exception(p.future, exc)
            return
        ids = {fid: iter(tids) for fid, tids in r["tasks"].items()}
        with self._lock:
            for p in part:
                tid = next(ids[p.function_id])
                p.future.task_id = tid
                self._futures[tid] = p.future
                self.task_count_submitted += 1
            early = [
                self._early.pop(t) for t in list(self._early) if t in self._futures
            ]
        late = [p.future.task_id for p in part if p.future.cancelled()]
        if late:  # cancelled while being sent
            self.client.transport.cancel([t for t in late if t], terminate=False)
        for message in early:
            self._on_result(message)

    # -- results -------------------------------------------------------------------
    def _on_result(self, message: dict[str, Any]) -> None:
        tid = str(message.get("task_id"))
        with self._lock:
            fut = self._futures.pop(tid, None)
            if fut is None:
                self._early[tid] = message
                return
        self._resolve(fut, message)

    def _resolve(self, fut: ComputeFuture, message: dict[str, Any]) -> None:
        if fut.done():
            return
        if message.get("status") == "success":
            try:
                value = self.client.decode_result(
                    message.get("result"), str(fut.task_id)
                )
            except Exception as exc:
                _set_exception(fut, exc)
                return
            _set_result(fut, value)
        else:
            _set_exception(fut, task_exception(message))

    def _cancel_future(self, fut: ComputeFuture, *, terminate: bool) -> bool:
        assert fut.task_id is not None
        r = self.client.transport.cancel([fut.task_id], terminate=terminate)
        answer = r["results"].get(fut.task_id)
        if answer in ("cancelled", "terminated"):
            with self._lock:
                self._futures.pop(fut.task_id, None)
            Future.cancel(fut)
            return True
        return False

    # -- map -----------------------------------------------------------------------
    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """``fn`` over the iterables, in order, lazily (see the module
        docstring).  A failed call raises its exception when iteration reaches
        it; ``TimeoutError`` if a result is not there ``timeout`` seconds after
        this call."""
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be an int >= 1")
        self._check_open()
        fid = self._function_id(fn)
        deadline = None if timeout is None else time.monotonic() + timeout
        calls = zip(*iterables, strict=False)
        window = max(64, 8 * self.batch_size)
        return self._map_results(fid, calls, chunksize, window, deadline)

    def _map_results(
        self,
        fid: str,
        calls: Iterator[tuple[Any, ...]],
        chunksize: int,
        window: int,
        deadline: float | None,
    ) -> Iterator[Any]:
        inflight: deque[ComputeFuture] = deque()
        chunks = (list(itertools.islice(calls, chunksize)) for _ in itertools.count())

        def fill() -> None:
            while len(inflight) < window:
                chunk = next(chunks)
                if not chunk:
                    return
                if chunksize == 1:
                    inflight.append(
                        self._enqueue(fid, self._encode((chunk[0], {})), chunk=False)
                    )
                else:
                    payload = self._encode([(args, {}) for args in chunk])
                    inflight.append(self._enqueue(fid, payload, chunk=True))

        try:
            fill()
            while inflight:
                fut = inflight[0]
                remaining = None if deadline is None else deadline - time.monotonic()
                try:
                    value = fut.result(remaining)
                except FuturesTimeout:
                    raise TimeoutError("map: a result did not arrive in time") from None
                inflight.popleft()
                fill()
                if chunksize == 1:
                    yield value
                else:
                    for ok, item in value:
                        if ok:
                            yield item
                        else:
                            raise exception_from_dict(item)
        finally:
            for fut in inflight:
                fut.cancel()

    # -- reattach ------------------------------------------------------------------
    def reload_tasks(
        self, task_group_id: str | uuid.UUID | None = None
    ) -> list[ComputeFuture]:
        """Futures for every task of ``task_group_id`` (default: this
        executor's), e.g. from a new process: finished ones are resolved at once,
        the rest when their results are pushed."""
        if task_group_id is not None:
            tg = str(uuid.UUID(str(task_group_id)))
            if tg != self._task_group_id:
                self._subscription.close()
                self._task_group_id = tg
                self._subscription = self.client.transport.subscribe(
                    tg, self._on_result
                )
        transport = self.client.transport
        ids = [t["id"] for t in transport.get_taskgroup(self._task_group_id)["tasks"]]
        futures: list[ComputeFuture] = []
        for start in range(0, len(ids), 1024):
            part = ids[start : start + 1024]
            statuses = transport.get_batch_status(part)["results"]
            for tid in part:
                fut = ComputeFuture(tid)
                fut._executor = weakref.ref(self)
                futures.append(fut)
                status = statuses.get(tid, {})
                if status.get("status") in ("success", "failed"):
                    self._resolve(fut, status)
                    continue
                with self._lock:
                    self._futures[tid] = fut
                    early = self._early.pop(tid, None)
                if early is not None:
                    self._on_result(early)
        return futures

    # -- shutdown ------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks.  ``cancel_futures`` cancels every task not started;
        ``wait`` waits for the rest.  Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._queue.put(_STOP)
        if cancel_futures:
            self._cancel_all()
        self._submitter.join()
        if wait:
            with self._lock:
                open_futures = list(self._futures.values())
            for fut in open_futures:
                try:
                    fut.exception()
                except CancelledError:
                    pass
        self._subscription.close()

    def _cancel_all(self) -> None:
        with self._lock:
            futures = dict(self._futures)
        if futures:
            r = self.client.transport.cancel(
                list(futures), terminate=self.cancel_running
            )
            for tid, answer in r["results"].items():
                fut = futures.get(tid)
                if fut is not None and answer in ("cancelled", "terminated"):
                    with self._lock:
                        self._futures.pop(tid, None)
                    Future.cancel(fut)

    def get_worker_hardware_details(self) -> str:
        """The hardware report of the endpoint's workers (waits for it)."""
        from freight.client.hardware import run_hardware_report

        result: str = self.submit(run_hardware_report).result()
        return result


def _set_result(fut: Future[Any], value: Any) -> None:
    try:
        fut.set_result(value)
    except Exception:  # cancelled or set meanwhile
        pass


def _set_exception(fut: Future[Any], exc: BaseException) -> None:
    try:
        fut.set_exception(exc)
    except Exception:
        pass
