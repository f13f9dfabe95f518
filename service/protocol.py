"""The seam between the service core and an endpoint.

The service core hands each endpoint its tasks as ``TaskMessage`` records through
``EndpointLink.dispatch`` and hears back through the ``TaskSink`` it gave the
endpoint: ``started`` when tasks begin, ``finished`` with one ``TaskOutcome`` each.
The embedded endpoint implements ``EndpointLink`` in-process; a remote endpoint
(issue 12) implements it over the network with the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["EndpointLink", "TaskMessage", "TaskOutcome", "TaskSink"]

#: A task payload: the reference's text envelope, or freight's binary frames.
Payload = str | Sequence[Any]


@dataclass(slots=True)
class TaskMessage:
    """One task as the endpoint receives it.

    ``function_code`` is the registered function in the text envelope (the
    reference's ``function_code``); ``payload`` is ``(args, kwargs)`` as given to
    ``submit``.  With ``chunk`` set the payload decodes to a list of
    ``(args, kwargs)`` pairs, the calls of one ``Executor.map`` chunk, and the
    result is a list with one ``[True, value]`` or ``[False, exception_record]``
    per call.  ``container`` is ``None`` or the registered execution environment
    (``{"container_id", "type", "location"}``).
    """

    task_id: str
    function_id: str
    function_code: str
    payload: Payload
    task_group_id: str
    resource_specification: dict[str, Any] | None = None
    user_endpoint_config: dict[str, Any] | None = None
    result_serializers: list[str] | None = None
    container: dict[str, Any] | None = None
    chunk: bool = False


@dataclass(slots=True)
class TaskOutcome:
    """How one task ended.

    ``status`` is ``"success"`` (``result`` holds the serialized value: ``str``
    in the text envelope, ``bytes`` in the binary one) or ``"failed"``
    (``exception`` is a ``freight.exception/1`` record, ``exception_text`` the
    traceback text the reference shows).  ``details`` is the reference's task
    ``details`` dict (``os``, ``python_version``, ``endpoint_id``, ...).
    """

    task_id: str
    status: Literal["success", "failed"]
    result: str | bytes | None = None
    exception: dict[str, Any] | None = None
    exception_text: str | None = None
    completion_t: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


class TaskSink(Protocol):
    """Where an endpoint reports progress; callable from any thread."""

    def started(self, task_ids: Sequence[str]) -> None: ...

    def finished(self, outcomes: Sequence[TaskOutcome]) -> None: ...


class EndpointLink(Protocol):
    """What the service core needs from an endpoint."""

    @property
    def endpoint_id(self) -> str: ...

    def attach(self, sink: TaskSink) -> None:
        """Start the endpoint; it reports to ``sink`` from now on."""
        ...

    def dispatch(self, tasks: Sequence[TaskMessage]) -> None:
        """Queue tasks to run; returns at once.  The endpoint no longer refers to
        the caller's payload buffers after this returns (it copies what it keeps)."""
        ...

    def cancel(self, task_ids: Sequence[str], *, terminate: bool) -> dict[str, str]:
        """Per task: ``"cancelled"`` (never started, never will; the endpoint
        reports no outcome for it), ``"terminated"`` (was running, stopped; the
        endpoint reports a failed outcome), ``"running"`` (left running) or
        ``"unknown"``."""
        ...

    def status(self) -> dict[str, Any]:
        """The reference's ``GET /v2/endpoints/{id}/status`` body: ``status``
        (``"online"``/``"offline"``) and ``details`` (workers, queue, capacity)."""
        ...

    def metadata(self) -> dict[str, Any]:
        """The reference's ``GET /v2/endpoints/{id}`` body (name, hostname, ...)."""
        ...

    def allowed_functions(self) -> list[str] | None:
        """Function ids this endpoint runs, or ``None`` for any."""
        ...

    def shutdown(self) -> None:
        """Stop accepting tasks and stop the engine; idempotent."""
        ...
