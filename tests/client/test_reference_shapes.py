"""Code written for ``globus_compute_sdk`` 4.19 runs on freight.client unchanged.

Two halves:

* signatures: every public method the reference's ``Client``, ``Batch``,
  ``Executor`` and ``ComputeFuture`` have is checked against freight's with
  ``inspect.signature``: same parameter names, the reference's positional order,
  the same defaults, and nothing new that a reference call would have to pass.
  Deviations are listed with their reason (``DEVIATIONS``): where issue 11 sets
  another signature, or freight accepts more;
* scenarios: functions written once against the reference's documented API
  shapes, taking the classes as arguments, run with freight's classes (the
  reference's own need its cloud service and a login).  The batch scenario needs
  no network, so it runs with both ``Batch`` classes and compares what they
  would send.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import globus_compute_sdk
import pytest
from globus_compute_sdk.errors import TaskExecutionFailed as RefTaskExecutionFailed
from globus_compute_sdk.errors import TaskPending as RefTaskPending
from globus_compute_sdk.sdk.asynchronous.compute_future import (
    ComputeFuture as RefComputeFuture,
)
from globus_compute_sdk.sdk.batch import Batch as RefBatch
from globus_compute_sdk.serialize import ComputeSerializer as RefSerializer

import freight.client
from freight.client import (
    Batch,
    Client,
    ComputeFuture,
    Executor,
    TaskExecutionFailed,
    TaskPending,
)
from freight.serialize import ComputeSerializer

RefClient = globus_compute_sdk.Client
RefExecutor = globus_compute_sdk.Executor

P = inspect.Parameter
_VAR = (P.VAR_POSITIONAL, P.VAR_KEYWORD)
_POSITIONAL = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)

# -- signatures ------------------------------------------------------------------------

#: (class pair, method) -> why freight's signature differs from the reference's.
DEVIATIONS: dict[tuple[str, str], str] = {
    ("Client", "register_function"): (
        "issue 11 sets register_function(fn, function_name=None,"
        " container_uuid=None, description=None, public=False, group=None,"
        " metadata=None) (the user guide's order); the reference's keywords"
        " (description, metadata, public, group, ha_endpoint_id) all work"
    ),
    ("Batch", "add"): (
        "two shapes: 4.19's add(function_id, args=None, kwargs=None) and the user"
        " guide's add(*args, endpoint_id=..., function_id=..., **kwargs)"
    ),
    ("Executor", "submit"): (
        "fn is positional-only, as in concurrent.futures.Executor, so a task"
        " function may itself take a keyword argument named fn"
    ),
}

PAIRS: list[tuple[str, type, type]] = [
    ("Client", RefClient, Client),
    ("Batch", RefBatch, Batch),
    ("Executor", RefExecutor, Executor),
    ("ComputeFuture", RefComputeFuture, ComputeFuture),
    ("TaskPending", RefTaskPending, TaskPending),
    ("TaskExecutionFailed", RefTaskExecutionFailed, TaskExecutionFailed),
]


def _public_methods(cls: type) -> list[str]:
    names = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__len__", "__bool__"):
            continue
        if inspect.isfunction(value):
            names.append(name)
    return names


METHODS = [
    (label, ref, ours, name)
    for label, ref, ours in PAIRS
    for name in _public_methods(ref)
    # The reference's endpoint management, login plumbing and AMQP URL are for
    # its cloud service (register_endpoint, stop_endpoint, delete_endpoint,
    # get_result_amqp_url); freight's endpoints are not registered by clients.
    if name
    not in (
        "register_endpoint",
        "stop_endpoint",
        "delete_endpoint",
        "get_result_amqp_url",
    )
]


def check_compatible(ref_fn: Callable[..., Any], our_fn: Callable[..., Any]) -> None:
    """Every call the reference's signature accepts binds to ours the same way."""
    ref = list(inspect.signature(ref_fn).parameters.values())
    ours = inspect.signature(our_fn).parameters
    our_list = list(ours.values())
    for i, p in enumerate(ref):
        if p.kind in _VAR:
            assert any(q.kind == p.kind for q in our_list), f"no {p} in ours"
            continue
        assert p.name in ours, f"parameter {p.name!r} missing"
        q = ours[p.name]
        if p.default is not P.empty:
            assert q.default == p.default, f"{p.name}: default {q.default!r}"
        if p.kind in _POSITIONAL:
            assert q.kind in _POSITIONAL, f"{p.name} is not positional in ours"
            assert our_list.index(q) == i, f"{p.name} moved from position {i}"
        if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY):
            assert q.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY), (
                f"{p.name} cannot be passed by keyword in ours"
            )
    ref_names = {p.name for p in ref}
    for q in our_list:
        if q.name not in ref_names and q.kind not in _VAR:
            assert q.default is not P.empty, f"new parameter {q.name!r} is required"


def check_names_and_defaults(
    ref_fn: Callable[..., Any], our_fn: Callable[..., Any]
) -> None:
    """The reference's keywords all exist in ours, with the same defaults."""
    ref = inspect.signature(ref_fn).parameters
    ours = inspect.signature(our_fn).parameters
    for name, p in ref.items():
        if p.kind in _VAR:
            continue
        assert name in ours, f"parameter {name!r} missing"
        if p.default is not P.empty:
            assert ours[name].default == p.default


def check_two_shapes(ref_fn: Callable[..., Any], our_fn: Callable[..., Any]) -> None:
    """Batch.add takes both shapes, so its signature is (*args, **kwargs); the
    4.19 shape is exercised by batch_scenario."""
    kinds = [p.kind for p in inspect.signature(our_fn).parameters.values()][1:]
    assert kinds == [P.VAR_POSITIONAL, P.VAR_KEYWORD]


#: What is checked instead where freight's signature deviates on purpose.
DEVIATION_CHECKS: dict[tuple[str, str], Callable[..., None]] = {
    ("Client", "register_function"): check_names_and_defaults,
    ("Batch", "add"): check_two_shapes,
    ("Executor", "submit"): check_names_and_defaults,
}


@pytest.mark.parametrize(
    ("label", "ref", "ours", "name"),
    METHODS,
    ids=[f"{m[0]}.{m[3]}" for m in METHODS],
)
def test_signature_matches_the_reference(
    label: str, ref: type, ours: type, name: str
) -> None:
    assert hasattr(ours, name), f"freight's {label} has no {name}"
    check = DEVIATION_CHECKS.get((label, name), check_compatible)
    assert check is check_compatible or (label, name) in DEVIATIONS
    check(getattr(ref, name), getattr(ours, name))


def test_register_function_signature_is_the_issue_s() -> None:
    params = inspect.signature(Client.register_function).parameters
    assert list(params)[:8] == [
        "self",
        "function",
        "function_name",
        "container_uuid",
        "description",
        "public",
        "group",
        "metadata",
    ]
    defaults = {
        n: p.default for n, p in params.items() if n not in ("self", "function")
    }
    assert defaults == {
        "function_name": None,
        "container_uuid": None,
        "description": None,
        "public": False,
        "group": None,
        "metadata": None,
        "ha_endpoint_id": None,
        "searchable": None,
    }
    ref = inspect.signature(RefClient.register_function).parameters
    for name, p in ref.items():
        assert name in params and params[name].default == p.default


def test_executor_settable_properties_like_the_reference() -> None:
    for name in (
        "endpoint_id",
        "task_group_id",
        "resource_specification",
        "user_endpoint_config",
        "serializer",
        "result_serializers",
    ):
        ref_prop = inspect.getattr_static(RefExecutor, name)
        our_prop = inspect.getattr_static(Executor, name)
        assert isinstance(ref_prop, property) and ref_prop.fset is not None
        assert isinstance(our_prop, property) and our_prop.fset is not None, name


def test_public_names_like_the_reference() -> None:
    for name in ("Client", "Executor"):
        assert getattr(freight.client, name)
    assert issubclass(Executor, concurrent.futures.Executor)
    assert issubclass(ComputeFuture, concurrent.futures.Future)


# -- scenarios -------------------------------------------------------------------------


def add(a: int, b: int = 0) -> int:
    return a + b


def mul(x: int, y: int = 1) -> int:
    return x * y


TRIPLE_SOURCE = "def triple(x):\n    return 3 * x\n"


def client_scenario(
    Client: type,
    endpoint_id: str,
    wait: Callable[[Callable[[], bool], str], None],
) -> dict[str, Any]:
    """The reference's documented Client calls; returns what it observed."""
    seen: dict[str, Any] = {}
    gcc = Client()
    fid = gcc.register_function(add, description="adds", public=False)
    src_fid = gcc.register_source_code(TRIPLE_SOURCE, "triple")
    seen["function"] = gcc.get_function(fid)

    tid = gcc.run(1, b=2, endpoint_id=endpoint_id, function_id=fid)
    wait(lambda: not gcc.get_task(tid)["pending"], "run")
    seen["task"] = gcc.get_task(tid)
    seen["result"] = gcc.get_result(tid)

    batch = gcc.create_batch()
    batch.add(fid, args=(1,), kwargs={"b": 1})
    batch.add(fid, (2,))
    batch.add(src_fid, (5,))
    seen["batch_len"], seen["batch_bool"] = len(batch), bool(batch)
    r = gcc.batch_run(endpoint_id, batch)
    seen["batch_run"] = r
    task_ids = [t for tids in r["tasks"].values() for t in tids]
    wait(
        lambda: all(not s["pending"] for s in gcc.get_batch_result(task_ids).values()),
        "batch",
    )
    seen["batch_results"] = [gcc.get_batch_result(task_ids)[t] for t in task_ids]

    seen["endpoint_status"] = gcc.get_endpoint_status(endpoint_id)
    seen["endpoint_metadata"] = gcc.get_endpoint_metadata(endpoint_id)
    seen["endpoints"] = gcc.get_endpoints()
    seen["allowed"] = gcc.get_allowed_functions(endpoint_id)
    hw = gcc.get_worker_hardware_details(endpoint_id)
    wait(lambda: not gcc.get_task(hw)["pending"], "hardware report")
    seen["hardware"] = gcc.get_result(hw)
    seen["deleted"] = gcc.delete_function(fid)
    return seen


def test_client_scenario(
    freight_home: Path, endpoint_id: str, wait_for: Callable[..., None]
) -> None:
    seen = client_scenario(Client, endpoint_id, wait_for)
    assert seen["function"]["function_name"] == "add"
    assert seen["function"]["description"] == "adds"
    assert seen["task"]["pending"] is False and seen["task"]["status"] == "success"
    assert seen["result"] == 3
    assert (seen["batch_len"], seen["batch_bool"]) == (3, True)
    r = seen["batch_run"]
    assert set(r) == {"request_id", "task_group_id", "endpoint_id", "tasks"}
    assert r["endpoint_id"] == endpoint_id
    assert [len(v) for v in r["tasks"].values()] == [2, 1]
    assert [s["result"] for s in seen["batch_results"]] == [2, 2, 15]
    assert seen["endpoint_status"]["status"] == "online"
    assert seen["endpoint_metadata"]["uuid"] == endpoint_id
    assert endpoint_id in [e["uuid"] for e in seen["endpoints"]]
    assert seen["allowed"]["endpoint_id"] == endpoint_id
    assert "python:" in seen["hardware"]
    with pytest.raises(LookupError):
        Client().get_function(seen["function"]["function_uuid"])


def executor_scenario(
    Executor: type,
    client: Any,
    endpoint_id: str,
) -> dict[str, Any]:
    """The reference's documented Executor calls; returns what it observed."""
    seen: dict[str, Any] = {}
    with Executor(endpoint_id=endpoint_id, client=client) as gce:
        fut = gce.submit(add, 1, b=2)
        seen["submit"] = fut.result()
        seen["task_id"] = fut.task_id

        fid = gce.register_function(mul)
        try:
            gce.register_function(mul, function_id=str(uuid.uuid4()))
        except ValueError as e:
            seen["reregister"] = str(e)
        seen["same_id"] = gce.register_function(mul, function_id=fid) == fid
        seen["registered"] = [
            gce.submit_to_registered_function(fid, args=(2, 3)).result(),
            gce.submit_to_registered_function(
                function_id=fid, args=(2,), kwargs={"y": 4}
            ).result(),
        ]
        src = gce.register_source_code(TRIPLE_SOURCE, "triple")
        seen["source"] = gce.submit_to_registered_function(src, (4,)).result()

        futs = [gce.submit(mul, i, 10) for i in range(5)]
        seen["as_completed"] = sorted(
            f.result() for f in concurrent.futures.as_completed(futs, timeout=60)
        )
        done, not_done = concurrent.futures.wait(futs, timeout=60)
        seen["wait"] = (len(done), len(not_done))
        seen["task_ids"] = [f.task_id for f in futs]
        seen["map"] = list(gce.map(mul, [1, 2, 3], [4, 5, 6]))
        seen["submitted"] = gce.task_count_submitted
        tg = gce.task_group_id
    seen["shut"] = _raises(lambda: gce.submit(add, 1), RuntimeError)

    gce2 = Executor(endpoint_id=endpoint_id, client=client)
    gce2.task_group_id = tg
    reloaded = gce2.reload_tasks()
    by_id = {f.task_id: f for f in reloaded}
    seen["reloaded"] = [by_id[t].result(timeout=60) for t in seen["task_ids"]]
    seen["reloaded_count"] = len(reloaded)
    gce2.shutdown(wait=True, cancel_futures=False)
    return seen


def _raises(fn: Callable[[], Any], kind: type[BaseException]) -> bool:
    try:
        fn()
    except kind:
        return True
    return False


def test_executor_scenario(
    freight_home: Path, client: Client, endpoint_id: str
) -> None:
    seen = executor_scenario(Executor, client, endpoint_id)
    assert seen["submit"] == 3
    assert uuid.UUID(seen["task_id"])
    assert seen["reregister"].startswith("Function already registered as function id")
    assert seen["same_id"] is True
    assert seen["registered"] == [6, 8]
    assert seen["source"] == 12
    assert seen["as_completed"] == [0, 10, 20, 30, 40]
    assert seen["wait"] == (5, 0)
    assert all(uuid.UUID(t) for t in seen["task_ids"])
    assert seen["map"] == [4, 10, 18]
    assert seen["submitted"] >= 10
    assert seen["shut"] is True
    assert seen["reloaded"] == [0, 10, 20, 30, 40]
    assert seen["reloaded_count"] == seen["submitted"]


def test_executor_without_endpoint_on_a_remote_service_says_so(
    freight_home: Path, service: Any, counting: Any
) -> None:
    # The reference's ValueError at submit when no endpoint is set; on the
    # embedded service, None means the local endpoint instead.
    remote_like = Client(transport=counting(service, binary_payloads=False))
    gce = Executor(client=remote_like)
    assert gce.endpoint_id is None
    with pytest.raises(ValueError, match="No endpoint_id set"):
        gce.submit(add, 1)
    gce.shutdown()


def batch_scenario(
    Batch: type,
    serializer: Any,
    function_id: str,
) -> Any:
    """4.19's Batch calls; returns the request body it would send."""
    batch = Batch(None, serializer=serializer)
    assert len(batch) == 0
    batch.add(function_id, args=(1, 2), kwargs={"k": "v"})
    batch.add(function_id, (3,))
    batch.add(function_id)
    assert len(batch) == 3 and bool(batch)
    for bad in ("not a tuple", 5):
        with pytest.raises(TypeError, match="args"):
            batch.add(function_id, bad)
    with pytest.raises(TypeError, match="kwargs"):
        batch.add(function_id, (), {1: 2})
    assert len(batch) == 3
    return batch.prepare()


def test_batch_scenario_same_body_as_the_reference() -> None:
    fid = str(uuid.uuid4())
    ours = batch_scenario(Batch, ComputeSerializer(strategy_data="DillDataBase64"), fid)
    theirs = batch_scenario(RefBatch, RefSerializer(), fid)
    assert ours.keys() == theirs.keys() == {"create_queue", "tasks"}
    assert ours["create_queue"] is theirs["create_queue"] is False
    assert list(ours["tasks"]) == list(theirs["tasks"]) == [fid]
    ref_serde, our_serde = RefSerializer(), ComputeSerializer()
    expected = [[(1, 2), {"k": "v"}], [(3,), {}], [(), {}]]
    for payloads, decoder in (
        (ours["tasks"][fid], ref_serde),  # the reference reads freight's body
        (theirs["tasks"][fid], our_serde),  # and freight reads the reference's
    ):
        assert all(isinstance(p, str) for p in payloads)
        decoded = [
            [decoder.deserialize(b) for b in decoder.unpack_buffers(p)]
            for p in payloads
        ]
        assert decoded == expected


def test_batch_guide_shape_is_refused_by_the_reference_shape_run(
    freight_home: Path, client: Client, endpoint_id: str
) -> None:
    # A batch filled in the guide's shape names its endpoints per call;
    # batch_run(endpoint_id, batch) refuses one whose calls name another.
    fid = client.register_function(add)
    batch = client.create_batch()
    batch.add(1, endpoint_id=str(uuid.uuid4()), function_id=fid)
    with pytest.raises(ValueError, match="batch"):
        client.batch_run(endpoint_id, batch)
    shaped = client.create_batch()
    shaped.add(fid, (1,))
    with pytest.raises(ValueError, match="batch_run\\(endpoint_id, batch\\)"):
        client.batch_run(shaped)
