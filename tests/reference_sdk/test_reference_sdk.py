"""The unmodified reference SDK (globus-compute-sdk 4.19: ``Client`` and
``Executor``) against freight's HTTP service: a real uvicorn server in a thread
serving the embedded service of a temporary home (engine from
``$FREIGHT_ENGINE``, default ``process``, 2 workers), with AMQP results through
the RabbitMQ of ``amqp_helpers`` (Executor tests skip without a broker, and fail
under CI).

How the reference reaches the server: ``Client(local_compute_services=True)``
means ``http://localhost:5000`` and nothing else, so the server binds
127.0.0.1:5000 when that port is free (no change to the reference at all);
otherwise it binds a free port and the client's web client is replaced with
one for that URL (the recipe of service/REFERENCE_WIRE.md §1).  Any bearer
token is accepted.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp_helpers import AMQP_URL, broker_connection

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
pytest.importorskip("pika")
pytest.importorskip("globus_compute_sdk")

from freight.service.core import ServiceCore  # noqa: E402
from freight.service.embedded import embedded_service, shutdown_embedded  # noqa: E402
from freight.service.http import create_app  # noqa: E402

ENGINE = os.environ.get("FREIGHT_ENGINE") or "process"
WAIT_S = 60.0
PREFIX = f"freight.test.{uuid.uuid4().hex[:8]}."


def _by_value(source: str, name: str) -> Any:
    """A function defined in a ``__main__`` namespace, so that dill sends it by
    value (worker processes cannot import this test module)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(source, namespace)
    return namespace[name]


add = _by_value("def add(a, b=1):\n    return a + b\n", "add")
boom = _by_value(
    "def boom(x):\n    raise ValueError(f'boom {x} from the function')\n", "boom"
)


def _bind() -> tuple[socket.socket, bool]:
    """A listening-ready socket on 127.0.0.1:5000 if free (True), else on a
    free port (False)."""
    for port, local in ((5000, True), (0, False)):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock, local
    raise RuntimeError("no port to bind")


class Server:
    """``create_app(core, broker_url=...)`` on uvicorn in a daemon thread."""

    def __init__(self, core: ServiceCore) -> None:
        self.sock, self.on_5000 = _bind()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.app = create_app(core, broker_url=AMQP_URL, queue_prefix=PREFIX)
        config = uvicorn.Config(
            self.app, log_level="warning", timeout_graceful_shutdown=2, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT_S)
        self.sock.close()
        self.app.state.amqp.close()


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceCore]:
    home: Path = tmp_path_factory.mktemp("freight-refsdk-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FREIGHT_HOME", str(home))
        mp.setenv("FREIGHT_ENGINE", ENGINE)
        mp.delenv("FREIGHT_SERVICE", raising=False)
        yield embedded_service(home, engine=ENGINE, workers=2)
        shutdown_embedded()


@pytest.fixture(scope="module")
def server(core: ServiceCore) -> Iterator[Server]:
    srv = Server(core)
    yield srv
    names = srv.app.state.amqp.declared_queues()
    srv.stop()
    if names:  # clean up the queues the service declared
        conn = broker_connection()
        try:
            channel = conn.channel()
            for name in names:
                channel.queue_delete(queue=name)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def ref_client(server: Server) -> Any:
    """The reference ``Client``, unmodified, with any bearer token."""
    from globus_compute_sdk import Client
    from globus_compute_sdk.sdk.client import _ComputeWebClient
    from globus_sdk import AccessTokenAuthorizer

    auth = AccessTokenAuthorizer("any-token")
    if server.on_5000:
        return Client(authorizer=auth, local_compute_services=True)
    client = Client(authorizer=auth, do_version_check=False)
    client._compute_web_client = _ComputeWebClient(base_url=server.url, authorizer=auth)
    client.version_check()
    return client


@pytest.fixture(scope="module")
def endpoint_id(core: ServiceCore) -> str:
    eps = core.get_endpoints("any")
    assert eps
    return str(eps[0]["uuid"])


@pytest.fixture
def broker() -> Iterator[Any]:
    """A channel on the broker (skips without one, fails under CI)."""
    conn = broker_connection()
    try:
        yield conn.channel()
    finally:
        conn.close()


def _wait_result(client: Any, task_id: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return client.get_result(task_id)
        except Exception as e:
            if "pending" not in str(e).lower() or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def test_client_run_and_get_result(ref_client: Any, endpoint_id: str) -> None:
    from globus_compute_sdk.errors import TaskExecutionFailed

    fid = ref_client.register_function(add)
    tid = ref_client.run(2, endpoint_id=endpoint_id, function_id=fid, b=40)
    assert _wait_result(ref_client, tid) == 42

    bid = ref_client.register_function(boom)
    tid2 = ref_client.run("x", endpoint_id=endpoint_id, function_id=bid)
    with pytest.raises(TaskExecutionFailed) as info:
        _wait_result(ref_client, tid2)
    assert "ValueError: boom x from the function" in str(info.value)


def test_client_batch(ref_client: Any, endpoint_id: str) -> None:
    from globus_compute_sdk.errors import TaskExecutionFailed

    fid = ref_client.register_function(add)
    bid = ref_client.register_function(boom)
    batch = ref_client.create_batch()
    for i in range(5):
        batch.add(fid, args=(i,), kwargs={"b": 10})
    batch.add(bid, args=("y",))
    out = ref_client.batch_run(endpoint_id, batch)
    ids = out["tasks"][fid]
    (bad,) = out["tasks"][bid]
    assert len(ids) == 5
    deadline = time.monotonic() + WAIT_S
    while True:
        results = ref_client.get_batch_result(ids)
        if len(results) == 5 and all(not r["pending"] for r in results.values()):
            break
        assert time.monotonic() < deadline, results
        time.sleep(0.05)
    assert [results[t]["result"] for t in ids] == [10, 11, 12, 13, 14]
    # The reference's get_batch_result logs a failed task and leaves it out;
    # get_result raises it.
    with pytest.raises(TaskExecutionFailed, match="boom y"):
        _wait_result(ref_client, bad)
    assert bad not in ref_client.get_batch_result([bad])


def test_amqp_url_needs_a_broker(core: ServiceCore) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(core)) as http:
        r = http.get("/v2/get_amqp_result_connection_url")
    assert r.status_code == 501
    assert r.json()["code"] == "AMQP_NOT_CONFIGURED"
    assert "--broker-url" in r.json()["message"]


def test_executor_through_rabbitmq(
    ref_client: Any, endpoint_id: str, broker: Any, server: Server
) -> None:
    from globus_compute_sdk import Executor
    from globus_compute_sdk.errors import TaskExecutionFailed

    with Executor(endpoint_id=endpoint_id, client=ref_client) as ex:
        futures = [ex.submit(add, i, b=100) for i in range(4)]
        bad = ex.submit(boom, "z")
        assert [f.result(timeout=WAIT_S) for f in futures] == [100, 101, 102, 103]
        exc = bad.exception(timeout=WAIT_S)
        assert isinstance(exc, TaskExecutionFailed)
        assert "boom z from the function" in str(exc)
        # A second batch goes to the same group and queue.
        assert ex.submit(add, 1, b=1).result(timeout=WAIT_S) == 2
        tg = str(ex.task_group_id)
    queue = f"{PREFIX}{tg}"
    assert queue in server.app.state.amqp.declared_queues()
    # Every result message was consumed and acknowledged.
    left = broker.queue_declare(queue=queue, durable=True, passive=True)
    assert left.method.message_count == 0

    # Reattach to the group from a new Executor.
    with Executor(endpoint_id=endpoint_id, client=ref_client) as ex2:
        reloaded = list(ex2.reload_tasks(tg))
        assert len(reloaded) == 6
        values, failures = [], []
        for f in reloaded:
            e = f.exception(timeout=WAIT_S)
            if e is None:
                values.append(f.result())
            else:
                assert isinstance(e, TaskExecutionFailed)
                failures.append(str(e))
        assert sorted(values) == [2, 100, 101, 102, 103]
        assert len(failures) == 1 and "boom z" in failures[0]


def test_submit_with_an_unreachable_broker_stores_nothing(
    core: ServiceCore, endpoint_id: str
) -> None:
    """A submit asking for a result queue fails (503) when the broker cannot
    declare it, and no task is stored."""
    from fastapi.testclient import TestClient
    from globus_compute_sdk.sdk.client import FunctionRegistrationData

    from freight.serialize import ComputeSerializer

    app = create_app(core, broker_url="amqp://guest:guest@127.0.0.1:1/")
    try:
        with TestClient(app) as http:
            body = FunctionRegistrationData(function=add).to_dict()
            fid = http.post("/v3/functions", json=body).json()["function_uuid"]
            tg = str(uuid.uuid4())
            payload = ComputeSerializer().pack_buffers(
                [ComputeSerializer().serialize((1,)), ComputeSerializer().serialize({})]
            )
            r = http.post(
                f"/v3/endpoints/{endpoint_id}/submit",
                json={
                    "create_queue": True,
                    "task_group_id": tg,
                    "tasks": {fid: [payload]},
                },
            )
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "SERVICE_UNAVAILABLE"
            assert http.get(f"/v2/taskgroup/{tg}").status_code == 404
    finally:
        app.state.amqp.close()


def test_reload_gets_pending_results_by_amqp(
    ref_client: Any, endpoint_id: str, broker: Any
) -> None:
    """Tasks still running when a new ``Executor`` reattaches with
    ``reload_tasks`` get their results through the group's queue."""
    from globus_compute_sdk import Executor

    gate = _by_value(
        "def gate(path, v):\n"
        "    import os, time\n"
        "    while not os.path.exists(path):\n"
        "        time.sleep(0.02)\n"
        "    return v * 2\n",
        "gate",
    )
    path = f"/tmp/freight-refsdk-gate-{uuid.uuid4().hex}"
    try:
        fid = ref_client.register_function(gate)
        tg = str(uuid.uuid4())
        batch = ref_client.create_batch(task_group_id=tg, create_websocket_queue=True)
        for v in (1, 2):
            batch.add(fid, args=(path, v))
        ref_client.batch_run(endpoint_id, batch)
        with Executor(endpoint_id=endpoint_id, client=ref_client) as ex:
            reloaded = list(ex.reload_tasks(tg))
            assert len(reloaded) == 2 and not any(f.done() for f in reloaded)
            open(path, "w").close()
            assert sorted(f.result(timeout=WAIT_S) for f in reloaded) == [2, 4]
    finally:
        open(path, "w").close()  # never leave a worker waiting
        os.unlink(path)
