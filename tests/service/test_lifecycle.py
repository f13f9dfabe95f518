"""A task's status: the reference's vocabulary, forward only, finished once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from service_helpers import (
    ECHO_SRC,
    HoldingLink,
    decode,
    register_source,
    text_payload,
    wait_until,
)

from freight.service.core import ServiceCore
from freight.service.embedded import embedded_service
from freight.service.store import FINAL, STATUSES, SQLiteStore


def _submit(core: ServiceCore, link: HoldingLink, n: int = 1, tg: str | None = None):
    fid = register_source(core, "echo", ECHO_SRC)
    body: dict[str, Any] = {"tasks": {fid: [text_payload(i) for i in range(n)]}}
    if tg:
        body["task_group_id"] = tg
    r = core.submit(link.endpoint_id, body)
    return r, r["tasks"][fid]


def test_the_vocabulary_is_the_references() -> None:
    assert STATUSES == (
        "received",
        "waiting-for-ep",
        "waiting-for-nodes",
        "waiting-for-launch",
        "running",
        "success",
        "failed",
    )
    assert FINAL == ("success", "failed")


def test_a_task_moves_from_waiting_to_running_to_success(
    core: ServiceCore, link: HoldingLink
) -> None:
    _, (tid,) = _submit(core, link)
    assert core.get_task(tid)["status"] == "waiting-for-launch"
    link.start([tid])
    assert core.get_task(tid)["status"] == "running"
    link.succeed([tid], 42)
    status = core.get_task(tid)
    assert status["status"] == "success"
    assert decode(status["result"]) == 42


def test_status_never_moves_backward(core: ServiceCore, link: HoldingLink) -> None:
    _, (tid,) = _submit(core, link)
    link.start([tid])
    core.set_status([tid], "waiting-for-nodes")
    core.set_status([tid], "waiting-for-launch")
    assert core.get_task(tid)["status"] == "running"
    link.succeed([tid])
    link.start([tid])
    core.set_status([tid], "received")
    assert core.get_task(tid)["status"] == "success"


def test_a_task_is_finished_once_and_a_late_outcome_is_ignored(
    core: ServiceCore, link: HoldingLink
) -> None:
    _, (tid,) = _submit(core, link)
    pushed: list[dict[str, Any]] = []
    core.subscribe(None, pushed.append)
    link.succeed([tid], "first")
    link.succeed([tid], "second")
    link.fail([tid], RuntimeError("late failure"))
    status = core.get_task(tid)
    assert status["status"] == "success"
    assert decode(status["result"]) == "first"
    assert [m["task_id"] for m in pushed] == [tid]


def test_a_repeated_outcome_in_one_batch_is_recorded_once(
    core: ServiceCore, link: HoldingLink
) -> None:
    from service_helpers import SER

    from freight.service.protocol import TaskOutcome

    _, (tid,) = _submit(core, link)
    pushed: list[dict[str, Any]] = []
    core.subscribe(None, pushed.append)
    core.finished(
        [
            TaskOutcome(tid, "success", result=SER.serialize(1)),
            TaskOutcome(tid, "success", result=SER.serialize(2)),
        ]
    )
    assert decode(core.get_task(tid)["result"]) == 1
    assert len(pushed) == 1 and decode(pushed[0]["result"]) == 1


def test_set_status_refuses_a_final_or_unknown_status(core: ServiceCore) -> None:
    import pytest

    for bad in ("success", "failed", "pending", ""):
        with pytest.raises(ValueError):
            core.set_status(["x"], bad)


_UNFINISHED = [s for s in STATUSES if s not in FINAL]
_EVENT = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(_UNFINISHED)),
    st.tuples(st.just("finish"), st.sampled_from(FINAL)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_EVENT, max_size=12))
def test_any_sequence_of_reports_moves_a_task_forward_only(
    events: list[tuple[str, str]],
) -> None:
    store = SQLiteStore(":memory:")
    try:
        store.add_tasks("g", "e", [("t", "f")], "waiting-for-launch")
        rank = {s: i for i, s in enumerate(STATUSES)}
        seen = "waiting-for-launch"
        first_final: str | None = None
        for kind, status in events:
            if kind == "status":
                store.set_status(["t"], status)
            else:
                store.finish([("t", status, None, None, None, None, 0.0, None)])
                first_final = first_final or status
            now = store.get_tasks(["t"])["t"].status
            assert now == seen or (seen not in FINAL and rank[now] > rank[seen])
            if first_final is not None:
                assert now == first_final
            seen = now
    finally:
        store.close()


def test_the_embedded_service_runs_tasks_to_success(home: Path) -> None:
    core = embedded_service(workers=2)
    fid = register_source(core, "echo", ECHO_SRC)
    got: dict[str, Any] = {}
    tg = "3c3b6f1e-1111-4a1a-9a9a-0a0a0a0a0a0a"
    core.subscribe(tg, lambda m: got.setdefault(m["task_id"], m))
    r = core.submit(
        core.endpoint_ids[0],
        {"task_group_id": tg, "tasks": {fid: [text_payload(i) for i in range(20)]}},
    )
    ids = r["tasks"][fid]
    wait_until(lambda: len(got) == 20, what="20 pushed results")
    assert [decode(got[t]["result"]) for t in ids] == list(range(20))
    assert {core.get_task(t)["status"] for t in ids} == {"success"}
