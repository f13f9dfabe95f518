"""Translations between the reference's wire shapes and ``ServiceCore``'s dicts.

Pure functions, no web framework and no globus package: what a networked face of
``ServiceCore`` needs so that an unmodified ``globus-compute-sdk`` 4.19 ``Client``
and ``Executor`` work against it.  ``service/REFERENCE_WIRE.md`` is the spec these
follow (routes, bodies, and the AMQP result flow); tests/reference_wire checks each
one against the reference's own classes.

* **Function code.**  The reference registers ``pack_buffers([serialize(fn)])``
  (``f"{len(code)}\\n{code}"``); freight's client sends the serialized code itself
  (a 3-character strategy header, then the body).  ``unwrap_function_code`` turns
  the first into the second, which is what freight stores and its endpoints run.
* **Result serialization.**  freight's default data strategy (``p5``) is one the
  reference cannot read; ``reference_submit_body`` asks the endpoint for the
  reference's defaults (``REFERENCE_RESULT_SERIALIZERS``) when the reference
  submitted the batch and chose none, and names the reference's strategies by
  the class names freight registers them under.
* **Results by AMQP.**  The reference's ``Executor`` consumes its results from the
  queue ``result_queue_name(queue_prefix, task_group_id)``, each message a
  messagepack v1 ``Result`` (``encode_amqp_result``), with the completion time as
  the message's ``timestamp`` property (``result_timestamp``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_QUEUE_PREFIX",
    "REFERENCE_RESULT_SERIALIZERS",
    "REMOTE_ERROR_CODE",
    "REMOTE_ERROR_MESSAGE",
    "amqp_connection_response",
    "encode_amqp_result",
    "is_packed_function_code",
    "is_reference_submitter",
    "reference_submit_body",
    "result_message_properties",
    "result_queue_name",
    "result_timestamp",
    "unwrap_function_code",
    "version_response",
    "wants_result_queue",
]

#: The messagepack protocol version byte (``globus_compute_common.messagepack``).
_PROTOCOL_V1 = b"\x01"
#: The ``error_details`` the reference's endpoint sends for a failure of the
#: user's function (``globus_compute_endpoint.exception_handling``).
REMOTE_ERROR_CODE = "RemoteExecutionError"
REMOTE_ERROR_MESSAGE = "An error occurred during the execution of this task"
#: The prefix of result queue names when the service is not told another one.
DEFAULT_QUEUE_PREFIX = "freight.results."
#: The oldest reference SDK and endpoint the dialect serves (``Client`` compares
#: its version with ``min_sdk_version`` and refuses to start below it).
_MIN_SDK_VERSION = "2.0.0"
_MIN_EP_VERSION = "2.0.0"


# -- function code ---------------------------------------------------------------
def _split_packed(code: str) -> str | None:
    """The one buffer ``code`` packs, if it is ``pack_buffers([inner])`` of a
    serialized function (``inner`` has a 3-character header); else None."""
    head, sep, rest = code.partition("\n")
    if not sep or not head or not head.isascii() or not head.isdigit():
        return None
    if head != "0" and head.startswith("0"):
        return None  # pack_buffers writes str(len(...)): no leading zeros
    if int(head) != len(rest) or len(rest) < 3 or rest[2] != "\n":
        return None
    return rest


def is_packed_function_code(code: str) -> bool:
    """True if ``code`` is the reference's form: ``pack_buffers`` of exactly one
    serialized function (``f"{len(inner)}\\n{inner}"``, ``inner`` starting with
    a strategy's 3-character header).

    The two forms cannot be told apart in one corner only: freight code whose
    header is two decimal digits equal to its body's length (at most 99
    characters) and whose body's third character is a newline.  No built-in
    strategy produces such a body; it is read as the reference's form.
    """
    return _split_packed(code) is not None


def unwrap_function_code(code: str) -> str:
    """Freight's stored form of ``code``: the serialized function inside the
    reference's ``pack_buffers([...])``, or ``code`` itself when it is not in
    that form (freight's client sends the serialized function directly)."""
    inner = _split_packed(code)
    return code if inner is None else inner


# -- submit ----------------------------------------------------------------------
#: What the reference's endpoint serializes results with when the submitter
#: chose nothing: its default data strategy, then its default code strategy
#: (for a callable result), by freight's names for the same strategies.
REFERENCE_RESULT_SERIALIZERS = ("DillDataBase64", "DillCode")
_REFERENCE_PATHS = (
    "globus_compute_sdk.serialize.concretes.",
    "globus_compute_sdk.serialize.",
)
_FREIGHT_RUNTIME_PREFIX = "freight-"


def is_reference_submitter(body: Mapping[str, Any]) -> bool:
    """True if a submit body comes from the reference SDK: it always sends
    ``user_runtime`` with its ``globus_compute_sdk_version``; freight's client
    marks its own ``freight-<version>`` and freight's executor sends none."""
    runtime = body.get("user_runtime")
    if not isinstance(runtime, Mapping):
        return False
    version = runtime.get("globus_compute_sdk_version")
    return isinstance(version, str) and not version.startswith(_FREIGHT_RUNTIME_PREFIX)


def _freight_strategy_name(name: object) -> object:
    if isinstance(name, str):
        for prefix in _REFERENCE_PATHS:
            if name.startswith(prefix) and name[len(prefix) :].isidentifier():
                return name[len(prefix) :]
    return name


def reference_submit_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``body`` as freight's endpoint needs it to answer the reference: from a
    reference submitter, no ``result_serializers`` becomes
    ``REFERENCE_RESULT_SERIALIZERS``, and the reference's import paths
    (``globus_compute_sdk.serialize.DillDataBase64``) become freight's names for
    the same strategies.  Any other body is returned as it is (not copied)."""
    if not isinstance(body, Mapping) or not is_reference_submitter(body):
        return body
    out = dict(body)
    chosen = body.get("result_serializers")
    if not chosen:
        out["result_serializers"] = list(REFERENCE_RESULT_SERIALIZERS)
    elif isinstance(chosen, list | tuple):
        out["result_serializers"] = [_freight_strategy_name(s) for s in chosen]
    return out


# -- version ---------------------------------------------------------------------
def version_response(core_version: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /v2/version?service=all`` as the reference reads it: ``api``,
    ``min_sdk_version`` and ``min_ep_version`` (both required by
    ``Client.version_check``), plus whatever else the core reports."""
    out = dict(core_version)
    out.setdefault("api", "1.0.0")
    out.setdefault("min_sdk_version", _MIN_SDK_VERSION)
    out.setdefault("min_ep_version", _MIN_EP_VERSION)
    return out


# -- AMQP results ----------------------------------------------------------------
def wants_result_queue(submit_body: Mapping[str, Any]) -> bool:
    """True if a submit body asks for the task group's result queue
    (``create_queue``: the reference's ``Executor`` sends true, ``Client.run``
    false; ``create_websocket_queue`` is the older name)."""
    return bool(submit_body.get("create_queue")) or bool(
        submit_body.get("create_websocket_queue")
    )


def result_queue_name(queue_prefix: str, task_group_id: str) -> str:
    """The queue the reference's ``Executor`` consumes for ``task_group_id``:
    ``f"{queue_prefix}{task_group_id}"`` (it never declares it: the service
    must, before the submit response that names the task group)."""
    return f"{queue_prefix}{task_group_id}"


def amqp_connection_response(connection_url: str, queue_prefix: str) -> dict[str, str]:
    """``GET /v2/get_amqp_result_connection_url``: an ``amqp://`` or ``amqps://``
    URL pika's ``URLParameters`` accepts, and the queue-name prefix."""
    if not connection_url.startswith(("amqp://", "amqps://")):
        raise ValueError(
            f"connection_url must be an amqp:// or amqps:// URL, got {connection_url!r}"
        )
    return {"connection_url": connection_url, "queue_prefix": queue_prefix}


def result_timestamp(status: Mapping[str, Any]) -> int | None:
    """The AMQP ``timestamp`` property (whole seconds) for a finished task's
    message: the reference's ``Executor`` reports it as a failure's
    ``completion_t``.  None if the status has no usable completion time."""
    raw = status.get("completion_t")
    try:
        value = float(raw) if raw is not None else math.nan
    except (TypeError, ValueError):
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


def result_message_properties(status: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``pika.BasicProperties`` of a result message:
    the ``timestamp`` (``result_timestamp``), persistent delivery, and the
    content type.  The reference reads only ``timestamp`` and, if present, a
    ``high_assurance`` header (which makes it fetch the result by
    ``POST /v2/batch_status`` instead), so no headers are set."""
    props: dict[str, Any] = {
        "content_type": "application/json",
        "delivery_mode": 2,
    }
    stamp = result_timestamp(status)
    if stamp is not None:
        props["timestamp"] = stamp
    return props


def encode_amqp_result(status: Mapping[str, Any]) -> bytes:
    """A finished task's status dict (the shape of ``GET /v2/tasks/{id}`` from
    ``ServiceCore``) as the reference's result message: ``b"\\x01"`` then the
    compact JSON ``{"message_type": "result", "data": {"task_id", "data",
    "details", "error_details", "task_statuses"}}``, byte for byte what
    ``globus_compute_common.messagepack.pack(Result(...))`` makes.

    ``data`` is the serialized result (success) or the exception text
    (failure, with ``error_details`` set, which is how the reference tells them
    apart).  Raises ``ValueError`` for an unfinished task, a missing task id, or
    a result that is not text (freight's binary envelope, which the reference
    cannot read), and ``TypeError`` for details that are not JSON.
    """
    task_id = status.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("a result message needs the task's id")
    state = status.get("status")
    error_details: dict[str, str] | None
    if state == "success":
        data = status.get("result")
        if not isinstance(data, str):
            raise ValueError(
                f"task {task_id}: the reference reads text results only, got"
                f" {type(data).__name__} (a binary-envelope result)"
            )
        error_details = None
    elif state == "failed":
        data = status.get("exception")
        if not isinstance(data, str):
            data = ""
        error_details = {
            "code": REMOTE_ERROR_CODE,
            "user_message": REMOTE_ERROR_MESSAGE,
        }
    else:
        raise ValueError(f"task {task_id} is not finished (status {state!r})")
    details = status.get("details")
    body = {
        "message_type": "result",
        "data": {
            "task_id": task_id,
            "data": data,
            "details": dict(details) if details else None,
            "error_details": error_details,
            "task_statuses": None,
        },
    }
    # pydantic's model_dump_json: no spaces, non-ASCII kept as UTF-8.
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return _PROTOCOL_V1 + text.encode()
