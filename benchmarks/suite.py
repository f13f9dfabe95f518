"""Run every contender over every selected payload and collect the results.

For each payload: one checked round trip per contender (the decoded copy must equal
the original, or the row is recorded as failed); then every contender's encode and
decode timed together, interleaved (``measure.time_calls``); finally, per contender,
a separate untimed pass under ``tracemalloc`` for peak memory.
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
    """For buffer payloads: does the wire reuse the payload's memory, and does the
    decoded copy reuse the wire's (received) memory, rather than copies of them?"""
    if not isinstance(payload.obj, bytes | bytearray | np.ndarray):
        return None
    buffers = contenders.wire_buffers(wire)
    on_encode = any(_shares_memory(b, payload.obj) for b in buffers)
    on_decode = isinstance(copy, bytes | bytearray | memoryview | np.ndarray) and any(
        _shares_memory(copy, b) for b in buffers
    )
    return on_encode, on_decode


def check_row(payload: Payload, contender: Contender) -> tuple[RowResult, Any]:
    """One checked round trip: the row (failed if the copy differs) and the wire
    form to time decoding on (``None`` if the row failed)."""
    row = RowResult(
        contender.key, contender.label, contender.family, contender.strategy
    )
    try:
        wire = contender.encode(payload.obj)
        copy = contender.decode(wire)
        if not payload.matches(copy):
            row.error = "the decoded copy differs from the original"
            return row, None
    except Exception as e:
        row.error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        return row, None
    row.wire_bytes = contenders.wire_size(wire)
    row.zero_copy = _zero_copy(payload, wire, copy)
    return row, wire


def measure_memory(
    payload: Payload, contender: Contender, row: RowResult, settings: measure.Settings
) -> None:
    """The row's peak memory over one round trip (skipped for very slow ones)."""
    encode, decode, obj = contender.encode, contender.decode, payload.obj

    def round_trip() -> tuple[Any, Any]:
        sent = encode(obj)
        return sent, decode(sent)

    limit = settings.memory_max_roundtrip_ns
    if limit is None or (row.roundtrip_ns or 0) <= limit:
        row.peak_bytes = measure.peak_memory(round_trip)


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
    checked: list[tuple[Contender, RowResult, Any]] = []
    for contender in applicable:
        row, wire = check_row(payload, contender)
        result.rows.append(row)
        if row.error:
            progress(f"  {payload.key:<11} {contender.key:<22} FAILED: {row.error}")
        else:
            checked.append((contender, row, wire))
    # Every contender's encode and decode, timed interleaved (measure.time_calls).
    start = time.perf_counter()
    calls = [
        call
        for contender, _, wire in checked
        for call in ((contender.encode, payload.obj), (contender.decode, wire))
    ]
    timings = measure.time_calls(calls, settings)
    for i, (_, row, _) in enumerate(checked):
        row.encode, row.decode = timings[2 * i], timings[2 * i + 1]
    progress(
        f"  {payload.key:<11} timed {len(checked)} contenders interleaved"
        f" {time.perf_counter() - start:6.1f} s"
    )
    calls.clear()  # let the wire forms go before the memory passes
    checked.clear()
    for contender in applicable:
        row = next(r for r in result.rows if r.key == contender.key)
        if not row.error:
            measure_memory(payload, contender, row, settings)
            gc.collect()
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
