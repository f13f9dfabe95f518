"""Frame codecs (serialize/codecs.py, BINARY_FORMAT.md 3.4): per-frame compression
in the binary envelope, registered through the ``freight.codecs`` entry-point group.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freight.plugins.codecs import Lz4Codec, ZstdCodec
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    Limits,
    Policy,
    SerdeError,
    SerializationError,
    binary,
    hookimpl,
)
from freight.serialize.codecs import (
    CodecRegistry,
    FrameCodec,
    FrameCodecs,
    codec_registry,
)
from freight.serialize.registry import PluginError, PluginSettings
from freight.testing.assertions import traced
from freight.testing.codecs import CodecConformance, codec_conformance

OFF_FLAGS = 5
FLAG_CODECS = 0x02
CODECS = ["zstd", "lz4"]

TestZstdKit = codec_conformance(ZstdCodec, third_party=False, levels=(None, 1, 19))
TestLz4Kit = codec_conformance(Lz4Codec, third_party=False, levels=(None, 9))


def blob(frames: list[Any]) -> bytes:
    return b"".join(bytes(memoryview(f).cast("B")) for f in frames)


def counts(header: bytes) -> tuple[int, int, int]:
    return struct.unpack_from("<IQI", header, 12)


def table(header: bytes) -> list[tuple[int, int]]:
    n = counts(header)[0]
    start = 32 + 8 * n
    return [struct.unpack_from("<B7xQ", header, start + 16 * i) for i in range(n + 1)]


class Spy(FrameCodec):
    """zlib with call counts (a test codec, third-party id range)."""

    codec_id = 200
    name = "spy"
    calls: dict[str, int] = {}  # noqa: RUF012

    def compress(self, data: memoryview, level: int | None = None) -> bytes:
        Spy.calls["compress"] = Spy.calls.get("compress", 0) + 1
        return zlib.compress(data, 1)

    def decompress(self, data: memoryview, size: int) -> bytes:
        Spy.calls["decompress"] = Spy.calls.get("decompress", 0) + 1
        d = zlib.decompressobj()
        out = d.decompress(data, size)
        if d.unconsumed_tail or not d.eof:
            raise ValueError("expands beyond the declared length, or is truncated")
        return out


class SpyPlugin:
    @staticmethod
    @hookimpl
    def freight_codecs() -> list[type[FrameCodec]]:
        return [Spy]


@pytest.fixture
def spy_registry() -> CodecRegistry:
    Spy.calls = {}
    registry = CodecRegistry(entry_point_group=None)
    registry.register_plugin(SpyPlugin, "spy")
    return registry


def big_dict() -> dict[str, Any]:
    return {"text": "freight carries functions " * 20_000, "n": list(range(50))}


# -- discovery -------------------------------------------------------------------------


def test_builtin_codecs_are_found_through_the_entry_point_group() -> None:
    statuses = {s.name: s for s in codec_registry().plugin_statuses()}
    assert statuses["zstd"].state == "loaded"
    assert statuses["lz4"].state == "loaded"
    assert statuses["zstd"].distribution.startswith("freight ")
    assert {c.name for c in codec_registry()} >= {"zstd", "lz4"}
    assert codec_registry().by_id(1).name == "zstd"
    assert codec_registry().by_id(2).name == "lz4"


def test_a_blocked_codec_plugin_is_not_loaded() -> None:
    registry = CodecRegistry(settings=PluginSettings(block=frozenset({"zstd"})))
    assert registry.by_id(1) is None
    assert registry.by_id(2) is not None
    assert {s.name: s.state for s in registry.plugin_statuses()}["zstd"] == "blocked"


class MissingLibrary(FrameCodec):
    codec_id = 201
    name = "missing"
    libraries = ("no-such-compressor",)

    def __init__(self) -> None:
        import no_such_compressor  # type: ignore[import-not-found]  # noqa: F401

    def compress(self, data: memoryview, level: int | None = None) -> bytes:
        raise AssertionError

    def decompress(self, data: memoryview, size: int) -> bytes:
        raise AssertionError


class MissingPlugin:
    @staticmethod
    @hookimpl
    def freight_codecs() -> list[type[FrameCodec]]:
        return [MissingLibrary]


def test_a_codec_whose_library_is_missing_is_reported_and_skipped(
    spy_registry: CodecRegistry,
) -> None:
    assert spy_registry.register_plugin(MissingPlugin, "missing") == []
    status = {s.name: s for s in spy_registry.plugin_statuses()}["missing"]
    assert status.state == "skipped"
    assert "no-such-compressor is not installed" in status.reason
    with pytest.raises(SerdeError, match=r"'missing' is not available.*no-such"):
        ComputeSerializer(compression=FrameCodecs("missing", registry=spy_registry))
    # A message using it is refused naming the codec and the reason.
    s = ComputeSerializer(compression=FrameCodecs("spy", registry=spy_registry))
    frames = s.dumps_frames(big_dict())
    header = bytearray(frames[0])
    entry = 32 + 8 * counts(bytes(header))[0]
    assert header[entry] == Spy.codec_id
    header[entry] = MissingLibrary.codec_id
    with pytest.raises(DeserializationError, match="'missing': no-such-compressor"):
        s.loads_frames([bytes(header), *frames[1:]])


def test_codec_id_and_name_collisions_are_refused_naming_both(
    spy_registry: CodecRegistry,
) -> None:
    class Twin(Spy):
        name = "twin"

    class TwinPlugin:
        @staticmethod
        @hookimpl
        def freight_codecs() -> list[type[FrameCodec]]:
            return [Twin]

    with pytest.raises(PluginError, match=r"codec id 200 is claimed twice.*Spy.*Twin"):
        spy_registry.register_plugin(TwinPlugin, "twin")
    assert spy_registry.by_id(200).name == "spy"


def test_an_unknown_compression_codec_is_a_clear_error() -> None:
    with pytest.raises(SerdeError, match="no frame codec is named 'brotli'"):
        ComputeSerializer(compression="brotli")


# -- the format ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_a_compressed_message_carries_the_flag_and_the_codec_table(codec: str) -> None:
    s = ComputeSerializer(strategy_data="json", compression=codec)
    value = big_dict()
    header, body = s.dumps_frames(value)
    plain = ComputeSerializer(strategy_data="json").dumps_frames(value)[1]
    assert header[OFF_FLAGS] == 0x01 | FLAG_CODECS  # text body, codecs
    n, b, m = counts(header)
    assert (n, b) == (0, len(body))
    assert len(body) < len(plain) / 10
    codec_id = codec_registry().resolve(codec).codec_id
    assert table(header) == [(codec_id, len(plain))]
    assert len(header) == 32 + 16 + m
    assert header[48:].startswith(b'{"python":')


@pytest.mark.parametrize("codec", CODECS)
def test_a_message_with_nothing_worth_compressing_is_unchanged(codec: str) -> None:
    s = ComputeSerializer(compression=codec)
    plain = ComputeSerializer()
    rng = np.random.default_rng(0)
    for value in [1, {"a": [1, 2]}, "x" * 1000, rng.bytes(1 << 20), len]:
        assert s.dumps(value) == plain.dumps(value)
        assert blob(s.dumps_frames(value)) == blob(plain.dumps_frames(value))


def test_frames_under_min_size_are_not_compressed(spy_registry: CodecRegistry) -> None:
    value = b"a" * 5000
    small = ComputeSerializer(
        compression=FrameCodecs("spy", min_size=8000, registry=spy_registry)
    )
    assert small.dumps(value) == ComputeSerializer().dumps(value)
    assert Spy.calls == {}
    low = ComputeSerializer(
        compression=FrameCodecs("spy", min_size=4000, registry=spy_registry)
    )
    assert low.dumps(value)[OFF_FLAGS] & FLAG_CODECS
    assert low.loads(low.dumps(value)) == value


def test_a_frame_whose_sample_does_not_compress_is_not_compressed_whole(
    spy_registry: CodecRegistry,
) -> None:
    rng = np.random.default_rng(1)
    noise = rng.bytes(1 << 20)
    s = ComputeSerializer(compression=FrameCodecs("spy", registry=spy_registry))
    assert s.dumps(noise) == ComputeSerializer().dumps(noise)
    assert Spy.calls == {"compress": 1}  # the 50 KB sample only, not the 1 MB


def test_per_frame_choice_in_one_message() -> None:
    rng = np.random.default_rng(2)
    noise = np.frombuffer(rng.bytes(800_000), dtype=np.uint8)
    zeros = np.zeros(100_000)
    s = ComputeSerializer(compression="zstd")
    frames = s.dumps_frames([noise, zeros])
    header = bytes(frames[0])
    n, _, _ = counts(header)
    assert n == 2
    entries = table(header)
    assert entries[1] == (0, noise.nbytes)  # random: sent as it is
    assert entries[2] == (1, zeros.nbytes)  # zeros: zstd
    assert frames[2] is not None and bytes(frames[2]) == noise.tobytes()
    # The writer still aligns the first buffer in the blob form.
    assert (len(header) + len(frames[1])) % 16 == 0
    out = s.loads(blob(frames))
    assert np.array_equal(out[0], noise) and np.array_equal(out[1], zeros)


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("strategy", [None, "json", "msgpack"])
def test_both_forms_round_trip(codec: str, strategy: str | None) -> None:
    s = ComputeSerializer(strategy_data=strategy, compression=codec)
    value = big_dict()
    frames = s.dumps_frames(value)
    assert bytes(memoryview(frames[0])[OFF_FLAGS : OFF_FLAGS + 1])[0] & FLAG_CODECS
    assert s.loads_frames(frames) == value
    assert s.loads(s.dumps(value)) == value
    # A receiver configured without compression reads it too.
    assert ComputeSerializer(strategy_data=strategy).loads(s.dumps(value)) == value


@pytest.mark.parametrize("codec", CODECS)
def test_arrays_round_trip_through_compressed_buffers(codec: str) -> None:
    s = ComputeSerializer(compression=codec)
    array = np.arange(1_000_000, dtype=np.float64) % 7
    frames = s.dumps_frames(array)
    assert len(frames) == 3 and len(frames[2]) < array.nbytes / 4
    assert np.array_equal(s.loads_frames(frames), array)
    assert np.array_equal(s.loads(blob(frames)), array)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("form", ["frames", "blob"])
def test_bundles_round_trip(codec: str, form: str) -> None:
    s = ComputeSerializer(compression=codec)
    array = np.zeros(200_000)
    frames = s.pack_frames(
        [s.dumps_frames(len), s.dumps_frames((array,)), s.dumps_frames(big_dict())]
    )
    wire = frames if form == "frames" else blob(frames)
    fn, args, kwargs = s.unpack_frames_and_deserialize(wire)
    assert fn is len and np.array_equal(args[0], array) and kwargs == big_dict()


def test_codec_messages_are_never_learned(spy_registry: CodecRegistry) -> None:
    s = ComputeSerializer(
        strategy_data="json", compression=FrameCodecs("spy", registry=spy_registry)
    )
    data = s.dumps(big_dict())
    for _ in range(3):
        assert s.loads(data) == big_dict()
        assert s.loads_frames(
            [data[: len(data) - counts(data)[1]], data[-counts(data)[1] :]]
        )
    assert Spy.calls["decompress"] == 6


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=32), min_size=1, max_size=4),
    st.integers(1, 3000),
    st.sampled_from(CODECS),
)
def test_repetitive_bytes_round_trip(
    pieces: list[bytes], repeat: int, codec: str
) -> None:
    value = b"".join(pieces) * repeat
    s = ComputeSerializer(compression=FrameCodecs(codec, min_size=0))
    assert s.loads(s.dumps(value)) == value
    assert s.loads_frames(s.dumps_frames(value)) == value


# -- policy, allowlist, limits ---------------------------------------------------------


def test_untrusted_input_policy_decodes_codecs() -> None:
    value = big_dict()
    sent = ComputeSerializer(strategy_data="json", compression="zstd").dumps(value)
    safe = ComputeSerializer(strategy_data="json", policy=Policy.untrusted_input())
    assert safe.loads(sent) == value


def test_codecs_outside_the_decode_list_are_refused_naming_them() -> None:
    sent = ComputeSerializer(strategy_data="json", compression="zstd").dumps(big_dict())
    s = ComputeSerializer(
        strategy_data="json", compression=FrameCodecs(decode=frozenset())
    )
    with pytest.raises(
        DeserializationError, match=r"frame codec 'zstd'.*does not decode"
    ):
        s.loads(sent)
    lz4_only = FrameCodecs(decode=frozenset({"lz4"}))
    with pytest.raises(SerdeError, match="not in this serializer's decode list"):
        ComputeSerializer(compression=FrameCodecs("zstd", decode=lz4_only.decode))


def test_an_unknown_codec_id_is_refused_naming_it() -> None:
    s = ComputeSerializer(strategy_data="json", compression="zstd")
    header, body = s.dumps_frames(big_dict())
    header = bytearray(header)
    header[32] = 99
    with pytest.raises(
        DeserializationError, match="codec id 99, which is not installed"
    ):
        s.loads_frames([bytes(header), body])


def test_a_disallowed_strategy_is_refused_before_anything_is_decompressed(
    spy_registry: CodecRegistry,
) -> None:
    sender = ComputeSerializer(compression=FrameCodecs("spy", registry=spy_registry))
    data = sender.dumps(big_dict())  # PickleData
    Spy.calls = {}
    receiver = ComputeSerializer(
        strategy_data="json",
        policy=Policy.untrusted_input(),
        compression=FrameCodecs(registry=spy_registry),
    )
    with pytest.raises(DeserializationError, match="may not decode"):
        receiver.loads(data)
    assert "decompress" not in Spy.calls


def test_a_declared_length_over_max_size_is_refused_before_decompressing(
    spy_registry: CodecRegistry,
) -> None:
    codecs = FrameCodecs("spy", registry=spy_registry)
    sender = ComputeSerializer(strategy_data="json", compression=codecs)
    data = sender.dumps(big_dict())
    assert len(data) < 10_000 < len(str(big_dict()))
    receiver = ComputeSerializer(
        strategy_data="json", compression=codecs, limits=Limits(max_size=100_000)
    )
    Spy.calls = {}
    with pytest.raises(
        DeserializationError, match=r"decoded, is \d+ long.*max_size=100000"
    ):
        receiver.loads(data)
    assert Spy.calls == {}


def test_the_declared_lengths_share_one_budget_per_message() -> None:
    a = np.zeros(60_000, dtype=np.uint8)
    s = ComputeSerializer(compression="zstd")
    frames = s.dumps_frames([a, a.copy()])  # two 60 KB buffers, each compressed
    assert [cid for cid, _ in table(bytes(frames[0]))][1:] == [1, 1]
    tight = ComputeSerializer(limits=Limits(max_size=100_000))
    with pytest.raises(DeserializationError, match="the message at offset 0, decoded"):
        tight.loads_frames(frames)


def test_a_bundle_decoding_over_max_size_is_refused() -> None:
    s = ComputeSerializer(compression="zstd")
    a = np.zeros(60_000, dtype=np.uint8)
    bundle = s.pack_frames(
        [s.dumps_frames(len), s.dumps_frames((a,)), s.dumps_frames({"a": a})]
    )
    ComputeSerializer(limits=Limits(max_size=100_000)).unpack_frames_and_deserialize(
        s.pack_frames([s.dumps_frames(len), s.dumps_frames((a,)), s.dumps_frames({})])
    )
    with pytest.raises(
        DeserializationError, match=r"the bundle, decoded.*max_size=100000"
    ):
        ComputeSerializer(
            limits=Limits(max_size=100_000)
        ).unpack_frames_and_deserialize(bundle)


# -- compression bombs -----------------------------------------------------------------


def zstd_rle_frame(
    blocks: int, *, content_size: int | None, block: int = 128 * 1024
) -> bytes:
    """A zstd frame of ``blocks`` RLE blocks of ``block`` bytes each (4 bytes per
    block): the issue's bomb, 32 KiB expanding to 1 GiB."""
    frame = bytearray(b"\x28\xb5\x2f\xfd")
    if content_size is None:
        frame += bytes([0x00, 7 << 3])  # no content size; window 2**17
    else:
        frame += bytes([0x80, 7 << 3]) + struct.pack("<I", content_size)
    for i in range(blocks):
        last = 1 if i == blocks - 1 else 0
        frame += (last | (1 << 1) | (block << 3)).to_bytes(3, "little") + b"\x00"
    return bytes(frame)


def with_body(
    s: ComputeSerializer, value: Any, codec_id: int, body: bytes, size: int
) -> list[Any]:
    """``value``'s message with its body frame replaced by ``body``, declared as
    ``codec_id`` decoding to ``size`` bytes."""
    header = bytearray(s.dumps_frames(value)[0])
    n, _, _ = counts(bytes(header))
    assert n == 0
    struct.pack_into("<Q", header, 16, len(body))
    struct.pack_into("<B7xQ", header, 32, codec_id, size)
    return [bytes(header), body]


BOMBS = {
    "zstd RLE, no content size": (1, lambda: zstd_rle_frame(8192, content_size=None)),
    "zstd RLE, content size lies": (
        1,
        lambda: zstd_rle_frame(8192, content_size=1 << 20),
    ),
    "zstd, honest 64 MiB": (
        1,
        lambda: ZstdCodec().compress(memoryview(bytes(64 << 20))),
    ),
    "lz4, 64 MiB": (2, lambda: Lz4Codec().compress(memoryview(bytes(64 << 20)))),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
@pytest.mark.parametrize("form", ["frames", "blob"])
def test_a_compression_bomb_is_refused_with_bounded_memory(
    bomb: str, form: str
) -> None:
    codec_id, make = BOMBS[bomb]
    frame = bytes(make())
    assert len(frame) < 300_000
    s = ComputeSerializer(strategy_data="json", compression="zstd")
    frames = with_body(s, big_dict(), codec_id, frame, 1 << 20)
    wire = frames if form == "frames" else blob(frames)
    decode = s.loads_frames if form == "frames" else s.loads
    with (
        traced() as memory,
        pytest.raises(DeserializationError, match="max_size=") as e,
    ):
        decode(wire)
    assert "1048576 bytes its header declares" in str(e.value)
    assert memory.peak < 4 << 20, memory.peak


@pytest.mark.parametrize("codec_id", [1, 2])
@pytest.mark.parametrize("size", [0, 1, 1000])
def test_garbage_and_short_declarations_are_refused(codec_id: int, size: int) -> None:
    s = ComputeSerializer(strategy_data="json")
    for body in [
        b"",
        b"\x00" * 16,
        b"not compressed at all",
        zstd_rle_frame(2, content_size=None),
    ]:
        with pytest.raises(DeserializationError):
            s.loads_frames(with_body(s, 1, codec_id, body, size))


def test_the_kit_catches_an_unbounded_codec() -> None:
    class Unbounded(Spy):
        def decompress(self, data: memoryview, size: int) -> bytes:
            return zlib.decompress(data)[:size]  # expands fully, then cuts

    check = type("Check", (CodecConformance,), {"codec": Unbounded})()
    with pytest.raises(AssertionError, match="decoded to 1048576 bytes when"):
        check.test_bomb_is_refused_with_bounded_memory()


def test_the_kit_catches_a_codec_that_stops_at_the_declared_length() -> None:
    class Truncating(Spy):
        def decompress(self, data: memoryview, size: int) -> bytes:
            return zlib.decompressobj().decompress(data, size)  # never looks further

    check = type("Check", (CodecConformance,), {"codec": Truncating})()
    with pytest.raises(AssertionError, match="decoded to 1048576 bytes when"):
        check.test_bomb_is_refused_with_bounded_memory()


def test_the_kit_catches_a_codec_that_allocates_the_whole_bomb() -> None:
    class Greedy(Spy):
        def decompress(self, data: memoryview, size: int) -> bytes:
            out = zlib.decompress(data)
            if len(out) != size:
                raise ValueError("wrong length")
            return out

    check = type("Check", (CodecConformance,), {"codec": Greedy})()
    with pytest.raises(AssertionError, match="refusing a bomb cost"):
        check.test_bomb_is_refused_with_bounded_memory()


# -- malformed codec tables ------------------------------------------------------------


def compressed_frames() -> list[Any]:
    return ComputeSerializer(strategy_data="json", compression="zstd").dumps_frames(
        big_dict()
    )


def test_reserved_bytes_in_a_codec_entry_are_refused() -> None:
    header, body = compressed_frames()
    header = bytearray(header)
    header[32 + 3] = 1
    s = ComputeSerializer(strategy_data="json")
    with pytest.raises(
        DeserializationError, match="reserved bytes in codec table entry 0"
    ):
        s.loads_frames([bytes(header), body])
    with pytest.raises(
        DeserializationError, match="reserved bytes in codec table entry 0"
    ):
        s.loads(bytes(header) + body)


def test_an_uncompressed_frame_must_declare_its_own_length() -> None:
    header, body = compressed_frames()
    header = bytearray(header)
    header[32] = 0
    with pytest.raises(DeserializationError, match="has no codec but declares"):
        ComputeSerializer(strategy_data="json").loads(bytes(header) + body)


def test_a_truncated_codec_table_is_refused() -> None:
    header, body = compressed_frames()
    s = ComputeSerializer(strategy_data="json")
    with pytest.raises(DeserializationError, match="truncated"):
        s.loads(bytes(header)[:40])
    with pytest.raises(DeserializationError, match="header frame is"):
        s.loads_frames([bytes(header)[:-1], body])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_compressed_messages_fail_cleanly(data: st.DataObject) -> None:
    header, body = compressed_frames()
    wire = bytearray(bytes(header) + bytes(body))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] ^= 1 << data.draw(st.integers(0, 7))
    s = ComputeSerializer(strategy_data="json", limits=Limits(max_size=8 << 20))
    try:
        s.loads(bytes(wire))
    except DeserializationError:
        pass


# -- the example codec plugin (examples/freight-zlib-codec) ---------------------------

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "examples/freight-zlib-codec/src"


def example_codec() -> type[FrameCodec]:
    """The example's codec, imported from its source tree (installing it is not
    needed here; its own tests check the entry point)."""
    if str(EXAMPLE_SRC) not in sys.path:
        sys.path.append(str(EXAMPLE_SRC))
    from freight_zlib_codec import ZlibCodec

    return ZlibCodec  # type: ignore[no-any-return]


TestExampleZlibKit = codec_conformance(example_codec(), levels=(None, 1, 9))


def test_the_example_codec_plugin_works_through_its_hook() -> None:
    from freight_zlib_codec import plugin

    registry = CodecRegistry(entry_point_group=None)
    registry.register_plugin(plugin, "zlib")
    codecs = FrameCodecs("zlib", registry=registry)
    serde = ComputeSerializer(compression=codecs)
    value = {"text": "hello freight " * 10_000}
    frames = serde.dumps_frames(value)
    assert table(bytes(frames[0]))[0][0] == 64
    assert serde.loads_frames(frames) == value
    assert serde.loads(blob(frames)) == value


@pytest.mark.parametrize("codec", CODECS)
def test_the_blob_is_the_frames_joined(codec: str) -> None:
    s = ComputeSerializer(compression=codec)
    for value in [big_dict(), np.zeros(100_000), [np.zeros(30_000), "x" * 40_000]]:
        assert s.dumps(value) == blob(s.dumps_frames(value))


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_refused_frame_leaves_the_codec_usable(bomb: str) -> None:
    # The zstd codec keeps its contexts per thread: a failure must not poison one.
    codec_id, make = BOMBS[bomb]
    s = ComputeSerializer(strategy_data="json", compression="zstd")
    with pytest.raises(DeserializationError):
        s.loads_frames(with_body(s, big_dict(), codec_id, bytes(make()), 1 << 20))
    value = {"text": "y" * (1 << 20)}  # the same 2**20 window as the bomb's
    assert s.loads(s.dumps(value)) == value


def test_a_codec_that_fails_to_compress_is_a_serialization_error(
    spy_registry: CodecRegistry,
) -> None:
    class Broken(Spy):
        codec_id = 202
        name = "broken"

        def compress(self, data: memoryview, level: int | None = None) -> bytes:
            raise RuntimeError("out of ideas")

    class BrokenPlugin:
        @staticmethod
        @hookimpl
        def freight_codecs() -> list[type[FrameCodec]]:
            return [Broken]

    spy_registry.register_plugin(BrokenPlugin, "broken")
    s = ComputeSerializer(compression=FrameCodecs("broken", registry=spy_registry))
    assert s.loads(s.dumps(1)) == 1  # too small to try
    with pytest.raises(SerializationError, match=r"'broken' failed.*out of ideas"):
        s.dumps(big_dict())
    with pytest.raises(SerializationError, match=r"'broken' failed.*out of ideas"):
        s.dumps_frames(big_dict())


def test_compression_can_be_changed_on_a_serializer() -> None:
    s = ComputeSerializer(strategy_data="json")
    value = big_dict()
    plain = s.dumps(value)
    s.compression = "lz4"
    assert s.compression == FrameCodecs("lz4")
    packed = s.dumps(value)
    assert packed[OFF_FLAGS] & FLAG_CODECS and table(packed)[0][0] == 2
    s.compression = None
    assert s.dumps(value) == plain
    assert s.loads(packed) == value


_ZSTD_OK = ZstdCodec().compress(memoryview(b"freight " * 4000))
_LZ4_OK = Lz4Codec().compress(memoryview(b"freight " * 4000))
frame_bodies = st.one_of(
    st.binary(max_size=64),
    st.just(_ZSTD_OK),
    st.just(_LZ4_OK),
    st.just(zstd_rle_frame(64, content_size=None)),
    st.binary(max_size=64).map(lambda b: _ZSTD_OK[:20] + b),
)
entries = st.tuples(
    st.sampled_from([0, 1, 2, 99, 255]),
    st.one_of(st.integers(0, 40_000), st.just(32_000), st.integers(0, 2**64 - 1)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(frame_bodies, entries), min_size=1, max_size=4), st.data())
def test_arbitrary_codec_tables_fail_cleanly_and_boundedly(
    parts: list[tuple[bytes, tuple[int, int]]], data: st.DataObject
) -> None:
    """Structure-aware fuzzing of section 3.4: a valid prefix, any codec table,
    any frames: a decode returns or raises DeserializationError, and never holds
    much more than max_size (1 MiB here)."""
    n = len(parts) - 1
    body, *buffers = [frame for frame, _ in parts]
    header = bytearray(b"\x93FRT\x01\x03\x03\x0b11\n\x00")
    header += struct.pack("<IQI4x", n, len(body), 0)
    header += b"".join(struct.pack("<Q", len(b)) for b in buffers)
    header += b"".join(struct.pack("<B7xQ", cid, size) for _, (cid, size) in parts)
    s = ComputeSerializer(
        strategy_data="json", limits=Limits(max_size=1 << 20, max_depth=50)
    )
    frames = [bytes(header), *[frame for frame, _ in parts]]
    wire = data.draw(st.sampled_from(["frames", "blob"]))
    with traced() as memory:
        try:
            if wire == "frames":
                s.loads_frames(frames)
            else:
                s.loads(b"".join(frames))
        except DeserializationError:
            pass
    assert memory.peak < 4 << 20


@pytest.mark.parametrize(
    "bad", [{"min_size": -1}, {"sample_size": 0}, {"nsamples": 0}, {"min_ratio": 0}]
)
def test_frame_codec_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(SerdeError, match="FrameCodecs"):
        FrameCodecs("zstd", **bad)


def test_the_decode_list_may_be_any_iterable_of_names() -> None:
    assert FrameCodecs(decode={"lz4"}).decode == frozenset({"lz4"})  # type: ignore[arg-type]


# -- frame codecs with the transport helpers (serialize/stream.py) -------------------


def _compressible() -> dict[str, bytes]:
    return {"text": b"freight " * 10_000}


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_a_frame_reader_reads_compressed_messages_from_any_chunking(
    codec: str,
) -> None:
    from freight.serialize import FrameReader, read_layout

    serde = ComputeSerializer(compression=codec)
    blob = serde.dumps(_compressible())
    assert blob[5] & binary.FLAG_CODECS  # compressed, so the codec table is there
    layout = read_layout(blob)
    assert layout.total == len(blob)

    reader = FrameReader()
    messages = []
    for i in range(0, len(blob), 997):
        messages += reader.feed(blob[i : i + 997])
    assert len(messages) == 1
    assert serde.loads_frames(messages[0]) == _compressible()


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_compressed_messages_decode_at_the_front_of_a_larger_buffer(
    codec: str,
) -> None:
    serde = ComputeSerializer(compression=codec)
    blob = serde.dumps(_compressible())
    obj, consumed = serde.loads_prefix(blob + b"trailing bytes of the next message")
    assert obj == _compressible() and consumed == len(blob)


def test_compression_and_coalescing_together_round_trip() -> None:
    serde = ComputeSerializer(compression="zstd", coalesce_below=1024)
    frames = serde.dumps_frames(_compressible())
    assert len(frames) == 1  # compressed, then the small frames joined
    assert bytes(frames[0])[5] & binary.FLAG_CODECS
    assert serde.loads_frames(frames) == _compressible()


def test_a_decode_list_given_as_one_string_is_refused() -> None:
    # frozenset("zstd") would be the letters z, s, t, d: refused, with the fix.
    with pytest.raises(TypeError, match="not a str"):
        FrameCodecs(decode="zstd")  # type: ignore[arg-type]
