"""A zstd frame cannot make ``ZstdPickle`` allocate more than it declares.

The bomb: a 32 KiB frame whose header declares 1 MiB (within the budget) and whose
body is 8,192 run-length blocks of 128 KiB each, 1 GiB in all.  A decoder that grows
its output as it streams builds the gigabyte before zstd's size check fails; a
bounded one stops at the declared size.  Memory is measured, not time.
"""

from __future__ import annotations

import pickle
import random
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import zstandard
from freight_zstd import ZstdPickle, decompress_bounded

from freight.serialize import ComputeSerializer, DeserializationError, binary
from freight.serialize.limits import Limits

MAGIC = b"\x28\xb5\x2f\xfd"
RLE_BLOCK = 1  # Block_Type of a run-length block: 1 byte, repeated Block_Size times
BLOCK_MAX = 128 << 10  # zstd's largest block


def rle_bomb(declared: int | None, blocks: int, block_size: int = BLOCK_MAX) -> bytes:
    """A zstd frame that declares ``declared`` content bytes (or no size) and holds
    ``blocks`` RLE blocks of ``block_size`` bytes each (each block: a 3-byte header
    and the byte to repeat).  Frame header: the magic, a descriptor (a 4-byte
    Frame_Content_Size, or none), and a window descriptor of 128 KiB."""
    descriptor = 0 if declared is None else 0b10 << 6
    size = b"" if declared is None else struct.pack("<I", declared)
    header = MAGIC + bytes([descriptor, 7 << 3]) + size
    last = blocks - 1
    return header + b"".join(
        ((block_size << 3) | (RLE_BLOCK << 1) | (i == last)).to_bytes(3, "little")
        + b"A"
        for i in range(blocks)
    )


def peak_of(function: Callable[[], Any]) -> tuple[int, BaseException | None]:
    """``function``'s traced peak memory, and what it raised."""
    tracemalloc.start()
    raised: BaseException | None = None
    try:
        function()
    except Exception as e:
        raised = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def test_the_bomb_is_what_it_claims() -> None:
    bomb = rle_bomb(1 << 20, 8192)
    assert len(bomb) < 33 << 10
    assert zstandard.frame_content_size(bomb) == 1 << 20
    # Its blocks hold what they say: the same blocks in a frame that declares no
    # size, streamed.
    small = rle_bomb(None, 16)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(small) == (
        b"A" * 16 * BLOCK_MAX
    )


@pytest.mark.parametrize("blocks", [64, 8192])
def test_a_frame_holding_more_than_it_declares_is_refused_within_the_cap(
    blocks: int,
) -> None:
    declared = 1 << 20
    bomb = rle_bomb(declared, blocks)  # 8 MiB, or 1 GiB
    peak, raised = peak_of(lambda: decompress_bounded(bomb, 64 << 20, "body"))
    assert isinstance(raised, DeserializationError)
    assert f"the {declared} bytes its zstd frame declares" in str(raised)
    assert "the limit is 67108864" in str(raised)
    assert peak < 4 * declared  # generous: the cap is the declared size


def test_the_bomb_in_a_message_is_refused_by_the_serializer() -> None:
    s = ComputeSerializer(strategy_data=ZstdPickle(), limits=Limits(max_size=64 << 20))
    bomb = rle_bomb(1 << 20, 512)  # 64 MiB of blocks
    prefix = binary.message_prefix(ZstdPickle.identifier, text_body=False)
    message = binary.message_header(prefix, bomb, []) + bomb
    peak, raised = peak_of(lambda: s.loads(message))
    assert isinstance(raised, DeserializationError)
    assert "declares" in str(raised)
    assert peak < 4 << 20


def test_a_declared_size_over_the_limit_is_refused_before_allocating() -> None:
    bomb = rle_bomb(1 << 30, 2)
    peak, raised = peak_of(lambda: decompress_bounded(bomb, 1 << 20, "body"))
    assert isinstance(raised, DeserializationError)
    assert "over the limit of 1048576" in str(raised)
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("mangle", "complaint"),
    [
        (lambda f: f + b"x", "unexpected bytes after"),
        (lambda f: f + f, "unexpected bytes after"),
        (lambda f: f[:-3], "truncated"),
        (lambda f: f[:-20], "truncated"),
        (lambda f: f[:-1] + bytes([f[-1] ^ 1]), "corrupt"),
        (lambda f: b"not zstd" + f, "not a zstd frame"),
    ],
)
def test_a_damaged_frame_is_a_clear_error(
    mangle: Callable[[bytes], bytes], complaint: str
) -> None:
    data = random.Random(0).randbytes(3000) + b"data" * 1000
    frame = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    assert decompress_bounded(frame, len(data), "body") == data
    with pytest.raises(DeserializationError, match=complaint):
        decompress_bounded(mangle(frame), 1 << 20, "body")


def test_a_frame_without_a_declared_size_is_refused() -> None:
    stream = zstandard.ZstdCompressor().compressobj()
    frame = stream.compress(pickle.dumps(1)) + stream.flush()
    assert zstandard.frame_content_size(frame) == -1
    with pytest.raises(DeserializationError, match="does not declare its size"):
        decompress_bounded(frame, 1 << 20, "body")


def test_a_frame_declaring_more_than_it_holds_costs_what_it_holds() -> None:
    frame = rle_bomb(512 << 20, 2)  # declares 512 MiB within the limit, holds 256 KiB
    peak, raised = peak_of(lambda: decompress_bounded(frame, 1 << 30, "body"))
    assert isinstance(raised, DeserializationError)
    assert "536870912" in str(raised)
    assert peak < 4 << 20  # nothing is allocated ahead of the data
