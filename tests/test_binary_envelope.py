"""The binary envelope, checked against ``BINARY_FORMAT.md``.

Round trips through the single-blob form (``dumps`` / ``loads``) and the frame-list
form (``dumps_frames`` / ``loads_frames``); out-of-band buffers that are neither
copied on encode nor on decode; header fields where the document puts them; bundles;
the allowlist; every length check; and the function-payload cache.

Every serializer here uses a private registry holding freight's json, dill, source
and combo plugins plus the test-local strategies below, so the tests do not depend
on which plugins the installed distribution registers by default.  The expected
header layout is written out here from the document, not imported from
``freight.serialize.binary``.
"""

from __future__ import annotations

import base64
import functools
import gc
import json
import pickle
import struct
import sys
import types
import weakref
from collections.abc import Callable
from pickle import PickleBuffer
from typing import Any, ClassVar

import dill
import numpy as np
import pytest
import samples
from buffer_strategy import RawBuffers
from memory import traced

from freight.plugins import (
    combo_strategies,
    dill_strategies,
    json_strategies,
    source_strategies,
)
from freight.serialize import (
    BytesStrategy,
    ComputeSerializer,
    DeserializationError,
    StrategyRegistry,
    hookimpl,
)

# Every test here runs with the C fast path and with its pure-Python twin.
pytestmark = pytest.mark.usefixtures("each_fast_path")

# -- the layout, as BINARY_FORMAT.md states it -----------------------------------------

MESSAGE_MAGIC = b"\x93FRT"
BUNDLE_MAGIC = b"\x93FRB"
VERSION = 1
FLAG_TEXT_BODY = 0x01
#: magic, version, flags, python major, python minor, identifier, reserved,
#: N (buffer count), B (body length), M (metadata length), reserved.
HEADER = struct.Struct("<4sBBBB3s1sIQI4s")
HEADER_SIZE = 32
#: magic, version, reserved, K (message count), reserved.
BUNDLE_HEADER = struct.Struct("<4sB3sI4s")
BUNDLE_HEADER_SIZE = 16

# Byte offsets of the message header fields.
OFF_VERSION, OFF_FLAGS, OFF_PY_MAJOR, OFF_PY_MINOR, OFF_IDENT = 4, 5, 6, 7, 8
OFF_N, OFF_B, OFF_M, OFF_TABLE = 12, 16, 24, 32
#: Reserved bytes: zero when written, rejected when not zero.
MESSAGE_RESERVED = (11, 28, 29, 30, 31)
BUNDLE_RESERVED = (5, 6, 7, 12, 13, 14, 15)


def read_header(frame: bytes) -> dict[str, Any]:
    """The fields of a message header frame, by the document's layout."""
    (magic, version, flags, major, minor, ident, pad, n, b, m, pad2) = (
        HEADER.unpack_from(frame, 0)
    )
    table = list(struct.unpack_from(f"<{n}Q", frame, OFF_TABLE))
    return {
        "magic": magic,
        "version": version,
        "flags": flags,
        "python": (major, minor),
        "identifier": ident,
        "reserved": pad + pad2,
        "N": n,
        "B": b,
        "M": m,
        "lengths": table,
        "metadata": bytes(frame[OFF_TABLE + 8 * n :]),
    }


def with_metadata(header: bytes, metadata: bytes) -> bytes:
    """``header`` with its metadata section replaced by ``metadata``."""
    n = struct.unpack_from("<I", header, OFF_N)[0]
    fixed_and_table = patched(header[: OFF_TABLE + 8 * n], OFF_M, "I", len(metadata))
    return fixed_and_table + metadata


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``data`` with ``value`` packed little-endian as ``fmt`` at ``offset``."""
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


# -- test-local strategies -------------------------------------------------------------


class SpyData(BytesStrategy):
    """A data strategy that records every decode-side call it receives."""

    identifier = "T1\n"
    for_code = False
    name = "test-spy-data"
    calls: ClassVar[list[str]] = []

    def encode(self, obj: Any) -> bytes:
        return repr(obj).encode()

    def decode(self, data: bytes) -> Any:
        type(self).calls.append("decode")
        return data.decode()

    def deserialize(self, payload: str) -> Any:
        type(self).calls.append("deserialize")
        return super().deserialize(payload)

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        type(self).calls.append("from_frames")
        return super().from_frames(body, buffers)


@hookimpl
def _local_strategies() -> list[type[BytesStrategy]]:
    return [RawBuffers, SpyData]


def make_registry() -> StrategyRegistry:
    registry = StrategyRegistry(entry_point_group=None)
    for module in (json_strategies, dill_strategies, source_strategies):
        registry.register_plugin(module, module.__name__)
    registry.register_plugin(combo_strategies, combo_strategies.__name__)
    registry.register_plugin(
        types.SimpleNamespace(freight_strategies=_local_strategies), "test-local"
    )
    return registry


@pytest.fixture
def registry() -> StrategyRegistry:
    SpyData.calls.clear()
    return make_registry()


def serializer(
    registry: StrategyRegistry,
    data: str = "json",
    code: str = "dill-code",
    **kwargs: Any,
) -> ComputeSerializer:
    """Both strategies named explicitly: freight's defaults may change."""
    return ComputeSerializer(
        strategy_code=code, strategy_data=data, registry=registry, **kwargs
    )


def roundtrip_both_forms(s: ComputeSerializer, obj: Any) -> tuple[Any, Any]:
    blob = s.dumps(obj)
    frames = s.dumps_frames(obj)
    assert blob == b"".join(bytes(f) for f in frames)
    return s.loads(blob), s.loads_frames(frames)


# -- round trips -----------------------------------------------------------------------

DATA_VALUES = [
    None,
    0,
    -(2**70),
    1.5,
    "",
    "snow \u2603 and \U0001f600",
    [1, [2, [3]]],
    {"a": 1, "b": [True, False, None], "c": {"d": "e"}},
]


@pytest.mark.parametrize("value", DATA_VALUES, ids=repr)
@pytest.mark.parametrize("strategy", ["json", "dill-data"])
def test_data_round_trips_through_blob_and_frames(registry, strategy, value):
    s = serializer(registry, data=strategy)
    assert roundtrip_both_forms(s, value) == (value, value)


@pytest.mark.parametrize(
    "value",
    [(1, "two", 3.0), {1: b"bytes", (2, 3): frozenset({4})}, bytearray(b"\x00\xff")],
    ids=["tuple", "odd-keys", "bytearray"],
)
def test_dill_data_round_trips_python_only_values(registry, value):
    s = serializer(registry, data="dill-data")
    assert roundtrip_both_forms(s, value) == (value, value)


BY_VALUE_SQUARE = samples.by_value("def square(x):\n    return x * x\n", "square")


@pytest.mark.parametrize(
    "strategy", ["dill-code", "source-text-inspect", "source-dill", "all-code"]
)
@pytest.mark.parametrize(
    ("fn", "args", "kwargs", "expected"),
    [
        (samples.add, (2, 3), {}, 5),
        (samples.keyword_only, (2,), {"scale": 5, "offset": 1}, 11),
        (BY_VALUE_SQUARE, (7,), {}, 49),
    ],
    ids=["add", "keyword-only", "by-value"],
)
def test_code_round_trips_through_blob_and_frames(
    registry, strategy, fn, args, kwargs, expected
):
    s = serializer(registry, code=strategy)
    from_blob, from_frames = roundtrip_both_forms(s, fn)
    assert from_blob(*args, **kwargs) == expected
    assert from_frames(*args, **kwargs) == expected


def test_dill_code_round_trips_a_closure(registry):
    s = serializer(registry, code="dill-code")
    from_blob, from_frames = roundtrip_both_forms(s, samples.make_closure(3))
    assert from_blob(5) == from_frames(5) == 15


def test_buffer_strategy_round_trips_through_blob_and_frames(registry):
    s = serializer(registry, data="test-raw-buffers")
    arr = np.arange(1000, dtype="f8").reshape(10, 100)
    ints = np.arange(7, dtype="i4")
    ba = bytearray(b"a bytearray \x00\xff")
    for got in roundtrip_both_forms(s, [arr, ba, b"bytes", ints, b""]):
        np.testing.assert_array_equal(got[0], arr)
        assert got[0].dtype == arr.dtype
        assert bytes(got[1]) == ba
        assert bytes(got[2]) == b"bytes"
        np.testing.assert_array_equal(got[3], ints)
        assert bytes(got[4]) == b""


# -- zero copy -------------------------------------------------------------------------


def test_encode_hands_the_objects_own_memory_to_the_frames(registry):
    s = serializer(registry, data="test-raw-buffers")
    arr = np.arange(10_000, dtype="f8")
    ba = bytearray(b"x" * 1000)
    frames = s.dumps_frames([arr, ba])
    assert len(frames) == 4
    assert np.shares_memory(np.asarray(frames[2]), arr)
    assert isinstance(frames[3], memoryview)
    assert frames[3].obj is ba
    ba[0] = ord("y")  # the frame is the bytearray's memory, not a copy of it
    assert bytes(frames[3][:1]) == b"y"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_loads_returns_views_of_the_blob(registry, kind):
    s = serializer(registry, data="test-raw-buffers")
    arr = np.arange(1000, dtype="f8")
    blob = kind(s.dumps([arr, b"tail bytes"]))
    got_arr, got_view = s.loads(blob)
    blob_bytes = np.frombuffer(blob, dtype=np.uint8)
    assert np.shares_memory(got_arr, blob_bytes)
    assert np.shares_memory(np.asarray(got_view), blob_bytes)
    np.testing.assert_array_equal(got_arr, arr)
    # The views are writable exactly when the blob is.
    assert got_arr.flags.writeable == (kind is bytearray)


def test_loads_frames_returns_views_of_the_received_frames(registry):
    s = serializer(registry, data="test-raw-buffers")
    arr = np.arange(1000, dtype="f8")
    received = [bytearray(f) for f in s.dumps_frames([arr, b"tail bytes"])]
    got_arr, got_view = s.loads_frames(received)
    assert np.shares_memory(got_arr, np.frombuffer(received[2], dtype=np.uint8))
    assert got_view.obj is received[3]
    received[3][0:4] = b"TAIL"  # a view, so it sees the change
    assert bytes(got_view) == b"TAIL bytes"


# -- header fields ---------------------------------------------------------------------

PYTHON = (sys.version_info.major, sys.version_info.minor)


FULL_PYTHON = ".".join(map(str, sys.version_info[:3]))


def producer_metadata(fields: dict[str, Any]) -> dict[str, str]:
    """The metadata section as the document describes it: a UTF-8 JSON object of
    string values naming the producer's Python and libraries."""
    assert fields["M"] == len(fields["metadata"])
    meta = json.loads(fields["metadata"].decode("utf-8"))
    assert isinstance(meta, dict)
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["python"] == FULL_PYTHON
    return meta


def test_header_of_a_text_native_message(registry):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames({"a": 1})
    fields = read_header(header)
    meta = fields.pop("metadata")
    assert fields == {
        "magic": MESSAGE_MAGIC,
        "version": VERSION,
        "flags": FLAG_TEXT_BODY,
        "python": PYTHON,
        "identifier": b"11\n",
        "reserved": b"\x00" * 5,
        "N": 0,
        "B": 8,
        "M": len(meta),
        "lengths": [],
    }
    assert len(header) == HEADER_SIZE + len(meta)
    assert producer_metadata({**fields, "metadata": meta}) == {"python": FULL_PYTHON}
    assert bytes(body) == b'{"a": 1}'
    # The worked example in BINARY_FORMAT.md, but for this Python.
    example = (
        "93465254 01 01 {major:02x} {minor:02x} 31310a 00 00000000"
        " 0800000000000000 {m:02x}000000 00000000 {meta} 7b2261223a20317d"
    )
    expected = example.format(
        major=PYTHON[0], minor=PYTHON[1], m=len(meta), meta=meta.hex()
    )
    assert s.dumps({"a": 1}).hex() == expected.replace(" ", "")
    assert meta == b'{"python":"%s"}' % FULL_PYTHON.encode()


def test_header_of_a_binary_native_message(registry):
    s = serializer(registry, data="dill-data")
    header, body = s.dumps_frames([1, 2])
    fields = read_header(header)
    assert fields["flags"] == 0
    assert fields["identifier"] == b"00\n"
    assert (fields["N"], fields["B"]) == (0, len(body))
    assert len(header) == HEADER_SIZE + fields["M"]
    producer_metadata(fields)
    assert bytes(body) == pickle.dumps([1, 2], 5)  # what dill.loads reads as dill's
    assert dill.loads(bytes(body)) == [1, 2]


def test_header_of_a_message_with_out_of_band_buffers(registry):
    s = serializer(registry, data="test-raw-buffers")
    arr = np.arange(1000, dtype="f8")
    frames = s.dumps_frames([arr, b"hello"])
    header, body, buf0, buf1 = (bytes(f) for f in frames)
    fields = read_header(header)
    assert len(header) == HEADER_SIZE + 2 * 8 + fields["M"]
    assert fields["identifier"] == b"T0\n"
    assert fields["flags"] == 0
    assert fields["reserved"] == b"\x00" * 5
    assert (fields["N"], fields["B"]) == (2, len(body))
    assert fields["lengths"] == [8000, 5]
    producer_metadata(fields)
    assert buf0 == arr.tobytes()
    assert buf1 == b"hello"
    assert s.dumps([arr, b"hello"]) == header + body + buf0 + buf1


@pytest.mark.parametrize(
    ("code", "flags"),
    [("dill-code", 0), ("source-text-inspect", FLAG_TEXT_BODY), ("all-code", 1)],
)
def test_text_flag_follows_the_strategys_body_kind(registry, code, flags):
    s = serializer(registry, code=code)
    assert read_header(s.dumps_frames(samples.add)[0])["flags"] == flags


NON_ASCII_SOURCE = 'def label(x):\n    return f"\u00e9t\u00e9 \u2603 {x}"\n'
NON_ASCII_FN = samples.by_value(NON_ASCII_SOURCE, "label")


def test_text_native_body_is_the_utf8_of_the_text_body(registry):
    s = serializer(registry, code="source-text-inspect")
    header, body = s.dumps_frames(NON_ASCII_FN)
    text_payload = s.serialize(NON_ASCII_FN)
    assert bytes(body) == text_payload[3:].encode("utf-8")
    assert bytes(body).decode("utf-8") == "label:" + NON_ASCII_SOURCE
    assert read_header(header)["B"] == len(NON_ASCII_SOURCE.encode()) + 6
    assert s.loads(s.dumps(NON_ASCII_FN))(1) == "\u00e9t\u00e9 \u2603 1"


def test_binary_native_body_is_what_the_text_envelope_base64s(registry):
    s = serializer(registry, data="dill-data")
    value = {"k": [1, 2.5, "three"]}
    body = bytes(s.dumps_frames(value)[1])
    assert body == base64.b64decode(s.serialize(value)[3:])


# -- bundles ---------------------------------------------------------------------------


def three_messages(s: ComputeSerializer) -> list[list[Any]]:
    return [
        s.dumps_frames(samples.add),
        s.dumps_frames([2, 3]),
        s.dumps_frames({}),
    ]


def test_bundle_layout_and_frames_are_not_copied(registry):
    s = serializer(registry, data="json")
    messages = three_messages(s)
    bundle = s.pack_frames(messages)
    magic, version, reserved, count, reserved2 = BUNDLE_HEADER.unpack(bundle[0])
    assert (magic, version, count) == (BUNDLE_MAGIC, VERSION, 3)
    assert reserved + reserved2 == b"\x00" * 7
    assert len(bundle[0]) == BUNDLE_HEADER_SIZE
    flat = [frame for message in messages for frame in message]
    assert len(bundle) == 1 + len(flat)
    assert all(a is b for a, b in zip(bundle[1:], flat, strict=True))


@pytest.mark.parametrize("form", ["frames", "blob"])
def test_bundle_round_trips(registry, form):
    s = serializer(registry, data="json")
    bundle = s.pack_frames(three_messages(s))
    wire = bundle if form == "frames" else b"".join(bundle)
    fn, args, kwargs = s.unpack_frames_and_deserialize(wire)
    assert fn(*args, **kwargs) == 5


@pytest.mark.parametrize("form", ["frames", "blob"])
def test_bundle_with_out_of_band_buffers_decodes_to_views(registry, form):
    code = serializer(registry, data="json")
    raw = serializer(registry, data="test-raw-buffers")
    arr = np.arange(100, dtype="i8")
    bundle = code.pack_frames(
        [code.dumps_frames(samples.add), raw.dumps_frames([arr]), code.dumps_frames({})]
    )
    wire: Any = [bytearray(f) for f in bundle] if form == "frames" else b"".join(bundle)
    _fn, (got,), _kwargs = raw.unpack_frames_and_deserialize(wire)
    np.testing.assert_array_equal(got, arr)
    source = wire[-3] if form == "frames" else wire  # the args message's buffer
    assert np.shares_memory(got, np.frombuffer(source, dtype=np.uint8))


@pytest.mark.parametrize("count", [0, 1, 2, 4])
@pytest.mark.parametrize("form", ["frames", "blob"])
def test_bundle_of_other_than_three_messages_is_rejected(registry, count, form):
    s = serializer(registry, data="json")
    bundle = s.pack_frames([s.dumps_frames(i) for i in range(count)])
    wire = bundle if form == "frames" else b"".join(bundle)
    with pytest.raises(DeserializationError, match=f"expects 3 messages.*got {count}"):
        s.unpack_frames_and_deserialize(wire)


@pytest.mark.parametrize("form", ["frames", "blob"])
def test_bundle_with_unknown_version_is_rejected(registry, form):
    s = serializer(registry, data="json")
    bundle = s.pack_frames(three_messages(s))
    bundle[0] = patched(bundle[0], 4, "B", 2)
    wire = bundle if form == "frames" else b"".join(bundle)
    with pytest.raises(
        DeserializationError, match="unsupported bundle format version 2"
    ):
        s.unpack_frames_and_deserialize(wire)


def test_truncated_and_overlong_bundles_are_rejected(registry):
    s = serializer(registry, data="json")
    bundle = s.pack_frames(three_messages(s))
    with pytest.raises(DeserializationError, match="truncated bundle"):
        s.unpack_frames_and_deserialize(bundle[:-2])
    with pytest.raises(DeserializationError, match="truncated bundle"):
        s.unpack_frames_and_deserialize(bundle[:-1])
    with pytest.raises(DeserializationError, match="1 unexpected frames"):
        s.unpack_frames_and_deserialize([*bundle, b""])
    blob = b"".join(bundle)
    with pytest.raises(DeserializationError, match="truncated"):
        s.unpack_frames_and_deserialize(blob[:-1])
    with pytest.raises(DeserializationError, match="1 unexpected bytes"):
        s.unpack_frames_and_deserialize(blob + b"\x00")
    with pytest.raises(DeserializationError, match="bundle header frame is 17 bytes"):
        s.unpack_frames_and_deserialize([bundle[0] + b"\x00", *bundle[1:]])


@pytest.mark.parametrize("form", ["frames", "blob"])
def test_a_single_message_is_not_a_bundle(registry, form):
    s = serializer(registry, data="json")
    frames = s.dumps_frames(1)
    wire = frames if form == "frames" else b"".join(frames)
    with pytest.raises(DeserializationError, match="found a single message"):
        s.unpack_frames_and_deserialize(wire)


def test_a_bundle_is_not_a_message(registry):
    s = serializer(registry, data="json")
    blob = b"".join(s.pack_frames(three_messages(s)))
    with pytest.raises(DeserializationError, match="found a bundle header"):
        s.loads(blob)


@pytest.mark.parametrize("form", ["frames", "blob"])
def test_bundle_reserved_bytes_must_be_zero(registry, form):
    s = serializer(registry, data="json")
    bundle = s.pack_frames(three_messages(s))
    accepted = []
    for offset in BUNDLE_RESERVED:
        frames = [patched(bundle[0], offset, "B", 1), *bundle[1:]]
        try:
            s.unpack_frames_and_deserialize(
                frames if form == "frames" else b"".join(frames)
            )
        except DeserializationError as e:
            assert "reserved" in str(e)
        else:
            accepted.append(offset)
    assert accepted == [], "non-zero reserved bytes accepted at these offsets"


# -- the allowlist ---------------------------------------------------------------------


def allowlisted(registry: StrategyRegistry) -> ComputeSerializer:
    return serializer(
        registry, allowed_deserializer_types=["json", "dill-code", "dill-data"]
    )


def test_allowlist_is_checked_before_a_binary_message_is_decoded(registry):
    spy_frames = serializer(registry, data="test-spy-data").dumps_frames([1, 2])
    s = allowlisted(registry)
    with pytest.raises(DeserializationError, match="SpyData disabled"):
        s.loads(b"".join(spy_frames))
    with pytest.raises(DeserializationError, match="SpyData disabled"):
        s.loads_frames(spy_frames)
    assert SpyData.calls == []
    # And the spy does decode when nothing forbids it.
    assert serializer(registry).loads_frames(spy_frames) == "[1, 2]"
    assert SpyData.calls == ["from_frames", "decode"]


@pytest.mark.parametrize("form", ["frames", "blob"])
def test_allowlist_is_checked_for_each_message_of_a_bundle(registry, form):
    spy = serializer(registry, data="test-spy-data")
    s = allowlisted(registry)
    bundle = s.pack_frames(
        [s.dumps_frames(samples.add), s.dumps_frames([1]), spy.dumps_frames({})]
    )
    wire = bundle if form == "frames" else b"".join(bundle)
    with pytest.raises(DeserializationError, match="SpyData disabled"):
        s.unpack_frames_and_deserialize(wire)
    assert SpyData.calls == []


def test_allowed_binary_messages_decode_under_an_allowlist(registry):
    s = allowlisted(registry)
    assert s.loads(s.dumps({"x": 1})) == {"x": 1}
    assert s.loads_frames(s.dumps_frames(samples.add))(1, 2) == 3


def test_unknown_identifier_is_rejected_naming_it(registry):
    blob = bytearray(serializer(registry).dumps(1))
    blob[OFF_IDENT : OFF_IDENT + 3] = b"zz\n"
    with pytest.raises(DeserializationError, match="unknown strategy identifier 'zz"):
        serializer(registry).loads(bytes(blob))


# -- what loads and loads_frames accept ------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_loads_accepts_bytes_bytearray_and_memoryview(registry, kind):
    s = serializer(registry, data="json")
    assert s.loads(kind(s.dumps({"a": [1, 2]}))) == {"a": [1, 2]}


def test_loads_accepts_a_slice_of_a_larger_buffer(registry):
    s = serializer(registry, data="json")
    blob = s.dumps([1, 2, 3])
    padded = b"\xff" * 5 + blob + b"\xff" * 5
    assert s.loads(memoryview(padded)[5:-5]) == [1, 2, 3]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "utf8-bytes"])
def test_loads_of_a_text_payload_hints_deserialize(registry, as_bytes):
    s = serializer(registry, data="json")
    payload: Any = s.serialize({"a": 1})
    if as_bytes:
        payload = payload.encode()
    with pytest.raises(DeserializationError, match=r"deserialize\(\)"):
        s.loads(payload)


@pytest.mark.parametrize(
    "kind", [bytes, bytearray, memoryview, PickleBuffer, lambda b: b.decode("latin1")]
)
def test_loads_frames_given_a_blob_says_to_use_loads(registry, kind):
    s = serializer(registry, data="json")
    with pytest.raises(DeserializationError, match=r"a single blob goes to loads\(\)"):
        s.loads_frames(kind(s.dumps(1)))


def test_loads_rejects_a_non_contiguous_buffer(registry):
    s = serializer(registry, data="json")
    doubled = bytes(b for byte in s.dumps(1) for b in (byte, 0))
    with pytest.raises(DeserializationError, match="contiguous"):
        s.loads(memoryview(doubled)[::2])
    with pytest.raises(DeserializationError, match="contiguous"):
        s.loads_frames([memoryview(doubled)[::2][:32], b"1"])


@pytest.mark.parametrize("frame", [None, 42, "text", [b"x"]], ids=repr)
def test_a_frame_that_is_not_a_buffer_is_rejected(registry, frame):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames(1)
    with pytest.raises(DeserializationError, match="must support the buffer protocol"):
        s.loads_frames([header, frame])
    with pytest.raises(DeserializationError, match="must support the buffer protocol"):
        s.loads_frames([frame, body])


# -- version, flags, identifier, reserved bytes ----------------------------------------


def both_forms(frames: list[Any]) -> list[tuple[str, Any]]:
    return [("blob", b"".join(bytes(f) for f in frames)), ("frames", frames)]


def decode(s: ComputeSerializer, form: str, wire: Any) -> Any:
    return s.loads(wire) if form == "blob" else s.loads_frames(wire)


@pytest.mark.parametrize("version", [0, 2, 255])
@pytest.mark.parametrize("form", ["blob", "frames"])
def test_unknown_version_is_rejected_naming_it(registry, version, form):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames(1)
    frames = [patched(header, OFF_VERSION, "B", version), body]
    wire = dict(both_forms(frames))[form]
    with pytest.raises(DeserializationError, match=f"format version {version}\\b"):
        decode(s, form, wire)


@pytest.mark.parametrize("flags", [0x04, 0x06, 0x80, 0xFF])  # 0x02: codecs
@pytest.mark.parametrize("form", ["blob", "frames"])
def test_unknown_flags_are_rejected_naming_them(registry, flags, form):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames(1)
    frames = [patched(header, OFF_FLAGS, "B", flags), body]
    wire = dict(both_forms(frames))[form]
    with pytest.raises(DeserializationError, match=f"unknown flags {flags:#04x}"):
        decode(s, form, wire)


@pytest.mark.parametrize("ident", [b"1\n1", b"111", b"\n11", b"\xff1\n", b"1\xe9\n"])
def test_malformed_identifier_is_rejected(registry, ident):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames(1)
    header = header[:OFF_IDENT] + ident + header[OFF_IDENT + 3 :]
    for form, wire in both_forms([header, body]):
        with pytest.raises(DeserializationError, match="malformed identifier"):
            decode(s, form, wire)


def test_python_version_bytes_are_informative_only(registry):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames([1])
    header = patched(patched(header, OFF_PY_MAJOR, "B", 9), OFF_PY_MINOR, "B", 99)
    assert s.loads(header + body) == [1]
    assert s.loads_frames([header, body]) == [1]


@pytest.mark.parametrize("form", ["blob", "frames"])
def test_message_reserved_bytes_must_be_zero(registry, form):
    s = serializer(registry, data="json")
    header, body = s.dumps_frames(1)
    accepted = []
    for offset in MESSAGE_RESERVED:
        wire = dict(both_forms([patched(header, offset, "B", 1), body]))[form]
        try:
            decode(s, form, wire)
        except DeserializationError as e:
            assert "reserved" in str(e)
        else:
            accepted.append(offset)
    assert accepted == [], "non-zero reserved bytes accepted at these offsets"


@pytest.mark.parametrize(
    "metadata",
    [b"", b"META!", b"\xff\xfe not json", b'{"python": 3, "x": [1]}', b"[]"],
    ids=["none", "opaque", "not-utf8", "odd-json", "not-an-object"],
)
def test_metadata_does_not_change_what_a_message_decodes_to(registry, metadata):
    s = serializer(registry, data="test-raw-buffers")
    header, body, buffer = (bytes(f) for f in s.dumps_frames([b"abc"]))
    header = with_metadata(header, metadata)
    assert read_header(header)["metadata"] == metadata
    assert [bytes(v) for v in s.loads(header + body + buffer)] == [b"abc"]
    assert [bytes(v) for v in s.loads_frames([header, body, buffer])] == [b"abc"]


def test_identifiers_must_fit_the_binary_header():
    """Identifiers are the same dispatch keys in both envelopes, so one that the
    3-byte ASCII header field cannot hold is refused when the class is defined,
    with a clear error, not sent half-written."""
    with pytest.raises(ValueError, match="identifier must be ASCII"):

        class NonAscii(BytesStrategy):
            identifier = "\u00e91\n"
            for_code = False

            def encode(self, obj: Any) -> bytes:
                return b""

            def decode(self, data: bytes) -> Any:
                return None


# -- lengths ---------------------------------------------------------------------------


@pytest.fixture
def two_buffer_message(registry) -> tuple[ComputeSerializer, list[bytes]]:
    s = serializer(registry, data="test-raw-buffers")
    frames = [bytes(f) for f in s.dumps_frames([b"0123456789", b"abcde"])]
    return s, frames


@pytest.mark.parametrize("delta", [-2, -1, 1, 2])
def test_wrong_frame_count_is_rejected(two_buffer_message, delta):
    s, frames = two_buffer_message
    wrong = frames[: len(frames) + delta] if delta < 0 else [*frames, *[b""] * delta]
    with pytest.raises(
        DeserializationError,
        match=f"declares 2 out-of-band buffers, so 4 frames, but {4 + delta} frames",
    ):
        s.loads_frames(wrong)


def test_an_empty_frame_list_or_a_lone_header_frame_is_rejected(two_buffer_message):
    s, frames = two_buffer_message
    with pytest.raises(DeserializationError, match="at least 2 frames"):
        s.loads_frames([])
    # A one-frame list is the blob form (issue 10): a lone header frame is a
    # blob truncated after its header.
    with pytest.raises(DeserializationError, match="truncated message"):
        s.loads_frames(frames[:1])


@pytest.mark.parametrize("change", [b"", b"x"], ids=["short", "long"])
def test_body_frame_of_the_wrong_size_is_rejected(two_buffer_message, change):
    s, (header, body, *buffers) = two_buffer_message
    wrong = body[:-1] if not change else body + change
    with pytest.raises(
        DeserializationError,
        match=f"body frame is {len(wrong)} bytes; the header says {len(body)}",
    ):
        s.loads_frames([header, wrong, *buffers])


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("change", [b"", b"x"], ids=["short", "long"])
def test_buffer_frame_of_the_wrong_size_is_rejected(two_buffer_message, index, change):
    s, frames = two_buffer_message
    frames = list(frames)
    expected = len(frames[2 + index])
    frames[2 + index] = (
        frames[2 + index][:-1] if not change else frames[2 + index] + b"x"
    )
    with pytest.raises(
        DeserializationError,
        match=(
            f"buffer frame {index} is {len(frames[2 + index])} bytes;"
            f" the header says {expected}"
        ),
    ):
        s.loads_frames(frames)


def _table_end(header: bytes) -> int:
    return OFF_TABLE + 8 * struct.unpack_from("<I", header, OFF_N)[0]


@pytest.mark.parametrize(
    "header_change",
    [
        lambda h: h + b"\x00",  # a trailing byte the metadata length leaves out
        lambda h: h[: _table_end(h) - 1] + h[_table_end(h) :],  # table cut short
        lambda h: h[: _table_end(h) - 8] + h[_table_end(h) :],  # one length missing
        lambda h: patched(h, OFF_M, "I", len(h) - _table_end(h) + 1),  # metadata
        lambda h: h[:-1],  # the metadata cut short
    ],
    ids=[
        "trailing-byte",
        "table-cut",
        "length-missing",
        "metadata-too-long",
        "metadata-cut",
    ],
)
def test_header_frame_of_the_wrong_size_is_rejected(two_buffer_message, header_change):
    s, (header, *rest) = two_buffer_message
    with pytest.raises(DeserializationError, match="header frame is"):
        s.loads_frames([header_change(header), *rest])


def test_header_frame_shorter_than_the_fixed_header_is_rejected(two_buffer_message):
    s, (header, *rest) = two_buffer_message
    with pytest.raises(DeserializationError, match="truncated header"):
        s.loads_frames([header[:31], *rest])


def test_every_truncation_of_a_blob_is_rejected(two_buffer_message):
    s, frames = two_buffer_message
    blob = b"".join(frames)
    for end in range(len(blob)):
        with pytest.raises(DeserializationError):
            s.loads(blob[:end])


def test_trailing_bytes_after_a_blob_are_rejected(two_buffer_message):
    s, frames = two_buffer_message
    with pytest.raises(DeserializationError, match="3 unexpected bytes after"):
        s.loads(b"".join(frames) + b"xyz")


HUGE_FIELDS = [
    ("B=2**60", OFF_B, "Q", 2**60),
    ("B=2**64-1", OFF_B, "Q", 2**64 - 1),
    ("N=2**32-1", OFF_N, "I", 2**32 - 1),
    ("N=2**31", OFF_N, "I", 2**31),
    ("M=2**32-1", OFF_M, "I", 2**32 - 1),
    ("L0=2**60", OFF_TABLE, "Q", 2**60),
    ("L1=2**64-1", OFF_TABLE + 8, "Q", 2**64 - 1),
]


@pytest.mark.parametrize(
    ("offset", "fmt", "value"),
    [f[1:] for f in HUGE_FIELDS],
    ids=[f[0] for f in HUGE_FIELDS],
)
@pytest.mark.parametrize("form", ["blob", "frames", "bundle-blob", "bundle-frames"])
def test_huge_declared_sizes_fail_fast_without_allocating(
    two_buffer_message, offset, fmt, value, form
):
    s, (header, *rest) = two_buffer_message
    frames = [patched(header, offset, fmt, value), *rest]
    bundle = s.pack_frames([frames, frames, frames])
    wire = {
        "blob": b"".join(frames),
        "frames": frames,
        "bundle-blob": b"".join(bundle),
        "bundle-frames": bundle,
    }[form]
    call: Callable[[Any], Any] = {
        "blob": s.loads,
        "frames": s.loads_frames,
    }.get(form, s.unpack_frames_and_deserialize)
    with traced() as memory, pytest.raises(DeserializationError):
        call(wire)
    assert memory.peak < 256 * 1024


def test_bundle_declaring_a_huge_message_count_fails_fast(registry):
    s = serializer(registry, data="json")
    bundle = s.pack_frames(three_messages(s))
    bundle[0] = patched(bundle[0], 8, "I", 2**32 - 1)
    for wire in (bundle, b"".join(bundle)):
        with traced() as memory, pytest.raises(DeserializationError, match="bundle"):
            s.unpack_frames_and_deserialize(wire)
        assert memory.peak < 256 * 1024


def test_decoding_many_distinct_headers_does_not_grow_memory(registry):
    """Header bytes a reader ignores (the producer's Python version) must not key
    anything the serializer keeps: a peer could otherwise grow it without bound."""
    s = serializer(registry, data="json")
    header, body = s.dumps_frames([1])
    s.loads(header + body)  # warm up
    variants = [
        patched(patched(header, OFF_PY_MAJOR, "B", major), OFF_PY_MINOR, "B", minor)
        + body
        for major in range(16)
        for minor in range(256)
    ]
    gc.collect()
    with traced() as memory:
        for blob in variants:
            assert s.loads(blob) == [1]
        gc.collect()
    assert memory.retained < 64 * 1024


# -- the function cache ----------------------------------------------------------------


def count_to_frames(monkeypatch, strategy: Any) -> list[Any]:
    calls: list[Any] = []
    original = strategy.to_frames

    def counting(obj: Any) -> Any:
        calls.append(obj)
        return original(obj)

    monkeypatch.setattr(strategy, "to_frames", counting)
    return calls


def fresh_function() -> Callable[..., Any]:
    return samples.by_value(
        "def fresh(x, y=1, *, z=2):\n    return (x, y, z)\n", "fresh"
    )


def test_dumps_frames_again_is_a_cache_hit_with_equal_frames(registry, monkeypatch):
    s = serializer(registry)
    calls = count_to_frames(monkeypatch, s.code_serializer)
    fn = fresh_function()
    first = s.dumps_frames(fn)
    second = s.dumps_frames(fn)
    assert [bytes(f) for f in first] == [bytes(f) for f in second]
    assert len(calls) == 1
    assert s.dumps(fn) == b"".join(first)
    assert len(calls) == 1


def test_serialize_again_is_a_cache_hit_until_the_function_changes(
    registry, monkeypatch
):
    # The text envelope has its own cached form per function.
    s = serializer(registry)
    calls: list[Any] = []
    original = s.code_serializer.serialize
    monkeypatch.setattr(
        s.code_serializer, "serialize", lambda fn: calls.append(fn) or original(fn)
    )
    fn = fresh_function()
    first = s.serialize(fn)
    assert s.serialize(fn) == first and len(calls) == 1
    fn.__defaults__ = (5,)
    assert s.deserialize(s.serialize(fn))(0) == (0, 5, 2)
    assert len(calls) == 2
    s.clear_cache()
    s.serialize(fn)
    assert len(calls) == 3


def test_the_cached_frame_list_cannot_be_corrupted_by_the_caller(registry):
    s = serializer(registry)
    fn = fresh_function()
    first = s.dumps_frames(fn)
    expected = [bytes(f) for f in first]
    first.append(b"junk")
    first[0] = b"junk"
    assert [bytes(f) for f in s.dumps_frames(fn)] == expected


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("__defaults__", (5,)),
        ("__kwdefaults__", {"z": 7}),
        ("__code__", samples.by_value("def g(x, y=1, *, z=2):\n    return x\n", "g")),
    ],
)
def test_reassigning_what_the_function_is_made_of_invalidates(
    registry, monkeypatch, attribute, value
):
    s = serializer(registry)
    calls = count_to_frames(monkeypatch, s.code_serializer)
    fn = fresh_function()
    before = s.loads(s.dumps(fn))
    if attribute == "__code__":
        value = value.__code__
    setattr(fn, attribute, value)
    after = s.loads(s.dumps(fn))
    assert len(calls) == 2
    assert before(0) == (0, 1, 2)
    assert after(0) == fn(0) != before(0)
    s.dumps_frames(fn)
    assert len(calls) == 2  # and the new form is cached in turn


def test_cache_code_false_serializes_every_time(registry, monkeypatch):
    s = serializer(registry, cache_code=False)
    calls = count_to_frames(monkeypatch, s.code_serializer)
    fn = fresh_function()
    assert s.dumps(fn) == s.dumps(fn)
    assert len(calls) == 2


def test_clear_cache_forgets_every_function(registry, monkeypatch):
    s = serializer(registry)
    calls = count_to_frames(monkeypatch, s.code_serializer)
    fn = fresh_function()
    s.dumps_frames(fn)
    s.clear_cache()
    s.dumps_frames(fn)
    assert len(calls) == 2


class Multiplier:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return x * self.factor

    def apply(self, x: int) -> int:
        return x * self.factor


@pytest.mark.parametrize(
    "make",
    [
        lambda: functools.partial(samples.add, 1),
        lambda: Multiplier(3).apply,
        lambda: Multiplier(3),
        lambda: len,
    ],
    ids=["partial", "bound-method", "callable-instance", "builtin"],
)
def test_non_function_callables_are_not_cached(registry, monkeypatch, make):
    s = serializer(registry)
    calls = count_to_frames(monkeypatch, s.code_serializer)
    fn = make()
    s.dumps_frames(fn)
    s.dumps_frames(fn)
    assert len(calls) == 2


def test_the_cache_does_not_keep_a_function_alive(registry):
    s = serializer(registry)
    fn = fresh_function()
    ref = weakref.ref(fn)
    s.dumps_frames(fn)
    s.serialize(fn)
    del fn
    gc.collect()
    assert ref() is None
