"""The seam between the client and a service: ``Transport``.

Every call maps to one route of the reference's REST dialect (globus-compute 4.19),
and takes and returns the JSON bodies of that route as plain dicts, so the HTTP
transport of a networked service is a thin mapping.  freight's additions are the
calls marked *freight* (they live under ``/freight/v1/`` on the HTTP face).

Two things differ from JSON on freight's own hops, and only there:

* a task payload in ``submit``'s ``tasks`` is either the reference's text envelope
  (``str``: ``ComputeSerializer.pack_buffers([args, kwargs])``) or freight's binary
  envelope as a list of frames (``ComputeSerializer.dumps_frames((args, kwargs))``);
  the frames may be memoryviews of the caller's objects, and the service is done
  with them when ``submit`` returns;
* a task's ``result`` is the serialized value: ``str`` (text envelope) or ``bytes``
  (binary envelope), whichever the endpoint produced.

Failures are raised as ``freight.service.errors.ServiceError`` subclasses, each with
the reference's ``code`` and HTTP status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ResultCallback", "Subscription", "Transport"]

#: Receives one task status dict (the shape of ``GET /v2/tasks/{id}``) per finished
#: task, on a thread of the transport's choosing; it must not block.
ResultCallback = Callable[[dict[str, Any]], None]


class Subscription(Protocol):
    """A live result stream; ``close()`` stops it and is idempotent."""

    def close(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """What a ``Client`` needs from a service; see the module docstring."""

    def version(self) -> dict[str, Any]:
        """``GET /v2/version?service=all``: ``api``, ``min_sdk_version``, ..."""
        ...

    def register_function(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v3/functions`` -> ``{"function_uuid": ...}``."""
        ...

    def get_function(self, function_id: str) -> dict[str, Any]:
        """``GET /v2/functions/{id}``."""
        ...

    def delete_function(self, function_id: str) -> dict[str, Any]:
        """``DELETE /v2/functions/{id}``."""
        ...

    def register_container(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v2/containers`` (``location``, ``type``, ``name``, ...)
        -> ``{"container_id": ...}``."""
        ...

    def get_container(self, container_id: str) -> dict[str, Any]:
        """``GET /v2/containers/{id}``."""
        ...

    def submit(self, endpoint_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v3/endpoints/{id}/submit`` -> ``request_id``, ``task_group_id``,
        ``endpoint_id``, ``tasks: {function_id: [task_id, ...]}``."""
        ...

    def get_task(self, task_id: str) -> dict[str, Any]:
        """``GET /v2/tasks/{id}``: ``task_id``, ``status``, then ``result`` or
        ``exception`` (and freight's ``exception_record``), ``completion_t``,
        ``details``."""
        ...

    def get_batch_status(self, task_ids: Sequence[str]) -> dict[str, Any]:
        """``POST /v2/batch_status`` -> ``{"response": "batch", "results": {...}}``."""
        ...

    def get_taskgroup(self, task_group_id: str) -> dict[str, Any]:
        """``GET /v2/taskgroup/{id}`` -> ``taskgroup_id``, ``tasks: [{"id"}...]``."""
        ...

    def get_endpoint_status(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v2/endpoints/{id}/status``."""
        ...

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v2/endpoints/{id}``."""
        ...

    def get_endpoints(self, role: str | None = None) -> list[dict[str, Any]]:
        """``GET /v2/endpoints?role=``."""
        ...

    def get_allowed_functions(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v3/endpoints/{id}/allowed_functions``."""
        ...

    def cancel(
        self, task_ids: Sequence[str], *, terminate: bool = False
    ) -> dict[str, Any]:
        """*freight* ``POST /freight/v1/tasks/cancel`` -> ``{"results": {task_id:
        "cancelled" | "terminated" | "running" | "finished"}}``: ``cancelled``
        means it never ran and never will; ``terminated`` that it was stopped."""
        ...

    def subscribe(
        self, task_group_id: str | None, on_result: ResultCallback
    ) -> Subscription:
        """*freight* the result stream of one task group (``None``: all of them)."""
        ...

    def close(self) -> None:
        """Release the transport's resources; idempotent."""
        ...
