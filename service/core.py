"""The service core: functions, endpoints, task groups, tasks and results.

``ServiceCore`` implements every call of ``freight.client.transport.Transport``
(the reference's REST routes, as dicts) and ``TaskSink`` for its endpoints.  A
task's life: ``submit`` validates the whole request (endpoint, functions, payload
types and sizes) before storing anything, records the tasks in one transaction as
``waiting-for-launch`` and dispatches them; the endpoint reports ``running`` and
then an outcome, which is stored (once) and pushed to the task group's
subscribers.  Statuses are the reference's: ``received``, ``waiting-for-ep``,
``waiting-for-nodes``, ``waiting-for-launch``, ``running``, ``success``,
``failed``.

Nothing is lost silently: a task cancelled before it started fails with
``TaskCancelled``; one whose service stopped first fails with ``ServiceStopped``
(at shutdown, or at the next start if the process died).  Retention follows the
reference: a finished task is kept until its result is retrieved (by
``get_task``, ``get_batch_status`` or a push to a subscriber), then for
``result_retention_s`` more.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

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
from freight.service.store import FINAL, SQLiteStore, TaskRow

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_RESULT_RETENTION_S",
    "ServiceCore",
    "ServiceStopped",
    "TaskCancelled",
]

API_VERSION = "1.0.0"
#: The largest task payload ``submit`` accepts (256 MiB; configurable).
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
#: How long a retrieved result is kept (one day; configurable).
DEFAULT_RESULT_RETENTION_S = 24 * 3600.0
CONTAINER_TYPES = ("python", "docker", "podman", "apptainer", "singularity")
_SWEEP_EVERY_S = 60.0
_FUNCTION_CACHE = 1024


class TaskCancelled(Exception):
    """The task was cancelled before it started; it never ran."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"task {self.task_id} was cancelled before it started; it never ran"


class ServiceStopped(Exception):
    """The service stopped (or its process died) before the task finished."""

    def __init__(self, task_id: str, how: str) -> None:
        super().__init__(task_id, how)
        self.task_id = task_id
        self.how = how

    def __str__(self) -> str:
        return (
            f"task {self.task_id} did not finish: the service {self.how} while it"
            " was pending or running; it was not re-run"
        )


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


def _payload_size(payload: object, where: str) -> int:
    if isinstance(payload, str):
        return len(payload)
    if isinstance(payload, list | tuple):
        size = 0
        for frame in payload:
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


class _Subscription:
    def __init__(self, core: ServiceCore, key: str | None, callback: Any) -> None:
        self._core = core
        self.key = key
        self.callback = callback
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._core._unsubscribe(self)


class ServiceCore:
    """The service core over ``store``; see the module docstring."""

    def __init__(
        self,
        store: SQLiteStore,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        result_retention_s: float = DEFAULT_RESULT_RETENTION_S,
    ) -> None:
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        self.result_retention_s = result_retention_s
        self._endpoints: dict[str, EndpointLink] = {}
        self._lock = threading.RLock()
        # In-flight tasks: task id -> (task group id, endpoint id).
        self._inflight: dict[str, tuple[str, str]] = {}
        self._subs: dict[str | None, list[_Subscription]] = {}
        self._functions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._last_sweep = 0.0
        self._closed = False
        self._recover()

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
    def _recover(self) -> None:
        """Fail the unfinished tasks of service instances that died."""
        orphans = self.store.orphaned_tasks()
        if orphans:
            self.store.finish(
                (tid, "failed", None, rec, text, {}, time.time())
                for tid, rec, text in (
                    (t, *self._error_fields(ServiceStopped(t, "process died")))
                    for t in orphans
                )
            )
        self.store.forget_dead_instances()
        self._sweep(force=True)

    @staticmethod
    def _error_fields(exc: Exception) -> tuple[dict[str, Any], str]:
        return exception_to_dict(
            exc
        ), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"

    def add_endpoint(self, link: EndpointLink) -> None:
        """Attach an endpoint; it starts and receives tasks from now on."""
        with self._lock:
            self._endpoints[link.endpoint_id] = link
        link.attach(self)

    def shutdown(self) -> None:
        """Stop every endpoint, fail what did not finish, close the store."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            links = list(self._endpoints.values())
        for link in links:
            link.shutdown()
        leftover = self.store.unfinished_of_this_instance()
        if leftover:
            self.finished(
                [self._failed(t, ServiceStopped(t, "stopped")) for t in leftover]
            )
        with self._lock:
            for subs in self._subs.values():
                subs.clear()
        self.store.close()

    def _failed(self, task_id: str, exc: Exception) -> TaskOutcome:
        record, text = self._error_fields(exc)
        return TaskOutcome(
            task_id,
            "failed",
            exception=record,
            exception_text=text,
            completion_t=time.time(),
        )

    # -- version -------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        from freight import __version__

        return {
            "api": API_VERSION,
            "min_sdk_version": "2.0.0",
            "min_ep_version": "2.0.0",
            "freight_version": __version__,
        }

    # -- functions -----------------------------------------------------------------
    def register_function(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v3/functions``: stores the function, returns its id."""
        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object")
        name = body.get("function_name")
        code = body.get("function_code")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("function_name must be a non-empty string")
        if not isinstance(code, str) or not code:
            raise InvalidRequest("function_code must be a non-empty string")
        if body.get("serialized", True) is False:
            # The reference wraps raw source itself, as PureSourceTextInspect.
            code = "st\n" + name + ":" + code
        meta = body.get("meta", body.get("metadata"))
        if meta is not None and not isinstance(meta, Mapping):
            raise InvalidRequest("meta must be an object")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidRequest("description must be a string")
        container = body.get("container_uuid")
        if container is not None:
            container = _check_uuid(container, "container_uuid")
            if self.store.get_container(container) is None:
                raise UnknownContainer(f"container {container} is not registered")
        group = body.get("group")
        if group is not None:
            group = _check_uuid(group, "group")
        function_id = str(uuid.uuid4())
        self.store.add_function(
            function_id,
            name,
            code,
            description=description,
            metadata=dict(meta) if meta is not None else None,
            public=bool(body.get("public", False)),
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
        """*freight* the most recently registered functions."""
        return self.store.list_functions(limit)

    # -- containers ------------------------------------------------------------------
    def register_container(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v2/containers``: an execution environment (``type`` is one of
        ``python``, ``docker``, ``podman``, ``apptainer``/``singularity``)."""
        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object")
        kind = body.get("type", body.get("container_type"))
        location = body.get("location")
        if kind not in CONTAINER_TYPES:
            raise InvalidRequest(
                f"container type must be one of {', '.join(CONTAINER_TYPES)};"
                f" got {kind!r}"
            )
        if not isinstance(location, str) or not location:
            raise InvalidRequest("location must be a non-empty string")
        name = body.get("name")
        description = body.get("description")
        container_id = str(uuid.uuid4())
        self.store.add_container(
            container_id,
            str(kind),
            location,
            name if isinstance(name, str) else None,
            description if isinstance(description, str) else None,
        )
        return {"container_id": container_id}

    def get_container(self, container_id: str) -> dict[str, Any]:
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
        tasks in one transaction, dispatches them, returns their ids."""
        if self._closed:
            raise ServiceUnavailable("the service has shut down")
        link = self._link(endpoint_id)
        if not isinstance(body, Mapping):
            raise InvalidRequest("the request body must be a JSON object")
        tasks = body.get("tasks")
        if not isinstance(tasks, Mapping) or not tasks:
            raise InvalidRequest(
                "tasks must be a non-empty object of function id -> payloads"
            )
        tg = body.get("task_group_id")
        task_group_id = _check_uuid(tg, "task_group_id") if tg else str(uuid.uuid4())
        spec = body.get("resource_specification")
        if spec is not None and not isinstance(spec, Mapping):
            raise InvalidRequest("resource_specification must be an object")
        uec = body.get("user_endpoint_config")
        if uec is not None and not isinstance(uec, Mapping):
            raise InvalidRequest("user_endpoint_config must be an object")
        serializers = body.get("result_serializers")
        if serializers is not None and (
            not isinstance(serializers, list | tuple)
            or not all(isinstance(s, str) for s in serializers)
        ):
            raise InvalidRequest("result_serializers must be a list of strings")
        chunked = bool(body.get("freight_chunked", False))
        prepared: list[tuple[str, dict[str, Any], list[Any]]] = []
        for raw_fid, payloads in tasks.items():
            fid = _check_uuid(raw_fid, "function id")
            if not isinstance(payloads, list | tuple) or not payloads:
                raise InvalidRequest(
                    f"tasks[{fid!r}] must be a non-empty list of payloads"
                )
            for i, payload in enumerate(payloads):
                size = _payload_size(payload, f"tasks[{fid!r}][{i}]")
                if size > self.max_payload_bytes:
                    raise PayloadTooLarge(
                        f"tasks[{fid!r}][{i}] is {size} bytes, over the service's"
                        f" limit of {self.max_payload_bytes} bytes"
                    )
            prepared.append((fid, self._function(fid), list(payloads)))
        ids: dict[str, list[str]] = {}
        messages: list[TaskMessage] = []
        pairs: list[tuple[str, str]] = []
        for fid, fn, payloads in prepared:
            out = ids.setdefault(fid, [])
            for payload in payloads:
                tid = str(uuid.uuid4())
                out.append(tid)
                pairs.append((tid, fid))
                messages.append(
                    TaskMessage(
                        task_id=tid,
                        function_id=fid,
                        function_code=fn["function_code"],
                        payload=payload,
                        task_group_id=task_group_id,
                        resource_specification=dict(spec) if spec else None,
                        user_endpoint_config=dict(uec) if uec else None,
                        result_serializers=list(serializers) if serializers else None,
                        container=fn["container"],
                        chunk=chunked,
                    )
                )
        self.store.add_tasks(
            task_group_id, link.endpoint_id, pairs, "waiting-for-launch"
        )
        with self._lock:
            for tid, _ in pairs:
                self._inflight[tid] = (task_group_id, link.endpoint_id)
        link.dispatch(messages)
        # Keep the reference's key order for tasks: the request's.
        return {
            "request_id": str(uuid.uuid4()),
            "task_group_id": task_group_id,
            "endpoint_id": link.endpoint_id,
            "tasks": {str(raw): ids[_check_uuid(raw, "function id")] for raw in tasks},
        }

    def get_task(self, task_id: str) -> dict[str, Any]:
        """``GET /v2/tasks/{id}``; a finished task counts as retrieved."""
        tid = _check_uuid(task_id, "task_id")
        row = self.store.get_tasks([tid]).get(tid)
        if row is None:
            raise UnknownTask(f"task {tid} is not known (or its retention ended)")
        if row.status in FINAL and row.retrieved is None:
            self.store.mark_retrieved([tid])
        return _status_dict(row)

    def get_batch_status(self, task_ids: Sequence[str]) -> dict[str, Any]:
        """``POST /v2/batch_status``; unknown ids are left out, as the reference
        does."""
        if not isinstance(task_ids, list | tuple | set | frozenset):
            raise InvalidRequest("task_ids must be a list of task ids")
        ids = [_check_uuid(t, "task id") for t in task_ids]
        rows = self.store.get_tasks(ids)
        done = [t for t, r in rows.items() if r.status in FINAL and r.retrieved is None]
        if done:
            self.store.mark_retrieved(done)
        return {
            "response": "batch",
            "results": {t: _status_dict(r) for t, r in rows.items()},
        }

    def get_taskgroup(self, task_group_id: str) -> dict[str, Any]:
        """``GET /v2/taskgroup/{id}``."""
        tg = _check_uuid(task_group_id, "task_group_id")
        if not self.store.task_group_exists(tg):
            raise UnknownTaskGroup(f"task group {tg} is not known")
        return {
            "taskgroup_id": tg,
            "tasks": [{"id": t} for t in self.store.group_task_ids(tg)],
        }

    def list_tasks(self, limit: int = 50) -> list[dict[str, Any]]:
        """*freight* the most recent tasks (status only), newest first."""
        return [
            {
                "task_id": r.task_id,
                "status": r.status,
                "function_id": r.function_id,
                "endpoint_id": r.endpoint_id,
                "task_group_id": r.task_group_id,
                "created": r.created,
                "completion_t": r.completed,
            }
            for r in self.store.list_tasks(limit)
        ]

    def cancel(
        self, task_ids: Sequence[str], *, terminate: bool = False
    ) -> dict[str, Any]:
        """*freight* cancel tasks; see ``Transport.cancel``."""
        if not isinstance(task_ids, list | tuple | set | frozenset):
            raise InvalidRequest("task_ids must be a list of task ids")
        ids = [_check_uuid(t, "task id") for t in task_ids]
        results: dict[str, str] = {}
        by_link: dict[str, list[str]] = {}
        with self._lock:
            for tid in ids:
                where = self._inflight.get(tid)
                if where is None:
                    results[tid] = "finished"
                else:
                    by_link.setdefault(where[1], []).append(tid)
        missing = [t for t, r in results.items() if r == "finished"]
        if missing:
            known = self.store.get_tasks(missing)
            for tid in missing:
                if tid not in known:
                    raise UnknownTask(f"task {tid} is not known")
        for eid, tids in by_link.items():
            answers = self._endpoints[eid].cancel(tids, terminate=terminate)
            cancelled = [t for t in tids if answers.get(t) == "cancelled"]
            if cancelled:
                self.finished([self._failed(t, TaskCancelled(t)) for t in cancelled])
            for t in tids:
                results[t] = answers.get(t, "unknown")
        return {"results": results}

    # -- endpoints -----------------------------------------------------------------
    def get_endpoint_status(self, endpoint_id: str) -> dict[str, Any]:
        return self._link(endpoint_id).status()

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        return self._link(endpoint_id).metadata()

    def get_endpoints(self, role: str | None = None) -> list[dict[str, Any]]:
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
        link = self._link(endpoint_id)
        allowed = link.allowed_functions()
        return {
            "endpoint_id": link.endpoint_id,
            "restricted": allowed is not None,
            "functions": allowed or [],
        }

    # -- results -------------------------------------------------------------------
    def subscribe(self, task_group_id: str | None, on_result: Any) -> _Subscription:
        """*freight* push each finished task of ``task_group_id`` (``None``: of
        every group) to ``on_result``, from the thread that recorded it."""
        key = _check_uuid(task_group_id, "task_group_id") if task_group_id else None
        sub = _Subscription(self, key, on_result)
        with self._lock:
            self._subs.setdefault(key, []).append(sub)
        return sub

    def _unsubscribe(self, sub: _Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs and sub in subs:
                subs.remove(sub)

    # TaskSink
    def started(self, task_ids: Sequence[str]) -> None:
        self.store.set_status(task_ids, "running")

    def finished(self, outcomes: Sequence[TaskOutcome]) -> None:
        """Record outcomes (each task once), then push them to subscribers."""
        recorded = set(
            self.store.finish(
                (
                    o.task_id,
                    o.status,
                    o.result,
                    o.exception,
                    o.exception_text,
                    o.details,
                    o.completion_t,
                )
                for o in outcomes
            )
        )
        delivered: list[str] = []
        with self._lock:
            groups = [
                (o, self._inflight.pop(o.task_id, None))
                for o in outcomes
                if o.task_id in recorded
            ]
            everyone = list(self._subs.get(None, ()))
            by_group = {
                g[0]: list(self._subs.get(g[0], ())) for _, g in groups if g is not None
            }
        for outcome, where in groups:
            if where is None:
                continue
            subs = by_group.get(where[0], []) + everyone
            if not subs:
                continue
            message = _outcome_dict(outcome, where[0])
            for sub in subs:
                try:
                    sub.callback(message)
                except Exception:  # a subscriber's bug must not lose results
                    continue
            delivered.append(outcome.task_id)
        if delivered and not self._closed:
            self.store.mark_retrieved(delivered)
        self._sweep()

    def _sweep(self, *, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_sweep > _SWEEP_EVERY_S:
            self._last_sweep = now
            self.store.purge_retrieved(now - self.result_retention_s)

    # -- transport plumbing ----------------------------------------------------------
    def close(self) -> None:
        """``Transport.close``: the in-process transport closes nothing."""
