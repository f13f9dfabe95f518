"""``embedded_service``: one per home, thread-safe, replaced once closed, nothing
left running by a failed start; ``list_tasks`` and ``list_functions``."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from service_helpers import ECHO_SRC, HoldingLink, register_source, text_payload

from freight.service.core import ServiceCore
from freight.service.embedded import embedded_service, shutdown_embedded


def test_one_service_per_home_until_it_is_closed(home: Path) -> None:
    first = embedded_service()
    assert embedded_service(home) is first
    endpoint = first.endpoint_ids
    first.shutdown()
    second = embedded_service()
    assert second is not first and not second.closed
    assert second.endpoint_ids == endpoint  # the id is kept in the home
    shutdown_embedded()
    assert second.closed
    assert embedded_service() is not second


def test_concurrent_first_calls_share_one_service(home: Path) -> None:
    got: list[ServiceCore] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait(30)
        got.append(embedded_service(home, workers=1))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 8 and len({id(c) for c in got}) == 1
    assert len(got[0].store.live_instances()) == 1


def test_a_failed_start_leaves_nothing_running(home: Path) -> None:
    with pytest.raises(LookupError, match="no engine named 'warp'"):
        embedded_service(engine="warp")
    lock_dir = home / "instances"
    assert not lock_dir.exists() or list(lock_dir.glob("*.lock")) == []
    assert not embedded_service().closed  # and the next call works


@pytest.mark.parametrize(
    ("kwargs", "env", "error"),
    [
        ({"workers": 0}, None, ValueError),
        ({"workers": "2"}, None, TypeError),
        ({"engine": 5}, None, TypeError),
        ({"home": 5}, None, TypeError),
        ({}, "two", ValueError),
    ],
)
def test_bad_arguments_are_refused(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, object],
    env: str | None,
    error: type[Exception],
) -> None:
    if env is not None:
        monkeypatch.setenv("FREIGHT_WORKERS", env)
    with pytest.raises(error):
        embedded_service(**kwargs)  # type: ignore[arg-type]
    assert not (home / "instances").exists() or not list(
        (home / "instances").glob("*.lock")
    )


def test_list_tasks_newest_first_with_filters(
    core: ServiceCore, link: HoldingLink
) -> None:
    fid = register_source(core, "echo", ECHO_SRC)
    tg1, tg2 = str(uuid.uuid4()), str(uuid.uuid4())
    a = core.submit(
        link.endpoint_id, {"task_group_id": tg1, "tasks": {fid: [text_payload(1)] * 3}}
    )
    b = core.submit(
        link.endpoint_id, {"task_group_id": tg2, "tasks": {fid: [text_payload(2)] * 2}}
    )
    first, second = a["tasks"][fid], b["tasks"][fid]
    link.succeed(first[:1])
    listed = core.list_tasks()
    assert [t["task_id"] for t in listed] == list(reversed(first + second))
    assert {t["function_name"] for t in listed} == {"echo"}
    assert [t["task_id"] for t in core.list_tasks(2)] == list(reversed(second))
    assert [t["task_id"] for t in core.list_tasks(task_group_id=tg1)] == list(
        reversed(first)
    )
    done = core.list_tasks(status="success")
    assert [t["task_id"] for t in done] == first[:1]
    assert done[0]["completion_t"] is not None
    assert "result" not in done[0]
    # Listing retrieves nothing.
    assert core.store.get_tasks(first[:1])[first[0]].retrieved is None
    core.delete_function(fid)
    assert {t["function_name"] for t in core.list_tasks()} == {None}


def test_list_functions_newest_first(core: ServiceCore) -> None:
    ids = [
        register_source(core, f"f{i}", ECHO_SRC.replace("echo", f"f{i}"))
        for i in range(4)
    ]
    listed = core.list_functions()
    assert [f["function_uuid"] for f in listed] == list(reversed(ids))
    assert [f["function_name"] for f in listed] == ["f3", "f2", "f1", "f0"]
    assert "function_code" not in listed[0]
    assert len(core.list_functions(2)) == 2
