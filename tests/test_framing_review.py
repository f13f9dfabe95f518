"""Regressions found reviewing the framing and the stream helpers (issue 10):
each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from freight.serialize import ComputeSerializer, DeserializationError
from freight.serialize.stream import coalesce_frames, split_frames


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
