"""Faults and limits seen from the client, on the embedded default's process
engine: a worker that dies fails only its own task, with ``WorkerLost`` raised at
the caller; a task over its ``resource_specification`` limits fails naming the
limit; the pool carries on."""

from __future__ import annotations

from concurrent.futures import wait
from pathlib import Path

import pytest

from freight.client import Client, Executor
from freight.endpoint.errors import MemoryLimitExceeded, TaskTimeout, WorkerLost
from freight.service.embedded import embedded_service

WAIT_S = 120.0


def square(x: int) -> int:
    return x * x


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def hard_exit() -> None:
    import os

    os._exit(7)


def killed() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def sleep_for(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "woke"


def hog(mb: int) -> int:
    import time

    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return len(block)


@pytest.fixture(scope="module")
def process_client(freight_home: Path) -> Client:
    home = freight_home / "faults"
    embedded_service(home, workers=2, engine="process")
    return Client(home=home)


@pytest.mark.parametrize(
    ("fault", "says"),
    [(segfault, "SIGSEGV"), (hard_exit, "7"), (killed, "SIGKILL")],
    ids=["segfault", "os._exit", "SIGKILL"],
)
def test_a_dying_worker_fails_only_its_own_task(
    process_client: Client, fault: object, says: str
) -> None:
    with Executor(client=process_client) as ex:
        before = [ex.submit(square, i) for i in range(20)]
        lost = ex.submit(fault)  # type: ignore[arg-type]
        after = [ex.submit(square, i) for i in range(20, 40)]
        done, _ = wait([*before, lost, *after], timeout=WAIT_S)
        assert len(done) == 41
        with pytest.raises(WorkerLost) as info:
            lost.result()
        assert says in str(info.value)
        assert [f.result() for f in before] == [i * i for i in range(20)]
        assert [f.result() for f in after] == [i * i for i in range(20, 40)]
        # The pool replaced the worker: more work still runs.
        assert ex.submit(square, 9).result(timeout=WAIT_S) == 81
        task = process_client.get_task(lost.task_id)
    assert task["status"] == "failed"
    assert isinstance(task["exception"], WorkerLost)


def test_a_task_over_its_time_limit_fails_naming_the_limit(
    process_client: Client,
) -> None:
    with Executor(
        client=process_client, resource_specification={"timeout_s": 0.5}
    ) as ex:
        slow = ex.submit(sleep_for, 60)
        quick = ex.submit(sleep_for, 0)
        with pytest.raises(TaskTimeout) as info:
            slow.result(timeout=WAIT_S)
        assert quick.result(timeout=WAIT_S) == "woke"
    assert "0.5" in str(info.value) and "timeout_s" in str(info.value)


def test_a_task_over_its_memory_limit_fails_naming_the_limit(
    process_client: Client,
) -> None:
    with Executor(
        client=process_client, resource_specification={"memory_mb": 200}
    ) as ex:
        fat = ex.submit(hog, 600)
        with pytest.raises(MemoryLimitExceeded) as info:
            fat.result(timeout=WAIT_S)
        assert ex.submit(square, 3).result(timeout=WAIT_S) == 9
    assert "200" in str(info.value) and "memory_mb" in str(info.value)
