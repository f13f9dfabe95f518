"""Properties: JSON-like values come back equal through the Executor and through
Client.run / get_result, on freight's binary hop and on the reference's text
envelope with JSON data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freight.client import Client, Executor
from freight.service.core import ServiceCore

EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=12,
)


def identity(x: Any) -> Any:
    return x


@pytest.fixture(scope="module")
def executor(client: Client) -> Iterator[Executor]:
    with Executor(client=client) as ex:
        yield ex


@pytest.fixture(scope="module")
def text_client(freight_home: Path, service: ServiceCore, counting: Any) -> Client:
    """A client on the reference's text envelope, JSON data."""
    return Client(
        transport=counting(service, binary_payloads=False),
        data_serialization_strategy="JSONData",
    )


@EXAMPLES
@given(value=json_like)
def test_executor_round_trip(executor: Executor, value: Any) -> None:
    assert executor.submit(identity, value).result(timeout=60) == value


@EXAMPLES
@given(value=json_like)
def test_executor_map_round_trip(executor: Executor, value: Any) -> None:
    assert list(executor.map(identity, [value, value], chunksize=2)) == [value, value]


def _run_and_get(client: Client, endpoint_id: str, fid: str, value: Any) -> Any:
    tid = client.run(value, endpoint_id=endpoint_id, function_id=fid)
    deadline = time.monotonic() + 60
    while client.get_task(tid)["pending"]:
        assert time.monotonic() < deadline, "the task did not finish"
        time.sleep(0.002)
    return client.get_result(tid)


@EXAMPLES
@given(value=json_like)
def test_client_run_round_trip(client: Client, endpoint_id: str, value: Any) -> None:
    fid = _function(client)
    assert _run_and_get(client, endpoint_id, fid, value) == value


@settings(parent=EXAMPLES, max_examples=30)
@given(value=json_like)
def test_text_envelope_json_round_trip(
    text_client: Client, endpoint_id: str, value: Any
) -> None:
    fid = _function(text_client)
    assert _run_and_get(text_client, endpoint_id, fid, value) == value


_FUNCTIONS: dict[int, str] = {}


def _function(client: Client) -> str:
    key = id(client)
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = client.register_function(identity)
    return _FUNCTIONS[key]
