"""Run every contender over every selected payload and collect the results.

For each (payload, contender): one checked round trip (the decoded copy must equal
the original, or the row is recorded as failed), then the encode timing, the decode
timing, and finally a separate untimed pass under ``tracemalloc`` for peak memory.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import contenders
import measure
import payloads
from contenders import Contender, Serializers
from model import PayloadResult, RowResult
from payloads import Payload

Progress = Callable[[str], None]


def log_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _shares_memory(a: Any, b: Any) -> bool:
    """Whether two buffer objects overlap in memory."""
    try:
        return bool(
            np.shares_memory(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8))
        )
    except (TypeError, ValueError):
        return False


def _zero_copy(payload: Payload, wire: Any, copy: Any) -> tuple[bool, bool] | None:
    """For buffer payloads: does the wire, and does the decoded copy, reuse the
    payload's memory rather than a copy of it?"""
    if not isinstance(payload.obj, bytes | bytearray | np.ndarray):
        return None
    on_encode = any(
        _shares_memory(b, payload.obj) for b in contenders.wire_buffers(wire)
    )
    on_decode = isinstance(
        copy, bytes | bytearray | memoryview | np.ndarray
    ) and _shares_memory(copy, payload.obj)
    return on_encode, on_decode


def measure_row(
    payload: Payload, contender: Contender, settings: measure.Settings
) -> RowResult:
    """Measure one contender on one payload (see the module docstring)."""
    row = RowResult(
        contender.key, contender.label, contender.family, contender.strategy
    )
    encode, decode, obj = contender.encode, contender.decode, payload.obj
    try:
        wire = encode(obj)
        copy = decode(wire)
        if not payload.matches(copy):
            row.error = "the decoded copy differs from the original"
            return row
    except Exception as e:
        row.error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        return row
    row.wire_bytes = contenders.wire_size(wire)
    row.zero_copy = _zero_copy(payload, wire, copy)
    del copy
    row.encode = measure.time_call(encode, obj, settings)
    row.decode = measure.time_call(decode, wire, settings)
    del wire

    def round_trip() -> tuple[Any, Any]:
        sent = encode(obj)
        return sent, decode(sent)

    limit = settings.memory_max_roundtrip_ns
    if limit is None or (row.roundtrip_ns or 0) <= limit:
        row.peak_bytes = measure.peak_memory(round_trip)
    return row


def run_payload(
    spec: payloads.PayloadSpec,
    serializers: Serializers,
    settings: measure.Settings,
    progress: Progress = log_progress,
) -> PayloadResult:
    """Build one payload and measure every contender on it."""
    payload = payloads.build(spec)
    # Everything alive now (modules, serializers, the payload) is not garbage: move
    # it out of the collector's sight so collections between samples stay cheap.
    gc.collect()
    gc.freeze()
    result = PayloadResult(
        payload.key, payload.title, payload.size, payload.is_function, payload.is_tiny
    )
    applicable, skipped = contenders.for_payload(payload, serializers)
    for contender in applicable:
        start = time.perf_counter()
        row = measure_row(payload, contender, settings)
        result.rows.append(row)
        gc.collect()
        status = f"FAILED: {row.error}" if row.error else "ok"
        progress(
            f"  {payload.key:<11} {contender.key:<22}"
            f" {time.perf_counter() - start:6.1f} s  {status}"
        )
    for contender, reason in skipped:
        result.rows.append(
            RowResult(
                contender.key,
                contender.label,
                contender.family,
                contender.strategy,
                skipped=reason,
            )
        )
    order = list(contenders.LABELS)
    result.rows.sort(key=lambda r: order.index(r.key))
    gc.unfreeze()
    return result
