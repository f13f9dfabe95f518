"""Fuzzing the binary envelope's readers: ``loads``, ``loads_frames`` and
``unpack_frames_and_deserialize`` (frame-list and blob forms).

The property, for every input: the call returns normally or raises
``DeserializationError`` -- no other exception escapes, nothing hangs, and memory
stays bounded (the tracemalloc peak of one call stays under ``MEMORY_BOUND`` for
inputs of a few KB).  Inputs are random bytes, random frame lists (random counts,
random frame types including things that are not buffers), and valid messages and
bundles mutated by truncation, bit flips, byte insertion and deletion, header field
overwrites (huge lengths, changed counts, versions, flags, identifiers) and frame
list edits.

What is decoded, and why it is safe to decode it in-process:

* ``JSONData`` ("11") and the test-local ``RawBuffers`` ("T0") decoders are safe on
  any input.
* ``DillDataBase64`` ("00") runs the unpickler on garbage.  ``GuardedDillData``
  keeps its identifier and decoder but first walks the body with ``pickletools``
  and refuses bodies that are not well-formed pickles of plain values: any opcode
  that imports or calls (``GLOBAL``, ``REDUCE`` ...), and any memo index beyond
  the body's length.  The latter is a known CPython behaviour, not a freight bug:
  the C unpickler grows its memo table to twice the index a ``LONG_BINPUT`` names,
  so a 9-byte pickle can allocate gigabytes.
* Code payloads are never mutated: the only code strategy registered here,
  ``NamedCode``, looks a name up in a fixed table and executes nothing.

Examples per test: ``max_examples`` is 200 by default (the file runs in well under
30 s); set ``FREIGHT_FUZZ_EXAMPLES`` for a longer run (see BINARY_FORMAT.md).
"""

from __future__ import annotations

import os
import pickletools
import re
import struct
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pickle import PickleBuffer
from typing import Any

import numpy as np
import pytest
from buffer_strategy import RawBuffers
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from memory import traced

from freight.plugins import json_strategies
from freight.plugins.dill_strategies import DillDataBase64
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    Property,
    StrategyRegistry,
    TextStrategy,
    fastpath,
    hookimpl,
)

# Every test here runs with the C fast path and with its pure-Python twin.
pytestmark = pytest.mark.usefixtures("each_fast_path")

MAX_EXAMPLES = int(os.environ.get("FREIGHT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The most one call may allocate at its peak (inputs are a few KB).
MEMORY_BOUND = 4 * 1024 * 1024
#: A call this slow on a few KB is a hang, not a performance question.
HANG_BOUND_SECONDS = 10.0

# -- the layout, as BINARY_FORMAT.md states it -----------------------------------------

OFF_VERSION, OFF_FLAGS, OFF_IDENT = 4, 5, 8
OFF_N, OFF_B, OFF_M, OFF_TABLE = 12, 16, 24, 32
BUNDLE_HEADER = b"\x93FRB\x01\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00"  # K = 3
#: (offset, struct format) of every message header field a mutation may overwrite.
MESSAGE_FIELDS = [
    (OFF_VERSION, "B"),
    (OFF_FLAGS, "B"),
    (6, "B"),  # python major
    (7, "B"),  # python minor
    (OFF_IDENT, "H"),  # the identifier's two characters
    (10, "B"),  # the identifier's newline
    (11, "B"),  # reserved
    (OFF_N, "I"),
    (OFF_B, "Q"),
    (OFF_M, "I"),
    (28, "I"),  # reserved
]
#: (offset, struct format) of every bundle header field.
BUNDLE_FIELDS = [(4, "B"), (5, "B"), (8, "I"), (12, "I")]
INTERESTING_VALUES = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 2**31, 2**32 - 1, 2**60, 2**64 - 1]

# -- the decoders ----------------------------------------------------------------------

_IMPORTS_OR_CALLS = frozenset(
    {
        "GLOBAL",
        "STACK_GLOBAL",
        "INST",
        "OBJ",
        "REDUCE",
        "BUILD",
        "NEWOBJ",
        "NEWOBJ_EX",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "BINPERSID",
    }
)
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def refuse_unsafe_pickle(data: bytes) -> None:
    """Raise ``ValueError`` unless ``data`` is a well-formed pickle of plain values
    whose memo indices stay within its own length."""
    try:
        ops = list(pickletools.genops(data))
    except Exception as e:
        raise ValueError(f"not a well-formed pickle: {e}") from None
    for opcode, arg, pos in ops:
        if opcode.name in _IMPORTS_OR_CALLS:
            raise ValueError(f"opcode {opcode.name} at {pos} refused by the fuzz guard")
        if opcode.name in _MEMO_PUTS and not 0 <= arg <= len(data):
            raise ValueError(f"memo index {arg} at {pos} refused by the fuzz guard")


class GuardedDillData(DillDataBase64):
    """``DillDataBase64`` ("00") behind ``refuse_unsafe_pickle``."""

    name = "fuzz-dill-data"

    def decode(self, data: bytes) -> Any:
        refuse_unsafe_pickle(data)
        return super().decode(data)


def _double(x: int) -> int:
    return 2 * x


def _negate(x: int) -> int:
    return -x


class NamedCode(TextStrategy):
    """A function by name from a fixed table: decoding executes nothing."""

    identifier = "T2\n"
    for_code = True
    name = "fuzz-named-code"
    properties = Property.PORTABLE | Property.SAFE_FOR_UNTRUSTED
    TABLE: types.MappingProxyType[str, Callable[[int], int]] = types.MappingProxyType(
        {"_double": _double, "_negate": _negate}
    )

    def encode_text(self, obj: Any) -> str:
        return str(obj.__name__)

    def decode_text(self, text: str) -> Any:
        return self.TABLE[text]


@hookimpl
def _fuzz_strategies() -> list[type[Any]]:
    return [GuardedDillData, RawBuffers, NamedCode]


def _registry() -> StrategyRegistry:
    registry = StrategyRegistry(entry_point_group=None)
    registry.register_plugin(json_strategies, json_strategies.__name__)
    registry.register_plugin(
        types.SimpleNamespace(freight_strategies=_fuzz_strategies), "fuzz"
    )
    return registry


REGISTRY = _registry()
DECODER = ComputeSerializer(
    strategy_code="fuzz-named-code", strategy_data="json", registry=REGISTRY
)


@pytest.fixture(autouse=True)
def _module_serializers_on_the_fast_path_under_test(each_fast_path: str) -> None:
    # Built at import, before each_fast_path chose an implementation: assigning
    # the data strategy again rebuilds their fast path with the chosen one.
    for serde in (DECODER,):
        serde.data_serializer = serde.data_serializer
        assert type(serde._fast) is fastpath.FastPath


def _encoder(data: str) -> ComputeSerializer:
    return ComputeSerializer(
        strategy_code="fuzz-named-code", strategy_data=data, registry=REGISTRY
    )


# -- seeds: valid messages and bundles -------------------------------------------------

PLAIN_VALUES: list[Any] = [
    0,
    -7,
    2**70,
    1.25,
    "alpha",
    "",
    "\u00fcml\u00e4ut \u2603",
    b"\x00\x01\xfe\xff",
    [1, 2, [3, [4]]],
    (1, "x", None),
    {"k": [True, False, None], "n": {"m": 1.5}},
    list(range(50)),
]
BUFFER_VALUES: list[Any] = [
    [],
    [b""],
    [b"0123456789", bytearray(b"abc")],
    [np.arange(12, dtype="i4").reshape(3, 4)],
    [np.linspace(0, 1, 40), b"tail", np.arange(3, dtype="u1")],
]


def _frames(s: ComputeSerializer, obj: Any) -> list[bytes]:
    return [bytes(f) for f in s.dumps_frames(obj)]


MESSAGE_SEEDS: list[list[bytes]] = (
    [_frames(_encoder("json"), v) for v in PLAIN_VALUES if not isinstance(v, bytes)]
    + [_frames(_encoder("fuzz-dill-data"), v) for v in PLAIN_VALUES]
    + [_frames(_encoder("test-raw-buffers"), v) for v in BUFFER_VALUES]
    + [_frames(_encoder("json"), _double)]
)
DATA_SEEDS = MESSAGE_SEEDS[:-1]


def _bundle(function: list[bytes], args: list[bytes], kwargs: list[bytes]) -> list[Any]:
    return [bytes(f) for f in ComputeSerializer.pack_frames([function, args, kwargs])]


BUNDLE_SEEDS: list[list[bytes]] = [
    _bundle(MESSAGE_SEEDS[-1], args, kwargs)
    for args, kwargs in zip(DATA_SEEDS, reversed(DATA_SEEDS), strict=True)
]


def message_field_offsets(frames: list[bytes]) -> Iterator[tuple[int, int]]:
    """(frame index, byte offset) of every message header in a bundle's frames."""
    i = 1
    while i < len(frames):
        yield i, 0
        n = struct.unpack_from("<I", frames[i], OFF_N)[0]
        i += n + 2


# -- mutations -------------------------------------------------------------------------


def position(data: bytes) -> st.SearchStrategy[int]:
    """An index into ``data``, spread evenly (not biased towards the magic)."""
    return st.sampled_from(range(len(data)))


@st.composite
def field_values(draw: st.DrawFn, fmt: str) -> int:
    bits = 8 * struct.calcsize("<" + fmt)
    value = draw(st.sampled_from(INTERESTING_VALUES) | st.integers(0, 2**bits - 1))
    return int(value) & (2**bits - 1)


def overwrite(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    if offset + struct.calcsize("<" + fmt) > len(data):
        return data
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


@st.composite
def byte_mutation(
    draw: st.DrawFn, data: bytes, header_offsets: list[int], bundle_offset: int | None
) -> bytes:
    """One mutation of ``data``; ``header_offsets`` are where message headers start
    in it, ``bundle_offset`` where the bundle header is (if any)."""
    kinds = ["truncate", "flip", "insert", "delete", "replace"]
    if header_offsets:
        kinds += ["field", "field", "length-table"]
    if bundle_offset is not None:
        kinds.append("bundle-field")
    kind = draw(st.sampled_from(kinds))
    if kind == "field":
        base = draw(st.sampled_from(header_offsets))
        offset, fmt = draw(st.sampled_from(MESSAGE_FIELDS))
        return overwrite(data, base + offset, fmt, draw(field_values(fmt)))
    if kind == "length-table":
        base = draw(st.sampled_from(header_offsets))
        has_n = len(data) >= base + OFF_N + 4
        n = struct.unpack_from("<I", data, base + OFF_N)[0] if has_n else 0
        slot = draw(st.integers(0, min(max(n, 1), 64) - 1))
        return overwrite(
            data, base + OFF_TABLE + 8 * slot, "Q", draw(field_values("Q"))
        )
    if kind == "bundle-field":
        assert bundle_offset is not None
        offset, fmt = draw(st.sampled_from(BUNDLE_FIELDS))
        return overwrite(data, bundle_offset + offset, fmt, draw(field_values(fmt)))
    if not data and kind != "insert":
        return data
    if kind == "truncate":
        return data[: draw(position(data))]
    if kind == "flip":
        i = draw(position(data))
        bit = draw(st.integers(0, 7))
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
    if kind == "insert":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]
    if kind == "delete":
        i = draw(position(data))
        return data[:i] + data[i + draw(st.integers(1, 16)) :]
    i = draw(position(data))
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]


@st.composite
def mutated_bytes(
    draw: st.DrawFn,
    data: bytes,
    header_offsets: list[int],
    bundle_offset: int | None = None,
) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        data = draw(byte_mutation(data, header_offsets, bundle_offset))
    return data


def _blob_header_offsets(frames: list[bytes], bundle: bool) -> list[int]:
    if not bundle:
        return [0]
    offsets, pos = [], 0
    starts = {i for i, _ in message_field_offsets(frames)}
    for i, frame in enumerate(frames):
        if i in starts:
            offsets.append(pos)
        pos += len(frame)
    return offsets


@st.composite
def mutated_message_blobs(draw: st.DrawFn) -> bytes:
    frames = draw(st.sampled_from(DATA_SEEDS))
    return draw(mutated_bytes(b"".join(frames), [0]))


@st.composite
def mutated_bundle_blobs(draw: st.DrawFn) -> bytes:
    frames = draw(st.sampled_from(BUNDLE_SEEDS))
    offsets = _blob_header_offsets(frames, bundle=True)
    return draw(mutated_bytes(b"".join(frames), offsets, bundle_offset=0))


@st.composite
def mutated_frame_lists(draw: st.DrawFn, seeds: list[list[bytes]], bundle: bool):
    """A seed's frames after byte mutations inside frames and edits of the list."""
    frames: list[Any] = list(draw(st.sampled_from(seeds)))
    headers = (
        {i for i, _ in message_field_offsets(frames)} if bundle else {0}
    )  # frames that start with a message header
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["bytes", "bytes", "drop", "dup", "add", "swap"]))
        if kind == "bytes" and frames:
            i = draw(st.integers(0, len(frames) - 1))
            offsets = [0] if i in headers else []
            bundle_offset = 0 if bundle and i == 0 else None
            frames[i] = draw(mutated_bytes(frames[i], offsets, bundle_offset))
        elif kind == "drop" and frames:
            del frames[draw(st.integers(0, len(frames) - 1))]
        elif kind == "dup" and frames:
            i = draw(st.integers(0, len(frames) - 1))
            frames.insert(i, frames[i])
        elif kind == "add":
            frames.insert(
                draw(st.integers(0, len(frames))), draw(st.binary(max_size=64))
            )
        elif kind == "swap" and len(frames) > 1:
            i, j = draw(st.permutations(range(len(frames))))[:2]
            frames[i], frames[j] = frames[j], frames[i]
    return [draw(as_buffer_type(f)) for f in frames]


@st.composite
def as_buffer_type(draw: st.DrawFn, data: bytes) -> Any:
    """``data`` as one of the contiguous buffer types a transport might hand over."""
    kind = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "numpy"]))
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    if kind == "numpy":
        return np.frombuffer(data, dtype=np.uint8)
    return data


#: Frames of every kind a caller might pass, buffers or not.
ANY_FRAME = st.one_of(
    st.binary(max_size=128),
    st.binary(max_size=128).map(bytearray),
    st.binary(max_size=128).map(memoryview),
    st.binary(max_size=128).map(lambda b: np.frombuffer(b, dtype=np.uint8)),
    st.binary(max_size=128).map(lambda b: np.frombuffer(b[: len(b) // 8 * 8], "f8")),
    st.binary(max_size=64).map(lambda b: PickleBuffer(b)),
    st.sampled_from([f for seed in MESSAGE_SEEDS for f in seed[:1]]),  # headers
    st.text(max_size=16),
    st.integers(),
    st.none(),
    st.lists(st.binary(max_size=4), max_size=3),
    st.just(object()),
)

#: Buffers that are not contiguous or not one-dimensional bytes.
ODD_BUFFER = st.one_of(
    st.binary(min_size=2, max_size=128).map(lambda b: memoryview(b)[::2]),
    st.binary(min_size=3, max_size=128).map(lambda b: memoryview(b)[::-1]),
    st.integers(2, 64).map(lambda n: np.arange(n, dtype="u1")[::2]),
    st.integers(1, 8).map(lambda n: np.ones((n, 4), dtype="f8", order="F")),
    st.integers(1, 8).map(lambda n: np.ones((4, n), dtype="i4")[:, ::2]),
    st.just(np.array(3.5)),
    st.just(np.float64(2.0)),
    st.binary(min_size=8, max_size=64).map(
        lambda b: memoryview(b[: len(b) // 8 * 8]).cast("d")
    ),
)


# -- the property ----------------------------------------------------------------------


@dataclass
class Outcome:
    returned: bool
    peak: int
    seconds: float


def survives(call: Callable[[Any], Any], wire: Any) -> Outcome:
    """Run ``call(wire)``: it returns or raises ``DeserializationError`` (anything
    else propagates and fails the test); check time and peak memory."""
    start = time.perf_counter()
    with traced() as memory:
        try:
            call(wire)
            returned = True
        except DeserializationError as e:
            assert str(e), "a DeserializationError must say what was wrong"
            returned = False
            words = re.sub(r"\d+", "N", str(e)).split()
            reason = " ".join(words[:4])
        else:
            reason = "decoded"
    peak = memory.peak
    seconds = time.perf_counter() - start
    assert seconds < HANG_BOUND_SECONDS, f"took {seconds:.1f} s"
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    if currently_in_test_context():
        event(reason)  # see --hypothesis-show-statistics
    return Outcome(returned, peak, seconds)


BUNDLE = DECODER.unpack_frames_and_deserialize

# -- random input ----------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=4096), kind=st.sampled_from([bytes, bytearray]))
def test_loads_survives_random_bytes(data, kind):
    survives(DECODER.loads, kind(data))
    survives(DECODER.loads, memoryview(kind(data)))


@FUZZ
@given(
    header=st.sampled_from([s[0] for s in MESSAGE_SEEDS]),
    tail=st.binary(max_size=512),
)
def test_loads_survives_a_valid_header_followed_by_random_bytes(header, tail):
    survives(DECODER.loads, header + tail)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_bundles_survive_random_bytes(data):
    survives(BUNDLE, data)
    survives(BUNDLE, BUNDLE_HEADER + data)


@FUZZ
@given(frames=st.lists(ANY_FRAME, max_size=8))
def test_loads_frames_survives_random_frame_lists(frames):
    survives(DECODER.loads_frames, frames)


@FUZZ
@given(frames=st.lists(ANY_FRAME, max_size=12))
def test_bundle_frames_survive_random_frame_lists(frames):
    survives(BUNDLE, frames)
    survives(BUNDLE, [BUNDLE_HEADER, *frames])


@FUZZ
@given(
    seed=st.sampled_from(MESSAGE_SEEDS),
    odd=ODD_BUFFER,
    where=st.integers(0, 8),
)
def test_frames_that_are_not_contiguous_bytes_are_rejected_cleanly(seed, odd, where):
    frames: list[Any] = list(seed)
    frames[where % len(frames)] = odd
    survives(DECODER.loads_frames, frames)
    survives(BUNDLE, ComputeSerializer.pack_frames([frames, seed, seed]))
    survives(DECODER.loads, odd)
    survives(BUNDLE, odd)


# -- mutated valid input ---------------------------------------------------------------


@FUZZ
@given(blob=mutated_message_blobs(), kind=st.sampled_from([bytes, bytearray]))
def test_loads_survives_mutated_messages(blob, kind):
    survives(DECODER.loads, kind(blob))


@FUZZ
@given(frames=mutated_frame_lists(DATA_SEEDS, bundle=False))
def test_loads_frames_survives_mutated_messages(frames):
    survives(DECODER.loads_frames, frames)


@FUZZ
@given(blob=mutated_bundle_blobs())
def test_bundle_blobs_survive_mutation(blob):
    survives(BUNDLE, blob)


@FUZZ
@given(frames=mutated_frame_lists(BUNDLE_SEEDS, bundle=True))
def test_bundle_frames_survive_mutation(frames):
    survives(BUNDLE, frames)


@FUZZ
@given(
    seed=st.sampled_from(DATA_SEEDS),
    field=st.sampled_from(MESSAGE_FIELDS),
    data=st.data(),
)
def test_header_field_overwrites_are_survived_in_both_forms(seed, field, data):
    offset, fmt = field
    header = overwrite(seed[0], offset, fmt, data.draw(field_values(fmt)))
    frames = [header, *seed[1:]]
    survives(DECODER.loads, b"".join(frames))
    survives(DECODER.loads_frames, frames)
    survives(BUNDLE, ComputeSerializer.pack_frames([frames, seed, seed]))
    survives(BUNDLE, b"".join(ComputeSerializer.pack_frames([seed, frames, seed])))


# -- the harness itself ----------------------------------------------------------------


def test_every_seed_decodes():
    for seed in DATA_SEEDS:
        assert survives(DECODER.loads, b"".join(seed)).returned
        assert survives(DECODER.loads_frames, seed).returned
    for seed in BUNDLE_SEEDS:
        assert survives(BUNDLE, seed).returned
        assert survives(BUNDLE, b"".join(seed)).returned
    fn, _args, _kwargs = BUNDLE(BUNDLE_SEEDS[0])
    assert fn(21) == 42


def test_the_pickle_guard_refuses_memo_bombs_and_imports_but_not_plain_data():
    refuse_unsafe_pickle(GuardedDillData().encode({"a": [1, 2.5, "x", b"y"]}))
    with pytest.raises(ValueError, match="memo index"):
        refuse_unsafe_pickle(b"\x80\x04Nr\xff\xff\xff\x7f.")
    with pytest.raises(ValueError, match="GLOBAL"):
        refuse_unsafe_pickle(b"cos\nsystem\n.")
    with pytest.raises(ValueError, match="well-formed"):
        refuse_unsafe_pickle(b"\x80\x04N")
