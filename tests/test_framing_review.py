"""Regressions found reviewing the framing, the stream helpers and frame codecs
(issue 10): each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from freight.serialize import ComputeSerializer, DeserializationError
from freight.serialize.stream import coalesce_frames, split_frames

CODECS = ["zstd", "lz4"]
# Large and compressible: every codec compresses it under the default settings.
ARRAY = np.zeros(100_000)


@pytest.mark.parametrize("codec", CODECS)
def test_writable_arrays_from_compressed_buffers_are_writable(codec: str) -> None:
    # writable=True promised writable arrays; a compressed buffer came back as
    # the codec's read-only bytes.
    serde = ComputeSerializer(strategy_data="pickle", compression=codec, writable=True)
    frames = serde.dumps_frames(ARRAY)
    assert bytes(frames[0])[5] & 0x02  # the codec flag: really compressed
    for got in (serde.loads(serde.dumps(ARRAY)), serde.loads_frames(frames)):
        assert got.flags.writeable
        got[0] = 1.0
        assert got[0] == 1.0 and not got[1:].any()
    bundle = serde.pack_frames(
        [serde.dumps_frames(len), serde.dumps_frames((ARRAY,)), serde.dumps_frames({})]
    )
    _fn, args, _kwargs = serde.unpack_frames_and_deserialize(bundle)
    assert args[0].flags.writeable


@pytest.mark.parametrize("codec", CODECS)
def test_dumps_into_writes_the_compressed_dumps_blob(codec: str) -> None:
    serde = ComputeSerializer(strategy_data="pickle", compression=codec)
    blob = serde.dumps(ARRAY)
    target = bytearray(len(blob) + 100)  # far smaller than the uncompressed message
    written = serde.dumps_into(ARRAY, target)
    assert bytes(target[:written]) == blob
    got, used = serde.loads_prefix(target)
    assert used == written and np.array_equal(got, ARRAY)


@pytest.mark.parametrize(
    "buffer",
    [memoryview(bytes(200))[::2], np.zeros((8, 8))[:, ::2]],
    ids=["strided-memoryview", "strided-array"],
)
def test_loads_prefix_of_a_non_contiguous_buffer_raises_deserialization_error(
    buffer: object,
) -> None:
    with pytest.raises(DeserializationError, match="contiguous"):
        ComputeSerializer().loads_prefix(buffer)  # type: ignore[arg-type]


def test_a_leading_empty_buffer_is_an_empty_header_frame_never_skipped() -> None:
    # BINARY_FORMAT.md 5.4: an empty buffer is an empty frame, never skipped.  A
    # leading one was skipped when the message had buffers (or was a bundle), so
    # [b"", blob] decoded there and was refused for a buffer-free message.
    serde = ComputeSerializer()
    bundle = b"".join(
        bytes(f)
        for f in serde.pack_frames(
            [serde.dumps_frames(len), serde.dumps_frames((1,)), serde.dumps_frames({})]
        )
    )
    for blob in (serde.dumps(np.arange(10)), serde.dumps({"a": 1})):
        with pytest.raises(DeserializationError):
            serde.loads_frames([b"", blob])
        with pytest.raises(DeserializationError):
            split_frames([b"", blob])
    with pytest.raises(DeserializationError):
        serde.unpack_frames_and_deserialize([b"", bundle])


@pytest.mark.parametrize("below", [1, 64, 1 << 20])
def test_empty_frames_inside_coalesced_lists_still_decode(below: int) -> None:
    serde = ComputeSerializer(strategy_data="pickle")
    obj = [np.zeros(0), b"", np.arange(5000), np.zeros(0)]
    frames = serde.dumps_frames(obj)
    coalesced = coalesce_frames(frames, below)
    got = serde.loads_frames(coalesced)
    assert [len(x) for x in got] == [0, 0, 5000, 0]
    assert len(split_frames(coalesced)) == len(frames)
