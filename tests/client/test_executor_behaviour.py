"""The Executor's behaviour beyond the reference: map, cancellation, shutdown,
reload from a new process, and results by push.

Tests that need a task to stay queued use a one-worker service of their own
(``solo``): a gated task (it waits for a file) occupies the worker, so the next
task is queued behind it.  Stopping a *running* task needs the ``process`` engine;
those tests run where it is installed and are skipped otherwise.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from freight.client import Client, ComputeFuture, Executor, TaskExecutionFailed
from freight.endpoint.engines import available_engines
from freight.serialize import SerializationError
from freight.service.core import ServiceCore, TaskCancelled
from freight.service.embedded import embedded_service

PROCESS = "process" in available_engines()
needs_process_engine = pytest.mark.skipif(
    not PROCESS,
    reason="stopping a running task needs the process engine (branch proc), which"
    " is not installed here; the thread engine cannot stop a thread",
)


# -- task functions (sent by value) --


def identity(x: Any) -> Any:
    return x


def double(x: int) -> int:
    return 2 * x


def jittery(x: int) -> int:
    import random
    import time

    time.sleep(random.random() / 500)
    return x


def touch(path: str) -> str:
    import pathlib

    pathlib.Path(path).touch()
    return path


def gated(started: str, gate: str, marker: str = "") -> str:
    """Touch ``started``, wait until ``gate`` exists, then touch ``marker``."""
    import os
    import pathlib
    import time

    pathlib.Path(started).touch()
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.005)
    if marker:
        pathlib.Path(marker).touch()
    return "released"


def step(path: str, gate: str = "") -> str:
    """Touch ``path``; then, if ``gate`` is given, wait for it."""
    import os
    import pathlib
    import time

    pathlib.Path(path).touch()
    deadline = time.monotonic() + 120
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.005)
    return path


def fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise KeyError(x)
    return x


class NotRebuildable(Exception):
    """Defined here: the client cannot rebuild it, so it becomes
    TaskExecutionFailed."""


def custom_fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise NotRebuildable(f"bad {x}")
    return x


class Gate:
    """A gated task's files: ``started`` (it is running), ``gate`` (let it go)."""

    def __init__(self, root: Path, wait_for: Callable[..., None]) -> None:
        name = uuid.uuid4().hex
        self.started = root / f"{name}.started"
        self.gate = root / f"{name}.gate"
        self.marker = root / f"{name}.marker"
        self._wait_for = wait_for

    def args(self) -> tuple[str, str, str]:
        return str(self.started), str(self.gate), str(self.marker)

    def wait_started(self) -> None:
        self._wait_for(self.started.exists, "the gated task to start")

    def open(self) -> None:
        self.gate.touch()


# -- fixtures --


def _solo(root: Path, engine: str) -> Client:
    home = root / f"solo-{engine}"
    embedded_service(home, workers=1, engine=engine)
    return Client(home=home)


@pytest.fixture(scope="module")
def solo(freight_home: Path) -> Client:
    """A client of a one-worker thread-engine service of its own."""
    return _solo(freight_home, "thread")


@pytest.fixture(scope="module")
def solo_process(freight_home: Path) -> Client:
    """A client of a one-worker process-engine service of its own."""
    return _solo(freight_home, "process")


@pytest.fixture
def gates(
    tmp_path: Path, wait_for: Callable[..., None]
) -> Iterator[Callable[[], Gate]]:
    """Makes gates; every one is opened at teardown, so no task blocks forever."""
    made: list[Gate] = []

    def make() -> Gate:
        g = Gate(tmp_path, wait_for)
        made.append(g)
        return g

    yield make
    for g in made:
        g.open()


def _drain(ex: Executor) -> None:
    """Run one task through and wait for it: with one worker, every task sent
    before it has then started (or was cancelled)."""
    ex.submit(identity, None).result(timeout=60)


# -- map --


def test_map_is_ordered(freight_home: Path) -> None:
    with Executor() as ex:
        assert list(ex.map(jittery, range(300))) == list(range(300))
        assert list(ex.map(jittery, range(300), chunksize=7)) == list(range(300))
        assert list(ex.map(pow, [2, 3, 4], [5, 6])) == [32, 729]  # shortest wins
        assert list(ex.map(double, [])) == []


def test_map_is_lazy_over_an_endless_input(freight_home: Path) -> None:
    pulled = itertools.count()

    def endless() -> Iterator[int]:
        for i in itertools.count():
            next(pulled)
            yield i

    with Executor(map_window=32) as ex:
        out = list(itertools.islice(ex.map(double, endless()), 1000))
        assert out == [2 * i for i in range(1000)]
        # Only a window beyond what was consumed was taken from the input.
        assert next(pulled) <= 1000 + 32 + 1


def test_map_keeps_at_most_a_window_in_flight(freight_home: Path) -> None:
    window = 16
    with Executor(map_window=window) as ex:
        results = ex.map(identity, itertools.count())
        highest = 0
        for i, value in enumerate(itertools.islice(results, 3000)):
            assert value == i
            highest = max(highest, ex.in_flight)
        assert 0 < highest <= window
        results.close()  # type: ignore[attr-defined]
        for _ in itertools.islice(ex.map(identity, range(10**6), chunksize=50), 2000):
            highest = max(highest, ex.in_flight)
        assert highest <= window


def test_map_timeout(freight_home: Path, gates: Callable[[], Gate]) -> None:
    g = gates()
    with Executor() as ex:
        results = ex.map(gated, [str(g.started)], [str(g.gate)], timeout=0.05)
        with pytest.raises(TimeoutError, match="map"):
            next(results)
        g.open()


def test_chunksize_packs_calls_into_one_task(
    freight_home: Path, service_counts: Callable[[], tuple[int, int]]
) -> None:
    with Executor() as ex:
        ex.register_function(double)
        _, before = service_counts()
        assert list(ex.map(double, range(100), chunksize=10)) == [
            2 * i for i in range(100)
        ]
        _, after = service_counts()
        assert after - before == 10
        assert list(ex.map(double, range(101), chunksize=10))[-1] == 200
        _, last = service_counts()
        assert last - after == 11


def test_a_failing_call_in_a_chunk_raises_at_its_position(freight_home: Path) -> None:
    with Executor() as ex:
        got: list[int] = []
        with pytest.raises(KeyError) as info:
            for value in ex.map(fail_at, range(10), [5] * 10, chunksize=4):
                got.append(value)
        assert got == [0, 1, 2, 3, 4]
        assert info.value.args == (5,)
        assert "KeyError" in info.value.remote_traceback  # type: ignore[attr-defined]

        got = []
        with pytest.raises(TaskExecutionFailed) as failed:
            for value in ex.map(custom_fail_at, range(6), [2] * 6, chunksize=3):
                got.append(value)
        assert got == [0, 1]
        assert failed.value.type_name == "NotRebuildable"
        assert failed.value.message == "bad 2"
        assert "custom_fail_at" in failed.value.remote_traceback


def test_a_map_input_that_cannot_be_serialized_raises_at_its_position(
    freight_home: Path,
) -> None:
    import threading

    values: list[Any] = [0, 1, 2, threading.Lock(), 4]
    with Executor(map_window=2) as ex:
        got = []
        with pytest.raises(SerializationError, match=r"_thread\.lock"):
            for value in ex.map(identity, values):
                got.append(value)
        assert got == [0, 1, 2]


def test_a_map_outliving_its_executor_delivers_what_was_sent(
    freight_home: Path,
) -> None:
    with Executor(map_window=4) as ex:
        results = ex.map(double, range(10))
    got = []
    with pytest.raises(RuntimeError, match="shutdown"):
        for value in results:
            got.append(value)
    assert got == [0, 2, 4, 6]


def test_closing_a_map_cancels_the_calls_not_started(
    solo: Client, tmp_path: Path, gates: Callable[[], Gate]
) -> None:
    g = gates()
    marks = [tmp_path / f"m{i}" for i in range(10)]
    with Executor(client=solo) as ex:
        results = ex.map(step, [str(m) for m in marks], [""] + [str(g.gate)] + [""] * 8)
        assert next(results) == str(marks[0])
        results.close()  # type: ignore[attr-defined]
        g.open()
        _drain(ex)
    assert marks[1].exists()  # it was running: a thread cannot be stopped
    assert not any(m.exists() for m in marks[2:])


# -- cancellation --


def test_cancel_a_queued_task_it_never_runs(
    solo: Client,
    tmp_path: Path,
    gates: Callable[[], Gate],
    wait_for: Callable[..., None],
) -> None:
    g = gates()
    marker = tmp_path / "victim-ran"
    with Executor(client=solo) as ex:
        blocker = ex.submit(gated, *g.args())
        g.wait_started()
        victim = ex.submit(touch, str(marker))
        wait_for(lambda: victim.task_id is not None, "the victim to be sent")
        assert solo.get_task(victim.task_id)["status"] == "waiting-for-launch"

        assert victim.cancel() is True
        assert victim.cancelled() and victim.done()
        with pytest.raises(concurrent.futures.CancelledError):
            victim.result()
        assert victim.cancel() is True  # idempotent

        g.open()
        assert blocker.result(timeout=60) == "released"
        _drain(ex)
    assert not marker.exists()
    status = solo.get_task(victim.task_id)
    assert status["status"] == "failed"
    assert isinstance(status["exception"], TaskCancelled)
    assert "never ran" in str(status["exception"])


def test_cancel_a_running_task_on_the_thread_engine_is_refused(
    solo: Client, gates: Callable[[], Gate]
) -> None:
    g = gates()
    with Executor(client=solo, cancel_running=True) as ex:
        running = ex.submit(gated, *g.args())
        g.wait_started()
        assert running.cancel() is False  # a thread cannot be stopped
        assert running.terminate() is False
        g.open()
        assert running.result(timeout=60) == "released"
        assert running.cancel() is False  # finished


def test_cancel_a_finished_task(freight_home: Path) -> None:
    with Executor() as ex:
        fut = ex.submit(double, 2)
        assert fut.result() == 4
        assert fut.cancel() is False and not fut.cancelled()


@needs_process_engine
def test_terminate_stops_a_running_task(
    solo_process: Client, gates: Callable[[], Gate], wait_for: Callable[..., None]
) -> None:
    g = gates()
    with Executor(client=solo_process) as ex:
        running = ex.submit(gated, *g.args())
        g.wait_started()
        assert running.cancel() is False  # cancel_running is off: it keeps running
        assert running.terminate() is True
        assert running.cancelled()
        tid = running.task_id
        wait_for(lambda: not solo_process.get_task(tid)["pending"], "its status")
        assert solo_process.get_task(tid)["status"] == "failed"
        g.open()
        _drain(ex)
    assert not g.marker.exists()


@needs_process_engine
def test_cancel_running_stops_a_running_task(
    solo_process: Client, gates: Callable[[], Gate], wait_for: Callable[..., None]
) -> None:
    g = gates()
    with Executor(client=solo_process, cancel_running=True) as ex:
        running = ex.submit(gated, *g.args())
        g.wait_started()
        assert running.cancel() is True
        tid = running.task_id
        wait_for(lambda: not solo_process.get_task(tid)["pending"], "its status")
        assert solo_process.get_task(tid)["status"] == "failed"
        g.open()
        _drain(ex)
    assert not g.marker.exists()


@needs_process_engine
def test_shutdown_cancel_futures_with_cancel_running_stops_everything(
    solo_process: Client, tmp_path: Path, gates: Callable[[], Gate]
) -> None:
    g = gates()
    marker = tmp_path / "queued-ran"
    ex = Executor(client=solo_process, cancel_running=True)
    running = ex.submit(gated, *g.args())
    g.wait_started()
    queued = ex.submit(touch, str(marker))
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.cancelled() and queued.cancelled()
    g.open()
    assert not g.marker.exists() and not marker.exists()


# -- shutdown --


def test_shutdown_waits_for_every_future(freight_home: Path) -> None:
    ex = Executor()
    futs = [ex.submit(jittery, i) for i in range(200)]
    ex.shutdown()  # wait=True, cancel_futures=False
    assert all(f.done() for f in futs)
    assert [f.result() for f in futs] == list(range(200))
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(double, 1)
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.map(double, [1])
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.register_function(jittery)
    ex.shutdown()  # idempotent


def test_shutdown_without_wait_still_delivers(
    solo: Client, gates: Callable[[], Gate]
) -> None:
    g = gates()
    ex = Executor(client=solo)
    fut = ex.submit(gated, *g.args())
    g.wait_started()
    ex.shutdown(wait=False)
    assert not fut.done()  # shutdown returned without waiting for it
    g.open()
    assert fut.result(timeout=60) == "released"  # its result still arrives


def test_shutdown_cancel_futures_cancels_what_has_not_started(
    solo: Client, tmp_path: Path, gates: Callable[[], Gate]
) -> None:
    g = gates()
    marks = [tmp_path / f"q{i}" for i in range(20)]
    ex = Executor(client=solo)
    running = ex.submit(gated, *g.args())
    g.wait_started()
    queued = [ex.submit(touch, str(m)) for m in marks]
    ex.shutdown(wait=False, cancel_futures=True)
    g.open()
    assert running.result(timeout=60) == "released"  # thread engine: it ran on
    concurrent.futures.wait(queued, timeout=60)
    assert all(f.cancelled() for f in queued)
    with Executor(client=solo) as after:
        _drain(after)
    assert not any(m.exists() for m in marks)


def test_context_manager_shuts_down(freight_home: Path) -> None:
    with Executor() as ex:
        fut = ex.submit(double, 21)
    assert fut.done() and fut.result() == 42
    with pytest.raises(RuntimeError):
        ex.submit(double, 1)


# -- reload from a new process --

RELOAD_CHILD = """
import json, sys
from freight.client import Executor

ex = Executor(task_group_id=sys.argv[1])
futures = ex.reload_tasks()
out = {}
for f in futures:
    try:
        out[f.task_id] = f.result(timeout=60)
    except Exception as exc:
        out[f.task_id] = f"{type(exc).__name__}: {exc}"
ex.shutdown()
print(json.dumps(out))
"""


def test_reload_tasks_from_a_new_process(
    client: Client,
    service: ServiceCore,
    endpoint_id: str,
    wait_for: Callable[..., None],
) -> None:
    tg = str(uuid.uuid4())
    with Executor(client=client, task_group_id=tg) as ex:
        futs = [ex.submit(double, i) for i in range(5)]
        failing = ex.submit(fail_at, 1, 1)
        concurrent.futures.wait([*futs, failing], timeout=60)
    # Tasks of the same group submitted by a Client: nobody fetches their results.
    fid = client.register_function(double)
    batch = client.create_batch(task_group_id=tg)
    for i in range(10, 13):
        batch.add(fid, (i,))
    unfetched = batch_ids = [
        t for ts in client.batch_run(endpoint_id, batch)["tasks"].values() for t in ts
    ]
    wait_for(
        lambda: all(
            r.status in ("success", "failed")
            for r in service.store.get_tasks(batch_ids).values()
        ),
        "the batch to finish",
    )
    assert all(r.retrieved is None for r in service.store.get_tasks(unfetched).values())

    child = subprocess.run(
        [sys.executable, "-c", RELOAD_CHILD, tg],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout)
    expected = {f.task_id: 2 * i for i, f in enumerate(futs)}
    expected.update({t: 2 * (10 + i) for i, t in enumerate(batch_ids)})
    assert failing.task_id in got and got.pop(failing.task_id).startswith("KeyError")
    assert got == expected


def test_reload_tasks_in_this_process_resolves_pending_by_push(
    solo: Client, gates: Callable[[], Gate]
) -> None:
    g = gates()
    tg = str(uuid.uuid4())
    with Executor(client=solo, task_group_id=tg) as ex:
        done = ex.submit(double, 4)
        done.result(timeout=60)
        pending = ex.submit(gated, *g.args())
        g.wait_started()
        other = Executor(client=solo)
        reloaded = {f.task_id: f for f in other.reload_tasks(tg)}
        assert other.task_group_id == tg
        assert reloaded[done.task_id].result() == 8
        later = reloaded[pending.task_id]
        assert isinstance(later, ComputeFuture) and not later.done()
        g.open()
        assert later.result(timeout=60) == "released"
        other.shutdown()


# -- results by push --


def test_results_arrive_by_push_not_polling(
    freight_home: Path, service: ServiceCore, counting: Any
) -> None:
    proxy = counting(service)
    client = Client(transport=proxy)
    with Executor(client=client) as ex:
        futs = [ex.submit(double, i) for i in range(100)]
        assert [f.result(timeout=60) for f in futs] == [2 * i for i in range(100)]
        assert list(ex.map(double, range(100), chunksize=9)) == [
            2 * i for i in range(100)
        ]
        assert sorted(
            f.result()
            for f in concurrent.futures.as_completed(
                [ex.submit(double, i) for i in range(20)], timeout=60
            )
        ) == [2 * i for i in range(20)]
    assert proxy.calls["get_task"] == 0
    assert proxy.calls["get_batch_status"] == 0
    assert proxy.calls["subscribe"] == 1
    assert proxy.calls["submit"] >= 1


def test_text_envelope_transport_round_trips(
    freight_home: Path, service: ServiceCore, counting: Any, endpoint_id: str
) -> None:
    # A transport without binary frames gets the reference's text envelope,
    # for single calls and for map chunks alike.
    client = Client(transport=counting(service, binary_payloads=False))
    with Executor(endpoint_id, client=client) as ex:
        assert ex.submit(double, 5).result(timeout=60) == 10
        assert list(ex.map(double, range(7), chunksize=3)) == [2 * i for i in range(7)]
