"""Bad input: the right ServiceError subclass at the call, nothing stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (
    ECHO_SRC,
    HoldingLink,
    binary_payload,
    register_source,
    store_count,
    text_payload,
)

from freight.service.core import ServiceCore
from freight.service.errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceError,
    ServiceUnavailable,
    UnknownContainer,
    UnknownEndpoint,
    UnknownFunction,
    UnknownTask,
)
from freight.service.store import SQLiteStore

LIMIT = 4096
TABLES = ("tasks", "task_groups", "functions", "containers")


@pytest.fixture
def small(home: Path, link: HoldingLink) -> Iterator[ServiceCore]:
    """A core whose payload limit is LIMIT bytes."""
    c = ServiceCore(SQLiteStore(home / "freight.db"), max_payload_bytes=LIMIT)
    c.add_endpoint(link)
    yield c
    c.shutdown()


def _rows(store: Any) -> dict[str, int]:
    return {t: store_count(store, t) for t in TABLES}


def _refused(
    store: Any, call: Callable[[], Any], error: type[ServiceError]
) -> ServiceError:
    before = _rows(store)
    with pytest.raises(error) as info:
        call()
    assert _rows(store) == before, "a refused request stored something"
    assert info.value.message
    return info.value


def _bodies(fid: str) -> dict[str, tuple[Any, type[ServiceError]]]:
    ok = text_payload(1)
    unknown = str(uuid.uuid4())
    return {
        "body not an object": ([("tasks", {})], InvalidRequest),
        "tasks missing": ({}, InvalidRequest),
        "tasks empty": ({"tasks": {}}, InvalidRequest),
        "tasks a list": ({"tasks": [ok]}, InvalidRequest),
        "function id not a uuid": (
            {"tasks": {fid: [ok], "nope": [ok]}},
            InvalidRequest,
        ),
        "function id an int": ({"tasks": {fid: [ok], 7: [ok]}}, InvalidRequest),
        "unknown function among valid ones": (
            {"tasks": {fid: [ok, ok], unknown: [ok]}},
            UnknownFunction,
        ),
        "payloads not a list": ({"tasks": {fid: ok}}, InvalidRequest),
        "payloads empty": ({"tasks": {fid: []}}, InvalidRequest),
        "payload an int": ({"tasks": {fid: [ok, 5]}}, InvalidRequest),
        "payload with no frame": ({"tasks": {fid: [ok, []]}}, InvalidRequest),
        "frame a str": ({"tasks": {fid: [["abc"]]}}, InvalidRequest),
        "frame an int": ({"tasks": {fid: [[b"x", 3]]}}, InvalidRequest),
        "text payload over the limit": (
            {"tasks": {fid: [ok, "x" * (LIMIT + 1)]}},
            PayloadTooLarge,
        ),
        "text payload over the limit in UTF-8 only": (
            {"tasks": {fid: ["é" * (LIMIT // 2 + 1)]}},
            PayloadTooLarge,
        ),
        "binary payload over the limit": (
            {"tasks": {fid: [binary_payload(1), [b"h", bytes(LIMIT)]]}},
            PayloadTooLarge,
        ),
        "task_group_id an int": (
            {"tasks": {fid: [ok]}, "task_group_id": 5},
            InvalidRequest,
        ),
        "task_group_id empty": (
            {"tasks": {fid: [ok]}, "task_group_id": ""},
            InvalidRequest,
        ),
        "resource_specification a list": (
            {"tasks": {fid: [ok]}, "resource_specification": [1]},
            InvalidRequest,
        ),
        "resource_specification key an int": (
            {"tasks": {fid: [ok]}, "resource_specification": {1: 2}},
            InvalidRequest,
        ),
        "timeout_s a str": (
            {"tasks": {fid: [ok]}, "resource_specification": {"timeout_s": "10"}},
            InvalidRequest,
        ),
        "timeout_s a bool": (
            {"tasks": {fid: [ok]}, "resource_specification": {"timeout_s": True}},
            InvalidRequest,
        ),
        "memory_mb negative": (
            {"tasks": {fid: [ok]}, "resource_specification": {"memory_mb": -1}},
            InvalidRequest,
        ),
        "timeout_s not finite": (
            {
                "tasks": {fid: [ok]},
                "resource_specification": {"timeout_s": float("nan")},
            },
            InvalidRequest,
        ),
        "user_endpoint_config a str": (
            {"tasks": {fid: [ok]}, "user_endpoint_config": "x"},
            InvalidRequest,
        ),
        "user_runtime an int": (
            {"tasks": {fid: [ok]}, "user_runtime": 5},
            InvalidRequest,
        ),
        "result_serializers a str": (
            {"tasks": {fid: [ok]}, "result_serializers": "json"},
            InvalidRequest,
        ),
        "result_serializers of ints": (
            {"tasks": {fid: [ok]}, "result_serializers": [1]},
            InvalidRequest,
        ),
        "freight_chunked a str": (
            {"tasks": {fid: [ok]}, "freight_chunked": "yes"},
            InvalidRequest,
        ),
        "create_queue a str": (
            {"tasks": {fid: [ok]}, "create_queue": "no"},
            InvalidRequest,
        ),
    }


_CASES = list(_bodies(str(uuid.uuid4())))


@pytest.mark.parametrize("case", _CASES)
def test_a_bad_submit_is_refused_and_stores_nothing(
    small: ServiceCore, link: HoldingLink, home: Path, case: str
) -> None:
    fid = register_source(small, "echo", ECHO_SRC)
    body, error = _bodies(fid)[case]
    _refused(small.store, lambda: small.submit(link.endpoint_id, body), error)
    assert link.tasks == {}
    # The service still takes a good request afterwards.
    r = small.submit(link.endpoint_id, {"tasks": {fid: [text_payload(1)]}})
    assert len(r["tasks"][fid]) == 1


def test_a_payload_at_the_limit_is_taken(small: ServiceCore, link: HoldingLink) -> None:
    fid = register_source(small, "echo", ECHO_SRC)
    r = small.submit(
        link.endpoint_id, {"tasks": {fid: ["x" * LIMIT, [b"h", bytes(LIMIT - 1)]]}}
    )
    assert len(r["tasks"][fid]) == 2


@pytest.mark.parametrize(
    ("endpoint_id", "error"),
    [
        (str(uuid.uuid4()), UnknownEndpoint),
        ("not-a-uuid", InvalidRequest),
        (12, InvalidRequest),
        (None, InvalidRequest),
    ],
)
def test_submit_to_a_bad_endpoint_is_refused(
    core: ServiceCore, home: Path, endpoint_id: Any, error: type[ServiceError]
) -> None:
    fid = register_source(core, "echo", ECHO_SRC)
    _refused(
        core.store,
        lambda: core.submit(endpoint_id, {"tasks": {fid: [text_payload(1)]}}),
        error,
    )


def test_an_endpoint_that_refuses_the_batch_leaves_no_task(
    core: ServiceCore, link: HoldingLink, home: Path
) -> None:
    fid = register_source(core, "echo", ECHO_SRC)
    link.refuse = ConnectionError("endpoint went away")
    err = _refused(
        core.store,
        lambda: core.submit(link.endpoint_id, {"tasks": {fid: [text_payload(1)] * 3}}),
        ServiceUnavailable,
    )
    assert "endpoint went away" in err.message
    assert core.list_tasks() == []


def test_submit_after_shutdown_is_refused(core: ServiceCore, link: HoldingLink) -> None:
    fid = register_source(core, "echo", ECHO_SRC)
    core.shutdown()
    with pytest.raises(ServiceUnavailable):
        core.submit(link.endpoint_id, {"tasks": {fid: [text_payload(1)]}})


_FUNCTION_BODIES: dict[str, tuple[Any, type[ServiceError]]] = {
    "body not an object": ("def f(): pass", InvalidRequest),
    "name missing": ({"function_code": "01\nxx"}, InvalidRequest),
    "name an int": ({"function_name": 3, "function_code": "01\nxx"}, InvalidRequest),
    "code missing": ({"function_name": "f"}, InvalidRequest),
    "code bytes": ({"function_name": "f", "function_code": b"01\nxx"}, InvalidRequest),
    "code without a strategy header": (
        {"function_name": "f", "function_code": "def f(): pass"},
        InvalidRequest,
    ),
    "code over the limit": (
        {"function_name": "f", "function_code": "01\n" + "x" * LIMIT},
        PayloadTooLarge,
    ),
    "serialized a str": (
        {"function_name": "f", "function_code": "01\nxx", "serialized": "no"},
        InvalidRequest,
    ),
    "meta a str": (
        {"function_name": "f", "function_code": "01\nxx", "meta": "x"},
        InvalidRequest,
    ),
    "meta not JSON": (
        {"function_name": "f", "function_code": "01\nxx", "meta": {"a": object()}},
        InvalidRequest,
    ),
    "description an int": (
        {"function_name": "f", "function_code": "01\nxx", "description": 1},
        InvalidRequest,
    ),
    "public a str": (
        {"function_name": "f", "function_code": "01\nxx", "public": "yes"},
        InvalidRequest,
    ),
    "group not a uuid": (
        {"function_name": "f", "function_code": "01\nxx", "group": "g"},
        InvalidRequest,
    ),
    "unknown container": (
        {
            "function_name": "f",
            "function_code": "01\nxx",
            "container_uuid": str(uuid.uuid4()),
        },
        UnknownContainer,
    ),
}


@pytest.mark.parametrize("case", list(_FUNCTION_BODIES))
def test_a_bad_function_is_refused_and_stores_nothing(
    small: ServiceCore, home: Path, case: str
) -> None:
    body, error = _FUNCTION_BODIES[case]
    _refused(small.store, lambda: small.register_function(body), error)


def test_a_function_keeps_its_metadata(core: ServiceCore) -> None:
    fid = core.register_function(
        {
            "function_name": "f",
            "function_code": "01\nxx",
            "meta": {"owner": "me", "n": [1, 2]},
            "description": "d",
            "public": True,
        }
    )["function_uuid"]
    found = core.get_function(fid)
    assert found["metadata"] == {"owner": "me", "n": [1, 2]}
    assert (found["description"], found["public"]) == ("d", True)


_CONTAINER_BODIES: dict[str, Any] = {
    "body not an object": ["python", "/usr/bin/python3"],
    "type unknown": {"type": "vm", "location": "x"},
    "type an int": {"type": 1, "location": "x"},
    "location empty": {"type": "python", "location": ""},
    "location missing": {"type": "python"},
    "name an int": {"type": "docker", "location": "img", "name": 5},
    "description a list": {"type": "docker", "location": "img", "description": []},
}


@pytest.mark.parametrize("case", list(_CONTAINER_BODIES))
def test_a_bad_container_is_refused_and_stores_nothing(
    core: ServiceCore, home: Path, case: str
) -> None:
    body = _CONTAINER_BODIES[case]
    _refused(core.store, lambda: core.register_container(body), InvalidRequest)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.get_task(123), InvalidRequest),
        (lambda c: c.get_task("nope"), InvalidRequest),
        (lambda c: c.get_task(str(uuid.uuid4())), UnknownTask),
        (lambda c: c.get_batch_status("abc"), InvalidRequest),
        (lambda c: c.get_batch_status([1]), InvalidRequest),
        (lambda c: c.get_function(None), InvalidRequest),
        (lambda c: c.get_function(str(uuid.uuid4())), UnknownFunction),
        (lambda c: c.delete_function(str(uuid.uuid4())), UnknownFunction),
        (lambda c: c.get_container(str(uuid.uuid4())), UnknownContainer),
        (lambda c: c.cancel("abc"), InvalidRequest),
        (lambda c: c.cancel([str(uuid.uuid4())]), UnknownTask),
        (lambda c: c.cancel([], terminate="yes"), InvalidRequest),
        (lambda c: c.list_tasks(0), InvalidRequest),
        (lambda c: c.list_tasks("5"), InvalidRequest),
        (lambda c: c.list_tasks(True), InvalidRequest),
        (lambda c: c.list_tasks(status="done"), InvalidRequest),
        (lambda c: c.list_tasks(task_group_id="g"), InvalidRequest),
        (lambda c: c.list_functions(-1), InvalidRequest),
        (lambda c: c.get_endpoints(role="admin"), InvalidRequest),
        (lambda c: c.get_endpoint_status(str(uuid.uuid4())), UnknownEndpoint),
        (lambda c: c.subscribe("g", print), InvalidRequest),
        (lambda c: c.subscribe(None, "not callable"), InvalidRequest),
    ],
)
def test_a_wrong_argument_gets_a_clear_error(
    core: ServiceCore, home: Path, call: Callable[[ServiceCore], Any], error: type
) -> None:
    _refused(core.store, lambda: call(core), error)


def test_cancel_with_one_unknown_id_cancels_nothing(
    core: ServiceCore, link: HoldingLink
) -> None:
    fid = register_source(core, "echo", ECHO_SRC)
    (tid,) = core.submit(link.endpoint_id, {"tasks": {fid: [text_payload(1)]}})[
        "tasks"
    ][fid]
    with pytest.raises(UnknownTask):
        core.cancel([tid, str(uuid.uuid4())])
    assert tid in link.tasks
    assert core.get_task(tid)["status"] == "waiting-for-launch"
