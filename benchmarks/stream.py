"""The distinct-message stream: the cold path.

The payload rows (``suite.py``) encode and decode one object again and again, so
every timed call after the first finds whatever a serializer remembered from the
one before.  Here each class is a *stream*: ``count`` messages, none repeated, no
two of the same serialized length, encoded by a freshly made serializer and
decoded by another freshly made one, each message once.  Nothing keyed by a
message's length or content can help; what a serializer learns once per
strategy (freight's header prefix, say) is paid for inside the sample.

One sample of a contender is one pass of the whole stream: encode every message
(timed), then decode every wire form (timed), with fresh serializers made before
the clock starts; the per-message time is the pass time over ``count``.  The
contenders are sampled in turn, round after round (as ``measure.time_calls``),
with the garbage collector off inside a pass; medians are reported.

The clock is this thread's CPU time (``time.thread_time_ns``), not wall time.  A
pass lasts about a millisecond, so on a shared machine a preemption costs it a
whole scheduler slice: measured on 2 loaded cores, a pass with an involuntary
context switch read 20 us a message more on the wall clock than in CPU time
(4x for a small message), and that hit enough of the 7 passes of a contender to
move its median, so rows flipped between runs.  CPU time counts all the work the
pass does, in the process and in the kernel (page faults included), and none of
the time other processes held the CPU; on a quiet machine the two clocks agree.

Contenders: freight's blob (``dumps``/``loads``), frames (``dumps_frames``/
``loads_frames``) and compatible text paths (``DillCode``/``DillDataBase64``,
``serialize``/``deserialize``), the reference SDK's default ``ComputeSerializer``,
and raw pickle protocol 5, in-band and with the same ``buffer_callback`` /
``buffers`` freight uses (out-of-band).
"""

from __future__ import annotations

import gc
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import payloads
import units
from model import Figure

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]

#: Contender keys and labels, in table order.
LABELS: dict[str, str] = {
    "freight_blob": "freight blob",
    "freight_frames": "freight frames",
    "freight_text": "freight compat text",
    "reference": "reference SDK 4.19",
    "pickle5": "pickle 5 in-band",
    "pickle5_oob": "pickle 5 out-of-band",
}
FREIGHT = ("freight_blob", "freight_frames", "freight_text")


@dataclass(frozen=True)
class StreamSpec:
    """One class of message: how to build a stream of ``count`` of them."""

    key: str
    title: str
    build: Callable[[int], list[Any]]
    count: int
    quick_count: int
    #: The class carries out-of-band buffers (compared with pickle 5 out-of-band).
    buffers: bool = False
    #: Small messages: the 2x-pickle-5 figure applies.
    small: bool = False
    #: Contender keys left out, with the reason.
    skip: dict[str, str] = field(default_factory=dict)


# Lengths grow by 3 bytes from one message to the next, so that base64 (text
# payloads: 4 characters per 3 bytes) keeps them distinct too.


def _small_dicts(n: int) -> list[Any]:
    return [
        {"id": 7, "name": "n" * 3 * i, "score": 3.25, "tags": ["a", "b"], "ok": True}
        for i in range(n)
    ]


def _task_args(n: int) -> list[Any]:
    return [
        ((7, "a" * 3 * i, 2.5, [1, 2]), {"retries": 3, "label": "task"})
        for i in range(n)
    ]


def _int_lists(n: int) -> list[Any]:
    # About 200 ints (600 bytes pickled) each, one more int per message.
    return [list(range(1000, 1200 + i)) for i in range(n)]


def _arrays(start: int, step: int) -> Callable[[int], list[Any]]:
    def build(n: int) -> list[Any]:
        # Views of one array, so a stream of 80 MB arrays costs 80 MB.
        base = np.random.default_rng(start).random(start + step * n)
        return [base[: start + step * i] for i in range(n)]

    return build


_SLOW_REFERENCE = "over 1 s per message (base64 of 80 MB); see the payload row"

SPECS: tuple[StreamSpec, ...] = (
    StreamSpec("small_dict", "dicts of 5 keys", _small_dicts, 400, 100, small=True),
    StreamSpec(
        "task_args", "task arguments (args, kwargs)", _task_args, 400, 100, small=True
    ),
    StreamSpec("ints", "lists of ~200 ints", _int_lists, 200, 50),
    StreamSpec(
        "array_10",
        "float64 arrays of 10+ elements",
        _arrays(10, 1),
        400,
        100,
        buffers=True,
    ),
    StreamSpec(
        "array_1mb",
        "float64 arrays of ~1 MB",
        _arrays(125_000, 1),
        40,
        10,
        buffers=True,
    ),
    StreamSpec(
        "array_80mb",
        "float64 arrays of ~80 MB",
        _arrays(10_000_000, 1),
        20,
        5,
        buffers=True,
        skip={
            "reference": _SLOW_REFERENCE,
            "freight_text": "the text path copies 80 MB twice; see the payload row",
            "pickle5": "in-band pickle copies 80 MB; see the payload row",
            "freight_blob": "the blob is one 80 MB copy; see the payload row",
        },
    ),
)
STREAM_KEYS: tuple[str, ...] = tuple(spec.key for spec in SPECS)


def _pickle_oob_dumps(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    buffers: list[pickle.PickleBuffer] = []
    return pickle.dumps(obj, 5, buffer_callback=buffers.append), buffers


def _pickle_oob_loads(wire: tuple[bytes, list[pickle.PickleBuffer]]) -> Any:
    return pickle.loads(wire[0], buffers=wire[1])


def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, 5)


def factories() -> dict[str, Callable[[], Codec]]:
    """Per contender: a function making a fresh (encode, decode) pair, the two
    halves on separate serializers, as a sender and a receiver would have."""
    from globus_compute_sdk.serialize import ComputeSerializer as Reference

    from freight.serialize import ComputeSerializer

    def text() -> Any:
        return ComputeSerializer(
            strategy_code="DillCode", strategy_data="DillDataBase64"
        )

    return {
        "freight_blob": lambda: (ComputeSerializer().dumps, ComputeSerializer().loads),
        "freight_frames": lambda: (
            ComputeSerializer().dumps_frames,
            ComputeSerializer().loads_frames,
        ),
        "freight_text": lambda: (text().serialize, text().deserialize),
        "reference": lambda: (Reference().serialize, Reference().deserialize),
        "pickle5": lambda: (_pickle_dumps, pickle.loads),
        "pickle5_oob": lambda: (_pickle_oob_dumps, _pickle_oob_loads),
    }


@dataclass
class StreamRow:
    key: str
    encode_ns: list[float] = field(default_factory=list)
    decode_ns: list[float] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def encode(self) -> float | None:
        return statistics.median(self.encode_ns) if self.encode_ns else None

    @property
    def decode(self) -> float | None:
        return statistics.median(self.decode_ns) if self.decode_ns else None

    @property
    def roundtrip(self) -> float | None:
        e, d = self.encode, self.decode
        return None if e is None or d is None else e + d


@dataclass
class StreamResult:
    key: str
    title: str
    count: int
    buffers: bool
    small: bool
    rows: list[StreamRow] = field(default_factory=list)

    def row(self, key: str) -> StreamRow | None:
        return next((r for r in self.rows if r.key == key), None)

    @property
    def pickle_key(self) -> str:
        """The raw pickle row freight is held to: out-of-band for buffers."""
        return "pickle5_oob" if self.buffers else "pickle5"


def _distinct_lengths(wires: list[Any]) -> bool:
    def size(wire: Any) -> int:
        if isinstance(wire, str):
            return len(wire)
        if isinstance(wire, list | tuple):
            return sum(size(w) for w in wire)
        return memoryview(wire).nbytes

    return len({size(w) for w in wires}) == len(wires)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and bool(np.array_equal(a, b))
    return bool(a == b)


#: The pass clock: CPU time of this thread (see the module docstring).
_clock = time.thread_time_ns


def _pass(fn: Callable[[Any], Any], items: list[Any]) -> tuple[float, list[Any]]:
    """Per-item nanoseconds of ``fn`` over ``items`` (this thread's CPU time),
    and the results."""
    gc.collect()
    gc.disable()
    try:
        start = _clock()
        out = [fn(item) for item in items]
        elapsed = _clock() - start
    finally:
        gc.enable()
    return elapsed / len(items), out


def run_stream(
    spec: StreamSpec,
    rounds: int,
    quick: bool,
    make: dict[str, Callable[[], Codec]] | None = None,
) -> StreamResult:
    """Measure every contender on one stream class (see the module docstring)."""
    make = make or factories()
    count = spec.quick_count if quick else spec.count
    items = spec.build(count)
    result = StreamResult(spec.key, spec.title, count, spec.buffers, spec.small)
    live: list[StreamRow] = []
    for key in LABELS:
        row = StreamRow(key, skipped=spec.skip.get(key))
        result.rows.append(row)
        if row.skipped is not None:
            continue
        try:  # one checked pass: every message back, and lengths all distinct
            encode, decode = make[key]()
            wires = [encode(item) for item in items]
            if not _distinct_lengths(wires):
                row.error = "two messages of the same length in the stream"
            elif not all(
                _equal(a, decode(w)) for a, w in zip(items, wires, strict=True)
            ):
                row.error = "a decoded message differs from the original"
        except Exception as e:
            row.error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        if row.error is None:
            live.append(row)
    for _ in range(rounds):
        for row in live:
            encode, decode = make[row.key]()
            per_encode, wires = _pass(encode, items)
            per_decode, _ = _pass(decode, wires)
            row.encode_ns.append(per_encode)
            row.decode_ns.append(per_decode)
            del wires
    return result


def select(only: list[str] | None) -> list[StreamSpec]:
    """The stream classes named in ``only`` (all if empty); ``ValueError`` names
    the valid keys for an unknown one."""
    return payloads.select_keyed(SPECS, only, "stream class")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _roundtrip_figure(
    title: str,
    pairs: list[tuple[str, StreamRow | None, StreamRow | None]],
    limit: float,
) -> list[Figure]:
    """One figure holding each ``(label, row, peer)``'s encode+decode ratio to
    ``limit`` (none if no pair has both rows measured)."""
    cells, ok = [], True
    for label, row, peer in pairs:
        ratio = _ratio(row and row.roundtrip, peer and peer.roundtrip)
        if ratio is not None:
            cells.append(f"{label} {ratio:.2f}x")
            ok = ok and ratio <= limit
    if not cells:
        return []
    return [
        Figure(title, f"<= {limit:g}x", ", ".join(cells), "MET" if ok else "NOT MET")
    ]


def figures(results: list[StreamResult]) -> list[Figure]:
    """The issue's cold-path targets, MET / NOT MET, from the stream results."""
    out: list[Figure] = []
    if not results:
        return out
    # Faster than the reference, encode and decode separately, on every class.
    worst: list[tuple[float, str]] = []
    for r in results:
        ref = r.row("reference")
        if ref is None or ref.encode is None:
            continue
        for key in FREIGHT:
            row = r.row(key)
            if row is None or row.encode is None:
                continue
            for part in ("encode", "decode"):
                ratio = _ratio(getattr(row, part), getattr(ref, part))
                if ratio is not None:
                    worst.append((ratio, f"{r.key} {LABELS[key]} {part}"))
    if worst:
        ratio, where = max(worst)
        out.append(
            Figure(
                "cold stream: freight vs reference, encode and decode separately",
                "faster on every class (< 1x)",
                f"slowest: {where} at {ratio:.2f}x the reference's time",
                "MET" if ratio < 1 else "NOT MET",
            )
        )
    small = [
        (f"{r.key} {LABELS[key]}", r.row(key), r.row(r.pickle_key))
        for r in results
        if r.small
        for key in ("freight_blob", "freight_frames")
    ]
    out += _roundtrip_figure(
        "cold stream: small messages vs raw pickle 5, encode+decode", small, 2
    )
    arrays = [
        (r.key, r.row("freight_frames"), r.row("pickle5_oob"))
        for r in results
        if r.buffers
    ]
    out += _roundtrip_figure(
        "cold stream: arrays (out-of-band buffers), freight frames vs pickle 5"
        " with the same buffer_callback/buffers, encode+decode",
        arrays,
        1.3,
    )
    return out


def markdown(results: list[StreamResult], rounds: int) -> list[str]:
    """The report's section for the stream."""
    if not results:
        return []
    lines = [
        "## Cold: the distinct-message stream (median per message)",
        "",
        "Each class is a stream of messages, none repeated, no two of the same"
        " length, encoded by a fresh serializer and decoded by another, each"
        f" message once; {rounds} passes per contender, interleaved. Ratios are"
        " freight / peer on that row's time (> 1: freight slower); the pickle"
        " column is pickle 5 out-of-band for classes with buffers, in-band"
        " otherwise.",
        "",
        "| class | messages | contender | encode | decode | encode+decode |"
        " vs pickle 5 | vs reference (enc / dec) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ref, peer = r.row("reference"), r.row(r.pickle_key)
        for row in r.rows:
            cells = [f"`{r.key}`", str(r.count), row.label]
            if row.skipped or row.error:
                what = f"skipped: {row.skipped}" if row.skipped else row.error
                lines.append("| " + " | ".join([*cells, what, "", "", "", ""]) + " |")
                continue
            vs_ref = "-"
            if ref is not None and ref.encode is not None and row.key != "reference":
                e = _ratio(row.encode, ref.encode)
                d = _ratio(row.decode, ref.decode)
                vs_ref = f"{units.ratio(e)} / {units.ratio(d)}"
            cells += [
                units.duration(row.encode),
                units.duration(row.decode),
                units.duration(row.roundtrip),
                units.ratio(_ratio(row.roundtrip, peer and peer.roundtrip)),
                vs_ref,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def to_json(results: list[StreamResult]) -> dict[str, Any]:
    """The stream results, machine readable (every sample kept)."""
    return {
        r.key: {
            "title": r.title,
            "messages": r.count,
            "buffers": r.buffers,
            "contenders": {
                row.key: {
                    "label": row.label,
                    "skipped": row.skipped,
                    "error": row.error,
                    "encode_ns": row.encode,
                    "decode_ns": row.decode,
                    "roundtrip_ns": row.roundtrip,
                    "encode_samples_ns": row.encode_ns,
                    "decode_samples_ns": row.decode_ns,
                }
                for row in r.rows
            },
        }
        for r in results
    }
