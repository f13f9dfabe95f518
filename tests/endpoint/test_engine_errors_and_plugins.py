"""Engine errors as values across the wire, engine loading by entry point, and
the ``thread`` engine."""

from __future__ import annotations

import pickle
import sys
import threading
from typing import Any

import pytest
from engine_helpers import TARGETS_DIR

from freight.endpoint.engine import ENGINE_ENTRY_POINT_GROUP, ResourceLimits, WorkItem
from freight.endpoint.engines import UnknownEngine, available_engines, load_engine
from freight.endpoint.errors import (
    EngineError,
    EnvironmentUnavailable,
    MemoryLimitExceeded,
    TaskTerminated,
    TaskTimeout,
    WorkerLost,
)
from freight.endpoint.process import ProcessEngine
from freight.endpoint.thread import ThreadEngine
from freight.serialize import (
    DEFAULT_ALLOWED_MODULES,
    RemoteExecutionError,
    exception_from_dict,
    exception_to_dict,
)

WAIT = 60.0
NO_LIMITS = ResourceLimits()

ERRORS: list[EngineError] = [
    WorkerLost("t1", 123, None, "SIGSEGV"),
    WorkerLost("t1", 123, None, "SIGKILL", "its stderr ends with: boom"),
    WorkerLost("t1", 123, 3),
    WorkerLost("t1"),
    TaskTimeout("t2", 2.0),
    TaskTimeout("t2", 0.25),
    MemoryLimitExceeded("t3", 256, 300),
    MemoryLimitExceeded("t3", 256),
    TaskTerminated("t4"),
    TaskTerminated("t4", "the engine shut down"),
    EnvironmentUnavailable("t5", "python", "/no/python", "no Python interpreter"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_engine_errors_cross_the_wire_as_values(error: EngineError) -> None:
    record = exception_to_dict(error)
    assert record["fields"] == {
        name: getattr(error, name) for name in type(error).error_fields
    }
    rebuilt = exception_from_dict(
        record, allowed_modules=DEFAULT_ALLOWED_MODULES | {"freight.endpoint.errors"}
    )
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    for name in type(error).error_fields:
        assert getattr(rebuilt, name) == getattr(error, name)
    # Without the module allowed, the fields still arrive.
    remote = exception_from_dict(record)
    assert isinstance(remote, RemoteExecutionError)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (type(error), str(error))


def test_the_messages_say_what_happened() -> None:
    assert str(WorkerLost("t", 9, None, "SIGKILL")) == (
        "task t failed: worker 9 was killed by SIGKILL (possibly the OOM killer) "
        "while running it"
    )
    assert "segmentation fault" in str(WorkerLost("t", 9, None, "SIGSEGV"))
    assert "exited with code 3" in str(WorkerLost("t", 9, 3))
    assert str(TaskTimeout("t", 2)) == (
        "task t exceeded its time limit of 2.0 s (resource_specification timeout_s)"
    )
    assert "memory limit of 64 MiB" in str(MemoryLimitExceeded("t", 64))


# -- loading engines by entry point -------------------------------------------------


def test_the_built_in_engines_load_by_name() -> None:
    assert ENGINE_ENTRY_POINT_GROUP == "freight.engines"
    assert {"thread", "process"} <= set(available_engines())
    thread = load_engine("thread", workers=1)
    assert isinstance(thread, ThreadEngine) and thread.name == "thread"
    process = load_engine("process", workers=1, target="m:f")
    assert isinstance(process, ProcessEngine) and process.name == "process"
    process.shutdown()  # never started: nothing to stop


def test_an_unknown_engine_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownEngine) as info:
        load_engine("nope")
    assert info.value.name == "nope"
    assert {"thread", "process"} <= set(info.value.available)
    assert "'nope'" in str(info.value) and "process" in str(info.value)
    with pytest.raises(TypeError):
        load_engine(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        load_engine("thread", workers=0)


def test_a_third_party_engine_loads_through_the_group(tmp_path, monkeypatch) -> None:
    info = tmp_path / "freight_fake_engine-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: freight-fake-engine\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENGINE_ENTRY_POINT_GROUP}]\n"
        "fake = freight_fake_engine:FakeEngine\n"
        "broken = freight_fake_engine_missing:Engine\n"
        "module = freight_fake_engine\n"
    )
    (tmp_path / "freight_fake_engine.py").write_text(
        "class FakeEngine:\n"
        "    name = 'fake'\n"
        "    def __init__(self, **options):\n"
        "        self.options = options\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "freight_fake_engine", raising=False)
    engine: Any = load_engine("fake", workers=3)
    assert type(engine).__name__ == "FakeEngine"
    assert engine.options == {"workers": 3}
    assert {"fake", "broken", "thread"} <= set(available_engines())
    with pytest.raises(ImportError, match="'broken'"):
        load_engine("broken")
    with pytest.raises(TypeError, match="not callable"):
        load_engine("module")


# -- the thread engine ---------------------------------------------------------------


@pytest.fixture
def thread_engine():
    made: list[ThreadEngine] = []

    def make(target: Any = "freight_engine_targets:echo", **options: Any):
        engine = ThreadEngine(target=target, extra_path=[TARGETS_DIR], **options)
        engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.shutdown(wait=False)


def test_thread_engine_round_trip_and_errors(thread_engine) -> None:
    engine = thread_engine(workers=2)
    frame = bytearray(b"b")
    started = threading.Event()
    item = WorkItem("t", [b"a", frame, memoryview(b"c")], NO_LIMITS)
    item.on_start = started.set
    future = engine.submit(item)
    frame[:] = b"z"
    assert future.result(WAIT) == b"abc"
    assert started.is_set()
    failing = thread_engine("freight_engine_targets:command", workers=1)
    exc = failing.submit(WorkItem("r", [b"raise k"], NO_LIMITS)).exception(WAIT)
    assert isinstance(exc, KeyError)
    wrong = thread_engine("freight_engine_targets:not_bytes", workers=1)
    exc = wrong.submit(WorkItem("n", [b""], NO_LIMITS)).exception(WAIT)
    assert isinstance(exc, TypeError)
    env = {"type": "python", "location": "/usr/bin/python3"}
    exc = engine.submit(WorkItem("e", [b""], NO_LIMITS, env)).exception(WAIT)
    assert isinstance(exc, EnvironmentUnavailable) and exc.env_type == "python"
    with pytest.raises(ValueError, match="already"):
        gate = threading.Event()
        blocked = thread_engine(lambda packet: gate.wait(WAIT) and b"", workers=1)
        blocked.submit(WorkItem("dup", [], NO_LIMITS))
        try:
            blocked.submit(WorkItem("dup", [], NO_LIMITS))
        finally:
            gate.set()


def test_thread_engine_cancel_and_status(thread_engine) -> None:
    gate = threading.Event()
    started = threading.Event()

    def target(packet: list[Any]) -> bytes:
        started.set()
        gate.wait(WAIT)
        return b"done"

    engine = thread_engine(target, workers=1)
    running = engine.submit(WorkItem("run", [], NO_LIMITS))
    queued = engine.submit(WorkItem("queued", [], NO_LIMITS))
    assert started.wait(WAIT)
    status = engine.status()
    assert (status.workers, status.queued, status.running, status.capacity) == (
        1,
        1,
        1,
        1,
    )
    assert engine.cancel("queued", terminate=False) == "cancelled"
    assert queued.cancelled()
    assert engine.cancel("run", terminate=True) == "running"
    assert engine.cancel("nope", terminate=True) == "unknown"
    gate.set()
    assert running.result(WAIT) == b"done"
    engine.shutdown(wait=True)
    assert engine.status().workers == 0
    with pytest.raises(RuntimeError):
        engine.submit(WorkItem("late", [], NO_LIMITS))


def test_thread_engine_time_limit_fails_the_future(thread_engine) -> None:
    gate = threading.Event()
    engine = thread_engine(lambda packet: gate.wait(WAIT) and b"late", workers=1)
    future = engine.submit(WorkItem("slow", [], ResourceLimits(timeout_s=0.1)))
    exc = future.exception(WAIT)
    assert isinstance(exc, TaskTimeout) and exc.timeout_s == 0.1
    gate.set()
    assert engine.submit(WorkItem("next", [], NO_LIMITS)).result(WAIT) == b"late"
