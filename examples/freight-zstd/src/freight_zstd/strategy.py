"""``ZstdPickle`` (identifier ``Z1``): pickle protocol 5, compressed with Zstandard.

In the text envelope the whole pickle (large buffers in-band) is one zstd frame,
which ``BytesStrategy`` carries base64-encoded.  In the binary envelope the in-band
pickle stream is one zstd frame (the body) and each out-of-band buffer that pickle
protocol 5 hands over (numpy arrays, ``PickleBuffer`` s) is compressed
into a frame of its own, so a large array is compressed straight from its memory and
never copied into the pickle stream first.

Decoding treats every length as hostile (``decompress_bounded``).  Each zstd frame
must declare its decompressed size; a size over the budget
(``max_decompressed_size``, capped by the serializer's decode ``Limits``, shared by
all the frames of one message) is refused before anything is allocated.  The frame
is then decompressed into a buffer of exactly the declared size, which libzstd
never writes past: a frame that declares 1 MiB but holds a gigabyte of
run-length blocks fails when that buffer is full, having allocated 1 MiB.  (The
output of a streaming decompressor, ``decompressobj().decompress``, has no bound
but the blocks themselves.)  A content checksum catches a
corrupted body.  Every failure is a ``DeserializationError`` that says what was
wrong.

Properties, declared honestly: ``PORTABLE`` (protocol 5 reads the same on every
Python from 3.8).  Not ``SAFE_FOR_UNTRUSTED``: unpickling runs code named by the
payload.  Not ``ZERO_COPY``: buffers are compressed, so they are copied both ways.
Not ``DETERMINISTIC``: pickle's output depends on object identity (two equal
strings, shared or not, pickle differently) and on set iteration order.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

import zstandard

from freight.serialize import BytesStrategy, DeserializationError, Property
from freight.serialize.binary import BufferLike
from freight.serialize.limits import active_limits


class ZstdPickle(BytesStrategy):
    """Python data via ``pickle`` protocol 5, compressed with Zstandard."""

    identifier = "Z1\n"
    for_code = False
    name = "zstd-pickle"
    properties = Property.PORTABLE
    #: Recorded in binary headers, so a decode failure can say what made a payload.
    libraries = ("zstandard",)

    #: Zstandard compression level (1 fastest ... 19 smallest).
    level: ClassVar[int] = 3
    #: The most bytes one message may decompress to, over all its frames (and never
    #: more than the serializer's ``Limits.max_size``).
    max_decompressed_size: ClassVar[int] = 1 << 30

    # -- the text envelope (BytesStrategy base64-encodes these bytes) ---------------

    def encode(self, obj: Any) -> bytes:
        return _compress(pickle.dumps(obj, protocol=5), self.level)

    def decode(self, data: bytes) -> Any:
        return _unpickle(decompress_bounded(data, self._budget(), "body"), [])

    # -- the binary envelope: out-of-band buffers as frames of their own ----------

    def to_frames(self, obj: Any) -> tuple[BufferLike, list[BufferLike]]:
        buffers: list[pickle.PickleBuffer] = []
        inband = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        return (
            _compress(inband, self.level),
            [_compress(b.raw(), self.level) for b in buffers],
        )

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        budget = self._budget()
        raw_buffers = []
        for i, frame in enumerate(buffers):
            raw = decompress_bounded(frame, budget, f"buffer frame {i}")
            budget -= len(raw)
            raw_buffers.append(raw)
        return _unpickle(decompress_bounded(body, budget, "body"), raw_buffers)

    def _budget(self) -> int:
        # The limits of the ComputeSerializer decoding right now (configurable).
        return min(self.max_decompressed_size, active_limits().max_size)


def _compress(data: BufferLike, level: int) -> bytes:
    # A compressor is cheap to make and not thread-safe, and strategies are shared
    # by every thread: one per call.
    compressor = zstandard.ZstdCompressor(
        level=level, write_checksum=True, write_content_size=True
    )
    return compressor.compress(data)


def decompress_bounded(frame: BufferLike, limit: int, what: str) -> bytes:
    """The content of the single zstd frame ``frame``: at most ``limit`` bytes are
    ever allocated for it, whatever the frame holds.

    The frame must declare its content size (``write_content_size=True``, the
    default of ``ZstdCompressor``), and that size must be within ``limit``; both
    are checked before anything is allocated.  ``ZstdDecompressor.decompress``
    then allocates exactly the declared size and has libzstd decompress into it
    in one call, which stops with an error as soon as the output would not fit,
    so the declared size is a hard cap on the output.  Trailing bytes, a
    truncated frame, a bad checksum and an output shorter than declared are
    refused too.  Raises ``DeserializationError`` naming ``what`` and the limit.

    Copy it, with ``_content_size``, for any zstd decoder of untrusted input.
    """
    declared = _content_size(frame, what)
    if declared > limit:
        raise DeserializationError(
            f"ZstdPickle: the {what} declares {declared} bytes decompressed, over"
            f" the limit of {limit} (max_decompressed_size or Limits.max_size)"
        )
    try:
        # One call into a buffer of exactly ``declared`` bytes.
        return zstandard.ZstdDecompressor().decompress(frame, allow_extra_data=False)
    except zstandard.ZstdError as e:
        raise DeserializationError(
            f"ZstdPickle: the {what} does not decompress to the {declared} bytes its"
            f" zstd frame declares (the output cap; the limit is {limit}): it is"
            f" corrupt, truncated, followed by other bytes or holds more: {e}"
        ) from e


def _content_size(frame: BufferLike, what: str) -> int:
    """The content size ``frame``'s zstd header declares; refuses a frame that is
    not zstd or does not declare it."""
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as e:
        raise DeserializationError(
            f"ZstdPickle: the {what} is not a zstd frame: {e}"
        ) from e
    if size < 0:
        raise DeserializationError(
            f"ZstdPickle: the {what}'s zstd frame does not declare its size"
        )
    return size


def _unpickle(data: bytes, buffers: list[bytes]) -> Any:
    try:
        return pickle.loads(data, buffers=buffers)
    except Exception as e:
        # Anything may come out of a corrupt pickle (EOFError, ValueError, KeyError,
        # UnpicklingError, an import error ...): report it as what it is.
        raise DeserializationError(
            f"ZstdPickle: the pickle stream does not load: {type(e).__name__}: {e}"
        ) from e
