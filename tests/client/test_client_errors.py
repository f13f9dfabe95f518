"""Errors: failed tasks, pending tasks, results the client cannot read, and bad
input, which raises at the call that caused it with nothing stored."""

from __future__ import annotations

import inspect
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from freight.client import (
    Batch,
    Client,
    ComputeFuture,
    Executor,
    TaskExecutionFailed,
    TaskPending,
)
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    SerializationError,
)
from freight.service.core import ServiceCore
from freight.service.errors import PayloadTooLarge, UnknownEndpoint, UnknownFunction


def divide(a: float, b: float) -> float:
    return a / b


def identity(x: Any) -> Any:
    return x


class Custom(Exception):
    """Defined in this test module: the client cannot rebuild it."""


def raise_custom(text: str) -> None:
    raise Custom(text)


def gated(started: str, gate: str) -> str:
    import os
    import pathlib
    import time

    pathlib.Path(started).touch()
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "released"


@pytest.fixture
def finished(client: Client, wait_for: Callable[..., None]) -> Callable[[str], None]:
    def wait(task_id: str) -> None:
        wait_for(lambda: not client.get_task(task_id)["pending"], f"task {task_id}")

    return wait


# -- failed tasks --


def test_get_result_reraises_the_original_type(
    client: Client, endpoint_id: str, finished: Callable[[str], None]
) -> None:
    tid = client.run(
        1, 0, endpoint_id=endpoint_id, function_id=client.register_function(divide)
    )
    finished(tid)
    for _ in range(2):  # cached: the same answer, no growing traceback
        with pytest.raises(ZeroDivisionError, match="division by zero") as info:
            client.get_result(tid)
        remote = info.value.remote_traceback  # type: ignore[attr-defined]
        assert "in divide" in remote and remote.rstrip().endswith(
            "ZeroDivisionError: division by zero"
        )
        assert any("Remote traceback" in n for n in info.value.__notes__)
    status = client.get_task(tid)
    assert status["status"] == "failed" and status["pending"] is False
    assert isinstance(status["exception"], ZeroDivisionError)

    with Executor() as ex:
        fut = ex.submit(divide, 1, 0)
        with pytest.raises(ZeroDivisionError) as info:
            fut.result(timeout=60)
        assert "in divide" in info.value.remote_traceback  # type: ignore[attr-defined]


def test_an_exception_type_not_rebuildable_gives_task_execution_failed(
    client: Client, endpoint_id: str, finished: Callable[[str], None]
) -> None:
    fid = client.register_function(raise_custom)
    tid = client.run("it broke", endpoint_id=endpoint_id, function_id=fid)
    finished(tid)
    with pytest.raises(TaskExecutionFailed) as info:
        client.get_result(tid)
    err = info.value
    assert err.type_name == "Custom"
    assert err.message == "it broke"
    assert "raise_custom" in err.remote_traceback
    assert err.remote_data == err.remote_traceback  # the reference's field
    assert "Custom: it broke" in str(err)
    assert float(err.completion_t) > 0

    with Executor() as ex:
        with pytest.raises(TaskExecutionFailed, match="it broke") as info:
            ex.submit(raise_custom, "it broke").result(timeout=60)
        assert info.value.type_name == "Custom"


def test_get_batch_result_includes_failed_tasks(
    client: Client, endpoint_id: str, wait_for: Callable[..., None]
) -> None:
    fid = client.register_function(divide)
    batch = client.create_batch()
    for b in (1, 0, 2, 0):
        batch.add(fid, (4, b))
    r = client.batch_run(endpoint_id, batch)
    ids = r["tasks"][fid]
    wait_for(
        lambda: all(not s["pending"] for s in client.get_batch_result(ids).values()),
        "the batch",
    )
    results = client.get_batch_result(ids)
    assert list(results) == ids  # none dropped, in order
    assert [results[t]["status"] for t in ids] == [
        "success",
        "failed",
        "success",
        "failed",
    ]
    assert results[ids[0]]["result"] == 4 and results[ids[2]]["result"] == 2
    for t in (ids[1], ids[3]):
        assert results[t]["pending"] is False
        assert isinstance(results[t]["exception"], ZeroDivisionError)
        float(results[t]["completion_t"])
    # Unknown ids are left out, as the reference does.
    assert client.get_batch_result([str(uuid.uuid4())]) == {}


def test_task_pending_while_running(
    client: Client,
    endpoint_id: str,
    tmp_path: Path,
    wait_for: Callable[..., None],
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    fid = client.register_function(gated)
    tid = client.run(str(started), str(gate), endpoint_id=endpoint_id, function_id=fid)
    try:
        wait_for(started.exists, "the task to start")
        wait_for(lambda: client.get_task(tid)["status"] == "running", "'running'")
        with pytest.raises(TaskPending) as info:
            client.get_result(tid)
        assert info.value.reason == "running"
        assert str(info.value) == "Task is pending due to running"
        assert client.get_task(tid)["pending"] is True
    finally:
        gate.touch()
    wait_for(lambda: not client.get_task(tid)["pending"], "the task")
    assert client.get_result(tid) == "released"


# -- results the client cannot read --


def test_a_result_the_client_may_not_decode_is_a_clear_error(
    freight_home: Path, endpoint_id: str, finished: Callable[[str], None]
) -> None:
    # The client's allowlist admits JSON data only; the endpoint answers with
    # pickle (its default for freight's binary hop).
    strict = Client()
    strict.fx_serializer = ComputeSerializer(
        strategy_data="JSONData",
        allowed_deserializer_types=["CloudPickleCode", "JSONData"],
    )
    tid = strict.run(
        [1, 2], endpoint_id=endpoint_id, function_id=strict.register_function(identity)
    )
    finished(tid)
    with pytest.raises(DeserializationError, match=f"result of task {tid}") as info:
        strict.get_result(tid)
    assert "PickleData" in str(info.value)
    with pytest.raises(DeserializationError, match=tid):
        strict.get_batch_result([tid])
    # Not cached as failed: a client that may decode it gets the value.
    strict.fx_serializer = ComputeSerializer()
    assert strict.get_result(tid) == [1, 2]


def test_result_serializers_the_client_refuses(freight_home: Path) -> None:
    strict = Client()
    strict.fx_serializer = ComputeSerializer(
        allowed_deserializer_types=["CloudPickleCode", "PickleData", "JSONData"]
    )
    with Executor(client=strict, result_serializers=["DillDataBase64"]) as ex:
        fut = ex.submit(identity, {"a": 1})
        with pytest.raises(DeserializationError, match="could not be deserialized"):
            fut.result(timeout=60)
        ex.result_serializers = ["JSONData"]
        assert ex.submit(identity, {"a": 1}).result(timeout=60) == {"a": 1}


# -- unknown ids --


def test_unknown_function_and_endpoint_raise_at_the_call(
    client: Client,
    endpoint_id: str,
    service_counts: Callable[[], tuple[int, int]],
) -> None:
    fid = client.register_function(identity)
    nobody = str(uuid.uuid4())
    before = service_counts()
    with pytest.raises(UnknownFunction):
        client.run(1, endpoint_id=endpoint_id, function_id=nobody)
    with pytest.raises(UnknownEndpoint):
        client.run(1, endpoint_id=nobody, function_id=fid)
    for call in (client.get_function, client.delete_function):
        with pytest.raises(UnknownFunction):
            call(nobody)
    for call in (
        client.get_endpoint_status,
        client.get_endpoint_metadata,
        client.get_allowed_functions,
        client.get_worker_hardware_details,
    ):
        with pytest.raises(UnknownEndpoint):
            call(nobody)
    batch = client.create_batch()
    batch.add(fid, (1,))
    batch.add(nobody, (2,))
    with pytest.raises(UnknownFunction):
        client.batch_run(endpoint_id, batch)
    guide = client.create_batch()
    guide.add(1, endpoint_id=endpoint_id, function_id=fid)
    guide.add(2, endpoint_id=nobody, function_id=fid)
    with pytest.raises(UnknownEndpoint):
        client.batch_run(guide)
    guide = client.create_batch()
    guide.add(1, endpoint_id=endpoint_id, function_id=fid)
    guide.add(2, endpoint_id=endpoint_id, function_id=nobody)
    with pytest.raises(UnknownFunction):
        client.batch_run(guide)
    with Executor(client=client) as ex:
        with pytest.raises(UnknownFunction):
            ex.submit_to_registered_function(nobody, (1,))
    with Executor(nobody, client=client) as ex:
        with pytest.raises(UnknownEndpoint):
            ex.submit(identity, 1)
        with pytest.raises(UnknownEndpoint):
            ex.map(identity, [1])
    assert service_counts() == before


# -- arguments that cannot be serialized --


def test_unserializable_arguments_raise_with_the_strategy_s_reason(
    freight_home: Path,
    endpoint_id: str,
    service_counts: Callable[[], tuple[int, int]],
) -> None:
    client = Client()
    json_client = Client(data_serialization_strategy="JSONData")
    fid = client.register_function(identity)
    before = service_counts()
    lock = threading.Lock()
    for c, bad, reason in (
        (client, lock, "cannot pickle '_thread.lock' object"),
        (json_client, {1, 2}, "Object of type set is not JSON serializable"),
    ):
        with pytest.raises(SerializationError, match=reason):
            c.run(bad, endpoint_id=endpoint_id, function_id=fid)
        batch = c.create_batch()
        with pytest.raises(SerializationError, match=reason):
            batch.add(fid, (bad,))
        with pytest.raises(SerializationError, match=reason):
            batch.add(bad, endpoint_id=endpoint_id, function_id=fid)
        assert len(batch) == 0
        with Executor(client=c) as ex:
            with pytest.raises(SerializationError, match=reason):
                ex.submit(identity, bad)
            with pytest.raises(SerializationError, match=reason):
                ex.submit_to_registered_function(fid, kwargs={"x": bad})
            with pytest.raises(SerializationError, match=reason):
                ex.map(identity, [bad])
            assert ex.in_flight == 0
    # A function the code strategy cannot serialize: nothing registered.
    with pytest.raises(SerializationError):
        client.register_function(_Unpicklable())
    assert service_counts() == before


class _Unpicklable:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self) -> None:
        return None


def test_a_payload_over_the_limit_is_refused_before_anything_is_stored(
    client: Client,
    service: ServiceCore,
    endpoint_id: str,
    service_counts: Callable[[], tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fid = client.register_function(identity)
    monkeypatch.setattr(service, "max_payload_bytes", 10_000)
    before = service_counts()
    big = b"x" * 20_000
    with pytest.raises(PayloadTooLarge, match="10000"):
        client.run(big, endpoint_id=endpoint_id, function_id=fid)
    with Executor(client=client) as ex:
        with pytest.raises(PayloadTooLarge):
            ex.submit(identity, big)
        small = ex.submit(identity, b"ok")
        assert small.result(timeout=60) == b"ok"
    _, tasks = service_counts()
    assert tasks == before[1] + 1


# -- wrong types to every public method --

NOT_A_UUID = "not-a-uuid"


#: (what, call, parameter named in the message).  Each call gets a wrong type or
#: value for one parameter; every public method appears (see the coverage test).
def _client_cases(
    c: Client, fid: str, ep: str
) -> list[tuple[str, Callable[[], Any], str]]:
    return [
        ("Client", lambda: Client(environment=5), "environment"),
        ("Client", lambda: Client(do_version_check="yes"), "do_version_check"),
        (
            "Client",
            lambda: Client(code_serialization_strategy=5),
            "code_serialization_strategy",
        ),
        (
            "Client",
            lambda: Client(code_serialization_strategy="JSONData"),
            "code_serialization_strategy",
        ),
        (
            "Client",
            lambda: Client(data_serialization_strategy="NoSuchThing"),
            "data_serialization_strategy",
        ),
        ("Client", lambda: Client(service=5), "service"),
        ("Client", lambda: Client(service="ftp://compute.api.globus.org"), "service"),
        ("Client", lambda: Client(transport=object()), "transport"),
        ("Client", lambda: Client(workers="2"), "workers"),
        ("Client", lambda: Client(home=5), "home"),
        ("register_function", lambda: c.register_function(5), "function"),
        (
            "register_function",
            lambda: c.register_function(identity, function_name=5),
            "function_name",
        ),
        (
            "register_function",
            lambda: c.register_function(identity, container_uuid=NOT_A_UUID),
            "container_uuid",
        ),
        (
            "register_function",
            lambda: c.register_function(identity, description=5),
            "description",
        ),
        (
            "register_function",
            lambda: c.register_function(identity, public="no"),
            "public",
        ),
        ("register_function", lambda: c.register_function(identity, group=5), "group"),
        (
            "register_function",
            lambda: c.register_function(identity, metadata=[1]),
            "metadata",
        ),
        ("register_source_code", lambda: c.register_source_code(5, "f"), "source"),
        (
            "register_source_code",
            lambda: c.register_source_code("def f(): pass", 5),
            "function_name",
        ),
        (
            "register_source_code",
            lambda: c.register_source_code("def f(): pass", "not a name"),
            "function_name",
        ),
        ("register_container", lambda: c.register_container(5, "python"), "location"),
        ("register_container", lambda: c.register_container("/x", 5), "container_type"),
        ("get_function", lambda: c.get_function(5), "function_id"),
        ("delete_function", lambda: c.delete_function(NOT_A_UUID), "function_id"),
        ("run", lambda: c.run(1, endpoint_id=5, function_id=fid), "endpoint_id"),
        (
            "run",
            lambda: c.run(1, endpoint_id=ep, function_id=NOT_A_UUID),
            "function_id",
        ),
        ("create_batch", lambda: c.create_batch(task_group_id=5), "task_group_id"),
        (
            "create_batch",
            lambda: c.create_batch(resource_specification=[1]),
            "resource_specification",
        ),
        (
            "create_batch",
            lambda: c.create_batch(user_endpoint_config="x"),
            "user_endpoint_config",
        ),
        (
            "create_batch",
            lambda: c.create_batch(create_websocket_queue="x"),
            "create_websocket_queue",
        ),
        (
            "create_batch",
            lambda: c.create_batch(result_serializers="JSONData"),
            "result_serializers",
        ),
        ("batch_run", lambda: c.batch_run(ep, "batch"), "batch"),
        ("batch_run", lambda: c.batch_run(5, c.create_batch()), "endpoint_id"),
        ("batch_run", lambda: c.batch_run(ep), "batch"),
        ("get_task", lambda: c.get_task(5), "task_id"),
        ("get_result", lambda: c.get_result(NOT_A_UUID), "task_id"),
        ("get_batch_result", lambda: c.get_batch_result("abc"), "task_id_list"),
        ("get_batch_result", lambda: c.get_batch_result([5]), "task_id_list"),
        ("get_batch_result", lambda: c.get_batch_result(5), "task_id_list"),
        ("get_endpoint_status", lambda: c.get_endpoint_status(5), "endpoint_uuid"),
        (
            "get_endpoint_metadata",
            lambda: c.get_endpoint_metadata(NOT_A_UUID),
            "endpoint_uuid",
        ),
        ("get_endpoints", lambda: c.get_endpoints(role=5), "role"),
        ("get_endpoints", lambda: c.get_endpoints(role="admin"), "role"),
        ("get_allowed_functions", lambda: c.get_allowed_functions(5), "endpoint_id"),
        (
            "get_worker_hardware_details",
            lambda: c.get_worker_hardware_details(5),
            "endpoint_id",
        ),
        ("version_check", lambda: c.version_check(5), "endpoint_version"),
    ]


def _batch_cases(c: Client, fid: str) -> list[tuple[str, Callable[[], Any], str]]:
    b = c.create_batch()
    return [
        ("Batch", lambda: Batch(5), "task_group_id"),
        (
            "Batch",
            lambda: Batch(None, resource_specification=5),
            "resource_specification",
        ),
        ("Batch", lambda: Batch(None, {"a": object()}), "resource_specification"),
        ("Batch", lambda: Batch(None, request_queue="x"), "request_queue"),
        ("Batch", lambda: Batch(None, serializer="x"), "serializer"),
        ("Batch", lambda: Batch(None, user_runtime="x"), "user_runtime"),
        ("Batch", lambda: Batch(None, result_serializers=[5]), "result_serializers"),
        ("add", lambda: b.add(5), "function_id"),
        ("add", lambda: b.add(fid, "args"), "args"),
        ("add", lambda: b.add(fid, (), [1]), "kwargs"),
        ("add", lambda: b.add(fid, (), {1: 2}), "kwargs"),
        ("add", lambda: b.add(1, endpoint_id=5, function_id=fid), "endpoint_id"),
        ("add", lambda: b.add(1, endpoint_id=str(uuid.uuid4())), "function_id"),
    ]


def _executor_cases(ex: Executor, fid: str) -> list[tuple[str, Callable[[], Any], str]]:
    def setter(name: str, value: Any) -> Callable[[], Any]:
        return lambda: setattr(ex, name, value)

    return [
        ("Executor", lambda: Executor(endpoint_id=5), "endpoint_id"),
        ("Executor", lambda: Executor(client="c"), "client"),
        ("Executor", lambda: Executor(task_group_id=NOT_A_UUID), "task_group_id"),
        (
            "Executor",
            lambda: Executor(resource_specification=[1]),
            "resource_specification",
        ),
        (
            "Executor",
            lambda: Executor(user_endpoint_config={"x": {1, 2}}),
            "user_endpoint_config",
        ),
        ("Executor", lambda: Executor(label=5), "label"),
        ("Executor", lambda: Executor(batch_size="8"), "batch_size"),
        ("Executor", lambda: Executor(amqp_port="443"), "amqp_port"),
        ("Executor", lambda: Executor(api_burst_limit=1.5), "api_burst_limit"),
        ("Executor", lambda: Executor(api_burst_window_s="x"), "api_burst_window_s"),
        ("Executor", lambda: Executor(serializer="x"), "serializer"),
        (
            "Executor",
            lambda: Executor(result_serializers="JSONData"),
            "result_serializers",
        ),
        (
            "Executor",
            lambda: Executor(result_serializers=["NoSuchThing"]),
            "result_serializers",
        ),
        ("Executor", lambda: Executor(cancel_running="yes"), "cancel_running"),
        ("Executor", lambda: Executor(map_window=0), "map_window"),
        ("Executor", lambda: Executor(bogus=1), "bogus"),
        ("endpoint_id", setter("endpoint_id", 5), "endpoint_id"),
        ("task_group_id", setter("task_group_id", 5), "task_group_id"),
        (
            "resource_specification",
            setter("resource_specification", "x"),
            "resource_specification",
        ),
        (
            "user_endpoint_config",
            setter("user_endpoint_config", 5),
            "user_endpoint_config",
        ),
        ("serializer", setter("serializer", "x"), "serializer"),
        ("result_serializers", setter("result_serializers", 5), "result_serializers"),
        ("register_function", lambda: ex.register_function(5), "fn"),
        (
            "register_function",
            lambda: ex.register_function(identity, function_id=5),
            "function_id",
        ),
        ("register_source_code", lambda: ex.register_source_code(5, "f"), "source"),
        ("submit", lambda: ex.submit(5), "fn"),
        (
            "submit_to_registered_function",
            lambda: ex.submit_to_registered_function(5),
            "function_id",
        ),
        (
            "submit_to_registered_function",
            lambda: ex.submit_to_registered_function(fid, args=5),
            "args",
        ),
        (
            "submit_to_registered_function",
            lambda: ex.submit_to_registered_function(fid, kwargs=[1]),
            "kwargs",
        ),
        ("map", lambda: ex.map(5, [1]), "fn"),
        ("map", lambda: ex.map(identity, 5), "iterables"),
        ("map", lambda: ex.map(identity, [1], chunksize=0), "chunksize"),
        ("map", lambda: ex.map(identity, [1], chunksize="2"), "chunksize"),
        ("map", lambda: ex.map(identity, [1], timeout="soon"), "timeout"),
        ("reload_tasks", lambda: ex.reload_tasks(5), "task_group_id"),
        ("shutdown", lambda: ex.shutdown(wait="yes"), "wait"),
        ("shutdown", lambda: ex.shutdown(cancel_futures=1), "cancel_futures"),
    ]


def test_wrong_types_raise_naming_the_parameter_and_store_nothing(
    client: Client,
    endpoint_id: str,
    service_counts: Callable[[], tuple[int, int]],
) -> None:
    fid = client.register_function(identity)
    ex = Executor(client=client)
    cases = [
        *_client_cases(client, fid, endpoint_id),
        *_batch_cases(client, fid),
        *_executor_cases(ex, fid),
    ]
    before = service_counts()
    for what, call, parameter in cases:
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        assert parameter in str(info.value), (what, parameter, str(info.value))
    assert service_counts() == before
    assert ex.in_flight == 0
    assert ex.submit(identity, 1).result(timeout=60) == 1  # still usable
    ex.shutdown()

    covered = {what for what, _, _ in cases}
    public = {
        "Client": _public(Client),
        "Batch": _public(Batch),
        "Executor": _public(Executor),
    }
    exempt = {
        # Nothing to pass: no parameters, or only ones of any type.
        "logout",
        "prepare",
        "get_worker_hardware_details",  # Executor's: no parameters
        "__len__",
        "__bool__",
        "endpoints",
        "tasks",
        "transport",
        "binary_payloads",
        "local_endpoint_id",
        "in_flight",
        "__repr__",
    }
    for owner, names in public.items():
        missing = names - covered - exempt
        assert not missing, f"{owner} methods without a bad-input case: {missing}"


def _public(cls: type) -> set[str]:
    names = set()
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__len__", "__bool__"):
            continue
        if name == "__init__":
            names.add(cls.__name__)
        elif inspect.isfunction(value) or isinstance(value, property):
            names.add(name)
    return names


def test_compute_future_without_executor(freight_home: Path) -> None:
    fut = ComputeFuture()
    assert fut.task_id is None
    assert fut.cancel() is True and fut.cancelled()
    fut = ComputeFuture("t")
    assert fut.terminate() is True
