"""The service core: functions, endpoints, task groups, tasks and results.

``ServiceCore`` implements every call of ``freight.client.transport.Transport``
(the reference's REST routes, as dicts) and ``TaskSink`` for its endpoints.

**A task's life.**  ``submit`` validates the whole request (endpoint, every
function id, payload types and sizes, every option's type) before storing
anything: a bad request raises a ``ServiceError`` subclass and leaves no row
behind.  It records the batch's tasks in one transaction as
``waiting-for-launch`` and dispatches them.  The endpoint reports ``running``
(``started``) and then one outcome per task (``finished``); each outcome batch is
recorded in one transaction, and pushed to the task group's subscribers.
Statuses are the reference's (``STATUSES``), and a task only moves forward
through them.  A task is finished once: delivery from endpoints is at least once,
and a second outcome for a finished task is ignored.

**Nothing lost silently.**  A task cancelled before it started fails with
``TaskCancelled``.  One whose service stopped first fails with ``ServiceStopped``:
at ``shutdown`` for this instance's tasks, and for a process that died, at the
next start of any service on the same home, at a ``sweep``, or as soon as a read
(``get_task``, ``get_batch_status``, ``list_tasks``) meets one.  Tasks of another
live process sharing the home are never touched.

**Retention** follows the reference: a finished task is kept until its result is
retrieved (by ``get_task``, ``get_batch_status``, or a push that reached a
subscriber), then for ``result_retention_s`` more (argument, else
``$FREIGHT_RESULT_RETENTION_S``, else one day).  ``sweep()`` deletes what is due;
it runs at start, at most every ``sweep_every_s`` while results arrive, and, with
``start_sweeper()`` (the embedded service starts it), every ``sweep_every_s`` on a
thread of its own, so an idle service purges too.
Payloads over ``max_payload_bytes`` (argument, else
``$FREIGHT_MAX_PAYLOAD_BYTES``, else 256 MiB) are refused.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from freight.serialize import exception_to_dict
from freight.service.errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    UnknownContainer,
    UnknownEndpoint,
    UnknownFunction,
    UnknownTask,
    UnknownTaskGroup,
)
from freight.service.protocol import EndpointLink, TaskMessage, TaskOutcome
from freight.service.reference_dialect import (
    reference_submit_body,
    unwrap_function_code,
)
from freight.service.store import (
    FINAL,
    STATUSES,
    FinishRow,
    SQLiteStore,
    StoreClosed,
    TaskRow,
)

if TYPE_CHECKING:
    from freight.service.sql_store import SqlStore

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_RESULT_RETENTION_S",
    "MAX_PAYLOAD_ENV",
    "RESULT_RETENTION_ENV",
    "STATUSES",
    "ServiceCore",
    "ServiceStopped",
    "TaskCancelled",
]

API_VERSION = "1.0.0"
#: The largest task payload ``submit`` accepts by default (256 MiB).
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
#: How long a retrieved result is kept by default (one day).
DEFAULT_RESULT_RETENTION_S = 24 * 3600.0
#: Environment variables for the two limits (an argument wins over them).
MAX_PAYLOAD_ENV = "FREIGHT_MAX_PAYLOAD_BYTES"
RESULT_RETENTION_ENV = "FREIGHT_RESULT_RETENTION_S"
CONTAINER_TYPES = ("python", "docker", "podman", "apptainer", "singularity")
#: The ``resource_specification`` keys the service checks (the endpoint
#: enforces them); other keys pass through to engines that understand them.
RESOURCE_LIMIT_KEYS = ("timeout_s", "memory_mb")
_FUNCTION_CACHE = 1024
_MAX_LIST = 100_000

_log = logging.getLogger("freight.service")


class TaskCancelled(Exception):
    """The task was cancelled before it started; it never ran."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"task {self.task_id} was cancelled before it started; it never ran"


class ServiceStopped(Exception):
    """The service stopped (shut down, or its process died) before the task
    finished; the task was not re-run."""

    def __init__(self, task_id: str, how: str) -> None:
        super().__init__(task_id, how)
        self.task_id = task_id
        self.how = how

    def __str__(self) -> str:
        return (
            f"task {self.task_id} did not finish: the service stopped ({self.how})"
            " while it was pending or running; it was not re-run"
        )


# -- validation ------------------------------------------------------------------
def _check_uuid(value: object, what: str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{what} must be a UUID string, got {type(value).__name__}"
        )
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidRequest(f"{what} is not a valid UUID: {value!r}") from None


def _optional_uuid(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return None if value is None else _check_uuid(value, key)


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{key} must be a string, got {type(value).__name__}")
    return value


def _optional_bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"{key} must be true or false, got {type(value).__name__}")
    return value


def _object(value: object, what: str) -> dict[str, Any] | None:
    """``value`` as a dict with string keys (``None`` stays ``None``)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{what} must be an object, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidRequest(
                f"{what} keys must be strings, got {type(key).__name__}"
            )
    return dict(value)


def _resource_specification(value: object) -> dict[str, Any] | None:
    spec = _object(value, "resource_specification")
    if spec:
        for key in RESOURCE_LIMIT_KEYS:
            limit = spec.get(key)
            if limit is None:
                continue
            if (
                isinstance(limit, bool)
                or not isinstance(limit, int | float)
                or not math.isfinite(limit)
                or limit <= 0
            ):
                raise InvalidRequest(
                    f"resource_specification[{key!r}] must be a positive number,"
                    f" got {limit!r}"
                )
    return spec


def _payload_size(payload: object, where: str, limit: int) -> int:
    """The payload's size in bytes, or a lower bound of it when that is already
    over ``limit``; raises ``InvalidRequest`` for a payload of the wrong type."""
    if isinstance(payload, str):
        chars = len(payload)
        if chars > limit or chars * 4 <= limit:
            return chars  # UTF-8 needs 1 to 4 bytes a character
        return len(payload.encode())
    if isinstance(payload, list | tuple):
        if not payload:
            raise InvalidRequest(f"{where}: a binary payload needs at least one frame")
        size = 0
        for frame in payload:
            if isinstance(frame, str):
                raise InvalidRequest(
                    f"{where}: a binary payload frame must be bytes-like, got str"
                )
            try:
                size += memoryview(frame).nbytes
            except TypeError:
                raise InvalidRequest(
                    f"{where}: a binary payload frame must support the buffer"
                    f" protocol, got {type(frame).__name__}"
                ) from None
        return size
    raise InvalidRequest(
        f"{where}: a task payload must be a str (text envelope) or a list of frames"
        f" (binary envelope), got {type(payload).__name__}"
    )


def _limit_arg(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{what} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= _MAX_LIST:
        raise InvalidRequest(f"{what} must be between 1 and {_MAX_LIST}, got {value}")
    return value


def _setting(
    value: float | None, env: str, default: float, kind: type[int] | type[float]
) -> float:
    """An argument, else the environment variable ``env``, else ``default``;
    raises ``ValueError`` naming the source of a bad value."""
    source = "argument"
    if value is None:
        raw = os.environ.get(env)
        if not raw:
            return default
        source = f"${env}"
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{source} must be a number, got {raw!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{env}: expected a number, got {type(value).__name__}")
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{source} {env}: expected a number >= 0, got {value!r}")
    return value


def _new_task_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs from one read of the OS's randomness."""
    raw = os.urandom(16 * count)
    return [
        str(uuid.UUID(bytes=raw[i : i + 16], version=4))
        for i in range(0, 16 * count, 16)
    ]


# -- response bodies -------------------------------------------------------------
def _status_dict(row: TaskRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task_id": row.task_id,
        "status": row.status,
        "task_group_id": row.task_group_id,
    }
    if row.status in FINAL:
        out["completion_t"] = str(row.completed)
        if row.status == "success":
            out["result"] = row.result
        else:
            out["exception"] = row.exception_text or ""
            out["exception_record"] = row.exception
    out["details"] = row.details or {}
    return out


def _outcome_dict(outcome: TaskOutcome, task_group_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task_id": outcome.task_id,
        "status": outcome.status,
        "task_group_id": task_group_id,
        "completion_t": str(outcome.completion_t),
    }
    if outcome.status == "success":
        out["result"] = outcome.result
    else:
        out["exception"] = outcome.exception_text or ""
        out["exception_record"] = outcome.exception
    out["details"] = outcome.details
    return out


def _error_fields(exc: Exception) -> tuple[dict[str, Any], str]:
    return exception_to_dict(exc), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


class _Subscription:
    """One result stream; see ``ServiceCore.subscribe``."""

    def __init__(
        self,
        core: ServiceCore,
        key: str | None,
        callback: Callable[[dict[str, Any]], None],
    ) -> None:
        self._core = core
        self.key = key
        self.callback = callback
        self._closed = False
        # Held while a message is handed over, so that once close() returns no
        # delivery is under way (re-entrant: a callback may close its own stream).
        self._lock = threading.RLock()

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, message: dict[str, Any]) -> bool:
        """Hand ``message`` to the callback; True if it took it without raising."""
        with self._lock:
            if self._closed:
                return False
            try:
                self.callback(message)
            except Exception:  # a subscriber's bug must not lose results for others
                _log.exception(
                    "a result subscriber raised on task %s", message.get("task_id")
                )
                return False
            return True

    def close(self) -> None:
        """Stop the stream: after this returns, no message is delivered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._core._unsubscribe(self)


class ServiceCore:
    """The service core over ``store``; see the module docstring.

    ``clock`` gives the time used for retention (``time.time``; tests inject
    their own).  Raises ``ValueError`` for a bad limit from the environment.
    """

    def __init__(
        self,
        store: SQLiteStore | SqlStore,
        *,
        max_payload_bytes: int | None = None,
        result_retention_s: float | None = None,
        clock: Callable[[], float] = time.time,
        sweep_every_s: float = 60.0,
    ) -> None:
        self.store = store
        self.max_payload_bytes = int(
            _setting(max_payload_bytes, MAX_PAYLOAD_ENV, DEFAULT_MAX_PAYLOAD_BYTES, int)
        )
        self.result_retention_s = float(
            _setting(
                result_retention_s,
                RESULT_RETENTION_ENV,
                DEFAULT_RESULT_RETENTION_S,
                float,
            )
        )
        self._clock = clock
        self.sweep_every_s = sweep_every_s
        self._endpoints: dict[str, EndpointLink] = {}
        self._lock = threading.RLock()
        # Held by submit from storing to dispatching, and by shutdown to close:
        # no task is stored after shutdown looked for the unfinished ones.
        self._gate = threading.RLock()
        # Tasks this instance dispatched and has no outcome for: task id ->
        # (task group id, endpoint id).
        self._inflight: dict[str, tuple[str, str]] = {}
        self._subs: dict[str | None, list[_Subscription]] = {}
        self._functions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._last_sweep = -math.inf
        self._closed = False
        self._stop_sweeper = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.sweep()

    def start_sweeper(self) -> None:
        """Sweep every ``sweep_every_s`` on a thread of its own until
        ``shutdown``, so an idle service purges too; idempotent."""
        with self._lock:
            if self._sweeper is not None or self._closed:
                return
            self._sweeper = threading.Thread(
                target=self._sweep_loop, name="freight-sweeper", daemon=True
            )
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        while not self._stop_sweeper.wait(self.sweep_every_s):
            if self._closed:
                return
            if self._clock() - self._last_sweep >= self.sweep_every_s:
                try:
                    self.sweep()
                except Exception:  # a failed sweep is retried at the next tick
                    _log.exception("the retention sweep failed")

    @property
    def closed(self) -> bool:
        """True once ``shutdown`` ran."""
        return self._closed

    @property
    def endpoint_ids(self) -> list[str]:
        """The ids of the attached endpoints, in attach order."""
        with self._lock:
            return list(self._endpoints)

    # -- lifecycle -----------------------------------------------------------------
    def add_endpoint(self, link: EndpointLink) -> None:
        """Attach an endpoint; it starts and receives tasks from now on."""
        if self._closed:
            raise ServiceUnavailable("the service has shut down")
        with self._lock:
            self._endpoints[link.endpoint_id] = link
        link.attach(self)

    def shutdown(self) -> None:
        """Stop every endpoint, fail what did not finish with ``ServiceStopped``,
        end every subscription, close the store; idempotent."""
        with self._gate, self._lock:
            if self._closed:
                return
            self._closed = True
            links = list(self._endpoints.values())
        self._stop_sweeper.set()
        for link in links:
            try:
                link.shutdown()
            except Exception:
                _log.exception("endpoint %s failed to shut down", link.endpoint_id)
        try:
            leftover = self.store.unfinished_of_this_instance()
            if leftover:
                self.finished(
                    [self._failed(t, ServiceStopped(t, "shut down")) for t in leftover]
                )
        except StoreClosed:
            pass  # closed under us: the next start fails what was left
        finally:
            with self._lock:
                subs = [s for group in self._subs.values() for s in group]
            for sub in subs:
                sub.close()
            self.store.close()

    def _failed(self, task_id: str, exc: Exception) -> TaskOutcome:
        record, text = _error_fields(exc)
        return TaskOutcome(
            task_id,
            "failed",
            exception=record,
            exception_text=text,
            completion_t=time.time(),
        )

    def _fail_orphans(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self.finished(
                [
                    self._failed(t, ServiceStopped(t, "its process died"))
                    for t in task_ids
                ]
            )

    def sweep(self, now: float | None = None) -> dict[str, int]:
        """Fail the unfinished tasks of dead service processes, and delete tasks
        retrieved more than ``result_retention_s`` before ``now`` (default: the
        clock).  Returns ``{"orphans_failed": n, "purged": m}``."""
        if now is None:
            now = self._clock()
        self._last_sweep = now
        try:
            orphans = self.store.orphaned_tasks()
            self._fail_orphans(orphans)
            self.store.forget_dead_instances()
            purged = self.store.purge_retrieved(now - self.result_retention_s)
        except StoreClosed:
            return {"orphans_failed": 0, "purged": 0}
        return {"orphans_failed": len(orphans), "purged": purged}

    # -- version -------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        """``GET /v2/version?service=all``."""
        from freight import __version__

        return {
            "api": API_VERSION,
            "min_sdk_version": "2.0.0",
            "min_ep_version": "2.0.0",
            "freight_version": __version__,
        }

    # -- functions -----------------------------------------------------------------
    def register_function(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v3/functions``: stores the function, returns its id.

        ``function_name`` and ``function_code`` (a serialized function: a
        strategy's 3-character header, then its body, or the reference's
        ``pack_buffers`` of one such, stored unwrapped; or plain source with
        ``serialized: false``) are required; ``description``, ``meta`` (or
        ``metadata``, any JSON object), ``public``, ``group`` and
        ``container_uuid`` are optional.  Raises ``InvalidRequest`` for a wrong
        type or a missing field, ``UnknownContainer``; nothing is stored then.
        """
        import json

        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object")
        name = body.get("function_name")
        code = body.get("function_code")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("function_name must be a non-empty string")
        if not isinstance(code, str) or not code:
            raise InvalidRequest("function_code must be a non-empty string")
        if len(code) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"function_code is {len(code)} characters, over the service's limit"
                f" of {self.max_payload_bytes} bytes"
            )
        if _optional_bool(body, "serialized", True):
            code = unwrap_function_code(code)
            if len(code) < 3 or code[2] != "\n":
                raise InvalidRequest(
                    "function_code must start with a serialization strategy's"
                    " 3-character header (e.g. '01\\n'); send plain source with"
                    " serialized: false"
                )
        else:
            # The reference wraps raw source itself, as PureSourceTextInspect.
            code = "st\n" + name + ":" + code
        meta = _object(
            body["meta"] if body.get("meta") is not None else body.get("metadata"),
            "meta",
        )
        try:
            meta_text = json.dumps(meta) if meta is not None else None
        except (TypeError, ValueError) as e:
            raise InvalidRequest(f"meta must be JSON data: {e}") from None
        description = _optional_str(body, "description")
        public = _optional_bool(body, "public", False)
        group = _optional_uuid(body, "group")
        container = _optional_uuid(body, "container_uuid")
        if container is not None and self.store.get_container(container) is None:
            raise UnknownContainer(f"container {container} is not registered")
        function_id = str(uuid.uuid4())
        self.store.add_function(
            function_id,
            name,
            code,
            description=description,
            metadata=meta_text,
            public=public,
            group_id=group,
            container_id=container,
        )
        return {"function_uuid": function_id}

    def _function(self, function_id: str) -> dict[str, Any]:
        with self._lock:
            found = self._functions.get(function_id)
        if found is None:
            found = self.store.get_function(function_id)
            if found is None:
                raise UnknownFunction(f"function {function_id} is not registered")
            cid = found.get("container_uuid")
            found["container"] = self.store.get_container(cid) if cid else None
            with self._lock:
                self._functions[function_id] = found
                if len(self._functions) > _FUNCTION_CACHE:
                    self._functions.popitem(last=False)
        return found

    def get_function(self, function_id: str) -> dict[str, Any]:
        """``GET /v2/functions/{id}``."""
        fid = _check_uuid(function_id, "function_id")
        found = self.store.get_function(fid)
        if found is None:
            raise UnknownFunction(f"function {fid} is not registered")
        return found

    def delete_function(self, function_id: str) -> dict[str, Any]:
        """``DELETE /v2/functions/{id}``; tasks already submitted still run."""
        fid = _check_uuid(function_id, "function_id")
        if not self.store.delete_function(fid):
            raise UnknownFunction(f"function {fid} is not registered")
        with self._lock:
            self._functions.pop(fid, None)
        return {"result": 302, "function_uuid": fid}

    def list_functions(self, limit: int = 100) -> list[dict[str, Any]]:
        """*freight* the ``limit`` most recently registered functions, newest
        first: ``function_uuid``, ``function_name``, ``description``, ``public``,
        ``group``, ``container_uuid``, ``created`` (no code)."""
        return self.store.list_functions(_limit_arg(limit, "limit"))

    # -- containers ------------------------------------------------------------------
    def register_container(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v2/containers``: an execution environment (``type`` is one of
        ``python``, ``docker``, ``podman``, ``apptainer``/``singularity``;
        ``location`` a non-empty string; ``name`` and ``description``
        optional strings).  Raises ``InvalidRequest``; nothing is stored then."""
        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object")
        kind = body.get("type", body.get("container_type"))
        if not isinstance(kind, str) or kind not in CONTAINER_TYPES:
            raise InvalidRequest(
                f"container type must be one of {', '.join(CONTAINER_TYPES)};"
                f" got {kind!r}"
            )
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise InvalidRequest("location must be a non-empty string")
        name = _optional_str(body, "name")
        description = _optional_str(body, "description")
        container_id = str(uuid.uuid4())
        self.store.add_container(container_id, kind, location, name, description)
        return {"container_id": container_id}

    def get_container(self, container_id: str) -> dict[str, Any]:
        """``GET /v2/containers/{id}``."""
        cid = _check_uuid(container_id, "container_id")
        found = self.store.get_container(cid)
        if found is None:
            raise UnknownContainer(f"container {cid} is not registered")
        return found

    # -- tasks ---------------------------------------------------------------------
    def _link(self, endpoint_id: str) -> EndpointLink:
        eid = _check_uuid(endpoint_id, "endpoint_id")
        with self._lock:
            link = self._endpoints.get(eid)
        if link is None:
            raise UnknownEndpoint(f"endpoint {eid} is not known to this service")
        return link

    def submit(self, endpoint_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v3/endpoints/{id}/submit``; validates everything, stores the
        tasks in one transaction, dispatches them, returns their ids.  A batch
        from the reference SDK has its results serialized as the reference's
        endpoint would (``reference_dialect.reference_submit_body``).

        Raises ``UnknownEndpoint``, ``UnknownFunction``, ``PayloadTooLarge`` or
        ``InvalidRequest`` before anything is stored, and ``ServiceUnavailable``
        once the service has shut down or if the endpoint refuses the batch
        (whose tasks are then removed again).
        """
        if self._closed:
            raise ServiceUnavailable("the service has shut down")
        link = self._link(endpoint_id)
        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object")
        body = reference_submit_body(body)
        tasks = body.get("tasks")
        if not isinstance(tasks, Mapping) or not tasks:
            raise InvalidRequest(
                "tasks must be a non-empty object of function id -> payloads"
            )
        task_group_id = _optional_uuid(body, "task_group_id") or str(uuid.uuid4())
        spec = _resource_specification(body.get("resource_specification"))
        uec = _object(body.get("user_endpoint_config"), "user_endpoint_config")
        _object(body.get("user_runtime"), "user_runtime")
        _optional_bool(body, "create_queue", False)
        _optional_bool(body, "create_websocket_queue", False)
        serializers = body.get("result_serializers")
        if serializers is not None:
            if not isinstance(serializers, list | tuple) or not all(
                isinstance(s, str) and s for s in serializers
            ):
                raise InvalidRequest(
                    "result_serializers must be a list of strategy names"
                )
            serializers = list(serializers) or None
        chunked = _optional_bool(body, "freight_chunked", False)
        limit = self.max_payload_bytes
        prepared: list[tuple[Any, str, list[Any]]] = []
        count = 0
        for raw_fid, payloads in tasks.items():
            fid = _check_uuid(raw_fid, "a tasks key (function id)")
            if not isinstance(payloads, list | tuple) or not payloads:
                raise InvalidRequest(
                    f"tasks[{fid!r}] must be a non-empty list of payloads"
                )
            for i, payload in enumerate(payloads):
                size = _payload_size(payload, f"tasks[{fid!r}][{i}]", limit)
                if size > limit:
                    raise PayloadTooLarge(
                        f"tasks[{fid!r}][{i}] is {size} bytes or more, over the"
                        f" service's limit of {limit} bytes"
                    )
            prepared.append((raw_fid, fid, list(payloads)))
            count += len(payloads)
        functions = {fid: self._function(fid) for _, fid, _ in prepared}
        ids = iter(_new_task_ids(count))
        by_key: dict[str, list[str]] = {}
        messages: list[TaskMessage] = []
        pairs: list[tuple[str, str]] = []
        for raw_fid, fid, payloads in prepared:
            fn = functions[fid]
            code, container = fn["function_code"], fn["container"]
            out = by_key.setdefault(str(raw_fid), [])
            for payload in payloads:
                tid = next(ids)
                out.append(tid)
                pairs.append((tid, fid))
                messages.append(
                    TaskMessage(
                        tid,
                        fid,
                        code,
                        payload,
                        task_group_id,
                        spec,
                        uec,
                        serializers,
                        container,
                        chunked,
                    )
                )
        eid = link.endpoint_id
        with self._gate:
            if self._closed:
                raise ServiceUnavailable("the service has shut down")
            self.store.add_tasks(task_group_id, eid, pairs, "waiting-for-launch")
            where = (task_group_id, eid)
            with self._lock:
                inflight = self._inflight
                for tid, _ in pairs:
                    inflight[tid] = where
            try:
                link.dispatch(messages)
            except Exception as exc:
                task_ids = [t for t, _ in pairs]
                with self._lock:
                    for tid in task_ids:
                        self._inflight.pop(tid, None)
                self.store.remove_tasks(task_ids)
                raise ServiceUnavailable(
                    f"endpoint {eid} refused the tasks ({type(exc).__name__}: {exc});"
                    " none was stored"
                ) from exc
        # The reference's shape; function ids keep the request's order and spelling.
        return {
            "request_id": str(uuid.uuid4()),
            "task_group_id": task_group_id,
            "endpoint_id": eid,
            "tasks": by_key,
        }

    def _read(self, task_ids: Sequence[str]) -> dict[str, TaskRow]:
        """The stored rows of ``task_ids``, after failing any orphan among them."""
        rows = self.store.get_tasks(task_ids)
        orphans = self.store.orphans_among(rows.values())
        if orphans:
            self._fail_orphans(orphans)
            rows.update(self.store.get_tasks(orphans))
        return rows

    def get_task(self, task_id: str) -> dict[str, Any]:
        """``GET /v2/tasks/{id}``; a finished task counts as retrieved.  Raises
        ``UnknownTask`` for an id never seen or whose retention ended."""
        tid = _check_uuid(task_id, "task_id")
        row = self._read([tid]).get(tid)
        if row is None:
            raise UnknownTask(f"task {tid} is not known (or its retention ended)")
        if row.status in FINAL and row.retrieved is None:
            self.store.mark_retrieved([tid], self._clock())
        return _status_dict(row)

    def get_batch_status(self, task_ids: Sequence[str]) -> dict[str, Any]:
        """``POST /v2/batch_status``; finished tasks count as retrieved; unknown
        ids are left out, as the reference does."""
        if not isinstance(task_ids, list | tuple | set | frozenset):
            raise InvalidRequest("task_ids must be a list of task ids")
        ids = [_check_uuid(t, "task id") for t in task_ids]
        rows = self._read(ids)
        done = [t for t, r in rows.items() if r.status in FINAL and r.retrieved is None]
        if done:
            self.store.mark_retrieved(done, self._clock())
        return {
            "response": "batch",
            "results": {t: _status_dict(r) for t, r in rows.items()},
        }

    def get_taskgroup(self, task_group_id: str) -> dict[str, Any]:
        """``GET /v2/taskgroup/{id}``: its task ids in submission order."""
        tg = _check_uuid(task_group_id, "task_group_id")
        if not self.store.task_group_exists(tg):
            raise UnknownTaskGroup(f"task group {tg} is not known")
        return {
            "taskgroup_id": tg,
            "tasks": [{"id": t} for t in self.store.group_task_ids(tg)],
        }

    def list_tasks(
        self,
        limit: int = 50,
        *,
        status: str | None = None,
        task_group_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """*freight* the ``limit`` most recent tasks, newest first, optionally
        only those with ``status`` or of ``task_group_id``: ``task_id``,
        ``status``, ``function_id``, ``function_name``, ``endpoint_id``,
        ``task_group_id``, ``created``, ``completion_t`` (no results; listing
        retrieves nothing)."""
        limit = _limit_arg(limit, "limit")
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(STATUSES)}; got {status!r}"
            )
        tg = _check_uuid(task_group_id, "task_group_id") if task_group_id else None
        found = self.store.list_tasks(limit, status=status, task_group_id=tg)
        orphans = self.store.orphans_among(r for r, _ in found)
        if orphans:
            self._fail_orphans(orphans)
            found = self.store.list_tasks(limit, status=status, task_group_id=tg)
        return [
            {
                "task_id": r.task_id,
                "status": r.status,
                "function_id": r.function_id,
                "function_name": name,
                "endpoint_id": r.endpoint_id,
                "task_group_id": r.task_group_id,
                "created": r.created,
                "completion_t": r.completed,
            }
            for r, name in found
        ]

    def cancel(
        self, task_ids: Sequence[str], *, terminate: bool = False
    ) -> dict[str, Any]:
        """*freight* cancel tasks; see ``Transport.cancel``.  A task of another
        live process sharing the home cannot be reached and stays ``running``.
        Raises ``UnknownTask`` (cancelling nothing) for an unknown id."""
        if not isinstance(task_ids, list | tuple | set | frozenset):
            raise InvalidRequest("task_ids must be a list of task ids")
        if not isinstance(terminate, bool):
            raise InvalidRequest("terminate must be true or false")
        ids = list(dict.fromkeys(_check_uuid(t, "task id") for t in task_ids))
        by_link: dict[str, list[str]] = {}
        elsewhere: list[str] = []
        with self._lock:
            for tid in ids:
                where = self._inflight.get(tid)
                if where is None:
                    elsewhere.append(tid)
                else:
                    by_link.setdefault(where[1], []).append(tid)
        results: dict[str, str] = {}
        if elsewhere:
            rows = self._read(elsewhere)
            for tid in elsewhere:
                row = rows.get(tid)
                if row is None:
                    raise UnknownTask(f"task {tid} is not known")
                results[tid] = "finished" if row.status in FINAL else "running"
        for eid, tids in by_link.items():
            with self._lock:
                link = self._endpoints[eid]
            answers = link.cancel(tids, terminate=terminate)
            cancelled = [t for t in tids if answers.get(t) == "cancelled"]
            if cancelled:
                self.finished([self._failed(t, TaskCancelled(t)) for t in cancelled])
            unsure = [
                t for t in tids if answers.get(t) not in ("cancelled", "terminated")
            ]
            rows = self.store.get_tasks(unsure) if unsure else {}
            for t in tids:
                answer = answers.get(t, "unknown")
                if t in rows:
                    answer = "finished" if rows[t].status in FINAL else "running"
                results[t] = answer
        return {"results": results}

    # -- endpoints -----------------------------------------------------------------
    def get_endpoint_status(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v2/endpoints/{id}/status``."""
        return self._link(endpoint_id).status()

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v2/endpoints/{id}``."""
        return self._link(endpoint_id).metadata()

    def get_endpoints(self, role: str | None = None) -> list[dict[str, Any]]:
        """``GET /v2/endpoints``: ``uuid``, ``name``, ``status`` of each, in
        attach order."""
        if role is not None and role not in ("owner", "any"):
            raise InvalidRequest(f"role must be 'owner' or 'any', got {role!r}")
        with self._lock:
            links = list(self._endpoints.values())
        return [
            {
                "uuid": link.endpoint_id,
                "name": link.metadata().get("name"),
                "status": link.status().get("status"),
            }
            for link in links
        ]

    def get_allowed_functions(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v3/endpoints/{id}/allowed_functions``."""
        link = self._link(endpoint_id)
        allowed = link.allowed_functions()
        return {
            "endpoint_id": link.endpoint_id,
            "restricted": allowed is not None,
            "functions": allowed or [],
        }

    # -- results -------------------------------------------------------------------
    def subscribe(
        self,
        task_group_id: str | None,
        on_result: Callable[[dict[str, Any]], None],
    ) -> _Subscription:
        """*freight* push each task of ``task_group_id`` (``None``: of every
        group) that finishes from now on to ``on_result``, once, on the thread
        that recorded it; a pushed result counts as retrieved.  A callback that
        raises is logged and loses nothing for the other subscribers (its
        result stays retrievable).  ``close()`` on the returned stream stops it."""
        if not callable(on_result):
            raise InvalidRequest("on_result must be callable")
        key = _check_uuid(task_group_id, "task_group_id") if task_group_id else None
        if self._closed:
            raise ServiceUnavailable("the service has shut down")
        sub = _Subscription(self, key, on_result)
        with self._lock:
            self._subs.setdefault(key, []).append(sub)
        return sub

    def _unsubscribe(self, sub: _Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs and sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subs[sub.key]

    # TaskSink
    def started(self, task_ids: Sequence[str]) -> None:
        """The endpoint started these tasks: they become ``running``."""
        self.set_status(task_ids, "running")

    def set_status(self, task_ids: Sequence[str], status: str) -> None:
        """Move tasks forward to the unfinished ``status`` (one of ``STATUSES``
        before ``success``); a task already there or further on is left alone.
        Ignored once the store is closed."""
        if status not in STATUSES or status in FINAL:
            raise ValueError(f"not an unfinished task status: {status!r}")
        if task_ids:
            try:
                self.store.set_status(task_ids, status)
            except StoreClosed:
                pass

    def finished(self, outcomes: Sequence[TaskOutcome]) -> None:
        """Record outcomes in one transaction (each task once: an outcome for a
        finished task is ignored), then push the recorded ones to subscribers.
        Ignored once the store is closed (the tasks were failed by then)."""
        if not outcomes:
            return
        now = self._clock()
        rows: list[FinishRow] = []
        with self._lock:
            subs = self._subs
            everyone = None in subs
            inflight = self._inflight
            for o in outcomes:
                where = inflight.get(o.task_id)
                # Mark a result retrieved as it is recorded when someone is
                # listening; the rare push that reaches nobody undoes it below.
                pushed = where is not None and (everyone or where[0] in subs)
                rows.append(
                    (
                        o.task_id,
                        o.status,
                        o.result,
                        o.exception,
                        o.exception_text,
                        o.details,
                        o.completion_t,
                        now if pushed else None,
                    )
                )
        try:
            recorded = self.store.finish(rows)
        except StoreClosed:
            return
        premarked = {r[0] for r in rows if r[7] is not None}
        with self._lock:
            for o in outcomes:
                inflight.pop(o.task_id, None)
            listeners = {k: list(v) for k, v in self._subs.items()}
        if recorded:
            self._push(outcomes, recorded, listeners, premarked, now)
        if now - self._last_sweep >= self.sweep_every_s:
            self.sweep(now)

    def _push(
        self,
        outcomes: Sequence[TaskOutcome],
        recorded: Iterable[tuple[str, str]],
        listeners: dict[str | None, list[_Subscription]],
        premarked: set[str],
        now: float,
    ) -> None:
        first: dict[str, TaskOutcome] = {}
        for o in outcomes:
            first.setdefault(o.task_id, o)  # the one recorded, if repeated
        everyone = listeners.get(None, [])
        unreached: list[str] = []
        reached_late: list[str] = []
        for tid, group in recorded:
            subs = listeners.get(group, []) + everyone
            reached = False
            if subs:
                message = _outcome_dict(first[tid], group)
                for sub in subs:
                    reached = sub.deliver(message) or reached
            if reached and tid not in premarked:
                reached_late.append(tid)
            elif not reached and tid in premarked:
                unreached.append(tid)
        try:
            if unreached:
                self.store.unmark_retrieved(unreached)
            if reached_late:
                self.store.mark_retrieved(reached_late, now)
        except StoreClosed:
            pass

    # -- transport plumbing ----------------------------------------------------------
    def close(self) -> None:
        """``Transport.close``: the in-process transport closes nothing."""
