"""freight's built-in frame codecs: zstd (id 1) and lz4 (id 2).

Each is registered through the ``freight.codecs`` entry-point group exactly as a
third-party codec is (see freight's ``pyproject.toml``), one entry point per codec,
so that a missing library (``pip install 'freight[compress]'``) makes only that
codec unavailable.  The libraries are imported when a registry instantiates the
codec, not when this module is imported.

Wire forms (BINARY_FORMAT.md 3.4):

* ``zstd``: one Zstandard frame (RFC 8878) with its content size; no trailing bytes.
* ``lz4``: one raw LZ4 *block* (no frame, no size prefix); its size is the decoded
  length in the codec table.  Frames of 2 GiB or more are not compressed (the block
  format's limit).

Both decompress in one shot into a buffer of exactly the declared length, so a frame
that expands further (a compression bomb) fails at that length, having allocated
only it: zstd's one-shot decoder and ``LZ4_decompress_safe`` never write past their
destination buffer.
"""

from __future__ import annotations

import threading
from typing import Any

from freight.serialize import hookimpl
from freight.serialize.binary import BufferLike
from freight.serialize.codecs import FrameCodec
from freight.serialize.errors import DeserializationError

#: The lz4 block format's largest input (``LZ4_MAX_INPUT_SIZE``).
LZ4_MAX_INPUT = 0x7E000000


class ZstdCodec(FrameCodec):
    """Zstandard via ``zstandard``: a good ratio at a fast pace (level 3 default)."""

    codec_id = 1
    name = "zstd"
    libraries = ("zstandard",)

    def __init__(self) -> None:
        import zstandard

        self._zstd: Any = zstandard
        # Contexts are not thread-safe and cost more to make (50-80 us) than a small
        # frame costs to compress: one per thread, by level and by window.
        self._local = threading.local()

    def _context(self, kind: str, key: int) -> Any:
        cache: dict[tuple[str, int], Any] = self._local.__dict__.setdefault("ctx", {})
        context = cache.get((kind, key))
        if context is None:
            if kind == "c":
                context = self._zstd.ZstdCompressor(level=key, write_content_size=True)
            else:
                context = self._zstd.ZstdDecompressor(max_window_size=key)
            cache[kind, key] = context
        return context

    def compress(self, data: memoryview, level: int | None = None) -> BufferLike:
        return bytes(self._context("c", 3 if level is None else level).compress(data))

    def decompress(self, data: memoryview, size: int) -> BufferLike:
        zstd = self._zstd
        declared = zstd.frame_content_size(data)
        if declared not in (-1, size):
            raise DeserializationError(
                f"the zstd frame declares {declared} bytes of content, the message"
                f" header {size}"
            )
        # One shot into a buffer of `size` bytes (the frame's own declared size,
        # checked equal, or max_output_size): never more is written.  The window a
        # streamed frame may ask for is capped too: an honest frame's window is at
        # most its content size rounded up to a power of two.
        window = 1 << min(max(10, (size - 1).bit_length()), 31)
        out = self._context("d", window).decompress(
            data, max_output_size=size, allow_extra_data=False
        )
        return bytes(out)


class Lz4Codec(FrameCodec):
    """LZ4 block format via ``lz4``: the fastest, for a smaller gain."""

    codec_id = 2
    name = "lz4"
    libraries = ("lz4",)

    def __init__(self) -> None:
        import lz4.block

        self._block: Any = lz4.block

    def compress(self, data: memoryview, level: int | None = None) -> BufferLike:
        if data.nbytes >= LZ4_MAX_INPUT:
            return data  # incompressible by this format: sent as it is
        if level is None or level <= 0:
            return bytes(self._block.compress(data, store_size=False))
        return bytes(
            self._block.compress(
                data, mode="high_compression", compression=level, store_size=False
            )
        )

    def decompress(self, data: memoryview, size: int) -> BufferLike:
        # LZ4_decompress_safe into `size` bytes: fails rather than write past them.
        out = self._block.decompress(data, uncompressed_size=size)
        if len(out) != size:
            raise DeserializationError(
                f"the lz4 block holds {len(out)} bytes, the message header {size}"
            )
        return bytes(out)


class ZstdPlugin:
    """The ``zstd`` entry point."""

    @staticmethod
    @hookimpl
    def freight_codecs() -> list[type[FrameCodec]]:
        return [ZstdCodec]


class Lz4Plugin:
    """The ``lz4`` entry point."""

    @staticmethod
    @hookimpl
    def freight_codecs() -> list[type[FrameCodec]]:
        return [Lz4Codec]
