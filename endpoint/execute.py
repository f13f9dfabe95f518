"""What a worker does with one task: the reference's ``execute_task``, for freight.

The endpoint turns a ``TaskMessage`` into a *packet* (``encode_work``): a list of
frames an engine moves to a worker without looking inside.  The worker calls
``run_packet`` and hands back its bytes; the endpoint reads them with
``decode_outcome``.  ``run_packet`` never raises: every failure of the task (the
function's own, an argument the allowlist refuses, a result over the size limit)
becomes a failed outcome carrying a ``freight.exception/1`` record.

Packet layout::

    frame 0   msgpack header: {"v": 1, "task_id", "function_id", "kind": "text" |
              "binary", "chunk", "result_serializers", "allowlist",
              "result_size_limit", "endpoint_id", "n": number of payload frames}
    frame 1   the function in the text envelope (UTF-8)
    frame 2+  the payload: one UTF-8 frame (text envelope, ``pack_buffers`` of
              ``[args, kwargs]``, or of ``[calls]`` for a chunk) or the binary
              envelope's frames

Envelope per hop: a text payload (the reference's format) gets a text result; a
binary payload (freight's own hop) gets a binary result, unless the task names
``result_serializers``, which are the reference's text strategies.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import dill
import msgpack

from freight.serialize import ComputeSerializer, exception_to_dict
from freight.service.protocol import TaskMessage, TaskOutcome

__all__ = [
    "DEFAULT_RESULT_SIZE_LIMIT",
    "MaxResultSizeExceeded",
    "decode_outcome",
    "encode_work",
    "failed_outcome",
    "run_packet",
]

#: The reference's default result size limit: 10 MiB.
DEFAULT_RESULT_SIZE_LIMIT = 10 * 1024 * 1024

_FUNCTION_CACHE_SIZE = 256


class MaxResultSizeExceeded(Exception):
    """The task's result is larger than the endpoint's result size limit."""

    def __init__(self, result_size: int, result_size_limit: int) -> None:
        super().__init__(result_size, result_size_limit)
        self.result_size = result_size
        self.result_size_limit = result_size_limit

    def __str__(self) -> str:
        return (
            f"Task result of {self.result_size}B exceeded current limit of"
            f" {self.result_size_limit}B"
        )


def encode_work(
    task: TaskMessage,
    *,
    endpoint_id: str,
    allowlist: Sequence[str] | None = None,
    result_size_limit: int = DEFAULT_RESULT_SIZE_LIMIT,
) -> list[Any]:
    """The packet for ``task`` (see the module docstring); payload frames are
    referenced, not copied."""
    payload = task.payload
    frames: list[Any]
    if isinstance(payload, str):
        kind = "text"
        frames = [payload.encode()]
    else:
        kind = "binary"
        frames = list(payload)
    header = {
        "v": 1,
        "task_id": task.task_id,
        "function_id": task.function_id,
        "kind": kind,
        "chunk": task.chunk,
        "result_serializers": task.result_serializers or None,
        "allowlist": list(allowlist) if allowlist else None,
        "result_size_limit": result_size_limit,
        "endpoint_id": endpoint_id,
        "n": len(frames),
    }
    return [msgpack.packb(header), task.function_code.encode(), *frames]


class _Worker:
    """Per-process state: serializers by allowlist, functions by id."""

    def __init__(self) -> None:
        self.serializers: dict[tuple[str, ...] | None, ComputeSerializer] = {}
        self.functions: OrderedDict[tuple[str, tuple[str, ...] | None], Any] = (
            OrderedDict()
        )

    def serializer(self, allowlist: tuple[str, ...] | None) -> ComputeSerializer:
        found = self.serializers.get(allowlist)
        if found is None:
            found = ComputeSerializer(allowed_deserializer_types=allowlist)
            self.serializers[allowlist] = found
        return found

    def function(
        self,
        function_id: str,
        code: str,
        serde: ComputeSerializer,
        allowlist: tuple[str, ...] | None,
    ) -> Any:
        key = (function_id, allowlist)
        fn = self.functions.get(key)
        if fn is None:
            fn = serde.deserialize(code)
            self.functions[key] = fn
            if len(self.functions) > _FUNCTION_CACHE_SIZE:
                self.functions.popitem(last=False)
        else:
            self.functions.move_to_end(key)
        return fn


_WORKER = _Worker()


@functools.cache
def _details(endpoint_id: str) -> dict[str, Any]:
    """The task ``details`` of this worker: the same for every task it runs,
    so made once per endpoint (a worker is a process of its own: its pid does
    not change).  Packed, never mutated."""
    return {
        "os": platform.system(),
        "python_version": platform.python_version(),
        "dill_version": dill.__version__,
        "endpoint_id": endpoint_id,
        "hostname": socket.gethostname(),
        "worker_pid": os.getpid(),
        "executable": sys.executable,
    }


def _exception_fields(exc: BaseException) -> tuple[dict[str, Any], str]:
    record = exception_to_dict(exc)
    text = "".join(traceback.format_exception(exc))
    return record, text


def run_packet(packet: Sequence[Any]) -> bytes:
    """Run the task a packet carries; return its outcome as bytes (never raises
    for a failure of the task itself)."""
    header = msgpack.unpackb(packet[0])
    endpoint_id = str(header.get("endpoint_id", ""))
    details = _details(endpoint_id)
    allowlist = tuple(header["allowlist"]) if header.get("allowlist") else None
    try:
        serde = _WORKER.serializer(allowlist)
        code = bytes(packet[1]).decode()
        fn = _WORKER.function(header["function_id"], code, serde, allowlist)
        body = packet[2:]
        text = header["kind"] == "text"
        if text:
            # pack_buffers([args, kwargs]), or pack_buffers([calls]) for a chunk:
            # the function travels in its own frame.
            packed = serde.unpack_buffers(bytes(body[0]).decode())
            want = 1 if header.get("chunk") else 2
            if len(packed) != want:
                raise ValueError(
                    f"a text payload packs {want} buffer(s), got {len(packed)}"
                )
            decoded = [serde.deserialize(b) for b in packed]
            args_kwargs: Any = decoded[0] if header.get("chunk") else decoded
        else:
            args_kwargs = serde.loads_frames(body)
        if header.get("chunk"):
            value: Any = [_call_one(fn, call) for call in args_kwargs]
        else:
            args, kwargs = args_kwargs
            value = fn(*args, **kwargs)
        result = _encode_result(value, serde, header, text)
    except (Exception, SystemExit) as exc:  # every failure becomes an outcome
        record, tb = _exception_fields(exc)
        out = {
            "status": "failed",
            "exception": record,
            "exception_text": tb,
            "details": details,
            "completion_t": time.time(),
        }
        return msgpack.packb(out)  # type: ignore[no-any-return]
    return msgpack.packb(  # type: ignore[no-any-return]
        {
            "status": "success",
            "result": result,
            "details": details,
            "completion_t": time.time(),
        }
    )


def _call_one(fn: Any, call: Any) -> list[Any]:
    args, kwargs = call
    try:
        return [True, fn(*args, **kwargs)]
    except Exception as exc:
        return [False, exception_to_dict(exc)]


def _encode_result(
    value: Any, serde: ComputeSerializer, header: dict[str, Any], text: bool
) -> str | bytes:
    strategies = header.get("result_serializers")
    result: str | bytes
    if strategies:
        result = serde.serialize_from_list(value, strategies)
    elif text:
        result = serde.serialize(value)
    else:
        result = serde.dumps(value)
    limit = int(header.get("result_size_limit") or DEFAULT_RESULT_SIZE_LIMIT)
    size = len(result)
    if size > limit:
        raise MaxResultSizeExceeded(size, limit)
    return result


def decode_outcome(task_id: str, data: bytes) -> TaskOutcome:
    """The ``TaskOutcome`` that ``run_packet``'s bytes describe."""
    out = msgpack.unpackb(data)
    return TaskOutcome(
        task_id=task_id,
        status=out["status"],
        result=out.get("result"),
        exception=out.get("exception"),
        exception_text=out.get("exception_text"),
        completion_t=float(out.get("completion_t") or time.time()),
        details=out.get("details") or {},
    )


def failed_outcome(
    task_id: str, exc: BaseException, details: dict[str, Any] | None = None
) -> TaskOutcome:
    """A failed outcome for an error raised outside the task (a lost worker, a
    broken limit, a cancelled or refused task)."""
    record, text = _exception_fields(exc)
    return TaskOutcome(
        task_id=task_id,
        status="failed",
        exception=record,
        exception_text=text,
        completion_t=time.time(),
        details=details or {},
    )
