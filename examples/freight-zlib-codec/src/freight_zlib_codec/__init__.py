"""freight-zlib-codec: an example freight frame codec plugin.

``ZlibCodec`` (codec id 64, name ``"zlib"``) compresses binary frames with DEFLATE
in the zlib container.  Installing this distribution is all it takes::

    from freight.serialize import ComputeSerializer

    serde = ComputeSerializer(compression="zlib")
"""

from freight_zlib_codec.codec import ZlibCodec

__all__ = ["ZlibCodec"]
