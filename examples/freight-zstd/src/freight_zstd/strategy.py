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
    return compressor.compress(memoryview(data))


#: Output is produced, and allocated, in steps of at most this many bytes.
STEP = 1 << 20


def decompress_bounded(frame: BufferLike, limit: int, what: str) -> bytes:
    """The content of the single zstd frame ``frame``, decompressed in steps with a
    hard output cap: never more than the size the frame declares (itself at most
    ``limit``), whatever its blocks hold, and never allocated ahead of the data.

    1. The frame must declare its content size (``write_content_size=True``, the
       default of ``ZstdCompressor``) and that size must be within ``limit``.
    2. Its block headers are walked (``_frame_length``): the frame must end
       exactly where ``frame`` does (no trailing bytes, not truncated).
    3. It is decompressed ``STEP`` bytes at a time, stopping as soon as the output
       passes the declared size: a frame that declares 1 MiB and holds a gigabyte
       of run-length blocks costs 1 MiB and one step.  A frame that declares more
       than it holds costs what it holds.  Checksums are verified by libzstd.

    Raises ``DeserializationError`` naming ``what`` and the limit.  Copy it, with
    ``_content_size`` and ``_frame_length``, for any zstd decoder of untrusted
    input.
    """
    frame = memoryview(frame).cast("B")  # bytes, a received frame's view ...
    declared = _content_size(frame, what)
    if declared > limit:
        raise DeserializationError(
            f"ZstdPickle: the {what} declares {declared} bytes decompressed, over"
            f" the limit of {limit} (max_decompressed_size or Limits.max_size)"
        )
    length = _frame_length(frame, what)
    if length != len(frame):
        raise DeserializationError(
            f"ZstdPickle: {len(frame) - length} unexpected bytes after the {what}'s"
            " zstd frame"
        )
    reader = zstandard.ZstdDecompressor().stream_reader(frame)
    parts: list[bytes] = []
    size = 0
    try:
        while part := reader.read(min(STEP, declared + 1 - size)):
            size += len(part)
            if size > declared:
                raise DeserializationError(
                    f"ZstdPickle: the {what} holds more than the {declared} bytes its"
                    f" zstd frame declares (the output cap; the limit is {limit})"
                )
            parts.append(part)
    except zstandard.ZstdError as e:
        raise DeserializationError(
            f"ZstdPickle: the {what} is corrupt, or holds more than the {declared}"
            f" bytes its zstd frame declares (the output cap; the limit is {limit}):"
            f" {e}"
        ) from e
    if size != declared:
        raise DeserializationError(
            f"ZstdPickle: the {what} decompressed to {size} bytes; its zstd frame"
            f" declares {declared}"
        )
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _content_size(frame: memoryview, what: str) -> int:
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


def _frame_length(view: memoryview, what: str) -> int:
    """How many bytes the zstd frame at the start of ``frame`` takes: its header,
    its blocks (each a 3-byte little-endian header: bit 0 last block, bits 1-2
    type, bits 3-23 size; raw and compressed blocks carry ``size`` bytes, a
    run-length block one) and its 4-byte checksum if the header says so.  ``view``
    is the frame's bytes (``memoryview(frame).cast("B")``).  One step
    per block, reading no content; refuses a frame cut short."""
    try:
        offset = zstandard.frame_header_size(view)
    except zstandard.ZstdError as e:
        raise DeserializationError(
            f"ZstdPickle: the {what} is not a zstd frame: {e}"
        ) from e
    has_checksum = view[4] & 0b100  # the frame header descriptor's checksum flag
    last = False
    while not last:
        if offset + 3 > len(view):
            raise DeserializationError(f"ZstdPickle: the {what} is truncated")
        header = int.from_bytes(view[offset : offset + 3], "little")
        last, kind, size = bool(header & 1), (header >> 1) & 3, header >> 3
        if kind == 3 or size > zstandard.BLOCKSIZE_MAX:
            raise DeserializationError(
                f"ZstdPickle: the {what} has a malformed zstd block at byte {offset}"
            )
        offset += 3 + (1 if kind == 1 else size)
    offset += 4 if has_checksum else 0
    if offset > len(view):
        raise DeserializationError(f"ZstdPickle: the {what} is truncated")
    return offset


def _unpickle(data: bytes, buffers: list[bytes]) -> Any:
    try:
        return pickle.loads(data, buffers=buffers)
    except Exception as e:
        # Anything may come out of a corrupt pickle (EOFError, ValueError, KeyError,
        # UnpicklingError, an import error ...): report it as what it is.
        raise DeserializationError(
            f"ZstdPickle: the pickle stream does not load: {type(e).__name__}: {e}"
        ) from e
