"""The store path's cost, as behaviour: one transaction per submitted batch,
one per outcome batch (a push marks results retrieved in that same one), and
nothing kept per task once it finished."""

from __future__ import annotations

from service_helpers import ECHO_SRC, HoldingLink, register_source, text_payload

from freight.service.core import ServiceCore

TG = "1a2b3c4d-4444-4d4d-8d8d-3d3d3d3d3d3d"


def test_ten_thousand_tasks_cost_a_transaction_per_batch(
    core: ServiceCore, link: HoldingLink
) -> None:
    fid = register_source(core, "echo", ECHO_SRC)
    got: list[str] = []
    core.subscribe(TG, lambda m: got.append(m["task_id"]))
    store = core.store
    payload = text_payload()
    n = 10_000

    before = store.transactions
    r = core.submit(
        link.endpoint_id, {"task_group_id": TG, "tasks": {fid: [payload] * n}}
    )
    ids = r["tasks"][fid]
    assert store.transactions - before == 1
    assert len(set(ids)) == n and len(link.tasks) == n

    before = store.transactions
    link.start(ids)
    assert store.transactions - before == 1

    before = store.transactions
    link.succeed(ids)
    assert store.transactions - before == 1
    assert len(got) == n
    rows = store.get_tasks(ids)
    assert all(r.status == "success" and r.retrieved is not None for r in rows.values())

    # Nothing is held per task once it finished; the stream's entry goes on close.
    assert core._inflight == {}
    core._subs[TG][0].close()
    assert core._subs == {}


def test_a_task_id_is_a_version_4_uuid(core: ServiceCore, link: HoldingLink) -> None:
    import uuid

    fid = register_source(core, "echo", ECHO_SRC)
    ids = core.submit(link.endpoint_id, {"tasks": {fid: [text_payload()] * 50}})[
        "tasks"
    ][fid]
    assert all(uuid.UUID(t).version == 4 for t in ids)
