"""What a worker does with one task (freight.endpoint.execute), and the local
endpoint's checks before a task reaches an engine (freight.endpoint.endpoint)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from freight.endpoint.endpoint import LocalEndpoint, resource_limits
from freight.endpoint.execute import decode_outcome, encode_work, run_packet
from freight.endpoint.thread import ThreadEngine
from freight.serialize import ComputeSerializer, exception_from_dict
from freight.service.protocol import TaskMessage, TaskOutcome

SERDE = ComputeSerializer()
FID = "00000000-0000-4000-8000-000000000001"


def double(x: int) -> int:
    return 2 * x


def divide(a: float, b: float) -> float:
    return a / b


def big(n: int) -> bytes:
    return b"x" * n


def message(fn: Any, payload: Any, **kw: Any) -> TaskMessage:
    return TaskMessage(
        task_id="t1",
        # The worker caches functions by id: one id per function here, as the
        # service gives.
        function_id=kw.pop(
            "function_id", str(uuid.uuid5(uuid.NAMESPACE_OID, fn.__qualname__))
        ),
        function_code=SERDE.serialize(fn),
        payload=payload,
        task_group_id="g",
        **kw,
    )


def text_payload(*args: Any, **kwargs: Any) -> str:
    return SERDE.pack_buffers([SERDE.serialize(args), SERDE.serialize(kwargs)])


def run(task: TaskMessage, **kw: Any) -> TaskOutcome:
    return decode_outcome(
        task.task_id, run_packet(encode_work(task, endpoint_id="e", **kw))
    )


def test_text_payload_gets_a_text_result() -> None:
    out = run(message(double, text_payload(21)))
    assert out.status == "success"
    assert isinstance(out.result, str)
    assert SERDE.deserialize(out.result) == 42
    assert out.details["endpoint_id"] == "e"


def test_binary_payload_gets_a_binary_result() -> None:
    out = run(message(double, SERDE.dumps_frames(((21,), {}))))
    assert isinstance(out.result, bytes)
    assert SERDE.loads(out.result) == 42


def test_result_serializers_choose_the_result_strategy() -> None:
    task = message(double, SERDE.dumps_frames(((21,), {})))
    task.result_serializers = ["freight.plugins.json_strategies.JSONData"]
    out = run(task)
    assert isinstance(out.result, str) and out.result.startswith("11\n")
    assert SERDE.deserialize(out.result) == 42


def test_the_function_s_exception_is_a_record_that_rebuilds() -> None:
    out = run(message(divide, text_payload(1, 0)))
    assert out.status == "failed"
    assert out.exception is not None
    exc = exception_from_dict(out.exception)
    assert isinstance(exc, ZeroDivisionError)
    assert "ZeroDivisionError" in (out.exception_text or "")


def test_result_over_the_size_limit_fails_naming_the_limit() -> None:
    out = run(message(big, text_payload(5000)), result_size_limit=1000)
    assert out.status == "failed"
    assert out.exception is not None
    assert out.exception["type"] == "MaxResultSizeExceeded"
    assert "limit of 1000B" in out.exception["message"]


def test_allowlist_refuses_a_strategy_before_running() -> None:
    ran = run(
        message(double, text_payload(1)),
        allowlist=["freight.*Code", "JSONData"],
    )
    assert ran.status == "failed"
    assert ran.exception is not None
    assert ran.exception["type"] in ("StrategyNotAllowed", "DeserializationError")


def test_a_chunk_runs_every_call_and_keeps_each_failure() -> None:
    calls = [((1, 1), {}), ((1, 0), {}), ((4, 2), {})]
    out = run(message(divide, SERDE.dumps_frames(calls), chunk=True))
    assert out.status == "success"
    assert isinstance(out.result, bytes)
    values = SERDE.loads(out.result)
    assert values[0] == [True, 1.0] and values[2] == [True, 2.0]
    assert values[1][0] is False
    assert isinstance(exception_from_dict(values[1][1]), ZeroDivisionError)


def test_sys_exit_in_a_task_fails_only_the_task() -> None:
    import sys

    def leave() -> None:
        sys.exit(3)

    out = run(message(leave, text_payload()))
    assert out.status == "failed"
    assert out.exception is not None and out.exception["type"] == "SystemExit"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"timeout_s": "1"}, "must be a number"),
        ({"memory_mb": -1}, "must be positive"),
        ({"timeout_s": True}, "must be a number"),
    ],
)
def test_bad_resource_specification_is_refused(
    spec: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        resource_limits(spec)


class Sink:
    def __init__(self) -> None:
        self.outcomes: dict[str, TaskOutcome] = {}
        self.started_ids: list[str] = []
        self.done = threading.Event()
        self.expect = 1

    def started(self, task_ids: Sequence[str]) -> None:
        self.started_ids.extend(task_ids)

    def finished(self, outcomes: Sequence[TaskOutcome]) -> None:
        for o in outcomes:
            self.outcomes[o.task_id] = o
        if len(self.outcomes) >= self.expect:
            self.done.set()


def test_local_endpoint_refuses_functions_outside_its_allowed_list() -> None:
    allowed = "00000000-0000-4000-8000-0000000000aa"
    ep = LocalEndpoint(ThreadEngine(1), endpoint_id="e", allowed_functions=[allowed])
    sink = Sink()
    sink.expect = 2
    ep.attach(sink)
    try:
        ok = message(double, text_payload(2), function_id=allowed)
        refused = message(double, text_payload(2))
        refused.task_id = "t2"
        ep.dispatch([ok, refused])
        assert sink.done.wait(30)
    finally:
        ep.shutdown()
    assert sink.outcomes["t1"].status == "success"
    bad = sink.outcomes["t2"]
    assert bad.status == "failed" and bad.exception is not None
    assert bad.exception["type"] == "FunctionNotAllowed"
    assert refused.function_id in bad.exception["message"]
    assert ep.allowed_functions() == [allowed]
    assert "t1" in sink.started_ids


def test_local_endpoint_fails_a_task_with_a_bad_resource_specification() -> None:
    ep = LocalEndpoint(ThreadEngine(1), endpoint_id="e")
    sink = Sink()
    ep.attach(sink)
    try:
        task = message(double, text_payload(2), resource_specification={"timeout_s": 0})
        ep.dispatch([task])
        assert sink.done.wait(30)
    finally:
        ep.shutdown()
    out = sink.outcomes["t1"]
    assert out.status == "failed" and out.exception is not None
    assert out.exception["type"] == "InvalidResourceSpecification"
