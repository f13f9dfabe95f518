"""Frame codecs on the suite's payloads: compression ratio, and encode and decode
time against the uncompressed binary path, per codec.

    python benchmarks/compression.py            # every payload, every codec
    python benchmarks/compression.py --quick    # fewer samples
    python benchmarks/compression.py --only dicts_10k --only str_1mb

Each payload goes through ``ComputeSerializer(compression=...)`` for each codec, and
through ``ComputeSerializer()`` (no codec) as the baseline, in the frame-list form
(``dumps_frames`` / ``loads_frames``; the blob form adds one join on each side).
Timings are interleaved medians (``measure.time_calls``), so a noisy spell of the
shared machine lands on every row alike.  *wire* is the bytes of all frames;
*ratio* is the uncompressed wire over the compressed one; *enc* and *dec* are the
codec's time over the uncompressed path's (1.00 = no cost).  Beside the suite's
payloads, ``prices_8mb`` (a million float64 prices with two decimals) shows an array
that does compress; the suite's random bytes and array show the cost of the sample
test on data that does not (the frames are sent as they are).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import measure  # noqa: E402
import payloads  # noqa: E402
from freight.serialize import ComputeSerializer  # noqa: E402
from freight.serialize.codecs import codec_registry  # noqa: E402

CODECS = ("lz4", "zstd")


def _prices() -> Any:
    rng = np.random.default_rng(0)
    return np.round(rng.uniform(10, 500, 1_000_000), 2)


EXTRA = payloads.PayloadSpec("prices_8mb", "1M float64 prices, 2 decimals", _prices)


def wire_size(frames: list[Any]) -> int:
    return sum(memoryview(f).nbytes for f in frames)


def bench(spec: payloads.PayloadSpec, codecs: list[str], settings: Any) -> list[str]:
    payload = payloads.build(spec)
    obj = payload.obj
    serializers = {"none": ComputeSerializer()}
    for codec in codecs:
        serializers[codec] = ComputeSerializer(compression=codec)
    frames = {name: s.dumps_frames(obj) for name, s in serializers.items()}
    for name, s in serializers.items():
        if not payload.matches(s.loads_frames(frames[name])):
            raise SystemExit(f"{spec.key}: {name} did not round-trip")
    encode = measure.time_calls(
        [(s.dumps_frames, obj) for s in serializers.values()], settings
    )
    decode = measure.time_calls(
        [(s.loads_frames, frames[name]) for name, s in serializers.items()], settings
    )
    base = wire_size(frames["none"])
    rows = []
    for i, name in enumerate(serializers):
        size = wire_size(frames[name])
        rows.append(
            f"| {spec.key} | {name} | {size:,} | {base / size:.2f} |"
            f" {encode[i].median_ns / 1e3:,.1f} | {decode[i].median_ns / 1e3:,.1f} |"
            f" {encode[i].median_ns / encode[0].median_ns:.2f} |"
            f" {decode[i].median_ns / decode[0].median_ns:.2f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument(
        "--only", action="append", help="payload key (repeatable; prices_8mb too)"
    )
    parser.add_argument(
        "--codec", action="append", choices=CODECS, help="codec (repeatable)"
    )
    args = parser.parse_args(argv)
    available = {c.name for c in codec_registry()}
    codecs = [c for c in (args.codec or CODECS) if c in available]
    missing = sorted(set(args.codec or CODECS) - available)
    if missing:
        print(
            f"not installed, skipped: {', '.join(missing)} (pip install"
            " 'freight[compress]')",
            file=sys.stderr,
        )
    wanted = args.only or [*payloads.PAYLOAD_KEYS, EXTRA.key]
    suite_keys = [k for k in wanted if k != EXTRA.key]
    specs = payloads.select(suite_keys) if suite_keys else []
    if EXTRA.key in wanted:
        specs.append(EXTRA)
    settings = (
        measure.Settings(repeats=3, min_sample_ns=1_000_000, budget_ns=500_000_000)
        if args.quick
        else measure.Settings()
    )
    print(
        "| payload | codec | wire bytes | ratio | encode µs | decode µs |"
        " enc vs none | dec vs none |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for spec in specs:
        for row in bench(spec, codecs, settings):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
