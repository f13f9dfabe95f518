"""The ``process`` engine: round trips, shared memory, faults, limits, cancel,
shutdown.  Workers run the real targets of ``freight_engine_targets``."""

from __future__ import annotations

import os
import threading
from concurrent.futures import CancelledError, Future
from typing import Any

import pytest
from engine_helpers import TARGETS_DIR, shm_segments, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freight.endpoint.engine import ResourceLimits, WorkItem
from freight.endpoint.errors import (
    EnvironmentUnavailable,
    MemoryLimitExceeded,
    TaskTerminated,
    TaskTimeout,
    WorkerLost,
)
from freight.endpoint.process import ProcessEngine

NO_LIMITS = ResourceLimits()
WAIT = 60.0


def work(task_id: str, *frames: Any, **limits: Any) -> WorkItem:
    return WorkItem(task_id, list(frames), ResourceLimits(**limits))


def error_of(future: Future[bytes]) -> BaseException:
    exc = future.exception(WAIT)
    assert exc is not None, future.result()
    return exc


class started_events:
    """An event per task id, set when the engine sends the task to a worker."""

    def __init__(self, engine: ProcessEngine) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        submit = engine.submit

        def with_on_start(item: WorkItem) -> Future[bytes]:
            # The engine calls WorkItem.on_start once the task is sent.
            item.on_start = self[item.task_id].set
            return submit(item)

        engine.submit = with_on_start  # type: ignore[method-assign]

    def __getitem__(self, task_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(task_id, threading.Event())


# -- round trips ---------------------------------------------------------------


def test_frames_round_trip_and_the_worker_sees_memoryviews(process_engine):
    engine = process_engine("echo")
    frames = [b"head", bytearray(b"ba"), memoryview(b"mv"), b""]
    assert engine.submit(work("t1", *frames)).result(WAIT) == b"headbamv"
    sizes = process_engine("nbytes", workers=1, large_frame=1000)
    out = sizes.submit(work("t2", b"x" * 10, b"y" * 5000)).result(WAIT)
    assert out == b"memoryview:10,memoryview:5000"


def test_submit_copies_the_callers_buffers(process_engine):
    engine = process_engine("echo", workers=1, large_frame=1 << 16)
    small = bytearray(b"a" * 100)
    large = bytearray(b"b" * (1 << 17))  # goes through shared memory
    future = engine.submit(work("t", small, large))
    small[:] = b"z" * 100
    large[:] = b"z" * (1 << 17)
    assert future.result(WAIT) == b"a" * 100 + b"b" * (1 << 17)


def test_a_large_array_goes_through_shared_memory_and_is_unlinked(process_engine):
    np = pytest.importorskip("numpy")
    engine = process_engine("array_sum", workers=1)
    array = np.arange(1 << 20, dtype=np.float64)  # 8 MiB
    future = engine.submit(WorkItem("big", [array], NO_LIMITS))
    del array
    assert float(future.result(WAIT)) == float((1 << 20) * ((1 << 20) - 1) // 2)
    assert shm_segments() == set()


def test_a_large_result_comes_back_whole(process_engine):
    engine = process_engine("echo", workers=1)
    data = os.urandom(3 << 20)
    assert engine.submit(work("big", data, b"tail")).result(WAIT) == data + b"tail"


def test_a_target_that_does_not_load_fails_the_tasks_not_the_caller(process_engine):
    engine = process_engine("missing", workers=1)
    exc = error_of(engine.submit(work("t", b"")))
    assert isinstance(exc, EnvironmentUnavailable)
    assert "default execution environment" in str(exc)
    assert "freight_engine_targets" in exc.reason and "missing" in exc.reason


def test_a_task_that_prints_does_not_break_the_protocol(process_engine):
    engine = process_engine(workers=1)
    assert engine.submit(work("p", b"print")).result(WAIT) == b"printed"
    assert engine.submit(work("q", b"pid")).result(WAIT).isdigit()


def test_an_exception_in_the_target_fails_only_that_task(process_engine):
    engine = process_engine(workers=1)
    exc = error_of(engine.submit(work("r", b"raise key")))
    assert isinstance(exc, KeyError) and exc.args == ("key",)
    bad = process_engine("not_bytes", workers=1)
    exc = error_of(bad.submit(work("n", b"")))
    assert isinstance(exc, TypeError) and "not bytes" in str(exc)
    pid = engine.submit(work("s", b"pid")).result(WAIT)
    assert engine.submit(work("u", b"pid")).result(WAIT) == pid  # same worker


def test_bad_input_to_submit(process_engine):
    engine = process_engine("echo", workers=1)
    with pytest.raises(TypeError):
        engine.submit(("t", [b"x"]))
    with pytest.raises(TypeError):
        engine.submit(WorkItem("t", [object()], NO_LIMITS))
    with pytest.raises(ValueError, match="contiguous"):
        engine.submit(WorkItem("t", [memoryview(b"abcd")[::2]], NO_LIMITS))
    # Nothing was queued by the refused calls.
    assert engine.status().queued == 0
    assert engine.submit(work("t", b"ok")).result(WAIT) == b"ok"
    with pytest.raises(ValueError):
        ProcessEngine(0)
    with pytest.raises(ValueError):
        ProcessEngine(1, target="no_colon")


settings_ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def echo_engine():
    engine = ProcessEngine(
        2,
        target="freight_engine_targets:echo",
        extra_path=[TARGETS_DIR],
        large_frame=100,
    )
    engine.start()
    yield engine
    engine.shutdown()


@settings_
@given(frames=st.lists(st.binary(min_size=0, max_size=300), max_size=6))
def test_any_frames_come_back_whole(echo_engine, frames):
    # Frames of 100 bytes and more go through shared memory, smaller ones inline.
    task_id = os.urandom(8).hex()
    future = echo_engine.submit(WorkItem(task_id, frames, NO_LIMITS))
    assert future.result(WAIT) == b"".join(frames)
    assert shm_segments() == set()


# -- faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "signal", "exitcode"),
    [
        (b"segfault", "SIGSEGV", None),
        (b"sigkill", "SIGKILL", None),
        (b"exit 3", None, 3),
    ],
)
def test_a_dying_worker_fails_only_its_task(process_engine, command, signal, exitcode):
    engine = process_engine(workers=2)
    others = [engine.submit(work(f"ok{i}", b"sleep 0.05")) for i in range(6)]
    doomed = engine.submit(work("doomed", command))
    later = [engine.submit(work(f"later{i}", b"pid")) for i in range(4)]
    exc = error_of(doomed)
    assert isinstance(exc, WorkerLost)
    assert (exc.task_id, exc.signal, exc.exitcode) == ("doomed", signal, exitcode)
    assert exc.pid is not None
    if signal == "SIGKILL":
        assert "possibly the OOM killer" in str(exc)
    assert not os.path.exists(f"/proc/{exc.pid}")  # reaped, not a zombie
    assert all(f.result(WAIT) == b"slept" for f in others)
    assert all(f.result(WAIT).isdigit() for f in later)
    # The pool replaced the worker.
    wait_until(lambda: engine.status().workers == 2)
    assert str(exc.pid) not in {f.result().decode() for f in later}


def test_a_dead_workers_shared_memory_is_unlinked(process_engine):
    engine = process_engine(workers=1, large_frame=1024)
    for command in (b"sigkill", b"segfault", b"sleep 60"):
        future = engine.submit(work("k", command, b"y" * 4096, timeout_s=0.2))
        assert isinstance(error_of(future), WorkerLost | TaskTimeout)
        assert shm_segments() == set()


def test_queued_tasks_survive_their_workers_death(process_engine):
    engine = process_engine(workers=1)
    first = engine.submit(work("k", b"sigkill"))
    queued = [engine.submit(work(f"q{i}", b"pid")) for i in range(5)]
    assert isinstance(error_of(first), WorkerLost)
    assert len({f.result(WAIT) for f in queued}) == 1


def test_an_idle_worker_killed_is_replaced_without_losing_the_next_task(
    process_engine,
):
    engine = process_engine(workers=1)
    pid = int(engine.submit(work("a", b"pid")).result(WAIT))
    os.kill(pid, 9)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}/cmdline") or _is_zombie(pid))
    assert int(engine.submit(work("b", b"pid")).result(WAIT)) != pid


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


# -- limits -----------------------------------------------------------------------


def test_a_task_over_its_time_limit_is_killed_and_named(process_engine):
    engine = process_engine(workers=1)
    future = engine.submit(work("slow", b"sleep 60", timeout_s=0.3))
    after = engine.submit(work("next", b"pid"))
    exc = error_of(future)
    assert isinstance(exc, TaskTimeout)
    assert (exc.task_id, exc.timeout_s, exc.timeout_ms) == ("slow", 0.3, 300)
    assert "time limit of 0.3 s (resource_specification timeout_s)" in str(exc)
    assert after.result(WAIT).isdigit()
    # Within its limit, a task finishes normally.
    assert engine.submit(work("quick", b"sleep 0", timeout_s=30)).result(WAIT) == (
        b"slept"
    )


def test_a_task_over_its_memory_limit_is_killed_and_named(process_engine):
    engine = process_engine(workers=1)
    future = engine.submit(work("hog", b"alloc 600 30", memory_mb=200))
    exc = error_of(future)
    assert isinstance(exc, MemoryLimitExceeded)
    assert (exc.task_id, exc.memory_mb) == ("hog", 200)
    assert exc.used_mb is not None and exc.used_mb > 200
    assert "memory limit of 200 MiB" in str(exc)
    assert "resource_specification memory_mb" in str(exc)
    small = engine.submit(work("small", b"alloc 10 0", memory_mb=400))
    assert small.result(WAIT) == b"10"


# -- cancel -----------------------------------------------------------------------


def test_cancel_queued_running_and_unknown(process_engine, tmp_path):
    engine = process_engine(workers=1)
    started = started_events(engine)
    gate = str(tmp_path / "go")
    running = engine.submit(work("run", f"wait {gate}".encode()))
    queued = engine.submit(work("queued", b"pid", timeout_s=5))
    assert started["run"].wait(WAIT)
    assert engine.status().queued == 1 and engine.status().running == 1
    assert engine.cancel("queued", terminate=False) == "cancelled"
    assert queued.cancelled()
    with pytest.raises(CancelledError):
        queued.result(0)
    assert engine.cancel("queued", terminate=True) == "unknown"
    assert engine.cancel("nope", terminate=True) == "unknown"
    assert engine.cancel("run", terminate=False) == "running"
    assert engine.cancel("run", terminate=True) == "terminated"
    exc = error_of(running)
    assert isinstance(exc, TaskTerminated) and exc.task_id == "run"
    assert engine.submit(work("after", b"pid")).result(WAIT).isdigit()
    assert not started["queued"].is_set()


def test_a_future_cancelled_directly_never_runs(process_engine, tmp_path):
    engine = process_engine(workers=1)
    started = started_events(engine)
    gate = tmp_path / "go"
    first = engine.submit(work("first", f"wait {gate}".encode()))
    dropped = engine.submit(work("dropped", b"pid"))
    assert started["first"].wait(WAIT)
    assert dropped.cancel()
    gate.touch()
    assert first.result(WAIT) == b"waited"
    assert engine.submit(work("after", b"pid")).result(WAIT).isdigit()
    assert not started["dropped"].is_set()
    assert engine.status().queued == 0


def test_cancel_a_task_that_has_not_started_frees_its_shared_memory(process_engine):
    engine = process_engine(workers=1, large_frame=1024)
    started = started_events(engine)
    gate_engine_busy = engine.submit(work("busy", b"sleep 60"))
    assert started["busy"].wait(WAIT)
    engine.submit(work("big", b"x", b"y" * 4096))
    assert len(shm_segments()) == 1
    assert engine.cancel("big", terminate=True) == "cancelled"
    assert shm_segments() == set()
    assert engine.cancel("busy", terminate=True) == "terminated"
    assert isinstance(error_of(gate_engine_busy), TaskTerminated)


# -- shutdown -------------------------------------------------------------------


def test_shutdown_waits_for_the_work_and_leaves_nothing(no_leaks):
    engine = ProcessEngine(
        2,
        target="freight_engine_targets:echo",
        extra_path=[TARGETS_DIR],
        large_frame=64,
    )
    engine.start()
    wait_until(lambda: len(engine.worker_pids()) == 2)
    no_leaks.update(engine.worker_pids())
    futures = [engine.submit(work(str(i), b"x" * 100)) for i in range(20)]
    engine.shutdown(wait=True)
    assert all(f.result(0) == b"x" * 100 for f in futures)
    assert engine.status().workers == 0
    with pytest.raises(RuntimeError, match="shut down"):
        engine.submit(work("late", b""))
    engine.shutdown()  # idempotent


def test_shutdown_without_waiting_stops_everything(no_leaks, tmp_path):
    engine = ProcessEngine(
        1,
        target="freight_engine_targets:command",
        extra_path=[TARGETS_DIR],
        large_frame=64,
    )
    engine.start()
    started = started_events(engine)
    running = engine.submit(work("r", b"sleep 60", b"z" * 100))
    queued = [engine.submit(work(f"q{i}", b"pid", b"z" * 100)) for i in range(3)]
    assert started["r"].wait(WAIT)
    no_leaks.update(engine.worker_pids())
    engine.shutdown(wait=False)
    assert isinstance(error_of(running), TaskTerminated)
    assert all(f.cancelled() for f in queued)


def test_status_counts(process_engine, tmp_path):
    engine = process_engine(workers=2)
    wait_until(lambda: engine.status().workers == 2)
    status = engine.status()
    assert (status.queued, status.running, status.capacity) == (0, 0, 2)
    assert status.to_dict() == {
        "workers": 2,
        "queued": 0,
        "running": 0,
        "capacity": 2,
    }
