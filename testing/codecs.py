"""Conformance checks for frame codecs (``freight.serialize.codecs.FrameCodec``).

One line in a codec author's test module runs them::

    from freight.testing.codecs import codec_conformance

    TestZlibCodec = codec_conformance(ZlibCodec)

What is checked: the class is well formed (id in range, a name, no-argument
constructor); ``decompress(compress(x), len(x)) == x`` for arbitrary and for
compressible data, at every level in ``levels``; a message compressed with the codec
round-trips through a ``ComputeSerializer`` in both binary forms and in a bundle; a
*compression bomb* (a frame that expands to ``bomb_factor`` times the length it is
asked for) raises, allocating at most a few times that length (``tracemalloc``);
asking for more bytes than the frame holds raises; arbitrary bytes raise or give
exactly the length asked for, never more.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freight.serialize import ComputeSerializer, hookimpl
from freight.serialize.binary import BufferLike, nbytes
from freight.serialize.codecs import (
    BUILTIN_IDS,
    THIRD_PARTY_IDS,
    CodecRegistry,
    FrameCodec,
    FrameCodecs,
)
from freight.testing.assertions import traced

__all__ = ["CodecConformance", "codec_conformance", "compressible_bytes"]


def compressible_bytes(max_size: int = 200_000) -> st.SearchStrategy[bytes]:
    """Bytes with repetition in them (a short random pattern, repeated)."""
    return st.builds(
        lambda pattern, count, tail: pattern * count + tail,
        st.binary(min_size=1, max_size=64),
        st.integers(1, max_size // 64),
        st.binary(max_size=64),
    )


class CodecConformance:
    """The checks; ``codec_conformance`` makes a subclass for one codec."""

    codec: ClassVar[type[FrameCodec]]
    #: Compression levels to round-trip at (``None``: the codec's default).
    levels: ClassVar[tuple[int | None, ...]] = (None,)
    #: The length a bomb frame is decoded to, and how much further it expands.
    bomb_size: ClassVar[int] = 1 << 20
    bomb_factor: ClassVar[int] = 64
    #: Peak memory a refused bomb may cost, as a multiple of ``bomb_size``.
    bomb_memory_factor: ClassVar[int] = 4
    max_examples: ClassVar[int] = int(os.environ.get("FREIGHT_KIT_EXAMPLES", "50"))
    #: Whether the codec is a third party's (ids 64-254) or freight's (1-63).
    third_party: ClassVar[bool] = True

    def make(self) -> FrameCodec:
        return self.codec()

    def test_class_is_well_formed(self) -> None:
        ids = THIRD_PARTY_IDS if self.third_party else BUILTIN_IDS
        assert self.codec.codec_id in ids, (
            f"{self.codec.__name__}.codec_id {self.codec.codec_id} is outside"
            f" {ids.start}-{ids.stop - 1}"
        )
        assert isinstance(self.codec.name, str) and self.codec.name
        assert isinstance(self.make(), FrameCodec)

    def _roundtrip(self, data: bytes) -> None:
        codec = self.make()
        for level in self.levels:
            packed = codec.compress(memoryview(data), level)
            out = codec.decompress(memoryview(packed).cast("B"), len(data))
            assert nbytes(out) == len(data)
            assert bytes(out) == data, f"level {level}: decoded bytes differ"

    def test_roundtrip_arbitrary_bytes(self) -> None:
        @settings(max_examples=self.max_examples, deadline=None)
        @given(st.binary(max_size=5000))
        def check(data: bytes) -> None:
            self._roundtrip(data)

        check()

    def test_roundtrip_compressible_bytes(self) -> None:
        @settings(
            max_examples=self.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(compressible_bytes())
        def check(data: bytes) -> None:
            self._roundtrip(data)

        check()

    def test_roundtrip_through_a_serializer(self) -> None:
        codec = self.make()
        registry = CodecRegistry(entry_point_group=None)

        class Plugin:
            @staticmethod
            @hookimpl
            def freight_codecs() -> list[type[FrameCodec]]:
                return [type(codec)]

        registry.register_plugin(Plugin, "conformance")
        value = {"text": "freight " * 10_000, "blob": bytes(range(256)) * 400}
        serde = ComputeSerializer(
            compression=FrameCodecs(codec.name, min_size=0, registry=registry),
        )
        frames = serde.dumps_frames(value)
        assert bytes(memoryview(frames[0])[5:6])[0] & 0x02, "no frame was compressed"
        assert serde.loads_frames(frames) == value
        assert serde.loads(b"".join(bytes(f) for f in frames)) == value
        bundle = serde.pack_frames(
            [
                serde.dumps_frames(len),
                serde.dumps_frames((value,)),
                serde.dumps_frames({}),
            ]
        )
        fn, args, kwargs = serde.unpack_frames_and_deserialize(bundle)
        assert (fn, args, kwargs) == (len, (value,), {})

    def test_bomb_is_refused_with_bounded_memory(self) -> None:
        codec = self.make()
        packed = bytes(
            codec.compress(memoryview(bytes(self.bomb_size * self.bomb_factor)))
        )
        out: BufferLike | None = None
        with traced() as memory:
            try:
                out = codec.decompress(memoryview(packed), self.bomb_size)
            except Exception:
                pass
        # Returning the declared length of a longer frame is a failure as well:
        # the frame does not hold exactly that many bytes.
        assert out is None, (
            f"a frame expanding to {self.bomb_size * self.bomb_factor} bytes decoded"
            f" to {nbytes(out)} bytes when {self.bomb_size} were declared"
        )
        limit = self.bomb_memory_factor * self.bomb_size + len(packed)
        assert memory.peak <= limit, (
            f"refusing a bomb cost {memory.peak} bytes at peak, over {limit}"
        )

    def test_too_few_bytes_are_refused(self) -> None:
        codec = self.make()
        data = b"freight" * 1000
        packed = codec.compress(memoryview(data))
        with pytest.raises(Exception):  # noqa: B017
            codec.decompress(memoryview(packed).cast("B"), len(data) + 1)

    def test_arbitrary_input_never_gives_more_than_asked(self) -> None:
        codec = self.make()

        @settings(max_examples=self.max_examples, deadline=None)
        @given(st.binary(max_size=2000), st.integers(0, 100_000))
        def check(data: bytes, size: int) -> None:
            try:
                out = codec.decompress(memoryview(data), size)
            except Exception:
                return
            assert nbytes(out) == size

        check()


def codec_conformance(
    codec: type[FrameCodec], **options: Any
) -> type[CodecConformance]:
    """The conformance test class for ``codec``; assign it in a test module.
    ``options`` set ``CodecConformance`` attributes (``levels``, ``bomb_size``,
    ``bomb_factor``, ``bomb_memory_factor``, ``max_examples``, ``third_party``)."""
    unknown = sorted(
        k
        for k in options
        if k.startswith("_") or not hasattr(CodecConformance, k) or k == "codec"
    )
    if unknown:
        raise TypeError(f"codec_conformance() got unknown options {unknown}")
    import sys

    module = sys._getframe(1).f_globals.get("__name__", __name__)
    namespace = {"codec": codec, "__module__": module, **options}
    return type(f"Test{codec.__name__}Conformance", (CodecConformance,), namespace)
