"""``Batch``: several task submissions sent in one request.

Two call shapes, both supported:

* globus-compute-sdk 4.19's: ``batch.add(function_id, args, kwargs)``, then
  ``client.batch_run(endpoint_id, batch)`` returns ``{"request_id",
  "task_group_id", "endpoint_id", "tasks": {function_id: [task_id, ...]}}``;
* the user guide's: ``batch.add(*args, endpoint_id=..., function_id=...,
  **kwargs)``, then ``client.batch_run(batch)`` returns the task ids in the order
  they were added (tasks may go to several endpoints).

Arguments are serialized when added, so later changes to them do not leak in.
"""

from __future__ import annotations

import platform
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from freight.client._checks import (
    check_bool,
    check_json_dict,
    check_uuid,
    optional_uuid,
)
from freight.serialize import ComputeSerializer

__all__ = ["Batch", "UserRuntime", "create_user_runtime"]


@dataclass(frozen=True)
class UserRuntime:
    """The submitting interpreter, as the reference reports it."""

    globus_compute_sdk_version: str
    globus_sdk_version: str
    python_version: str
    python: dict[str, Any]


def create_user_runtime() -> UserRuntime:
    """This interpreter's ``UserRuntime``."""
    from freight import __version__

    return UserRuntime(
        globus_compute_sdk_version=f"freight-{__version__}",
        globus_sdk_version="",
        python_version=sys.version,
        python={
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
    )


@dataclass(slots=True)
class _Entry:
    endpoint_id: str | None
    function_id: str
    payload: Any


class Batch:
    """Task submissions to send together; see the module docstring.

    ``binary`` selects freight's binary envelope (out-of-band frames, no base64)
    for the payloads, for transports that carry frames; otherwise the
    reference's text envelope.
    """

    def __init__(
        self,
        task_group_id: str | uuid.UUID | None = None,
        resource_specification: dict[str, Any] | None = None,
        user_endpoint_config: dict[str, Any] | None = None,
        request_queue: bool = False,
        serializer: ComputeSerializer | None = None,
        user_runtime: UserRuntime | None = None,
        result_serializers: list[str] | None = None,
        *,
        binary: bool = False,
    ) -> None:
        self.task_group_id = optional_uuid(task_group_id, "task_group_id")
        self.resource_specification = check_json_dict(
            resource_specification, "resource_specification"
        )
        self.user_endpoint_config = check_json_dict(
            user_endpoint_config, "user_endpoint_config"
        )
        if result_serializers is not None:
            if isinstance(result_serializers, str | bytes) or not isinstance(
                result_serializers, list | tuple
            ):
                raise TypeError(
                    "result_serializers: expected a list of strategy import paths,"
                    f" got {type(result_serializers).__name__}"
                )
            if not all(isinstance(s, str) for s in result_serializers):
                raise TypeError(
                    "result_serializers: expected a list of strategy import paths (str)"
                )
            result_serializers = list(result_serializers)
        if serializer is not None and not isinstance(serializer, ComputeSerializer):
            raise TypeError(
                "serializer: expected a ComputeSerializer, got"
                f" {type(serializer).__name__}"
            )
        if user_runtime is not None and not isinstance(user_runtime, UserRuntime):
            raise TypeError(
                "user_runtime: expected a UserRuntime, got"
                f" {type(user_runtime).__name__}"
            )
        self.request_queue = check_bool(request_queue, "request_queue")
        self.user_runtime = user_runtime
        self.result_serializers = result_serializers
        self._serde = serializer or ComputeSerializer()
        self._binary = binary
        self._entries: list[_Entry] = []

    def __repr__(self) -> str:
        return f"Batch(tasks={len(self)}, task_group_id={self.task_group_id})"

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def tasks(self) -> dict[str, list[Any]]:
        """Payloads by function id, in the order added."""
        out: dict[str, list[Any]] = {}
        for e in self._entries:
            out.setdefault(e.function_id, []).append(e.payload)
        return out

    def add(self, *args: Any, **kwargs: Any) -> None:
        """Add one call, in either shape (see the module docstring): the guide's
        when ``endpoint_id=`` is given, else 4.19's ``(function_id, args=None,
        kwargs=None)``.  Raises ``TypeError`` for a wrong type and
        ``SerializationError`` (with the strategy's reason) for arguments the
        data strategy cannot serialize; nothing is added then."""
        if "endpoint_id" in kwargs:
            endpoint_id = check_uuid(kwargs.pop("endpoint_id"), "endpoint_id")
            if "function_id" not in kwargs:
                raise TypeError("function_id: required with endpoint_id=")
            function_id = check_uuid(kwargs.pop("function_id"), "function_id")
            self._entries.append(
                _Entry(endpoint_id, function_id, self._payload(args, kwargs))
            )
            return
        self._add_reference(*args, **kwargs)

    def _add_reference(
        self,
        function_id: str | uuid.UUID,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        fid = check_uuid(function_id, "function_id")
        if args is None:
            args = ()
        if not isinstance(args, list | tuple):
            raise TypeError(f"args: expected `tuple`, got: {type(args).__name__}")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise TypeError(f"kwargs: expected dict, got: {type(kwargs).__name__}")
        bad = next((k for k in kwargs if not isinstance(k, str)), None)
        if bad is not None:
            raise TypeError(
                f"kwargs: expected kwargs with `str` keys, got: {type(bad).__name__}"
            )
        self._entries.append(_Entry(None, fid, self._payload(tuple(args), kwargs)))

    def _payload(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._binary:
            return self._serde.dumps_frames((args, kwargs))
        serde = self._serde
        return serde.pack_buffers([serde.serialize(args), serde.serialize(kwargs)])

    def endpoints(self) -> list[str | None]:
        """The endpoint of each call, in order (``None`` for 4.19-shaped ones)."""
        return [e.endpoint_id for e in self._entries]

    def _groups(self) -> Iterator[tuple[str | None, list[_Entry]]]:
        by_ep: dict[str | None, list[_Entry]] = {}
        for e in self._entries:
            by_ep.setdefault(e.endpoint_id, []).append(e)
        yield from by_ep.items()

    def prepare(self) -> dict[str, Any]:
        """The body of ``POST /v3/endpoints/{id}/submit`` for these calls (the
        reference's keys; ``tasks`` holds frames, not text, for a binary batch)."""
        return self._prepare(self._entries)

    def _prepare(self, entries: Sequence[_Entry]) -> dict[str, Any]:
        tasks: dict[str, list[Any]] = {}
        for e in entries:
            tasks.setdefault(e.function_id, []).append(e.payload)
        data: dict[str, Any] = {"create_queue": self.request_queue, "tasks": tasks}
        if self.task_group_id:
            data["task_group_id"] = self.task_group_id
        if self.resource_specification:
            data["resource_specification"] = dict(self.resource_specification)
        if self.user_endpoint_config:
            data["user_endpoint_config"] = dict(self.user_endpoint_config)
        if self.user_runtime:
            data["user_runtime"] = asdict(self.user_runtime)
        if self.result_serializers:
            data["result_serializers"] = list(self.result_serializers)
        return data
