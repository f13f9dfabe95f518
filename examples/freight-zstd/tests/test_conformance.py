"""ZstdPickle against freight's conformance kit: the one line is all it takes."""

from freight_zstd import ZstdPickle

from freight.testing import large_buffers, picklable_values, strategy_conformance

TestZstdPickle = strategy_conformance(
    ZstdPickle,
    values=picklable_values() | large_buffers(kinds=["bytes", "bytearray", "numpy"]),
)
