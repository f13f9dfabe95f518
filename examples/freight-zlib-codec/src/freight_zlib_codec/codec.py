"""``ZlibCodec`` (codec id 64): DEFLATE in the zlib container (RFC 1950/1951).

The framework hands ``decompress`` the frame and the decoded length its message
header declares, already checked against the serializer's ``Limits``.  The codec's
one duty on the way in is never to produce more than that, whatever the frame
holds: ``decompressobj().decompress(data, max_length)`` stops at ``max_length``
output bytes, so a frame that expands further (a compression bomb) leaves input
unconsumed and is refused, having allocated ``size`` bytes at most.
"""

from __future__ import annotations

import zlib

from freight.serialize import DeserializationError
from freight.serialize.binary import BufferLike
from freight.serialize.codecs import FrameCodec


class ZlibCodec(FrameCodec):
    """DEFLATE (zlib) per frame; level 1-9, default 6."""

    #: Third-party codec ids are 64-254; pick a free one.
    codec_id = 64
    name = "zlib"

    def compress(self, data: memoryview, level: int | None = None) -> BufferLike:
        return zlib.compress(data, 6 if level is None else level)

    def decompress(self, data: memoryview, size: int) -> BufferLike:
        stream = zlib.decompressobj()
        try:
            # At most size + 1 bytes out (max_length 0 would mean "unlimited"):
            # one byte more than declared is enough to know the frame lies.
            out = stream.decompress(data, size + 1)
        except zlib.error as e:
            raise DeserializationError(f"zlib: corrupt frame: {e}") from e
        if len(out) > size:
            raise DeserializationError(
                f"zlib: the frame expands beyond the {size} bytes declared"
            )
        if not stream.eof or stream.unused_data:
            raise DeserializationError(
                "zlib: the frame is truncated or has bytes after its end"
            )
        if len(out) != size:
            raise DeserializationError(
                f"zlib: the frame holds {len(out)} bytes, {size} declared"
            )
        return out
