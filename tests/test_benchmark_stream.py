"""The benchmark suite's distinct-message stream (``benchmarks/stream.py``): what it
measures (every message once, distinct lengths, fresh serializers) and what it
concludes from numbers (its figures).  Never asserts how fast anything is (one
test checks which clock a pass reads: sleeping costs it no CPU time)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import stream  # noqa: E402

pytest.importorskip("globus_compute_sdk")


def result(key: str, rows: dict[str, tuple[float, float]], **kw: Any) -> Any:
    r = stream.StreamResult(
        key, key, 10, kw.get("buffers", False), kw.get("small", False)
    )
    for name in stream.LABELS:
        row = stream.StreamRow(name)
        if name in rows:
            row.encode_ns, row.decode_ns = [rows[name][0]], [rows[name][1]]
        else:
            row.skipped = "not here"
        r.rows.append(row)
    return r


def status(figures: list[Any], start: str) -> str:
    return next(f.status for f in figures if f.name.startswith(start))


def test_faster_than_the_reference_is_judged_on_encode_and_decode_separately():
    fast = {"freight_blob": (1, 1), "reference": (2, 2), "pickle5": (1, 1)}
    slow_decode = {"freight_blob": (1, 3), "reference": (2, 2), "pickle5": (1, 1)}
    name = "cold stream: freight vs reference"
    assert status(stream.figures([result("a", fast)]), name) == "MET"
    # Faster on encode+decode (4 < 4.0001) is not enough: decode alone is slower.
    assert status(stream.figures([result("a", slow_decode)]), name) == "NOT MET"


@pytest.mark.parametrize(("freight", "verdict"), [(1.9, "MET"), (2.1, "NOT MET")])
def test_small_messages_are_held_to_twice_pickle(freight, verdict):
    rows = {"freight_blob": (freight, 0), "pickle5": (1, 0), "reference": (9, 9)}
    figures = stream.figures([result("d", rows, small=True)])
    assert status(figures, "cold stream: small messages") == verdict


@pytest.mark.parametrize(("freight", "verdict"), [(1.25, "MET"), (1.35, "NOT MET")])
def test_buffers_are_held_to_out_of_band_pickle(freight, verdict):
    rows = {"freight_frames": (freight, 0), "pickle5_oob": (1, 0), "pickle5": (0.1, 0)}
    figures = stream.figures([result("a", rows, buffers=True)])
    assert status(figures, "cold stream: arrays") == verdict


def test_unknown_classes_are_named():
    with pytest.raises(ValueError, match="choose from"):
        stream.select(["nope"])
    assert [s.key for s in stream.select(["ints"])] == ["ints"]


@pytest.mark.parametrize("spec", stream.SPECS, ids=lambda s: s.key)
def test_every_class_has_distinct_lengths_on_every_contender(spec):
    items = spec.build(6)
    for key, make in stream.factories().items():
        if key in spec.skip:
            continue
        encode, decode = make()
        wires = [encode(item) for item in items]
        assert stream._distinct_lengths(wires), key
        assert all(
            stream._equal(a, decode(w)) for a, w in zip(items, wires, strict=True)
        )


def test_a_pass_counts_cpu_time_not_time_off_the_cpu():
    # A pass that waits (as one preempted by another process does) is not charged
    # for the wait: 3 sleeps of 50 ms take almost no CPU time.
    per_item, out = stream._pass(lambda x: time.sleep(0.05) or x, [1, 2, 3])
    assert out == [1, 2, 3]
    assert 0 <= per_item < 25e6


def test_a_run_uses_fresh_serializers_for_every_pass():
    made: list[str] = []
    real = stream.factories()

    def counting(key: str) -> Any:
        def make() -> Any:
            made.append(key)
            return real[key]()

        return make

    spec = stream.SPECS[0]
    out = stream.run_stream(
        spec, rounds=2, quick=True, make={k: counting(k) for k in real}
    )
    # One checked pass plus one fresh pair per round, for every contender.
    assert sorted(made) == sorted(list(stream.LABELS) * 3)
    for row in out.rows:
        assert row.error is None and len(row.encode_ns) == len(row.decode_ns) == 2
    text = "\n".join(stream.markdown([out], 2))
    assert "freight blob" in text and "reference" in text


def test_a_contender_that_loses_a_message_is_reported_not_timed():
    real = stream.factories()

    def lossy() -> Any:
        encode, _decode = real["freight_blob"]()
        return encode, lambda wire: None

    make = {**real, "freight_blob": lossy}
    out = stream.run_stream(stream.SPECS[0], rounds=1, quick=True, make=make)
    row = out.row("freight_blob")
    assert row is not None and "differs" in (row.error or "")
    assert row.encode_ns == []
