"""``Client``: register functions, run them, fetch results, with the reference's API.

``Client()`` with nothing configured talks to the embedded service of this
process (``freight.service.embedded``): a service core and a local endpoint, state
in SQLite under ``$FREIGHT_HOME`` or the user's data directory.  ``transport=``
takes any ``freight.client.transport.Transport``; ``service=`` (or
``$FREIGHT_SERVICE``) names a service: ``"embedded"`` (the default) or, with the
networked service of a later release, its URL.

Names, call shapes and return values are ``globus_compute_sdk`` 4.19's, with its
quirks fixed: failed tasks stay in ``get_batch_result`` with their exception;
``metadata`` is stored; a failed task re-raises its original exception type where
it can be rebuilt (``freight.client.errors``); results are cached for the life of
the client, and a result not yet fetched survives the process that submitted it.
"""

from __future__ import annotations

import os
import platform
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from freight.client.batch import Batch, create_user_runtime
from freight.client.errors import TaskPending, task_exception
from freight.client.transport import Transport
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    SerializationError,
    Strategylike,
)

__all__ = ["Client"]

_FINAL = ("success", "failed")


def _resolve_transport(
    service: str | None, home: str | os.PathLike[str] | None, workers: int | None
) -> tuple[Transport, bool]:
    """The transport for ``service`` and whether it carries binary frames."""
    name = service or os.environ.get("FREIGHT_SERVICE") or "embedded"
    if name in ("embedded", "local"):
        from freight.service.embedded import embedded_service

        return embedded_service(home, workers=workers), True
    raise ValueError(
        f"service {name!r}: this freight speaks to the embedded service only"
        " ('embedded'); the networked service's HTTP transport comes in a later"
        " release (or pass transport=)"
    )


class Client:
    """The reference's ``Client``; see the module docstring.

    ``app`` and ``authorizer`` are accepted (mutually exclusive, as in the
    reference) for the networked service; the embedded service needs no login.
    Strategies may be given as any strategy-like: instance, class, identifier or
    registered name.  ``home`` and ``workers`` configure the embedded service
    when this client starts it.
    """

    def __init__(
        self,
        environment: str | None = None,
        local_compute_services: bool = False,
        do_version_check: bool = True,
        *,
        code_serialization_strategy: Strategylike | None = None,
        data_serialization_strategy: Strategylike | None = None,
        app: Any = None,
        authorizer: Any = None,
        force_login: bool = False,
        service: str | None = None,
        transport: Transport | None = None,
        home: str | os.PathLike[str] | None = None,
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            warnings.warn(
                f"The '{name}' argument is unrecognized. (It might have been removed"
                " in a previous release.)",
                stacklevel=2,
            )
        if app is not None and authorizer is not None:
            raise ValueError("'app' and 'authorizer' are mutually exclusive.")
        self.environment = environment
        self.app = app
        self.authorizer = authorizer
        self.force_login = force_login
        self.fx_serializer = ComputeSerializer(
            strategy_code=code_serialization_strategy,
            strategy_data=data_serialization_strategy,
        )
        if transport is not None:
            self._transport: Transport = transport
            self._binary = bool(getattr(transport, "binary_payloads", False))
        else:
            self._transport, self._binary = _resolve_transport(service, home, workers)
        self._task_status_table: dict[str, dict[str, Any]] = {}
        self._request_lock = threading.Lock()
        if do_version_check:
            self.version_check()

    # -- service -------------------------------------------------------------------
    @property
    def transport(self) -> Transport:
        """The transport this client talks through."""
        return self._transport

    @property
    def binary_payloads(self) -> bool:
        """True if task payloads travel as binary frames (freight's own hop)."""
        return self._binary

    def version_check(self, endpoint_version: str | None = None) -> None:
        """Ask the service for its version; raises ``RuntimeError`` if it does
        not answer like a compute service."""
        from freight import __version__

        del endpoint_version
        data = self._transport.version()
        if "api" not in data:
            raise RuntimeError(
                f"the service did not report an API version (freight {__version__})"
            )

    def logout(self) -> None:
        """Forget stored credentials (the embedded service has none)."""

    # -- functions -----------------------------------------------------------------
    def register_function(
        self,
        function: Callable[..., Any],
        function_name: str | None = None,
        container_uuid: str | uuid.UUID | None = None,
        description: str | None = None,
        public: bool = False,
        group: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        ha_endpoint_id: str | uuid.UUID | None = None,
        searchable: bool | None = None,
    ) -> str:
        """Serialize ``function`` with the code strategy and register it; returns
        its id.  ``metadata`` is stored with it (the reference raises on it).
        Raises ``TypeError`` for a non-callable, ``SerializationError`` with the
        strategy's reason if it cannot be serialized; nothing is stored then."""
        if not callable(function):
            raise TypeError(
                f"register_function: expected a callable, got {type(function).__name__}"
            )
        _optional_str(function_name, "function_name")
        _optional_str(description, "description")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError("metadata: expected a dict")
        del ha_endpoint_id, searchable
        code = self.fx_serializer.serialize(function)
        name = function_name or getattr(function, "__name__", type(function).__name__)
        if description is None:
            description = getattr(function, "__doc__", None)
        meta: dict[str, Any] = {
            "python_version": platform.python_version(),
            "sdk_version": _freight_version(),
        }
        if metadata:
            meta.update(metadata)
        body: dict[str, Any] = {
            "function_name": name,
            "function_code": code,
            "serialized": True,
            "description": description,
            "meta": meta,
            "public": bool(public),
        }
        if group is not None:
            body["group"] = str(group)
        if container_uuid is not None:
            body["container_uuid"] = str(container_uuid)
        with self._request_lock:
            data = self._transport.register_function(body)
        return str(data["function_uuid"])

    def register_source_code(
        self,
        source: str,
        function_name: str,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        public: bool = False,
        group: str | uuid.UUID | None = None,
        ha_endpoint_id: str | uuid.UUID | None = None,
    ) -> str:
        """Register ``source`` whose entry point is ``function_name``; the
        service wraps it as the reference does (``PureSourceTextInspect``)."""
        if not isinstance(source, str) or not source.strip():
            raise TypeError("source: expected a non-empty str of Python source")
        if not isinstance(function_name, str) or not function_name:
            raise TypeError("function_name: expected a non-empty str")
        _optional_str(description, "description")
        del ha_endpoint_id
        meta: dict[str, Any] = {
            "python_version": platform.python_version(),
            "sdk_version": _freight_version(),
        }
        if metadata:
            meta.update(metadata)
        body: dict[str, Any] = {
            "function_name": function_name,
            "function_code": source,
            "serialized": False,
            "description": description,
            "meta": meta,
            "public": bool(public),
        }
        if group is not None:
            body["group"] = str(group)
        with self._request_lock:
            data = self._transport.register_function(body)
        return str(data["function_uuid"])

    def get_function(self, function_id: str | uuid.UUID) -> dict[str, Any]:
        """The registered function's record (name, code, description, ...)."""
        return self._transport.get_function(_uuid_arg(function_id, "function_id"))

    def delete_function(self, function_id: str | uuid.UUID) -> dict[str, Any]:
        """Delete a registered function."""
        return self._transport.delete_function(_uuid_arg(function_id, "function_id"))

    def register_container(
        self,
        location: str,
        container_type: str,
        name: str = "",
        description: str = "",
    ) -> str:
        """Register an execution environment; returns its id.  ``container_type``
        is ``python`` (``location``: an interpreter path, e.g. a venv's
        ``bin/python``), ``docker``, ``podman`` or ``apptainer`` (``location``:
        an image)."""
        if not isinstance(location, str) or not location:
            raise TypeError("location: expected a non-empty str")
        if not isinstance(container_type, str):
            raise TypeError("container_type: expected a str")
        data = self._transport.register_container(
            {
                "location": location,
                "type": container_type,
                "name": name,
                "description": description,
            }
        )
        return str(data["container_id"])

    # -- tasks ---------------------------------------------------------------------
    def run(
        self,
        *args: Any,
        endpoint_id: str | uuid.UUID,
        function_id: str | uuid.UUID,
        **kwargs: Any,
    ) -> str:
        """Run the registered function on an endpoint; returns the task id."""
        batch = self.create_batch()
        batch.add(function_id, args, kwargs)
        r = self.batch_run(endpoint_id, batch)
        tasks: dict[str, list[str]] = r["tasks"]
        return next(iter(tasks.values()))[0]

    def create_batch(
        self,
        task_group_id: str | uuid.UUID | None = None,
        resource_specification: dict[str, Any] | None = None,
        user_endpoint_config: dict[str, Any] | None = None,
        create_websocket_queue: bool = False,
        result_serializers: list[str] | None = None,
    ) -> Batch:
        """A ``Batch`` that serializes with this client's serializer."""
        return Batch(
            task_group_id,
            resource_specification,
            user_endpoint_config,
            create_websocket_queue,
            serializer=self.fx_serializer,
            user_runtime=create_user_runtime(),
            result_serializers=result_serializers,
            binary=self._binary,
        )

    def batch_run(self, *args: Any, **kwargs: Any) -> Any:
        """Submit a batch: ``batch_run(endpoint_id, batch)`` returns the
        reference's dict; ``batch_run(batch)`` (the guide's shape, endpoints
        given per call) returns the task ids in the order added."""
        if len(args) == 1 and not kwargs and isinstance(args[0], Batch):
            return self._batch_run_guide(args[0])
        return self._batch_run(*args, **kwargs)

    def _batch_run(self, endpoint_id: str | uuid.UUID, batch: Batch) -> dict[str, Any]:
        if not isinstance(batch, Batch):
            raise TypeError(f"batch: expected a Batch, got {type(batch).__name__}")
        if not batch:
            raise ValueError("No tasks specified for batch run")
        ep = _uuid_arg(endpoint_id, "endpoint_id")
        with self._request_lock:
            return self._transport.submit(ep, batch.prepare())

    def _batch_run_guide(self, batch: Batch) -> list[str]:
        if not batch:
            raise ValueError("No tasks specified for batch run")
        endpoints = batch.endpoints()
        if any(e is None for e in endpoints):
            raise ValueError(
                "this batch was filled with add(function_id, args, kwargs); run it"
                " with batch_run(endpoint_id, batch)"
            )
        order: list[str] = [""] * len(endpoints)
        by_ep: dict[str, list[int]] = {}
        for i, ep in enumerate(endpoints):
            by_ep.setdefault(str(ep), []).append(i)
        entries = batch._entries
        for ep, idxs in by_ep.items():
            body = batch.prepare([entries[i] for i in idxs])
            with self._request_lock:
                r = self._transport.submit(ep, body)
            if batch.task_group_id is None:
                batch.task_group_id = r["task_group_id"]
            queues = {fid: iter(tids) for fid, tids in r["tasks"].items()}
            for i in idxs:
                order[i] = next(queues[entries[i].function_id])
        return order

    def get_task(self, task_id: str | uuid.UUID) -> dict[str, Any]:
        """The task's status dict: ``pending``, ``status`` and, once finished,
        ``result`` or ``exception`` (an exception object) and ``completion_t``.
        Finished tasks are answered from this client's cache."""
        tid = _uuid_arg(task_id, "task_id")
        cached = self._task_status_table.get(tid)
        if cached is not None and not cached["pending"]:
            return cached
        with self._request_lock:
            r = self._transport.get_task(tid)
        return self._update_task_table(r, tid)

    def _update_task_table(self, r: Mapping[str, Any], task_id: str) -> dict[str, Any]:
        status_name = str(r.get("status", "unknown")).lower()
        pending = status_name not in _FINAL
        status: dict[str, Any] = {"pending": pending, "status": status_name}
        if "details" in r:
            status["details"] = r["details"]
        if not pending:
            status["completion_t"] = r.get("completion_t", "unknown")
            if status_name == "success":
                status["result"] = self.decode_result(r.get("result"), task_id)
            else:
                status["exception"] = task_exception(dict(r))
            self._task_status_table[task_id] = status
        return status

    def decode_result(self, payload: Any, task_id: str) -> Any:
        """The value a task's serialized ``result`` holds; raises
        ``DeserializationError`` naming the task if it cannot be decoded here."""
        try:
            if isinstance(payload, str):
                return self.fx_serializer.deserialize(payload)
            if isinstance(payload, bytes | bytearray | memoryview):
                return self.fx_serializer.loads(payload)
        except (DeserializationError, SerializationError) as e:
            raise DeserializationError(
                f"the result of task {task_id} could not be deserialized here: {e}"
            ) from e
        raise DeserializationError(
            f"the result of task {task_id} is a {type(payload).__name__}, not a"
            " serialized payload"
        )

    def get_result(self, task_id: str | uuid.UUID) -> Any:
        """The task's value; raises ``TaskPending`` while it runs, and its
        exception if it failed (see ``freight.client.errors``)."""
        task = self.get_task(task_id)
        if task["pending"]:
            raise TaskPending(task["status"])
        if "result" in task:
            return task["result"]
        raise task["exception"]

    def get_batch_result(
        self, task_id_list: Iterable[str | uuid.UUID]
    ) -> dict[str, dict[str, Any]]:
        """Status dicts by task id, as ``get_task`` gives them.  Failed tasks are
        included, with ``status: "failed"`` and their ``exception``; ids the
        service does not know are left out."""
        if isinstance(task_id_list, str | bytes):
            raise TypeError("task_id_list: expected a list of task ids, not a str")
        ids = [_uuid_arg(t, "task_id") for t in task_id_list]
        results: dict[str, dict[str, Any]] = {}
        pending: list[str] = []
        for tid in ids:
            cached = self._task_status_table.get(tid)
            if cached is not None and not cached["pending"]:
                results[tid] = cached
            else:
                pending.append(tid)
        for start in range(0, len(pending), 1024):
            part = pending[start : start + 1024]
            with self._request_lock:
                r = self._transport.get_batch_status(part)
            statuses = r["results"]
            for tid in part:
                if tid in statuses:
                    results[tid] = self._update_task_table(statuses[tid], tid)
        return results

    # -- endpoints -----------------------------------------------------------------
    def get_endpoint_status(self, endpoint_uuid: str | uuid.UUID) -> dict[str, Any]:
        return self._transport.get_endpoint_status(
            _uuid_arg(endpoint_uuid, "endpoint_uuid")
        )

    def get_endpoint_metadata(self, endpoint_uuid: str | uuid.UUID) -> dict[str, Any]:
        return self._transport.get_endpoint(_uuid_arg(endpoint_uuid, "endpoint_uuid"))

    def get_endpoints(self, role: str | None = None) -> list[dict[str, Any]]:
        return self._transport.get_endpoints(role)

    def get_allowed_functions(self, endpoint_id: str | uuid.UUID) -> dict[str, Any]:
        return self._transport.get_allowed_functions(
            _uuid_arg(endpoint_id, "endpoint_id")
        )

    def get_worker_hardware_details(self, endpoint_id: str | uuid.UUID) -> str:
        """Run a hardware report on the endpoint's workers; returns the task id
        (its result is the report text)."""
        from freight.client.hardware import run_hardware_report

        function_id = self.register_function(run_hardware_report)
        return self.run(endpoint_id=endpoint_id, function_id=function_id)

    @property
    def local_endpoint_id(self) -> str:
        """The embedded service's local endpoint (the first endpoint listed)."""
        endpoints = self.get_endpoints()
        if not endpoints:
            raise LookupError("the service has no endpoint")
        return str(endpoints[0]["uuid"])


def _uuid_arg(value: object, what: str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a UUID string, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{what}: not a valid UUID: {value!r}") from None


def _optional_str(value: object, what: str) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what}: expected a str, got {type(value).__name__}")


def _freight_version() -> str:
    from freight import __version__

    return str(__version__)
