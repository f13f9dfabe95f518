"""freight's AMQP result messages, read by the reference's own code: the bytes
equal ``globus_compute_common.messagepack.pack(Result(...))``, and the
reference ``Executor``'s result watcher (``_ResultWatcher._on_message`` then
``_match_results_to_futures``) completes its futures from them."""

from __future__ import annotations

import types
import uuid
from typing import Any

import pytest

from freight.serialize import ComputeSerializer
from freight.service.reference_dialect import (
    REMOTE_ERROR_CODE,
    REMOTE_ERROR_MESSAGE,
    amqp_connection_response,
    encode_amqp_result,
    result_queue_name,
    result_timestamp,
)

SER = ComputeSerializer(strategy_data="DillDataBase64")
DETAILS = {"os": "Linux", "python_version": "3.11.7", "dill_version": "0.3.9"}


def success(value: Any, **extra: Any) -> dict[str, Any]:
    return {
        "task_id": str(uuid.uuid4()),
        "status": "success",
        "task_group_id": str(uuid.uuid4()),
        "completion_t": "1796579027.9213421",
        "result": SER.serialize(value),
        "details": dict(DETAILS),
        **extra,
    }


def failure(text: str) -> dict[str, Any]:
    return {
        "task_id": str(uuid.uuid4()),
        "status": "failed",
        "task_group_id": str(uuid.uuid4()),
        "completion_t": "1796579027.9213421",
        "exception": text,
        "exception_record": {"type": "ValueError"},
        "details": dict(DETAILS),
    }


def test_success_bytes_equal_the_reference_packer() -> None:
    from globus_compute_common import messagepack
    from globus_compute_common.messagepack.message_types import Result

    status = success({"a": [1, 2.5, "é"]})
    ours = encode_amqp_result(status)
    theirs = messagepack.pack(
        Result(
            task_id=uuid.UUID(status["task_id"]),
            data=status["result"],
            details=status["details"],
        )
    )
    assert ours == theirs
    back = messagepack.unpack(ours)
    assert isinstance(back, Result) and not back.is_error
    assert str(back.task_id) == status["task_id"]


def test_failure_bytes_equal_the_reference_packer() -> None:
    from globus_compute_common import messagepack
    from globus_compute_common.messagepack.message_types import (
        Result,
        ResultErrorDetails,
    )

    status = failure("Traceback (most recent call last):\n  ...\nValueError: ünïcode")
    theirs = messagepack.pack(
        Result(
            task_id=uuid.UUID(status["task_id"]),
            data=status["exception"],
            details=status["details"],
            error_details=ResultErrorDetails(
                code=REMOTE_ERROR_CODE, user_message=REMOTE_ERROR_MESSAGE
            ),
        )
    )
    assert encode_amqp_result(status) == theirs
    back = messagepack.unpack(theirs)
    assert isinstance(back, Result) and back.is_error


@pytest.mark.parametrize(
    "status, match",
    [
        ({"task_id": "x", "status": "running"}, "not finished"),
        ({"status": "success", "result": "00\nabc"}, "task's id"),
        (
            {"task_id": str(uuid.uuid4()), "status": "success", "result": b"\x00"},
            "text results only",
        ),
    ],
)
def test_what_cannot_be_a_reference_result_is_refused(
    status: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        encode_amqp_result(status)


def test_timestamp_and_queue_and_connection_shapes() -> None:
    assert result_timestamp({"completion_t": "1796579027.9213421"}) == 1796579027
    assert result_timestamp({"completion_t": "unknown"}) is None
    assert result_timestamp({}) is None
    tg = str(uuid.uuid4())
    assert result_queue_name("p.", tg) == f"p.{tg}"
    body = amqp_connection_response("amqp://guest:guest@127.0.0.1:5672/%2F", "p.")
    assert body == {
        "connection_url": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "queue_prefix": "p.",
    }
    with pytest.raises(ValueError, match="amqp"):
        amqp_connection_response("http://example.org", "p.")


def _watch(ref_client: Any, statuses: list[dict[str, Any]]) -> list[Any]:
    """Deliver freight's messages to a reference ``_ResultWatcher`` (not
    started: its message handler and matcher are called as pika's ioloop
    would) and return its futures, one per status."""
    import pika
    from globus_compute_sdk.sdk.asynchronous.compute_future import ComputeFuture
    from globus_compute_sdk.sdk.executor import _RESULT_WATCHERS, _ResultWatcher

    watcher = _ResultWatcher(uuid.uuid4(), ref_client)
    try:
        futures = [ComputeFuture(s["task_id"]) for s in statuses]
        watcher.watch_for_task_results(types.SimpleNamespace(), futures)  # type: ignore[arg-type]
        for tag, status in enumerate(statuses, start=1):
            props = pika.BasicProperties(timestamp=result_timestamp(status))
            deliver = types.SimpleNamespace(delivery_tag=tag)
            watcher._on_message(None, deliver, props, encode_amqp_result(status))  # type: ignore[arg-type]
        assert watcher._to_ack == list(range(1, len(statuses) + 1))
        watcher._match_results_to_futures()
        return futures
    finally:
        _RESULT_WATCHERS.pop(watcher.task_group_id, None)


def test_reference_watcher_completes_futures_from_freight_messages(
    ref_client: Any,
) -> None:
    from globus_compute_sdk.errors import TaskExecutionFailed

    statuses = [success(41), success(None), failure("ValueError: boom")]
    ok, none, bad = _watch(ref_client, statuses)
    assert ok.result(timeout=0) == 41
    assert none.result(timeout=0) is None
    exc = bad.exception(timeout=0)
    assert isinstance(exc, TaskExecutionFailed)
    assert exc.remote_data == "ValueError: boom"
    assert exc.completion_t == "1796579027"


def test_pushed_results_of_a_reference_batch_reach_reference_futures(
    service: Any, ref_client: Any
) -> None:
    """The whole service side: a batch as the reference's Executor sends it runs
    on freight's endpoint; each status freight pushes to a subscriber, encoded,
    completes the reference watcher's future."""
    import threading

    from globus_compute_sdk.errors import TaskExecutionFailed
    from globus_compute_sdk.sdk.batch import Batch, create_user_runtime
    from globus_compute_sdk.sdk.client import FunctionRegistrationData
    from globus_compute_sdk.serialize import ComputeSerializer as RefSerializer

    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def half(x):\n    return {'half': 1 / x * x / 2}\n", namespace)
    body = FunctionRegistrationData(function=namespace["half"]).to_dict()
    fid = service.register_function(body)["function_uuid"]
    tg = str(uuid.uuid4())
    batch = Batch(
        tg,
        request_queue=True,
        serializer=RefSerializer(),
        user_runtime=create_user_runtime(),
    )
    batch.add(fid, (4,), {})
    batch.add(fid, (0,), {})
    pushed: list[dict[str, Any]] = []
    both = threading.Event()

    def on_result(status: dict[str, Any]) -> None:
        pushed.append(status)
        if len(pushed) == 2:
            both.set()

    sub = service.subscribe(tg, on_result)
    try:
        ids = service.submit(service.endpoint_ids[0], batch.prepare())["tasks"][fid]
        assert both.wait(120), "the results were not pushed"
    finally:
        sub.close()
    by_id = {s["task_id"]: s for s in pushed}
    ok, bad = _watch(ref_client, [by_id[ids[0]], by_id[ids[1]]])
    assert ok.result(timeout=0) == {"half": 0.5}
    exc = bad.exception(timeout=0)
    assert isinstance(exc, TaskExecutionFailed)
    assert "ZeroDivisionError" in exc.remote_data
