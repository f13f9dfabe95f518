"""ZlibCodec against freight's codec conformance checks: one line."""

from freight_zlib_codec import ZlibCodec

from freight.testing.codecs import codec_conformance

TestZlibCodec = codec_conformance(ZlibCodec, levels=(None, 1, 9))
