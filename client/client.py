"""``Client``: register functions, run them, fetch results, with the reference's API.

``Client()`` with nothing configured talks to the embedded service of this
process (``freight.service.embedded``): a service core and a local endpoint, state
in SQLite under ``$FREIGHT_HOME`` or the user's data directory.  ``transport=``
takes any ``freight.client.transport.Transport``; ``service=`` (or
``$FREIGHT_SERVICE``) names a service: ``"embedded"`` (the default) or a
networked service's ``http(s)://`` URL (``freight.client.http.HttpTransport``).

Names, call shapes and return values are ``globus_compute_sdk`` 4.19's, with its
quirks fixed: failed tasks stay in ``get_batch_result`` with their exception;
``metadata`` is stored; a failed task re-raises its original exception type where
it can be rebuilt (``freight.client.errors``); results are cached for the life of
the client, and a result not yet fetched survives the process that submitted it.
"""

from __future__ import annotations

import inspect
import os
import platform
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from freight.client._checks import (
    check_bool,
    check_json_dict,
    check_optional_str,
    check_str,
    check_uuid,
    optional_uuid,
)
from freight.client.batch import Batch, create_user_runtime
from freight.client.errors import TaskPending, task_exception
from freight.client.transport import Transport
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    SerdeError,
    SerializationError,
    SerializationStrategy,
    Strategylike,
    validate_strategylike,
)

__all__ = ["Client"]

_FINAL = ("success", "failed")
#: ``get_batch_result`` asks the service for at most this many tasks per request.
_STATUS_CHUNK = 1024


def _resolve_transport(
    service: str | None, home: str | os.PathLike[str] | None, workers: int | None
) -> Transport:
    """The transport ``service`` (or ``$FREIGHT_SERVICE``) names."""
    name = service if service is not None else os.environ.get("FREIGHT_SERVICE")
    if not name or name in ("embedded", "local"):
        from freight.service.embedded import embedded_service

        return embedded_service(home, workers=workers)
    if name.startswith(("http://", "https://")):
        from freight.client.http import HttpTransport

        return HttpTransport(name)
    raise ValueError(
        f"service: {name!r} is not one this freight speaks to: give 'embedded'"
        " or a networked service's http(s):// URL (or pass transport=)"
    )


def _carries_frames(transport: object) -> bool:
    """True if ``transport`` takes task payloads as binary frames: its
    ``binary_payloads`` attribute says so, else it is the in-process service."""
    flag = getattr(transport, "binary_payloads", None)
    if flag is not None:
        return bool(flag)
    from freight.service.core import ServiceCore

    return isinstance(transport, ServiceCore)


def _make_serializer(code: Strategylike | None, data: Strategylike | None) -> Any:
    """``ComputeSerializer(code, data)``; a bad strategy-like raises ``TypeError``
    (not a strategy-like at all) or ``ValueError`` naming the parameter."""
    try:
        return ComputeSerializer(strategy_code=code, strategy_data=data)
    except SerdeError as err:
        for what, value, for_code in (
            ("code_serialization_strategy", code, True),
            ("data_serialization_strategy", data, False),
        ):
            if value is None:
                continue
            try:
                validate_strategylike(value, for_code=for_code)
            except SerdeError as e:
                kind = (
                    ValueError
                    if isinstance(value, str | type | SerializationStrategy)
                    else TypeError
                )
                raise kind(f"{what}: {e}") from e
        raise ValueError(f"code/data_serialization_strategy: {err}") from err


class Client:
    """The reference's ``Client``; see the module docstring.

    ``app`` and ``authorizer`` are accepted (mutually exclusive, as in the
    reference) for the networked service; the embedded service needs no login,
    and ``force_login`` has nothing to refresh.  Strategies may be given as any
    strategy-like: instance, class, identifier or registered name.  ``home`` and
    ``workers`` configure the embedded service when this client starts it.
    Every method checks its arguments first: a wrong type raises ``TypeError``
    (a bad value ``ValueError``) naming the parameter, with nothing sent.
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
        check_optional_str(environment, "environment")
        check_bool(local_compute_services, "local_compute_services")
        check_bool(do_version_check, "do_version_check")
        check_bool(force_login, "force_login")
        check_optional_str(service, "service")
        if home is not None and not isinstance(home, str | os.PathLike):
            raise TypeError(f"home: expected a path, got {type(home).__name__}")
        if workers is not None and (
            not isinstance(workers, int) or isinstance(workers, bool)
        ):
            raise TypeError(f"workers: expected an int, got {type(workers).__name__}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers: expected at least 1, got {workers}")
        if transport is not None and not isinstance(transport, Transport):
            raise TypeError(
                f"transport: expected a Transport, got {type(transport).__name__}"
            )
        if transport is not None and (service is not None or home is not None):
            raise ValueError("transport: give transport= or service=/home=, not both")
        if app is not None and authorizer is not None:
            raise ValueError("'app' and 'authorizer' are mutually exclusive.")
        self.environment = environment
        self.app = app
        self.authorizer = authorizer
        self.force_login = force_login
        self.fx_serializer: ComputeSerializer = _make_serializer(
            code_serialization_strategy, data_serialization_strategy
        )
        if transport is None:
            transport = _resolve_transport(service, home, workers)
        self._transport: Transport = transport
        self._binary = _carries_frames(transport)
        self._task_status_table: dict[str, dict[str, Any]] = {}
        self._request_lock = threading.Lock()
        self._hardware_function: str | None = None
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

        check_optional_str(endpoint_version, "endpoint_version")
        data = self._transport.version()
        if "api" not in data:
            raise RuntimeError(
                f"the service did not report an API version (freight {__version__})"
            )

    def logout(self) -> None:
        """Forget stored credentials (the embedded service has none)."""

    # -- functions -----------------------------------------------------------------
    def _meta(self, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "python_version": platform.python_version(),
            "sdk_version": _freight_version(),
            "serde_identifier": self.fx_serializer.code_serializer.identifier.strip(),
        }
        if metadata:
            meta.update(metadata)
        return meta

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
        its id.  ``description`` defaults to the docstring; ``metadata`` is
        stored with it (the reference raises on it); ``container_uuid`` runs it
        in a registered execution environment.  ``SerializationError`` (with the
        strategy's reason) if it cannot be serialized; nothing is stored then."""
        if not callable(function):
            raise TypeError(
                f"function: expected a callable, got {type(function).__name__}"
            )
        check_optional_str(function_name, "function_name")
        container = optional_uuid(container_uuid, "container_uuid")
        check_optional_str(description, "description")
        check_bool(public, "public")
        group_id = optional_uuid(group, "group")
        meta = check_json_dict(metadata, "metadata")
        optional_uuid(ha_endpoint_id, "ha_endpoint_id")
        if searchable is not None:
            check_bool(searchable, "searchable")
        code = self.fx_serializer.serialize(function)
        name = function_name or getattr(function, "__name__", type(function).__name__)
        if description is None:
            description = inspect.getdoc(function)
        body: dict[str, Any] = {
            "function_name": name,
            "function_code": code,
            "serialized": True,
            "description": description,
            "meta": self._meta(meta),
            "public": public,
        }
        if group_id is not None:
            body["group"] = group_id
        if container is not None:
            body["container_uuid"] = container
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
        """Register Python ``source`` whose entry point is ``function_name``; the
        service wraps it as the reference does (``PureSourceTextInspect``)."""
        check_str(source, "source")
        if not source.strip():
            raise ValueError("source: expected Python source, got blank text")
        check_str(function_name, "function_name")
        if not function_name.isidentifier():
            raise ValueError(
                f"function_name: {function_name!r} is not a Python identifier"
            )
        check_optional_str(description, "description")
        meta = check_json_dict(metadata, "metadata")
        check_bool(public, "public")
        group_id = optional_uuid(group, "group")
        optional_uuid(ha_endpoint_id, "ha_endpoint_id")
        body: dict[str, Any] = {
            "function_name": function_name,
            "function_code": source,
            "serialized": False,
            "description": description,
            "meta": self._meta(meta),
            "public": public,
        }
        if group_id is not None:
            body["group"] = group_id
        with self._request_lock:
            data = self._transport.register_function(body)
        return str(data["function_uuid"])

    def get_function(self, function_id: str | uuid.UUID) -> dict[str, Any]:
        """The registered function's record (name, code, description, ...)."""
        return self._transport.get_function(check_uuid(function_id, "function_id"))

    def delete_function(self, function_id: str | uuid.UUID) -> dict[str, Any]:
        """Delete a registered function."""
        return self._transport.delete_function(check_uuid(function_id, "function_id"))

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
        check_str(location, "location")
        check_str(container_type, "container_type")
        check_str(name, "name", empty=True)
        check_str(description, "description", empty=True)
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
        """Run the registered function on an endpoint; returns the task id.
        Unknown ids raise ``UnknownFunction`` / ``UnknownEndpoint``, arguments
        the data strategy cannot serialize ``SerializationError``; nothing is
        stored then."""
        ep = check_uuid(endpoint_id, "endpoint_id")
        fid = check_uuid(function_id, "function_id")
        batch = self.create_batch()
        batch.add(fid, args, kwargs)
        r = self._batch_run(ep, batch)
        tasks: dict[str, list[str]] = r["tasks"]
        return tasks[fid][0]

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
            check_bool(create_websocket_queue, "create_websocket_queue"),
            serializer=self.fx_serializer,
            user_runtime=create_user_runtime(),
            result_serializers=result_serializers,
            binary=self._binary,
        )

    def batch_run(
        self, endpoint_id: str | uuid.UUID | Batch, batch: Batch | None = None
    ) -> Any:
        """Submit a batch: ``batch_run(endpoint_id, batch)`` returns the
        reference's dict (``request_id``, ``task_group_id``, ``endpoint_id``,
        ``tasks: {function_id: [task_id, ...]}``); ``batch_run(batch)`` (the
        guide's shape, endpoints given per call to ``add``) returns the task ids
        in the order added."""
        if batch is None and isinstance(endpoint_id, Batch):
            return self._batch_run_guide(endpoint_id)
        if batch is None:
            raise TypeError("batch: required with endpoint_id (or pass a Batch alone)")
        if isinstance(endpoint_id, Batch):
            raise TypeError("endpoint_id: expected a UUID string, got Batch")
        return self._batch_run(endpoint_id, batch)

    def _batch_run(self, endpoint_id: str | uuid.UUID, batch: Batch) -> dict[str, Any]:
        ep = check_uuid(endpoint_id, "endpoint_id")
        if not isinstance(batch, Batch):
            raise TypeError(f"batch: expected a Batch, got {type(batch).__name__}")
        if not batch:
            raise ValueError("No tasks specified for batch run")
        others = {e for e in batch.endpoints() if e is not None and e != ep}
        if others:
            raise ValueError(
                f"batch: calls added with endpoint_id={sorted(others)[0]} cannot run on"
                f" endpoint {ep}; run the batch with batch_run(batch)"
            )
        with self._request_lock:
            return self._transport.submit(ep, batch.prepare())

    def _batch_run_guide(self, batch: Batch) -> list[str]:
        if not batch:
            raise ValueError("No tasks specified for batch run")
        endpoints = batch.endpoints()
        if any(e is None for e in endpoints):
            raise ValueError(
                "batch: calls added with add(function_id, args, kwargs) name no"
                " endpoint; run the batch with batch_run(endpoint_id, batch)"
            )
        order: list[str] = [""] * len(endpoints)
        by_ep: dict[str, list[int]] = {}
        for i, ep in enumerate(endpoints):
            by_ep.setdefault(str(ep), []).append(i)
        entries = batch._entries
        # Refuse an unknown endpoint or function before anything is stored.
        for ep in by_ep:
            self._transport.get_endpoint_status(ep)
        for fid in dict.fromkeys(e.function_id for e in entries):
            self._transport.get_function(fid)
        for ep, idxs in by_ep.items():
            body = batch._prepare([entries[i] for i in idxs])
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
        Finished tasks are answered from this client's cache.  A result this
        client cannot deserialize raises ``DeserializationError`` naming the
        task."""
        tid = check_uuid(task_id, "task_id")
        cached = self._task_status_table.get(tid)
        if cached is not None:
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
                status["result"] = self._decode_result(r.get("result"), task_id)
            else:
                status["exception"] = task_exception(dict(r))
            self._task_status_table[task_id] = status
        return status

    def _decode_result(self, payload: Any, task_id: str) -> Any:
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
        exc: BaseException = task["exception"]
        raise exc.with_traceback(None)

    def get_batch_result(
        self, task_id_list: Iterable[str | uuid.UUID]
    ) -> dict[str, dict[str, Any]]:
        """Status dicts by task id, as ``get_task`` gives them.  Failed tasks are
        included, with ``status: "failed"`` and their ``exception``; ids the
        service does not know are left out."""
        if isinstance(task_id_list, str | bytes) or not isinstance(
            task_id_list, Iterable
        ):
            raise TypeError(
                "task_id_list: expected a list of task ids, got"
                f" {type(task_id_list).__name__}"
            )
        ids = list(dict.fromkeys(check_uuid(t, "task_id_list") for t in task_id_list))
        results: dict[str, dict[str, Any]] = {}
        pending: list[str] = []
        for tid in ids:
            cached = self._task_status_table.get(tid)
            if cached is not None:
                results[tid] = cached
            else:
                pending.append(tid)
        for start in range(0, len(pending), _STATUS_CHUNK):
            part = pending[start : start + _STATUS_CHUNK]
            with self._request_lock:
                r = self._transport.get_batch_status(part)
            statuses = r["results"]
            for tid in part:
                if tid in statuses:
                    results[tid] = self._update_task_table(statuses[tid], tid)
        return results

    # -- endpoints -----------------------------------------------------------------
    def get_endpoint_status(self, endpoint_uuid: str | uuid.UUID) -> dict[str, Any]:
        """The endpoint's status: ``{"status": "online" | "offline", ...}``."""
        return self._transport.get_endpoint_status(
            check_uuid(endpoint_uuid, "endpoint_uuid")
        )

    def get_endpoint_metadata(self, endpoint_uuid: str | uuid.UUID) -> dict[str, Any]:
        """The endpoint's record (``uuid``, ``name``, ...)."""
        return self._transport.get_endpoint(check_uuid(endpoint_uuid, "endpoint_uuid"))

    def get_endpoints(self, role: str | None = None) -> list[dict[str, Any]]:
        """The endpoints this user may use (``uuid``, ``name``, ``status``)."""
        if role is not None:
            check_str(role, "role")
            if role not in ("owner", "any"):
                raise ValueError(f"role: expected 'owner' or 'any', got {role!r}")
        return self._transport.get_endpoints(role)

    def get_allowed_functions(self, endpoint_id: str | uuid.UUID) -> dict[str, Any]:
        """The functions the endpoint allows (``restricted: False`` if any)."""
        return self._transport.get_allowed_functions(
            check_uuid(endpoint_id, "endpoint_id")
        )

    def get_worker_hardware_details(self, endpoint_id: str | uuid.UUID) -> str:
        """Run a hardware report on the endpoint's workers; returns the task id
        (its result is the report text)."""
        from freight.client.hardware import run_hardware_report

        ep = check_uuid(endpoint_id, "endpoint_id")
        self._transport.get_endpoint_status(ep)  # an unknown one stores nothing
        if self._hardware_function is None:
            self._hardware_function = self.register_function(run_hardware_report)
        return self.run(endpoint_id=ep, function_id=self._hardware_function)

    @property
    def local_endpoint_id(self) -> str:
        """The embedded service's local endpoint (the first endpoint listed)."""
        endpoints = self.get_endpoints()
        if not endpoints:
            raise LookupError("the service has no endpoint")
        return str(endpoints[0]["uuid"])


def _freight_version() -> str:
    from freight import __version__

    return str(__version__)
