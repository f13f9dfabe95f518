"""Installed, the codec is found through the ``freight.codecs`` entry point."""

from freight_zlib_codec import ZlibCodec

from freight.serialize import ComputeSerializer
from freight.serialize.codecs import CodecRegistry


def test_the_entry_point_registers_the_codec() -> None:
    registry = CodecRegistry()  # reads the freight.codecs group afresh
    assert isinstance(registry.resolve("zlib"), ZlibCodec)
    status = {s.name: s for s in registry.plugin_statuses()}["zlib"]
    assert status.state == "loaded"
    assert status.distribution.startswith(("freight-zlib-codec", "freight_zlib_codec"))


def test_messages_compressed_with_it_round_trip() -> None:
    serde = ComputeSerializer(compression="zlib")
    value = {"text": "hello freight " * 10_000}
    blob = serde.dumps(value)
    assert len(blob) < 5_000
    assert ComputeSerializer().loads(blob) == value
