"""The module named by this distribution's ``freight.codecs`` entry point.

freight imports it the first time a codec is looked up, and calls the hook.
"""

from __future__ import annotations

from freight.serialize import hookimpl
from freight.serialize.codecs import FrameCodec
from freight_zlib_codec.codec import ZlibCodec


@hookimpl
def freight_codecs() -> list[type[FrameCodec]]:
    return [ZlibCodec]
