"""How the facade's settings combine: frame compression with ``writable``, with a
subclass that overrides the encoding methods, and with ``dumps_into``."""

from __future__ import annotations

import pytest

from freight.serialize import ComputeSerializer

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
