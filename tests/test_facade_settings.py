"""How the facade's settings combine: frame compression with ``writable``, with a
subclass that overrides the encoding methods, and with ``dumps_into``."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from freight.serialize import ComputeSerializer
from freight.serialize.binary import BufferLike
from freight.serialize.codecs import FrameCodec, codec_registry
from freight.serialize.errors import DeserializationError, SerdeError

np = pytest.importorskip("numpy")
pytest.importorskip("zstandard")

#: Compresses well and is large enough for every frame codec setting to compress.
ARRAY = np.zeros(200_000, dtype=np.int64)


def _def(x: int) -> int:
    return x


@pytest.mark.usefixtures("each_fast_path")
@pytest.mark.parametrize("form", ["blob", "frames", "prefix", "bundle", "bundle blob"])
def test_writable_arrays_from_compressed_messages(form: str) -> None:
    """``writable=True`` promises writable decoded buffers; a compressed buffer
    decompresses to read-only memory, which must be copied as well."""
    sender = ComputeSerializer(compression="zstd")
    receiver = ComputeSerializer(writable=True)
    frames = sender.dumps_frames(ARRAY)
    assert len(memoryview(frames[2])) < ARRAY.nbytes  # it is compressed
    if form == "blob":
        out = receiver.loads(sender.dumps(ARRAY))
    elif form == "frames":
        out = receiver.loads_frames(frames)
    elif form == "prefix":
        out, _ = receiver.loads_prefix(sender.dumps(ARRAY) + b"next")
    else:
        bundle = sender.pack_frames(
            [sender.dumps_frames(_def), frames, sender.dumps_frames({})]
        )
        if form == "bundle blob":
            bundle = b"".join(bytes(memoryview(f).cast("B")) for f in bundle)
        out = receiver.unpack_frames_and_deserialize(bundle)[1]
    assert out.flags.writeable
    out[0] = 1
    assert out[0] == 1 and np.array_equal(out[1:], ARRAY[1:])


class _Recording(ComputeSerializer):
    """A subclass that overrides the encoding methods and calls the facade's."""

    def __init__(self, **kwargs: Any) -> None:
        self.calls = 0
        super().__init__(**kwargs)

    def dumps(self, obj: Any) -> bytes:
        self.calls += 1
        return super().dumps(obj)

    def dumps_frames(self, obj: Any) -> list[BufferLike]:
        self.calls += 1
        return super().dumps_frames(obj)


def _size(frames: list[BufferLike]) -> int:
    return sum(memoryview(f).nbytes for f in frames)


@pytest.mark.usefixtures("each_fast_path")
@pytest.mark.parametrize("coalesce_below", [0, 4096])
def test_subclass_overriding_dumps_keeps_compression(coalesce_below: int) -> None:
    plain = ComputeSerializer(compression="zstd", coalesce_below=coalesce_below)
    sub = _Recording(compression="zstd", coalesce_below=coalesce_below)
    blob = sub.dumps(ARRAY)
    frames = sub.dumps_frames(ARRAY)
    assert sub.calls == 2
    assert len(blob) == len(plain.dumps(ARRAY)) < ARRAY.nbytes
    assert _size(frames) == _size(plain.dumps_frames(ARRAY)) < ARRAY.nbytes
    assert np.array_equal(plain.loads(blob), ARRAY)
    assert np.array_equal(plain.loads_frames(frames), ARRAY)


@pytest.mark.usefixtures("each_fast_path")
def test_dumps_into_writes_the_dumps_blob_when_compressing() -> None:
    """``dumps_into`` writes "the ``dumps`` blob": compressed when ``dumps`` is."""
    serializer = ComputeSerializer(compression="zstd")
    blob = serializer.dumps(ARRAY)
    buffer = bytearray(ARRAY.nbytes + 4096)
    written = serializer.dumps_into(ARRAY, buffer)
    assert written == len(blob) < ARRAY.nbytes
    assert bytes(buffer[:written]) == blob
    out, used = serializer.loads_prefix(buffer)
    assert used == written and np.array_equal(out, ARRAY)


# -- only SerdeError escapes a decode ------------------------------------------------


@pytest.mark.usefixtures("each_fast_path")
def test_loads_prefix_of_a_non_contiguous_buffer_is_a_deserialization_error() -> None:
    serializer = ComputeSerializer()
    blob = serializer.dumps({"a": 1})
    strided = memoryview(blob * 2)[::2]
    assert not strided.c_contiguous
    with pytest.raises(DeserializationError, match="contiguous"):
        serializer.loads_prefix(strided)
    with pytest.raises(DeserializationError, match="contiguous"):
        serializer.loads_prefix(np.zeros((4, 64), dtype=np.uint8)[:, 0])


@pytest.mark.parametrize("payload", [None, 3, {"a": 1}, object()])
def test_strategy_codec_decode_of_no_payload_is_a_deserialization_error(
    payload: object,
) -> None:
    """``StrategyCodec``: "every failure is a ``SerdeError``", ``decode`` included."""
    codec = ComputeSerializer().data_codec
    with pytest.raises(DeserializationError, match="a payload is a str"):
        codec.decode(payload)


def test_strategy_codec_decode_takes_any_buffer_as_a_blob() -> None:
    """A blob is any buffer-protocol object, as ``loads`` takes."""
    codec = ComputeSerializer().data_codec
    blob = codec.dumps({"a": [1, 2]})
    assert codec.decode(np.frombuffer(blob, dtype=np.uint8)) == {"a": [1, 2]}
    assert codec.decode(bytearray(blob)) == {"a": [1, 2]}


# -- a setting changed on a live serializer -------------------------------------------


@pytest.mark.usefixtures("each_fast_path")
def test_the_allowlist_cannot_be_narrowed_in_place_and_ignored() -> None:
    """The allowlist's verdicts are made once per identifier, so the set a
    serializer reports must not be mutable: removing a strategy from it in place
    used to leave that strategy decoding on every path.  Assigning a new
    allowlist is the way, and it takes effect everywhere."""
    sender = ComputeSerializer()
    receiver = ComputeSerializer(
        allowed_deserializer_types=["CloudPickleCode", "DillCodeSource", "PickleData"]
    )
    allowed = receiver.allowed_deserializer_types
    code = type(receiver.code_serializer)
    assert code in allowed
    with pytest.raises(AttributeError):
        allowed.discard(code)  # type: ignore[attr-defined]
    receiver.allowed_deserializer_types = ["DillCodeSource", "PickleData"]
    assert code not in receiver.allowed_deserializer_types
    for decode in (
        lambda: receiver.deserialize(sender.serialize(_def)),
        lambda: receiver.loads(sender.dumps(_def)),
        lambda: receiver.loads_frames(sender.dumps_frames(_def)),
    ):
        with pytest.raises(DeserializationError, match="disabled"):
            decode()


# -- compression= with a codec instance ------------------------------------------------


class _Unregistered(FrameCodec):
    """A codec no registry knows (it would have to be found by id to decode)."""

    codec_id = 200
    name = "unregistered-zlib"

    def compress(self, data: memoryview, level: int | None = None) -> BufferLike:
        return zlib.compress(data)

    def decompress(self, data: memoryview, size: int) -> BufferLike:
        return zlib.decompressobj().decompress(data, size)


class _Impostor(_Unregistered):
    """Another algorithm under the id and name of freight's zstd."""

    codec_id = 1
    name = "zstd"


@pytest.mark.parametrize("codec", [_Unregistered(), _Impostor()])
def test_compression_refuses_a_codec_instance_the_registry_would_not_decode_with(
    codec: FrameCodec,
) -> None:
    """Messages are decoded by the registry's codec of their id, so encoding with
    any other instance made messages nobody could decode, this serializer
    included; it is refused when the setting is made, naming the codec."""
    with pytest.raises(SerdeError, match="not the registered"):
        ComputeSerializer(compression=codec)
    serializer = ComputeSerializer()
    with pytest.raises(SerdeError, match="not the registered"):
        serializer.compression = codec
    registered = codec_registry().resolve("zstd")
    sender = ComputeSerializer(compression=registered)
    assert np.array_equal(sender.loads(sender.dumps(ARRAY)), ARRAY)


@pytest.mark.parametrize("value", [None, "yes", 1])
def test_writable_takes_only_a_bool(value: object) -> None:
    with pytest.raises(TypeError, match="writable must be True or False"):
        ComputeSerializer(writable=value)  # type: ignore[arg-type]
    serde = ComputeSerializer()
    with pytest.raises(TypeError, match="writable"):
        serde.writable = value  # type: ignore[assignment]
    assert serde.writable is False


@pytest.mark.parametrize("value", [None, -1, 1.5, "64"])
def test_coalesce_below_takes_only_a_size(value: object) -> None:
    with pytest.raises(TypeError, match="coalesce_below must be an int >= 0"):
        ComputeSerializer(coalesce_below=value)  # type: ignore[arg-type]


def test_a_replaced_data_strategy_is_not_kept_alive() -> None:
    # Each assignment used to leave the old strategy's StrategyCodec (and so the
    # strategy) in the serializer: memory grew with every data_serializer =.
    import gc
    import weakref

    from freight.plugins.pickle_strategies import PickleData

    s = ComputeSerializer()
    first = PickleData()
    s.data_serializer = first
    assert s.loads(s.dumps({"a": 1})) == {"a": 1}
    gone = weakref.ref(first)
    del first
    for _ in range(3):
        s.data_serializer = PickleData()
    gc.collect()
    assert gone() is None
    assert s.loads(s.dumps({"a": 1})) == {"a": 1}
