"""Function registration in the reference's form: ``FunctionRegistrationData``
(``pack_buffers([serialize(fn)])``) is stored as freight's serialized code, runs
on freight's endpoint, and its results read back through the reference's own
``Client`` parsing; freight's own form is untouched."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from service_helpers import count_rows

from freight.serialize import ComputeSerializer
from freight.service.core import ServiceCore
from freight.service.errors import InvalidRequest
from freight.service.reference_dialect import (
    is_packed_function_code,
    unwrap_function_code,
)

SER = ComputeSerializer()


def _by_value(source: str, name: str) -> Any:
    """A function defined in a ``__main__`` namespace, so that dill (the
    reference's and freight's) sends it by value, not as an import of this test
    module, which worker processes cannot import."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(source, namespace)
    return namespace[name]


add = _by_value("def add(a, b=1):\n    return a + b\n", "add")
boom = _by_value(
    "def boom():\n    raise ValueError('boom from the function')\n", "boom"
)


def _ref_registration(fn: Any) -> dict[str, Any]:
    from globus_compute_sdk.sdk.client import FunctionRegistrationData

    body: dict[str, Any] = FunctionRegistrationData(function=fn).to_dict()
    return body


def test_reference_registration_is_stored_unwrapped(service: ServiceCore) -> None:
    from globus_compute_sdk.serialize import ComputeSerializer as RefSerializer

    body = _ref_registration(add)
    packed = body["function_code"]
    (inner,) = RefSerializer.unpack_buffers(packed)
    assert is_packed_function_code(packed)
    fid = service.register_function(body)["function_uuid"]
    stored = service.get_function(fid)["function_code"]
    assert stored == inner
    assert SER.deserialize(stored)(2, b=5) == 7


def test_freight_registration_is_unchanged(service: ServiceCore) -> None:
    code = SER.serialize(add)
    assert not is_packed_function_code(code)
    assert unwrap_function_code(code) == code
    fid = service.register_function({"function_name": "add", "function_code": code})[
        "function_uuid"
    ]
    assert service.get_function(fid)["function_code"] == code


@pytest.mark.parametrize(
    "bad",
    [
        "5\n01\nabcdef",  # the length is not the rest's
        "007\n01\nabc",  # leading zeros: not what pack_buffers writes
        "3\nabc",  # the packed buffer has no strategy header
        "100\n01\nabc",  # the length runs past the end
    ],
)
def test_malformed_packed_code_is_refused_and_nothing_stored(
    service: ServiceCore, home: Path, bad: str
) -> None:
    assert not is_packed_function_code(bad)
    before = count_rows(home / "freight.db", "functions")
    with pytest.raises(InvalidRequest, match="header"):
        service.register_function({"function_name": "f", "function_code": bad})
    assert count_rows(home / "freight.db", "functions") == before


@given(
    header=st.text(
        alphabet="0123456789abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=2
    ),
    body=st.text(max_size=300),
)
def test_unwrap_inverts_pack_buffers(header: str, body: str) -> None:
    inner = f"{header}\n{body}"
    assert unwrap_function_code(SER.pack_buffers([inner])) == inner


def _run_reference_batch(
    service: ServiceCore, fid: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """Submit one task as the reference's ``Batch.prepare()`` body; wait for it."""
    from globus_compute_sdk.sdk.batch import Batch, create_user_runtime
    from globus_compute_sdk.serialize import ComputeSerializer as RefSerializer

    tg = str(uuid.uuid4())
    batch = Batch(
        tg,
        request_queue=True,
        serializer=RefSerializer(),
        user_runtime=create_user_runtime(),
    )
    batch.add(fid, args, kwargs)
    done = threading.Event()
    sub = service.subscribe(tg, lambda _m: done.set())
    try:
        resp = service.submit(service.endpoint_ids[0], batch.prepare())
        assert done.wait(120), "the task did not finish"
    finally:
        sub.close()
    # The reference's Executor checks these four (uuid.UUID() on three of them).
    assert uuid.UUID(resp["request_id"]) and uuid.UUID(resp["endpoint_id"])
    assert resp["task_group_id"] == tg
    (tid,) = resp["tasks"][fid]
    return str(tid)


def test_reference_task_result_reads_back_through_reference_client(
    service: ServiceCore, ref_client: Any
) -> None:
    fid = service.register_function(_ref_registration(add))["function_uuid"]
    tid = _run_reference_batch(service, fid, (40,), {"b": 2})
    status = ref_client._update_task_table(service.get_task(tid), tid)
    assert status["pending"] is False and status["result"] == 42
    # and through get_batch_status, as Client.get_batch_result and
    # Executor.reload_tasks read it
    batch = service.get_batch_status([tid])
    assert batch["response"] == "batch"
    assert ref_client._update_task_table(batch["results"][tid], tid)["result"] == 42


def test_reference_task_failure_raises_task_execution_failed(
    service: ServiceCore, ref_client: Any
) -> None:
    from globus_compute_sdk.errors import TaskExecutionFailed

    fid = service.register_function(_ref_registration(boom))["function_uuid"]
    tid = _run_reference_batch(service, fid, (), {})
    with pytest.raises(TaskExecutionFailed) as info:
        ref_client._update_task_table(service.get_task(tid), tid)
    assert "boom from the function" in str(info.value)
    assert "ValueError" in info.value.remote_data


def test_reference_taskgroup_shape(service: ServiceCore) -> None:
    fid = service.register_function(_ref_registration(add))["function_uuid"]
    tid = _run_reference_batch(service, fid, (1,), {})
    status = service.get_task(tid)
    tg = service.get_taskgroup(status["task_group_id"])
    # Executor.reload_tasks: r["taskgroup_id"] == str(tg), [t["id"] for t in tasks]
    assert tg["taskgroup_id"] == status["task_group_id"]
    assert [t["id"] for t in tg["tasks"]] == [tid]


def test_version_response_passes_reference_version_check(
    service: ServiceCore,
) -> None:
    from globus_compute_sdk.version import __version__, compare_versions

    from freight.service.reference_dialect import version_response

    body = version_response(service.version())
    compare_versions(__version__, body["min_sdk_version"])
    compare_versions("4.19.0", body["min_ep_version"])
    assert body["api"]
