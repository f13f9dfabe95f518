"""Retention: a result is kept until retrieved, then for result_retention_s."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ECHO_SRC, HoldingLink, register_source, text_payload

from freight.service.core import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_RESULT_RETENTION_S,
    ServiceCore,
)
from freight.service.errors import UnknownTask, UnknownTaskGroup
from freight.service.store import SQLiteStore

TG = "7e7e7e7e-3333-4c3c-9c9c-2c2c2c2c2c2c"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(home: Path, link: HoldingLink, clock: Clock) -> Iterator[ServiceCore]:
    c = ServiceCore(
        SQLiteStore(home / "freight.db"), result_retention_s=10, clock=clock
    )
    c.add_endpoint(link)
    yield c
    c.shutdown()


def _done(core: ServiceCore, link: HoldingLink, n: int) -> list[str]:
    fid = register_source(core, "echo", ECHO_SRC)
    body = {"task_group_id": TG, "tasks": {fid: [text_payload(i) for i in range(n)]}}
    ids: list[str] = core.submit(link.endpoint_id, body)["tasks"][fid]
    link.succeed(ids)
    return ids


def test_an_unretrieved_result_is_kept_however_long(
    timed: ServiceCore, link: HoldingLink, clock: Clock
) -> None:
    (tid,) = _done(timed, link, 1)
    assert timed.sweep(clock.now + 10**9)["purged"] == 0
    assert timed.get_task(tid)["status"] == "success"


def test_a_retrieved_result_goes_after_the_retention_time(
    timed: ServiceCore, link: HoldingLink, clock: Clock
) -> None:
    a, b = _done(timed, link, 2)
    timed.get_task(a)  # retrieved now
    clock.now += 5
    timed.get_batch_status([b])  # retrieved 5 s later
    clock.now += 6  # a: 11 s ago; b: 6 s ago
    assert timed.sweep() == {"orphans_failed": 0, "purged": 1}
    with pytest.raises(UnknownTask):
        timed.get_task(a)
    assert timed.get_task(b)["status"] == "success"
    clock.now += 5
    assert timed.sweep()["purged"] == 1
    with pytest.raises(UnknownTask):
        timed.get_task(b)
    with pytest.raises(UnknownTaskGroup):  # its last task went with it
        timed.get_taskgroup(TG)


def test_asking_again_does_not_restart_the_retention_clock(
    timed: ServiceCore, link: HoldingLink, clock: Clock
) -> None:
    (tid,) = _done(timed, link, 1)
    timed.get_task(tid)
    clock.now += 8
    timed.get_task(tid)
    clock.now += 3
    assert timed.sweep()["purged"] == 1


def test_a_pushed_result_counts_as_retrieved(
    timed: ServiceCore, link: HoldingLink, clock: Clock
) -> None:
    got: list[dict[str, Any]] = []
    timed.subscribe(TG, got.append)
    ids = _done(timed, link, 3)
    assert len(got) == 3
    clock.now += 11
    assert timed.sweep()["purged"] == 3
    assert timed.get_batch_status(ids)["results"] == {}


def test_the_sweep_runs_by_itself_while_results_arrive(
    home: Path, link: HoldingLink, clock: Clock
) -> None:
    core = ServiceCore(
        SQLiteStore(home / "freight.db"),
        result_retention_s=10,
        clock=clock,
        sweep_every_s=60,
    )
    core.add_endpoint(link)
    try:
        (old,) = _done(core, link, 1)
        core.get_task(old)
        clock.now += 61
        _done(core, link, 1)  # recording an outcome sweeps: a minute has passed
        with pytest.raises(UnknownTask):
            core.get_task(old)
    finally:
        core.shutdown()


def test_limits_come_from_the_argument_then_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make(**kwargs: Any) -> ServiceCore:
        return ServiceCore(SQLiteStore(home / "freight.db"), **kwargs)

    core = make()
    assert core.result_retention_s == DEFAULT_RESULT_RETENTION_S
    assert core.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES
    core.shutdown()
    monkeypatch.setenv("FREIGHT_RESULT_RETENTION_S", "2.5")
    monkeypatch.setenv("FREIGHT_MAX_PAYLOAD_BYTES", "1000")
    core = make()
    assert (core.result_retention_s, core.max_payload_bytes) == (2.5, 1000)
    core.shutdown()
    core = make(result_retention_s=7, max_payload_bytes=9)
    assert (core.result_retention_s, core.max_payload_bytes) == (7, 9)
    core.shutdown()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FREIGHT_RESULT_RETENTION_S", "a day"),
        ("FREIGHT_RESULT_RETENTION_S", "-1"),
        ("FREIGHT_MAX_PAYLOAD_BYTES", "1.5"),
        ("FREIGHT_MAX_PAYLOAD_BYTES", "inf"),
    ],
)
def test_a_bad_limit_in_the_environment_names_the_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    store = SQLiteStore(home / "freight.db")
    try:
        with pytest.raises(ValueError, match=var):
            ServiceCore(store)
    finally:
        store.close()


def test_an_idle_service_sweeps_on_its_own_thread(
    home: Path, link: HoldingLink, clock: Clock
) -> None:
    core = ServiceCore(
        SQLiteStore(home / "freight.db"),
        result_retention_s=10,
        clock=clock,
        sweep_every_s=0.01,
    )
    core.add_endpoint(link)
    try:
        (old,) = _done(core, link, 1)
        core.get_task(old)
        clock.now += 11  # due; no result arrives after this
        core.start_sweeper()
        core.start_sweeper()  # idempotent
        deadline = 2000
        while deadline and core.get_batch_status([old])["results"]:
            deadline -= 1
            threading.Event().wait(0.01)
        assert core.get_batch_status([old])["results"] == {}
    finally:
        core.shutdown()
    assert core._sweeper is not None
    core._sweeper.join(timeout=30)
    assert not core._sweeper.is_alive()  # shutdown stops it
