"""The client's errors, with the reference's names.

``TaskPending`` and ``TaskExecutionFailed`` keep ``globus_compute_sdk``'s names and
constructor shapes.  A failed task re-raises its original exception type where
``freight.serialize.exception_from_dict`` can rebuild it (built-in types, and
freight's own ``WorkerLost``, ``TaskTimeout``, ``TaskCancelled`` ...), with the
remote traceback as its ``remote_traceback`` attribute and last note; otherwise
``TaskExecutionFailed`` carries the type name, message and remote traceback.
Service refusals are ``freight.service.errors.ServiceError`` s, re-exported here.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any

from freight.serialize import (
    DEFAULT_ALLOWED_MODULES,
    DeserializationError,
    RemoteExecutionError,
    SerializationError,
    exception_from_dict,
)
from freight.service.errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceError,
    UnknownContainer,
    UnknownEndpoint,
    UnknownFunction,
    UnknownTask,
    UnknownTaskGroup,
)

__all__ = [
    "REBUILT_MODULES",
    "InvalidRequest",
    "PayloadTooLarge",
    "SerializationError",
    "ServiceError",
    "TaskExecutionFailed",
    "TaskPending",
    "UnknownContainer",
    "UnknownEndpoint",
    "UnknownFunction",
    "UnknownTask",
    "UnknownTaskGroup",
    "task_exception",
]

#: Modules whose exception types a failed task is rebuilt as: the defaults of
#: ``freight.serialize.remote_errors`` plus freight's own task failures.
REBUILT_MODULES: frozenset[str] = DEFAULT_ALLOWED_MODULES | {
    "freight.endpoint.errors",
    "freight.endpoint.execute",
    "freight.endpoint.endpoint",
    "freight.service.core",
}


class TaskPending(Exception):
    """The task has not finished; ``reason`` is its status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"Task is pending due to {self.reason}"

    def __str__(self) -> str:
        return repr(self)


class TaskExecutionFailed(Exception):
    """A task failed with an exception whose type could not be rebuilt here.

    ``remote_data`` is the remote traceback text (the reference's field);
    ``type_name`` and ``message`` the remote exception's, ``completion_t`` when
    it finished, ``task_details`` the task's ``details``.
    """

    def __init__(
        self,
        remote_data: str,
        completion_t: str | None = None,
        task_details: dict[str, Any] | None = None,
        *,
        type_name: str | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(remote_data)
        self.remote_data = remote_data
        self.completion_t = completion_t or str(time.time())
        self.task_details = task_details
        self.type_name = type_name
        self.message = message

    @property
    def remote_traceback(self) -> str:
        return self.remote_data

    def __str__(self) -> str:
        head = f"{self.type_name}: {self.message}\n" if self.type_name else ""
        return head + textwrap.indent(self.remote_data, " ")


def task_exception(status: dict[str, Any]) -> BaseException:
    """The exception a failed task's status dict describes (see the module
    docstring)."""
    text = str(status.get("exception") or "")
    completion_t = status.get("completion_t")
    details = status.get("details")
    record = status.get("exception_record")
    if record is None:
        return TaskExecutionFailed(text, completion_t, details)
    try:
        exc = exception_from_dict(record, allowed_modules=REBUILT_MODULES)
    except DeserializationError as err:
        failed = TaskExecutionFailed(text, completion_t, details)
        failed.__cause__ = err
        return failed
    if isinstance(exc, RemoteExecutionError):
        failed = TaskExecutionFailed(
            exc.traceback or text,
            completion_t,
            details,
            type_name=exc.type_name,
            message=exc.message,
        )
        failed.__cause__ = exc
        return failed
    return exc
