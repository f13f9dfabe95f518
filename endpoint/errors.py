"""How an engine says a task failed for a reason of its own (not the task's).

Each failure is a plain exception with typed fields (``task_id``, ``pid``,
``signal`` ...): code that reacts reads the fields, never the message.  The
constructor arguments are the fields, all strings, integers or ``None``, so
``freight.serialize.exception_to_dict`` records them as ``args`` (and as
``fields``, named by ``error_fields``) and ``exception_from_dict`` rebuilds the
same exception when ``"freight.endpoint.errors"`` is in its ``allowed_modules``.
Floats are not scalars of that format: a time limit travels as its ``repr``
(``"2.0"``) and is also given in milliseconds (``timeout_ms``).
"""

from __future__ import annotations

import signal as _signal
from typing import ClassVar

__all__ = [
    "EngineError",
    "EnvironmentUnavailable",
    "MemoryLimitExceeded",
    "TaskTerminated",
    "TaskTimeout",
    "WorkerLost",
    "signal_name",
]


class EngineError(Exception):
    """Base of the failures an engine reports for a task."""

    #: The attributes that describe the failure as data (``exception_to_dict``
    #: records them as ``fields``).
    error_fields: ClassVar[tuple[str, ...]] = ("task_id",)

    task_id: str

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:  # pragma: no cover - subclasses say what happened
        return f"task {self.task_id} failed in the engine"


def signal_name(signum: int) -> str:
    """``"SIGKILL"`` for 9; ``"signal 77"`` for a number with no name here."""
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_SIGNAL_NOTES = {
    "SIGKILL": "possibly the OOM killer",
    "SIGSEGV": "segmentation fault",
    "SIGBUS": "bus error",
    "SIGABRT": "aborted",
    "SIGFPE": "floating point exception",
    "SIGILL": "illegal instruction",
}


class WorkerLost(EngineError):
    """The worker running the task died: killed by ``signal`` (``"SIGSEGV"``,
    ``"SIGKILL"`` ...) or exited with ``exitcode`` (``os._exit``).  Both ``None``
    when the engine could not learn how (``detail`` may say more)."""

    error_fields = ("task_id", "pid", "exitcode", "signal", "detail")

    def __init__(
        self,
        task_id: str,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(task_id, pid, exitcode, signal, detail)
        self.task_id = task_id
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal
        self.detail = detail

    def describe(self) -> str:
        who = f"worker {self.pid}" if self.pid is not None else "its worker"
        if self.signal is not None:
            note = _SIGNAL_NOTES.get(self.signal)
            how = f"was killed by {self.signal}" + (f" ({note})" if note else "")
        elif self.exitcode is not None:
            how = f"exited with code {self.exitcode}"
        else:
            how = "was lost"
        text = f"task {self.task_id} failed: {who} {how} while running it"
        return f"{text}; {self.detail}" if self.detail else text


class TaskTimeout(EngineError):
    """The task ran longer than its ``timeout_s`` and its worker was killed."""

    error_fields = ("task_id", "timeout_ms")

    def __init__(self, task_id: str, timeout_s: float | str) -> None:
        seconds = float(timeout_s)
        super().__init__(task_id, repr(seconds))
        self.task_id = task_id
        self.timeout_s = seconds
        self.timeout_ms = round(seconds * 1000)

    def describe(self) -> str:
        return (
            f"task {self.task_id} exceeded its time limit of {self.timeout_s!r} s "
            "(resource_specification timeout_s)"
        )


class MemoryLimitExceeded(EngineError):
    """The task's worker used more than ``memory_mb`` MiB (resident) and was
    killed; ``used_mb`` is what the engine saw last, when it knows."""

    error_fields = ("task_id", "memory_mb", "used_mb")

    def __init__(
        self, task_id: str, memory_mb: int, used_mb: int | None = None
    ) -> None:
        super().__init__(task_id, memory_mb, used_mb)
        self.task_id = task_id
        self.memory_mb = memory_mb
        self.used_mb = used_mb

    def describe(self) -> str:
        used = f" (it reached {self.used_mb} MiB)" if self.used_mb is not None else ""
        return (
            f"task {self.task_id} exceeded its memory limit of {self.memory_mb} MiB"
            f"{used} (resource_specification memory_mb)"
        )


class TaskTerminated(EngineError):
    """The task was running and was stopped on request (``cancel(terminate=True)``)
    or because the engine shut down without waiting."""

    error_fields = ("task_id", "reason")

    def __init__(self, task_id: str, reason: str = "cancelled with terminate") -> None:
        super().__init__(task_id, reason)
        self.task_id = task_id
        self.reason = reason

    def describe(self) -> str:
        return f"task {self.task_id} was terminated: {self.reason}"


class EnvironmentUnavailable(EngineError):
    """The task's execution environment could not run it: unknown ``env_type``,
    a missing interpreter or image, or workers that would not start there
    (``reason`` says which)."""

    error_fields = ("task_id", "env_type", "location", "reason")

    def __init__(
        self, task_id: str, env_type: str | None, location: str | None, reason: str
    ) -> None:
        super().__init__(task_id, env_type, location, reason)
        self.task_id = task_id
        self.env_type = env_type
        self.location = location
        self.reason = reason

    def describe(self) -> str:
        if self.env_type is None and self.location is None:
            where = "the default execution environment"
        else:
            where = f"execution environment {self.env_type!r} at {self.location!r}"
        return f"task {self.task_id} cannot run in {where}: {self.reason}"
