"""The submit body of the reference SDK: who sent it, and the result
serializers freight's endpoint is asked for."""

from __future__ import annotations

from typing import Any

from freight.client.batch import create_user_runtime as freight_runtime
from freight.service.reference_dialect import (
    REFERENCE_RESULT_SERIALIZERS,
    is_reference_submitter,
    reference_submit_body,
    wants_result_queue,
)


def _ref_body(**kwargs: Any) -> dict[str, Any]:
    from globus_compute_sdk.sdk.batch import Batch, create_user_runtime
    from globus_compute_sdk.serialize import ComputeSerializer as RefSerializer

    batch = Batch(
        None,
        serializer=RefSerializer(),
        user_runtime=create_user_runtime(),
        **kwargs,
    )
    batch.add("11111111-1111-4111-8111-111111111111", (1,), {})
    body: dict[str, Any] = batch.prepare()
    return body


def test_reference_batch_gets_the_reference_result_serializers() -> None:
    body = _ref_body()
    assert is_reference_submitter(body)
    out = reference_submit_body(body)
    assert out["result_serializers"] == list(REFERENCE_RESULT_SERIALIZERS)
    assert "result_serializers" not in body  # the caller's body is not changed


def test_reference_import_paths_become_freight_names() -> None:
    from globus_compute_sdk.serialize import JSONData
    from globus_compute_sdk.serialize.facade import validate_strategylike

    path = validate_strategylike(JSONData).import_path
    body = _ref_body(result_serializers=[path])
    out = reference_submit_body(body)
    assert out["result_serializers"] == ["JSONData"]

    from freight.serialize import ComputeSerializer

    assert (
        ComputeSerializer.serialize_from_list([1], out["result_serializers"])[:3]
        == JSONData.identifier
    )


def test_freight_bodies_are_untouched() -> None:
    from dataclasses import asdict

    body = {"tasks": {}, "user_runtime": asdict(freight_runtime())}
    assert not is_reference_submitter(body)
    assert reference_submit_body(body) is body
    plain = {"tasks": {}, "create_queue": False}
    assert reference_submit_body(plain) is plain
    assert not is_reference_submitter({"user_runtime": "4.19.0"})


def test_result_queue_request() -> None:
    assert wants_result_queue({"create_queue": True})
    assert wants_result_queue({"create_websocket_queue": True})
    assert not wants_result_queue({"create_queue": False})
    assert not wants_result_queue(_ref_body())
