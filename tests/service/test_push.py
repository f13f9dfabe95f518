"""Results by push: each finished task once per subscriber, a raising subscriber
loses nothing for the others, and a closed stream gets nothing more."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from service_helpers import ECHO_SRC, HoldingLink, decode, register_source, text_payload

from freight.service.core import ServiceCore

TG = "5b1d7b1c-2222-4b2b-8b8b-1b1b1b1b1b1b"


def _submit(core: ServiceCore, link: HoldingLink, n: int, tg: str = TG) -> list[str]:
    fid = register_source(core, "echo", ECHO_SRC)
    body = {"task_group_id": tg, "tasks": {fid: [text_payload(i) for i in range(n)]}}
    ids: list[str] = core.submit(link.endpoint_id, body)["tasks"][fid]
    return ids


def test_each_finished_task_is_pushed_once(
    core: ServiceCore, link: HoldingLink
) -> None:
    got: list[str] = []
    core.subscribe(TG, lambda m: got.append(m["task_id"]))
    ids = _submit(core, link, 5)
    link.start(ids)
    link.succeed(ids[:3])
    link.succeed(ids)  # at-least-once delivery: the first three come again
    link.fail(ids, RuntimeError("again"))
    assert sorted(got) == sorted(ids)


def test_a_push_carries_the_status_dict(core: ServiceCore, link: HoldingLink) -> None:
    got: list[dict[str, Any]] = []
    core.subscribe(TG, got.append)
    ok, bad = _submit(core, link, 2)
    link.succeed([ok], {"a": 1})
    link.fail([bad], ZeroDivisionError("division by zero"))
    by_id = {m["task_id"]: m for m in got}
    assert by_id[ok]["status"] == "success"
    assert decode(by_id[ok]["result"]) == {"a": 1}
    assert by_id[ok]["task_group_id"] == TG
    assert by_id[bad]["status"] == "failed"
    assert by_id[bad]["exception_record"]["type"].endswith("ZeroDivisionError")


def test_only_the_groups_subscribers_get_its_results(
    core: ServiceCore, link: HoldingLink
) -> None:
    mine: list[str] = []
    every: list[str] = []
    other = str(uuid.uuid4())
    core.subscribe(TG, lambda m: mine.append(m["task_id"]))
    core.subscribe(None, lambda m: every.append(m["task_id"]))
    a = _submit(core, link, 2)
    b = _submit(core, link, 2, tg=other)
    link.succeed(a + b)
    assert sorted(mine) == sorted(a)
    assert sorted(every) == sorted(a + b)


def test_a_raising_subscriber_loses_nothing_for_the_others(
    core: ServiceCore, link: HoldingLink
) -> None:
    got: list[str] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    core.subscribe(TG, broken)
    core.subscribe(TG, lambda m: got.append(m["task_id"]))
    ids = _submit(core, link, 4)
    link.succeed(ids[:2])
    link.succeed(ids[2:])
    assert sorted(got) == sorted(ids)


def test_a_result_pushed_only_to_a_raising_subscriber_stays_unretrieved(
    core: ServiceCore, link: HoldingLink
) -> None:
    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    core.subscribe(TG, broken)
    ids = _submit(core, link, 2)
    link.succeed(ids)
    rows = core.store.get_tasks(ids)
    assert [rows[t].retrieved for t in ids] == [None, None]


def test_a_result_pushed_to_a_subscriber_counts_as_retrieved(
    core: ServiceCore, link: HoldingLink
) -> None:
    core.subscribe(TG, lambda m: None)
    ids = _submit(core, link, 2)
    link.succeed(ids)
    rows = core.store.get_tasks(ids)
    assert all(rows[t].retrieved is not None for t in ids)


def test_closing_a_subscription_stops_delivery(
    core: ServiceCore, link: HoldingLink
) -> None:
    got: list[str] = []
    sub = core.subscribe(TG, lambda m: got.append(m["task_id"]))
    ids = _submit(core, link, 4)
    link.succeed(ids[:2])
    sub.close()
    sub.close()  # idempotent
    link.succeed(ids[2:])
    assert sorted(got) == sorted(ids[:2])
    # Not pushed, so not retrieved: still there for a later get_task.
    assert all(core.store.get_tasks(ids[2:])[t].retrieved is None for t in ids[2:])


def test_a_subscriber_may_close_its_own_stream_from_the_callback(
    core: ServiceCore, link: HoldingLink
) -> None:
    got: list[str] = []
    holder: list[Any] = []

    def once(message: dict[str, Any]) -> None:
        got.append(message["task_id"])
        holder[0].close()

    holder.append(core.subscribe(TG, once))
    ids = _submit(core, link, 3)
    link.succeed(ids)
    assert got == [ids[0]]


def test_no_delivery_starts_after_close_returns(
    core: ServiceCore, link: HoldingLink
) -> None:
    """close() from another thread waits for a delivery under way; after it
    returns, the callback is not called again."""
    inside = threading.Event()
    release = threading.Event()
    closed = threading.Event()
    after_close: list[str] = []

    def slow(message: dict[str, Any]) -> None:
        if closed.is_set():
            after_close.append(message["task_id"])
        inside.set()
        release.wait(30)

    sub = core.subscribe(TG, slow)
    ids = _submit(core, link, 3)
    worker = threading.Thread(target=link.succeed, args=(ids,))
    worker.start()
    assert inside.wait(30)
    closer = threading.Thread(target=lambda: (sub.close(), closed.set()))
    closer.start()
    release.set()
    closer.join(30)
    worker.join(30)
    assert closed.is_set() and not worker.is_alive()
    assert after_close == []


def test_shutdown_pushes_the_service_stopped_failures_then_ends_streams(
    core: ServiceCore, link: HoldingLink
) -> None:
    got: list[dict[str, Any]] = []
    sub = core.subscribe(TG, got.append)
    ids = _submit(core, link, 2)
    core.shutdown()
    assert sorted(m["task_id"] for m in got) == sorted(ids)
    assert all("ServiceStopped" in m["exception_record"]["type"] for m in got)
    assert sub.closed
