"""freight's client over HTTP: a real uvicorn server over the embedded service,
``HttpTransport`` on the client side.

The reference-shaped client and executor scenarios of
``tests/client/test_reference_shapes.py`` run unchanged over HTTP (with
``FREIGHT_SERVICE`` set to the server's URL, ``Client()`` talks HTTP); the rest
checks what only this hop has: results pushed over the event stream (no
polling), error bodies and statuses, and the OpenAPI document.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import httpx
import pytest

from freight.client import Client, Executor
from freight.client.http import HttpTransport
from freight.service.errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    UnknownEndpoint,
    UnknownFunction,
    UnknownTask,
)

WAIT_S = 60.0
SHAPES = Path(__file__).parent.parent / "client" / "test_reference_shapes.py"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (state of another process) until true."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def shapes() -> Iterator[ModuleType]:
    """tests/client/test_reference_shapes.py, loaded under its own name and sent
    by value (its functions run in worker processes)."""
    name = "freight_http_reference_shapes"
    spec = importlib.util.spec_from_file_location(name, SHAPES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    yield module
    cloudpickle.unregister_pickle_by_value(module)
    del sys.modules[name]


def add(a: int, b: int = 0) -> int:
    return a + b


def div(a: int, b: int) -> float:
    return a / b


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


# -- the reference's scenarios, over HTTP --------------------------------------------
def test_client_scenario_over_http(
    shapes: ModuleType, url: str, endpoint_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREIGHT_SERVICE", url)
    assert isinstance(Client().transport, HttpTransport)
    seen = shapes.client_scenario(Client, endpoint_id, wait_until)
    assert seen["function"]["function_name"] == "add"
    assert seen["result"] == 3
    assert seen["task"]["status"] == "success"
    r = seen["batch_run"]
    assert set(r) == {"request_id", "task_group_id", "endpoint_id", "tasks"}
    assert [s["result"] for s in seen["batch_results"]] == [2, 2, 15]
    assert seen["endpoint_status"]["status"] == "online"
    assert seen["endpoint_metadata"]["uuid"] == endpoint_id
    assert seen["allowed"]["endpoint_id"] == endpoint_id
    assert "python:" in seen["hardware"]


def test_executor_scenario_over_http(
    shapes: ModuleType, client: Client, endpoint_id: str
) -> None:
    seen = shapes.executor_scenario(Executor, client, endpoint_id)
    assert seen["submit"] == 3
    assert seen["registered"] == [6, 8]
    assert seen["source"] == 12
    assert seen["as_completed"] == [0, 10, 20, 30, 40]
    assert seen["map"] == [4, 10, 18]
    assert seen["shut"] is True
    assert seen["reloaded"] == [0, 10, 20, 30, 40]


# -- results, failures, batches ------------------------------------------------------
def test_run_result_and_remote_exception(
    url: str, client: Client, endpoint_id: str
) -> None:
    fid = client.register_function(div)
    ok = client.run(6, 3, endpoint_id=endpoint_id, function_id=fid)
    bad = client.run(1, 0, endpoint_id=endpoint_id, function_id=fid)
    wait_until(
        lambda: (
            not client.get_task(ok)["pending"] and not client.get_task(bad)["pending"]
        ),
        "two tasks",
    )
    assert client.get_result(ok) == 2.0
    # A text payload got a text result: the reference's envelope, as JSON text.
    raw = httpx.get(f"{url}/v2/tasks/{ok}").json()
    assert isinstance(raw["result"], str) and "result_b64" not in raw
    with pytest.raises(ZeroDivisionError):
        client.get_result(bad)
    statuses = client.get_batch_result([ok, bad])
    assert statuses[ok]["status"] == "success" and statuses[ok]["result"] == 2.0
    assert statuses[bad]["status"] == "failed"
    assert isinstance(statuses[bad]["exception"], ZeroDivisionError)


def test_batches_in_both_shapes(client: Client, endpoint_id: str) -> None:
    fid = client.register_function(add)
    reference = client.create_batch()  # 4.19: add(function_id, args, kwargs)
    reference.add(fid, (1,), {"b": 2})
    reference.add(fid, args=(5,))
    r = client.batch_run(endpoint_id, reference)
    guide = client.create_batch()  # the guide's: add(*args, endpoint_id=, function_id=)
    guide.add(10, 20, endpoint_id=endpoint_id, function_id=fid)
    guide.add("a", b="b", endpoint_id=endpoint_id, function_id=fid)
    g = client.batch_run(guide)
    assert isinstance(g, list)  # the guide's shape returns the task ids
    ids = r["tasks"][fid] + list(g)
    wait_until(
        lambda: all(not s["pending"] for s in client.get_batch_result(ids).values()),
        "batches",
    )
    results = client.get_batch_result(ids)
    assert [results[t]["result"] for t in ids] == [3, 5, 30, "ab"]


# -- the result stream ---------------------------------------------------------
def _polls(calls: Any) -> int:
    return sum(n for k, n in calls.items() if "v2/tasks" in k or "batch_status" in k)


def test_executor_results_are_pushed_not_polled(
    client: Client, transport: Any, endpoint_id: str
) -> None:
    with Executor(endpoint_id=endpoint_id, client=client) as gce:
        futs = [gce.submit(add, i, b=1) for i in range(20)]
        assert [f.result(timeout=WAIT_S) for f in futs] == list(range(1, 21))
        assert list(gce.map(add, range(50), range(50))) == [2 * i for i in range(50)]
        failing = gce.submit(div, 1, 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(timeout=WAIT_S)
    assert transport.calls["POST v3/endpoints"] > 0  # the counter counts
    assert _polls(transport.calls) == 0, transport.calls


def test_executor_cancel_over_http(
    client: Client, transport: Any, endpoint_id: str
) -> None:
    with Executor(endpoint_id=endpoint_id, client=client) as gce:
        blockers = [gce.submit(nap, 1.0) for _ in range(2)]  # the 2 workers busy
        queued = [gce.submit(add, i) for i in range(10)]
        cancelled = [f.cancel() for f in queued]
        assert any(cancelled)
        for f, was in zip(queued, cancelled, strict=True):
            if was:
                assert f.cancelled()
            else:
                assert f.result(timeout=WAIT_S) is not None
        assert [f.result(timeout=WAIT_S) for f in blockers] == [1.0, 1.0]
    assert _polls(transport.calls) == 0, transport.calls


def test_stream_reconnects_and_catches_up(
    url: str, client: Client, endpoint_id: str, core: Any
) -> None:
    # Drop the stream's connection under it: the results that finish while it
    # is down still arrive, from the catch-up read after reconnecting.
    fid = client.register_function(add)
    tg = str(uuid.uuid4())
    got: dict[str, Any] = {}
    transport = HttpTransport(url, timeout=WAIT_S)
    try:
        stream = transport.subscribe(tg, lambda m: got.setdefault(m["task_id"], m))
        stream._interrupt()  # the connection drops; the thread reconnects
        body = {"task_group_id": tg, "tasks": {fid: [_payload(client, 1, 2)] * 3}}
        ids = core.submit(endpoint_id, body)["tasks"][fid]
        wait_until(lambda: set(ids) <= set(got), "three results after a reconnect")
        assert {got[t]["status"] for t in ids} == {"success"}
        stream.close()
        n = len(got)
        core.submit(
            endpoint_id, {"task_group_id": tg, "tasks": {fid: [_payload(client, 0)]}}
        )
        wait_until(lambda: _group_done(core, tg), "the task after close()")
        assert len(got) == n
    finally:
        transport.close()


def test_stream_survives_a_server_restart(
    server_class: Any, client: Client, endpoint_id: str, core: Any
) -> None:
    # A second server on its own port: stopped while the stream is open, tasks
    # finish while nothing serves, a new server comes up on the same port; the
    # stream reconnects and delivers them (the catch-up read).
    fid = client.register_function(add)
    first = server_class(core)
    first.start()
    tg = str(uuid.uuid4())
    got: dict[str, Any] = {}
    transport = HttpTransport(first.url, timeout=WAIT_S)
    try:
        transport.subscribe(tg, lambda m: got.setdefault(m["task_id"], m))
        first.stop()
        body = {"task_group_id": tg, "tasks": {fid: [_payload(client, 2, 2)] * 4}}
        ids = core.submit(endpoint_id, body)["tasks"][fid]
        wait_until(lambda: _group_done(core, tg, len(ids)), "tasks while down")
        assert not got  # nothing could be pushed: no server
        second = server_class(core, port=first.port)
        second.start()
        try:
            wait_until(lambda: set(ids) <= set(got), "results after the restart")
            assert {got[t]["status"] for t in ids} == {"success"}
            assert {client._decode_result(got[t]["result"], t) for t in ids} == {4}
        finally:
            transport.close()
            second.stop()
    finally:
        transport.close()


def _group_done(core: Any, tg: str, n: int = 4) -> bool:
    done = core.list_tasks(100, task_group_id=tg)
    return len(done) == n and all(t["completion_t"] for t in done)


def _payload(client: Client, *args: Any) -> str:
    serde = client.fx_serializer
    return str(serde.pack_buffers([serde.serialize(args), serde.serialize({})]))


def test_subscribe_to_an_unreachable_service_raises() -> None:
    with socket_closed_port() as port:
        transport = HttpTransport(f"http://127.0.0.1:{port}", timeout=5)
        with pytest.raises(ServiceUnavailable):
            transport.subscribe(str(uuid.uuid4()), lambda m: None)
        with pytest.raises(ServiceUnavailable):
            transport.version()
        transport.close()


class socket_closed_port:
    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port: int = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass


# -- errors --------------------------------------------------------------------------
def test_unknown_things_are_404_with_the_reference_codes(
    url: str, transport: HttpTransport
) -> None:
    missing = str(uuid.uuid4())
    for path, code in (
        (f"/v2/tasks/{missing}", "TASK_NOT_FOUND"),
        (f"/v2/functions/{missing}", "FUNCTION_NOT_FOUND"),
        (f"/v2/endpoints/{missing}", "ENDPOINT_NOT_FOUND"),
        (f"/v2/endpoints/{missing}/status", "ENDPOINT_NOT_FOUND"),
        (f"/v2/taskgroup/{missing}", "TASK_GROUP_NOT_FOUND"),
        (f"/v2/containers/{missing}", "CONTAINER_NOT_FOUND"),
        ("/no/such/route", "NOT_FOUND"),
    ):
        r = httpx.get(url + path)
        assert r.status_code == 404, path
        body = r.json()
        assert body["code"] == code and body["message"], path
    with pytest.raises(UnknownTask):
        transport.get_task(missing)
    with pytest.raises(UnknownFunction):
        transport.get_function(missing)
    with pytest.raises(UnknownEndpoint):
        transport.submit(missing, {"tasks": {missing: ["x"]}})


def test_bad_requests_are_400(url: str, endpoint_id: str, core: Any) -> None:
    before = len(core.store.list_functions(10**6))
    for method, path, kwargs in (
        ("POST", "/v3/functions", {"content": b"{not json"}),
        ("POST", "/v3/functions", {"json": [1, 2]}),
        ("POST", "/v3/functions", {"json": {"function_name": "f"}}),
        ("GET", "/v2/tasks/not-a-uuid", {}),
        ("POST", "/v2/batch_status", {"json": {"task_ids": "nope"}}),
        ("GET", "/freight/v1/tasks", {"params": {"limit": "many"}}),
        ("GET", "/freight/v1/functions", {"params": {"limit": 0}}),
        ("GET", "/v2/endpoints", {"params": {"role": "king"}}),
        (
            "POST",
            f"/v3/endpoints/{endpoint_id}/submit",
            {"json": {"tasks": {str(uuid.uuid4()): [{"binary": 1}]}}},
        ),
    ):
        r = httpx.request(method, url + path, **kwargs)
        assert r.status_code == 400, (path, r.text)
        body = r.json()
        assert body["code"] == "BAD_REQUEST" and body["message"], path
    assert len(core.store.list_functions(10**6)) == before
    with pytest.raises(InvalidRequest):
        HttpTransport(url).get_task("not-a-uuid")


def test_payload_over_the_limit_is_413(
    client: Client, transport: HttpTransport, endpoint_id: str, core: Any
) -> None:
    fid = client.register_function(add)
    tasks_before = len(core.store.list_tasks(10**6))
    big = "x" * (core.max_payload_bytes + 1)
    r = httpx.post(
        f"{transport.base_url}/v3/endpoints/{endpoint_id}/submit",
        json={"tasks": {fid: [big]}},
    )
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
    with pytest.raises(PayloadTooLarge):
        client.run(
            "y" * core.max_payload_bytes, endpoint_id=endpoint_id, function_id=fid
        )
    assert len(core.store.list_tasks(10**6)) == tasks_before


def test_freight_listing_routes(
    client: Client, transport: Any, endpoint_id: str
) -> None:
    fid = client.register_function(add, function_name="listed_add")
    tid = client.run(1, endpoint_id=endpoint_id, function_id=fid)
    functions = transport.list_functions(limit=5)
    assert functions[0]["function_uuid"] == fid
    assert functions[0]["function_name"] == "listed_add"
    tasks = transport.list_tasks(limit=5)
    assert tasks[0]["task_id"] == tid and tasks[0]["function_id"] == fid


def test_openapi_lists_every_route(url: str) -> None:
    r = httpx.get(url + "/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    expected = {
        "/v2/version": {"get"},
        "/v3/functions": {"post"},
        "/v2/functions/{function_id}": {"get", "delete"},
        "/v2/containers": {"post"},
        "/v2/containers/{container_id}": {"get"},
        "/v3/endpoints/{endpoint_id}/submit": {"post"},
        "/v2/tasks/{task_id}": {"get"},
        "/v2/batch_status": {"post"},
        "/v2/taskgroup/{task_group_id}": {"get"},
        "/v2/endpoints/{endpoint_id}/status": {"get"},
        "/v2/endpoints/{endpoint_id}": {"get"},
        "/v2/endpoints": {"get"},
        "/v3/endpoints/{endpoint_id}/allowed_functions": {"get"},
        "/v2/get_amqp_result_connection_url": {"get"},
        "/freight/v1/tasks/cancel": {"post"},
        "/freight/v1/tasks": {"get"},
        "/freight/v1/functions": {"get"},
        "/freight/v1/taskgroups/{task_group_id}/results": {"get"},
        "/freight/v1/results": {"get"},
    }
    assert {p: set(ops) for p, ops in paths.items()} == expected


def test_binary_results_are_base64_over_http(
    url: str, core: Any, endpoint_id: str
) -> None:
    # A task submitted in-process with the binary envelope has a bytes result;
    # over HTTP it is result_b64, and HttpTransport hands it back as bytes.
    from freight.serialize import ComputeSerializer

    serde = ComputeSerializer()
    fid = Client(transport=core, do_version_check=False).register_function(add)
    tid = core.submit(
        endpoint_id, {"tasks": {fid: [serde.dumps_frames(((2, 3), {}))]}}
    )["tasks"][fid][0]
    transport = HttpTransport(url)
    try:
        wait_until(
            lambda: transport.get_task(tid)["status"] == "success", "binary task"
        )
        raw = httpx.get(f"{url}/v2/tasks/{tid}").json()
        assert "result" not in raw and isinstance(raw["result_b64"], str)
        result = transport.get_task(tid)["result"]
        assert isinstance(result, bytes) and serde.loads(result) == 5
    finally:
        transport.close()
