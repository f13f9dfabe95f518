"""``Executor``: a ``concurrent.futures.Executor`` whose tasks run on an endpoint.

The reference's names and call shapes (``submit``,
``submit_to_registered_function``, ``register_function``,
``register_source_code``, ``reload_tasks``, ``shutdown``, the settable
``endpoint_id``, ``task_group_id``, ``serializer``, ``resource_specification``,
``user_endpoint_config`` and ``result_serializers``), plus what it lacks:

* ``map(fn, *iterables, timeout=None, chunksize=1)``: ordered and lazy.  It keeps
  at most ``map_window`` tasks in flight (the first window is sent when ``map``
  is called, the next task each time a result is consumed), so an endless input
  works and a million-item map holds only the window in memory; ``chunksize``
  packs that many calls into one task message.  A failed call raises its own
  exception at its position.
* real cancellation: ``future.cancel()`` stops a task that has not started (it
  never runs, and the service records it failed with ``TaskCancelled``); with
  ``cancel_running=True``, or by ``future.terminate()``, a running one is stopped
  too (where the engine can: the ``process`` engine can, ``thread`` cannot).
* results are pushed: the executor subscribes to its task group's result stream,
  and a finished task resolves its future without any status request.

Submissions are checked and serialized on the caller's thread, so a bad argument,
an unknown function or endpoint id, or a payload over the service's limit raises
at ``submit`` with nothing stored; one submitter thread sends them in batches of
up to ``batch_size``.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor as _BaseExecutor
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures import wait as _wait_futures
from dataclasses import dataclass
from typing import Any

from freight.client._checks import (
    check_bool,
    check_json_dict,
    check_str,
    check_uuid,
    optional_uuid,
)
from freight.client.client import Client
from freight.client.errors import task_exception
from freight.serialize import ComputeSerializer, Strategylike, validate_strategylike
from freight.service.errors import PayloadTooLarge, ServiceError

__all__ = ["ComputeFuture", "Executor"]


class ComputeFuture(Future[Any]):
    """A ``Future`` with the task's id (``task_id``, set once the service has
    the task) and the means to stop it (``cancel``, ``terminate``)."""

    def __init__(self, task_id: str | None = None) -> None:
        super().__init__()
        self.task_id = task_id
        self._executor: weakref.ReferenceType[Executor] | None = None
        self._metadata: dict[str, Any] = {}

    def _owner(self) -> Executor | None:
        return self._executor() if self._executor is not None else None

    def cancel(self) -> bool:
        """Cancel the task: one not yet sent, or sent but not started, never runs
        (True); a running one is stopped only if its executor has
        ``cancel_running`` set.  False if it finished or keeps running."""
        if self.done():
            return self.cancelled()
        ex = self._owner()
        if ex is None:
            return _cancel_now(self)
        return ex._cancel([self], terminate=ex.cancel_running)[0]

    def terminate(self) -> bool:
        """Stop the task even if it is running; True if it was stopped."""
        if self.done():
            return self.cancelled()
        ex = self._owner()
        if ex is None:
            return _cancel_now(self)
        return ex._cancel([self], terminate=True)[0]


@dataclass(slots=True)
class _Pending:
    future: ComputeFuture
    function_id: str
    payload: Any
    chunk: bool


_STOP = object()
_FINAL = ("success", "failed")


def _payload_size(payload: Any) -> int:
    if isinstance(payload, str):
        return len(payload)
    return sum(memoryview(f).nbytes for f in payload)


class Executor(_BaseExecutor):
    """Runs functions on an endpoint; see the module docstring.

    With the embedded service, ``endpoint_id=None`` means the local endpoint.
    ``serializer`` replaces the client's serializer, as in the reference (it
    serializes functions, arguments, and decodes results);
    ``result_serializers`` are strategy-likes the endpoint uses for results.
    ``amqp_port``, ``api_burst_limit`` and ``api_burst_window_s`` are accepted
    for the reference's sake and unused here.  ``cancel_running`` makes
    ``future.cancel()`` and ``shutdown(cancel_futures=True)`` stop running tasks
    too; ``map_window`` bounds the tasks a ``map`` keeps in flight (default
    ``max(64, 8 * batch_size)``).
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
        map_window: int | None = None,
        **kwargs: Any,
    ) -> None:
        for key in kwargs:
            raise TypeError(f"'{key}' is an invalid argument for {type(self).__name__}")
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"client: expected a Client, got {type(client).__name__}")
        check_str(label, "label", empty=True)
        for name, value in (
            ("batch_size", batch_size),
            ("api_burst_limit", api_burst_limit),
            ("api_burst_window_s", api_burst_window_s),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if amqp_port is not None and (
            not isinstance(amqp_port, int) or isinstance(amqp_port, bool)
        ):
            raise TypeError(
                f"amqp_port: expected an int, got {type(amqp_port).__name__}"
            )
        check_bool(cancel_running, "cancel_running")
        if map_window is not None:
            if not isinstance(map_window, int) or isinstance(map_window, bool):
                raise TypeError(
                    f"map_window: expected an int, got {type(map_window).__name__}"
                )
            if map_window < 1:
                raise ValueError(f"map_window: expected at least 1, got {map_window}")
        tg = optional_uuid(task_group_id, "task_group_id")
        ep = optional_uuid(endpoint_id, "endpoint_id")
        if serializer is not None and not isinstance(serializer, ComputeSerializer):
            raise TypeError(
                "serializer: expected a ComputeSerializer, got"
                f" {type(serializer).__name__}"
            )
        self._resource_specification = check_json_dict(
            resource_specification, "resource_specification"
        )
        self._user_endpoint_config = check_json_dict(
            user_endpoint_config, "user_endpoint_config"
        )
        self._result_serializers: list[str] | None = None
        self._result_serializers_given: Iterable[Strategylike] | None = None
        self.result_serializers = result_serializers

        self.client = client or Client()
        if serializer is not None:
            self.client.fx_serializer = serializer
        self.label = label
        self.batch_size = max(1, batch_size)
        self.map_window = map_window or max(64, 8 * self.batch_size)
        self.amqp_port = amqp_port
        self.api_burst_limit = min(8, max(1, api_burst_limit))
        self.api_burst_window_s = min(32, max(1, api_burst_window_s))
        self.cancel_running = cancel_running
        self.task_count_submitted = 0

        self._lock = threading.RLock()
        # Sent tasks whose outcome has not been pushed yet, by task id.
        self._futures: dict[str, ComputeFuture] = {}
        # Futures queued for the submitter thread.
        self._queued: set[ComputeFuture] = set()
        # Held by the submitter from choosing what to send until the sent tasks
        # have their ids, so a cancel sees a future either unsent or sent.
        self._send_lock = threading.Lock()
        # Outcomes pushed while their ids were not known yet (during a send).
        self._early: dict[str, dict[str, Any]] = {}
        self._sending = 0
        # Tasks being cancelled, and outcomes pushed for them meanwhile.
        self._cancelling: set[str] = set()
        self._cancel_outcomes: dict[str, dict[str, Any]] = {}
        self._functions: dict[Any, str] = {}
        self._known_functions: set[str] = set()
        self._known_endpoints: set[str] = set()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped = False
        self._closed = threading.Event()

        self._endpoint_id: str | None = None
        self.endpoint_id = ep
        self._task_group_id = tg or str(uuid.uuid4())
        self._subscription = self.client.transport.subscribe(
            self._task_group_id, self._on_result
        )
        self._submitter = threading.Thread(
            target=self._submit_loop, name="freight-submitter", daemon=True
        )
        self._submitter.start()

    def __repr__(self) -> str:
        label = f"{self.label}; " if self.label else ""
        ep = f"ep_id:{self._endpoint_id}; " if self._endpoint_id else ""
        return (
            f"{type(self).__name__}<{label}{ep}tg_id:{self._task_group_id};"
            f" bs:{self.batch_size}>"
        )

    # -- settings ------------------------------------------------------------------
    @property
    def endpoint_id(self) -> str | None:
        """The endpoint tasks go to (on the embedded service, the local one when
        set to ``None``)."""
        return self._endpoint_id

    @endpoint_id.setter
    def endpoint_id(self, value: str | uuid.UUID | None) -> None:
        ep = optional_uuid(value, "endpoint_id")
        if ep is None and self.client.binary_payloads:
            ep = self.client.local_endpoint_id
        self._endpoint_id = ep

    @property
    def task_group_id(self) -> str:
        """The task group of this executor's tasks; results are pushed for this
        group.  Setting it (e.g. before ``reload_tasks()``) moves the result
        stream to the new group (``None``: a new one)."""
        return self._task_group_id

    @task_group_id.setter
    def task_group_id(self, value: str | uuid.UUID | None) -> None:
        tg = optional_uuid(value, "task_group_id") or str(uuid.uuid4())
        with self._lock:
            if tg == self._task_group_id:
                return
            old = self._subscription
            self._task_group_id = tg
            self._subscription = self.client.transport.subscribe(tg, self._on_result)
        old.close()

    @property
    def resource_specification(self) -> dict[str, Any] | None:
        """Resource requirements sent with each task (``timeout_s``,
        ``memory_mb`` ...); a JSON-serializable dict or ``None``."""
        return self._resource_specification

    @resource_specification.setter
    def resource_specification(self, value: dict[str, Any] | None) -> None:
        self._resource_specification = check_json_dict(value, "resource_specification")

    @property
    def user_endpoint_config(self) -> dict[str, Any] | None:
        """Endpoint configuration values sent with each task; a
        JSON-serializable dict or ``None``."""
        return self._user_endpoint_config

    @user_endpoint_config.setter
    def user_endpoint_config(self, value: dict[str, Any] | None) -> None:
        self._user_endpoint_config = check_json_dict(value, "user_endpoint_config")

    @property
    def serializer(self) -> ComputeSerializer:
        """The client's serializer (functions, arguments and results); setting it
        sets the client's, as in the reference."""
        return self.client.fx_serializer

    @serializer.setter
    def serializer(self, value: ComputeSerializer) -> None:
        if not isinstance(value, ComputeSerializer):
            raise TypeError(
                f"serializer: expected a ComputeSerializer, got {type(value).__name__}"
            )
        self.client.fx_serializer = value

    @property
    def result_serializers(self) -> Iterable[Strategylike] | None:
        """The strategy-likes the endpoint serializes results with (the first
        that succeeds), as given; ``None`` for the endpoint's default."""
        return self._result_serializers_given

    @result_serializers.setter
    def result_serializers(self, value: Iterable[Strategylike] | None) -> None:
        if value is None:
            self._result_serializers = None
            self._result_serializers_given = None
            return
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError(
                "result_serializers: expected a list of strategy-likes, got"
                f" {type(value).__name__}"
            )
        given = list(value)
        paths: list[str] = []
        for v in given:
            try:
                paths.append(validate_strategylike(v).import_path)
            except Exception as e:
                raise ValueError(f"result_serializers: {e}") from e
        self._result_serializers = paths or None
        self._result_serializers_given = given

    @property
    def in_flight(self) -> int:
        """Tasks submitted here and not finished yet: queued for the submitter
        thread, or sent and awaiting their outcome."""
        with self._lock:
            return len(self._queued) + sum(
                1 for f in self._futures.values() if not f.done()
            )

    # -- functions -----------------------------------------------------------------
    def register_function(
        self, fn: Callable[..., Any], function_id: str | None = None, **kwargs: Any
    ) -> str:
        """Register ``fn`` with the service (``kwargs`` go to
        ``Client.register_function``) and cache its id here, or cache the given
        ``function_id`` without a request.  Raises ``ValueError`` if ``fn`` is
        cached already, unless ``function_id`` is the cached id (as the
        reference)."""
        if self._stopped:
            raise RuntimeError(f"{self!r} is shutdown; refusing to register function")
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        fid = optional_uuid(function_id, "function_id")
        with self._lock:
            known = self._functions.get(fn)
        if known is not None:
            if fid == known:
                return known
            extra = f" (attempted id: {fid})" if fid else ""
            raise ValueError(
                f"Function already registered as function id: {known}{extra}"
            )
        if fid is None:
            fid = self.client.register_function(fn, **kwargs)
        with self._lock:
            self._functions[fn] = fid
            self._known_functions.add(fid)
        return fid

    def register_source_code(
        self, source: str, function_name: str, **registration_kwargs: Any
    ) -> str:
        """Register ``source`` with entry point ``function_name`` (see
        ``Client.register_source_code``) and cache its id; ``ValueError`` if this
        source is cached already."""
        if self._stopped:
            raise RuntimeError(f"{self!r} is shutdown; refusing to register function")
        check_str(source, "source")
        key = ("source", source)
        with self._lock:
            known = self._functions.get(key)
        if known is not None:
            raise ValueError(f"Function already registered as function id: {known}")
        fid = self.client.register_source_code(
            source, function_name, **registration_kwargs
        )
        with self._lock:
            self._functions[key] = fid
            self._known_functions.add(fid)
        return fid

    def _function_id(self, fn: Callable[..., Any]) -> str:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        with self._lock:
            known = self._functions.get(fn)
        return known if known is not None else self.register_function(fn)

    def _check_endpoint(self, endpoint_id: str) -> None:
        """Raise ``UnknownEndpoint`` now (asked once per id), before anything is
        stored, rather than failing a whole batch later."""
        if endpoint_id not in self._known_endpoints:
            self.client.transport.get_endpoint_status(endpoint_id)
            self._known_endpoints.add(endpoint_id)

    def _check_function(self, function_id: str) -> None:
        """Raise ``UnknownFunction`` now (asked once per id)."""
        if function_id not in self._known_functions:
            self.client.transport.get_function(function_id)
            self._known_functions.add(function_id)

    # -- submission ----------------------------------------------------------------
    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> ComputeFuture:
        """Run ``fn(*args, **kwargs)`` on the endpoint; returns its future.  The
        function is registered on first use (cached by identity), once the
        endpoint is known and the arguments serialized: a refused call stores
        nothing."""
        ep = self._check_open()
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        self._check_endpoint(ep)
        payload = self._checked_size(self._encode_call(args, kwargs))
        return self._enqueue(self._function_id(fn), payload, chunk=False)

    def submit_to_registered_function(
        self,
        function_id: str,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> ComputeFuture:
        """Run a registered function by id; returns its future.  Raises at the
        call, with nothing sent: ``UnknownFunction``/``UnknownEndpoint`` for an
        unknown id, ``SerializationError`` (with the strategy's reason) if the
        arguments cannot be serialized, ``PayloadTooLarge`` over the service's
        limit."""
        ep = self._check_open()
        fid = check_uuid(function_id, "function_id")
        args = () if args is None else args
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(args, tuple | list):
            raise TypeError(f"args: expected a tuple, got {type(args).__name__}")
        if not isinstance(kwargs, dict):
            raise TypeError(f"kwargs: expected a dict, got {type(kwargs).__name__}")
        bad = next((k for k in kwargs if not isinstance(k, str)), None)
        if bad is not None:
            raise TypeError(f"kwargs: expected str keys, got {type(bad).__name__}")
        self._check_endpoint(ep)
        self._check_function(fid)
        payload = self._checked_size(self._encode_call(tuple(args), kwargs))
        return self._enqueue(fid, payload, chunk=False)

    def _check_open(self) -> str:
        if self._stopped:
            raise RuntimeError(
                f"{self!r} is shutdown; no new functions may be executed"
            )
        if self._endpoint_id is None:
            raise ValueError(
                "No endpoint_id set.  Did you forget to set it at construction?\n"
                "  Hint:\n\n"
                "    gce = Executor(endpoint_id=<ep_id>)\n"
                "    gce.endpoint_id = <ep_id>    # alternative"
            )
        return self._endpoint_id

    def _encode_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        serde = self.serializer
        if self.client.binary_payloads:
            return serde.dumps_frames((args, kwargs))
        return serde.pack_buffers([serde.serialize(args), serde.serialize(kwargs)])

    def _encode_chunk(self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Any:
        serde = self.serializer
        if self.client.binary_payloads:
            return serde.dumps_frames(calls)
        return serde.pack_buffers([serde.serialize(calls)])

    def _checked_size(self, payload: Any) -> Any:
        """``payload``, or ``PayloadTooLarge`` if the service announces a limit
        (the in-process one does) and it is over it."""
        limit = getattr(self.client.transport, "max_payload_bytes", None)
        if isinstance(limit, int):
            size = _payload_size(payload)
            if size > limit:
                raise PayloadTooLarge(
                    f"the task's payload is {size} bytes, over the service's limit"
                    f" of {limit} bytes"
                )
        return payload

    def _enqueue(self, function_id: str, payload: Any, *, chunk: bool) -> ComputeFuture:
        fut = ComputeFuture()
        fut._executor = weakref.ref(self)
        with self._lock:
            if self._stopped:
                raise RuntimeError(
                    f"{self!r} is shutdown; no new functions may be executed"
                )
            self._queued.add(fut)
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
            try:
                with self._send_lock:
                    live = [p for p in batch if not p.future.cancelled()]
                    for chunk in (False, True):
                        part = [p for p in live if p.chunk is chunk]
                        if part:
                            self._send(part, chunk)
            except BaseException as exc:  # never leave a future hanging
                for p in batch:
                    _set_exception(p.future, exc)
            finally:
                with self._lock:
                    self._queued.difference_update(p.future for p in batch)
            if stop:
                return

    def _body(self, tasks: dict[str, list[Any]], chunk: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "create_queue": False,
            "tasks": tasks,
            "task_group_id": self._task_group_id,
        }
        if self._resource_specification:
            body["resource_specification"] = self._resource_specification
        if self._user_endpoint_config:
            body["user_endpoint_config"] = self._user_endpoint_config
        if self._result_serializers:
            body["result_serializers"] = self._result_serializers
        if chunk:
            body["freight_chunked"] = True
        return body

    def _send(self, part: list[_Pending], chunk: bool) -> None:
        tasks: dict[str, list[Any]] = {}
        for p in part:
            tasks.setdefault(p.function_id, []).append(p.payload)
        endpoint_id = self._endpoint_id
        assert endpoint_id is not None
        with self._lock:
            self._sending += 1
        try:
            r = self.client.transport.submit(endpoint_id, self._body(tasks, chunk))
        except ServiceError as exc:
            self._end_send([])
            if len(part) > 1:  # one bad task must not fail its neighbours
                for p in part:
                    self._send([p], chunk)
                return
            for p in part:
                _set_exception(p.future, exc)
            return
        except Exception as exc:
            self._end_send([])
            for p in part:
                _set_exception(p.future, exc)
            return
        ids = {fid: iter(tids) for fid, tids in r["tasks"].items()}
        for p in part:
            p.future.task_id = next(ids[p.function_id])
        early = self._end_send(part)
        for fut, message in early:
            self._resolve(fut, message)

    def _end_send(
        self, part: list[_Pending]
    ) -> list[tuple[ComputeFuture, dict[str, Any]]]:
        """Register ``part``'s futures; returns those whose outcome came early."""
        early: list[tuple[ComputeFuture, dict[str, Any]]] = []
        with self._lock:
            for p in part:
                tid = p.future.task_id
                assert tid is not None
                message = self._early.pop(tid, None)
                if message is None:
                    self._futures[tid] = p.future
                else:
                    early.append((p.future, message))
            self.task_count_submitted += len(part)
            self._sending -= 1
            if not self._sending:
                self._early.clear()  # outcomes of other clients' tasks in the group
        return early

    # -- results -------------------------------------------------------------------
    def _on_result(self, message: dict[str, Any]) -> None:
        tid = str(message.get("task_id"))
        with self._lock:
            fut = self._futures.get(tid)
            if fut is None:
                if self._sending:
                    self._early[tid] = message
                return
            del self._futures[tid]
            if tid in self._cancelling:
                self._cancel_outcomes[tid] = message
                return
        self._resolve(fut, message)

    def _resolve(self, fut: ComputeFuture, message: dict[str, Any]) -> None:
        if fut.done():
            return
        if message.get("status") == "success":
            try:
                value = self.client._decode_result(
                    message.get("result"), str(fut.task_id)
                )
            except Exception as exc:
                _set_exception(fut, exc)
                return
            _set_result(fut, value)
        else:
            _set_exception(fut, task_exception(message))

    # -- cancellation ----------------------------------------------------------------
    def _cancel(self, futures: list[ComputeFuture], *, terminate: bool) -> list[bool]:
        """Cancel each future's task (see ``ComputeFuture.cancel``)."""
        done: dict[int, bool] = {}
        sent: list[ComputeFuture] = []
        unsent: list[ComputeFuture] = []
        for fut in futures:
            if fut.done():
                done[id(fut)] = fut.cancelled()
            elif fut.task_id is None:
                unsent.append(fut)
            else:
                sent.append(fut)
        if unsent:
            with self._send_lock:  # not being sent now: unsent, or sent with an id
                for fut in unsent:
                    if fut.task_id is None or fut.done():
                        # The submitter skips a cancelled future.
                        done[id(fut)] = _cancel_now(fut)
                    else:
                        sent.append(fut)
        if sent:
            done.update(self._cancel_sent(sent, terminate=terminate))
        return [done[id(f)] for f in futures]

    def _cancel_sent(
        self, futures: list[ComputeFuture], *, terminate: bool
    ) -> dict[int, bool]:
        tids = [str(f.task_id) for f in futures]
        with self._lock:
            self._cancelling.update(tids)
        try:
            answers: dict[str, str] = self.client.transport.cancel(
                tids, terminate=terminate
            )["results"]
        except Exception:
            answers = {}
        finally:
            with self._lock:
                self._cancelling.difference_update(tids)
                outcomes = {
                    t: self._cancel_outcomes.pop(t)
                    for t in tids
                    if t in self._cancel_outcomes
                }
        result: dict[int, bool] = {}
        for fut, tid in zip(futures, tids, strict=True):
            message = outcomes.get(tid)
            if answers.get(tid) in ("cancelled", "terminated"):
                # Its outcome (TaskCancelled, or the engine's report of the stop)
                # is the cancellation itself; one still to come is dropped.
                result[id(fut)] = _cancel_now(fut)
            else:
                result[id(fut)] = fut.cancelled()
                if message is not None:
                    self._resolve(fut, message)
        return result

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
        this call.  Closing the iterator early cancels the calls not started."""
        if not isinstance(chunksize, int) or isinstance(chunksize, bool):
            raise TypeError(
                f"chunksize: expected an int, got {type(chunksize).__name__}"
            )
        if chunksize < 1:
            raise ValueError(f"chunksize: expected at least 1, got {chunksize}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(
                    "timeout: expected a number of seconds, got"
                    f" {type(timeout).__name__}"
                )
            if math.isnan(timeout) or timeout < 0:
                raise ValueError(f"timeout: expected >= 0 seconds, got {timeout}")
        ep = self._check_open()
        try:
            its = [iter(it) for it in iterables]
        except TypeError as e:
            raise TypeError(f"iterables: each must be iterable ({e})") from None
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        self._check_endpoint(ep)
        deadline = None if timeout is None else _monotonic() + timeout
        inflight: deque[ComputeFuture] = deque()
        calls = zip(*its, strict=False)
        chunks = (list(itertools.islice(calls, chunksize)) for _ in itertools.count())
        feeder = _Feeder(self, fn, chunks, chunksize, inflight)
        feeder.fill()  # the first window goes out now, as the stdlib's map does
        return self._map_results(feeder, inflight, chunksize, deadline)

    def _map_results(
        self,
        feeder: _Feeder,
        inflight: deque[ComputeFuture],
        chunksize: int,
        deadline: float | None,
    ) -> Iterator[Any]:
        try:
            while inflight:
                fut = inflight[0]
                remaining = None if deadline is None else deadline - _monotonic()
                try:
                    value = fut.result(remaining)
                except FuturesTimeout:
                    raise TimeoutError("map: a result did not arrive in time") from None
                inflight.popleft()
                del fut
                feeder.fill()
                if chunksize == 1:
                    yield value
                    continue
                for ok, item in value:
                    if not ok:
                        raise task_exception(
                            {
                                "exception_record": item,
                                "exception": (item or {}).get("traceback") or "",
                            }
                        ).with_traceback(None)
                    yield item
            if feeder.error is not None:
                raise feeder.error
        finally:
            feeder.stop()
            left = [f for f in inflight if not f.done()]
            if left and not self._closed.is_set():
                self._cancel(left, terminate=False)

    # -- reattach ------------------------------------------------------------------
    def reload_tasks(
        self, task_group_id: str | uuid.UUID | None = None
    ) -> list[ComputeFuture]:
        """Futures for every task of ``task_group_id`` (default: this
        executor's; given, it becomes this executor's), e.g. from a new process:
        finished ones are resolved at once, from the service's stored results
        (kept even if never fetched), the rest when their results are pushed."""
        if task_group_id is not None:
            self.task_group_id = task_group_id
        transport = self.client.transport
        tg = self._task_group_id
        ids = [str(t["id"]) for t in transport.get_taskgroup(tg)["tasks"]]
        futures: list[ComputeFuture] = []
        with self._lock:
            open_ids = {t for t, f in self._futures.items() if not f.done()}
        for start in range(0, len(ids), 1024):
            part = [t for t in ids[start : start + 1024] if t not in open_ids]
            fresh: dict[str, ComputeFuture] = {}
            with self._lock:  # registered first, so no pushed outcome is missed
                for tid in part:
                    fut = ComputeFuture(tid)
                    fut._executor = weakref.ref(self)
                    fresh[tid] = self._futures[tid] = fut
            statuses = transport.get_batch_status(part)["results"]
            for tid, fut in fresh.items():
                futures.append(fut)
                status = statuses.get(tid)
                if status is None:
                    with self._lock:
                        self._futures.pop(tid, None)
                    fut.set_exception(LookupError(f"task {tid} is no longer stored"))
                    continue
                if status.get("status") in _FINAL:
                    with self._lock:
                        owned = self._futures.pop(tid, None) is fut
                    if owned:
                        self._resolve(fut, status)
        return futures

    # -- shutdown ------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; idempotent.  Tasks already submitted are still
        sent.  ``cancel_futures`` cancels every task not started (and, with
        ``cancel_running``, stops running ones); ``wait`` blocks until every
        future of this executor is done, otherwise that happens in the
        background and the result stream closes after it."""
        check_bool(wait, "wait")
        check_bool(cancel_futures, "cancel_futures")
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            queued = list(self._queued)
        if cancel_futures and queued:
            self._cancel(queued, terminate=self.cancel_running)
        self._queue.put(_STOP)
        if wait:
            self._finish(cancel_futures)
        else:
            threading.Thread(
                target=self._finish,
                args=(cancel_futures,),
                name="freight-executor-shutdown",
                daemon=True,
            ).start()

    def _finish(self, cancel_futures: bool) -> None:
        self._submitter.join()
        with self._lock:
            open_futures = [f for f in self._futures.values() if not f.done()]
        if cancel_futures and open_futures:
            self._cancel(open_futures, terminate=self.cancel_running)
        _wait_futures(open_futures)
        self._closed.set()
        self._subscription.close()

    def get_worker_hardware_details(self) -> str:
        """The hardware report of the endpoint's workers (waits for it)."""
        from freight.client.hardware import run_hardware_report

        result: str = self.submit(
            run_hardware_report, "Compute Endpoint worker"
        ).result()
        return result


class _Feeder:
    """Keeps a map's window full: the next chunk of calls is encoded and queued
    each time one is taken out.  The function is registered when the first
    chunk has been encoded, so a refused map stores nothing."""

    def __init__(
        self,
        executor: Executor,
        fn: Callable[..., Any],
        chunks: Iterator[list[tuple[Any, ...]]],
        chunksize: int,
        inflight: deque[ComputeFuture],
    ) -> None:
        self._ex = executor
        self._fn = fn
        self._fid: str | None = None
        self.error: Exception | None = None
        self._chunks = chunks
        self._chunksize = chunksize
        self._inflight = inflight
        self._exhausted = False

    def fill(self) -> None:
        """Queue calls until the window is full.  A failure (an input that
        cannot be serialized, the executor shut down) raises at once if nothing
        was sent yet; otherwise it is kept in ``error`` and raised when
        iteration reaches its position, after the results in flight."""
        ex = self._ex
        while not self._exhausted and len(self._inflight) < ex.map_window:
            try:
                chunk = next(self._chunks)
                if not chunk:
                    self._exhausted = True
                    return
                if self._chunksize == 1:
                    payload = ex._encode_call(tuple(chunk[0]), {})
                else:
                    payload = ex._encode_chunk([(tuple(args), {}) for args in chunk])
                ex._checked_size(payload)
                if self._fid is None:  # registered once a first call is encoded
                    self._fid = ex._function_id(self._fn)
                fut = ex._enqueue(self._fid, payload, chunk=self._chunksize > 1)
            except Exception as exc:
                if self._fid is None:
                    raise
                self.error = exc
                self._exhausted = True
                return
            self._inflight.append(fut)

    def stop(self) -> None:
        self._exhausted = True


def _monotonic() -> float:
    import time

    return time.monotonic()


def _cancel_now(fut: Future[Any]) -> bool:
    """Cancel ``fut`` here and wake its waiters (``wait``, ``as_completed``);
    True if it is cancelled."""
    if Future.cancel(fut):
        fut.set_running_or_notify_cancel()
        return True
    return fut.cancelled()


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
