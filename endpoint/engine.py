"""The engine contract: how an endpoint runs work somewhere.

An engine moves opaque *packets* to workers and back.  The endpoint builds a packet
per task (``freight.endpoint.execute.encode_work``); a worker calls
``freight.endpoint.execute.run_packet(packet) -> bytes`` and the engine returns
those bytes through the future.  Deserialization, allowlists, limits and result
encoding all happen inside ``run_packet``, once, whatever the engine.

Engines are plugins: an entry point in the group ``freight.engines`` names a
class implementing ``Engine`` (``thread`` and ``process`` are built in, declared
in ``pyproject.toml`` exactly as a third party's would be).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ENGINE_ENTRY_POINT_GROUP",
    "Engine",
    "EngineStatus",
    "ResourceLimits",
    "WorkItem",
]

ENGINE_ENTRY_POINT_GROUP = "freight.engines"


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """Per-task limits from ``resource_specification`` (``timeout_s``,
    ``memory_mb``); ``None`` means unlimited."""

    timeout_s: float | None = None
    memory_mb: int | None = None


@dataclass(slots=True)
class WorkItem:
    """One unit of work for an engine: ``packet`` is a list of frames (the first
    is a small header), ``limits`` what the engine enforces, ``environment``
    the execution environment (``None``: the engine's default interpreter).
    An engine that knows when a task starts calls ``on_start`` then, once."""

    task_id: str
    packet: Sequence[Any]
    limits: ResourceLimits
    environment: dict[str, Any] | None = None
    on_start: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What an engine reports: live workers, tasks queued and running, and how
    many it could run at once."""

    workers: int
    queued: int
    running: int
    capacity: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "queued": self.queued,
            "running": self.running,
            "capacity": self.capacity,
        }


class Engine(Protocol):
    """Runs ``run_packet`` on workers.

    ``submit`` returns a future of the result packet (``bytes``).  A future fails
    with ``freight.endpoint.errors.WorkerLost`` when its worker died,
    ``TaskTimeout`` or ``MemoryLimitExceeded`` when it broke a limit the engine
    enforces; any other failure is the engine's own.  ``cancel`` stops a task:
    ``"cancelled"`` if it had not started (its future is cancelled),
    ``"terminated"`` if it was running and ``terminate`` was true (its future
    fails with ``TaskTerminated``), else ``"running"`` or ``"unknown"``.
    """

    name: str

    def start(self) -> None: ...

    def submit(self, work: WorkItem) -> Future[bytes]: ...

    def cancel(self, task_id: str, *, terminate: bool) -> str: ...

    def status(self) -> EngineStatus: ...

    def shutdown(self, wait: bool = True) -> None: ...
