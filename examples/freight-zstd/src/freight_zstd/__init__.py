"""freight-zstd: an example freight strategy plugin.

``ZstdPickle`` (identifier ``Z1``) is pickle protocol 5, compressed with Zstandard.
Installing this distribution is all it takes for freight to find it::

    from freight.serialize import ComputeSerializer

    serde = ComputeSerializer(strategy_data="Z1")   # or "zstd-pickle", or the class
"""

from freight_zstd.strategy import ZstdPickle, decompress_bounded

__all__ = ["ZstdPickle", "decompress_bounded"]
