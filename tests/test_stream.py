"""The binary envelope on streams and in shared buffers (``serialize/stream.py``):
the limit-checked header reader, the incremental reader over real asyncio
sockets, hostile and truncated peers, one-frame and coalesced frame lists."""

from __future__ import annotations

import asyncio
import itertools
import struct
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    FrameReader,
    Limits,
    Policy,
    read_frames,
    read_layout,
    stream,
)
from freight.serialize.binary import MESSAGE_MAGIC

SAMPLES: list[Any] = [
    {"a": 1, "b": [1, 2, 3]},
    "text" * 10,
    np.arange(10.0),
    [np.arange(3, dtype=np.int32), np.ones((2, 3))],
    b"x" * 70_000,
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    return bool(a == b)


def hostile_header(*, buffers: int = 0, body: int = 0, metadata: int = 0) -> bytes:
    """A valid fixed header announcing the given lengths."""
    return (
        MESSAGE_MAGIC
        + bytes([1, 0, 3, 12])
        + b"11\n\x00"
        + struct.pack("<IQI4x", buffers, body, metadata)
    )


# -- read_layout ---------------------------------------------------------------------


def test_read_layout_knows_a_buffer_free_message_from_its_first_32_bytes() -> None:
    blob = ComputeSerializer().dumps({"a": 1})
    layout = read_layout(blob[:32])
    assert layout.total == len(blob)
    assert layout.frame_lengths is not None
    assert sum(layout.frame_lengths) == len(blob)
    assert layout.remaining_header == layout.header_size - 32


def test_read_layout_asks_for_the_length_table_then_gives_every_frame() -> None:
    serde = ComputeSerializer()
    frames = serde.dumps_frames(np.arange(10.0))
    blob = b"".join(frames)
    first = read_layout(blob[:32])
    assert first.total is None and first.frame_lengths is None
    assert first.table_end > 32
    full = read_layout(blob[: first.table_end])
    assert full.frame_lengths == tuple(memoryview(f).nbytes for f in frames)
    assert full.total == len(blob)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (hostile_header(body=2**60), "max_size"),
        (hostile_header(metadata=2**31), "max_size"),
        (hostile_header(buffers=2**32 - 1), "max_frames"),
    ],
    ids=["huge-body", "huge-metadata", "huge-buffer-count"],
)
def test_read_layout_refuses_hostile_lengths_from_the_fixed_header(
    header: bytes, match: str
) -> None:
    with pytest.raises(DeserializationError, match=match):
        read_layout(header, Limits(max_size=2**30))


def test_read_layout_checks_the_total_of_the_buffer_lengths() -> None:
    head = hostile_header(buffers=2) + struct.pack("<QQ", 10, 2**40)
    with pytest.raises(DeserializationError, match="max_size"):
        read_layout(head, Limits(max_size=2**20))


def test_read_layout_rejects_what_is_not_a_message() -> None:
    with pytest.raises(DeserializationError, match="truncated header"):
        read_layout(MESSAGE_MAGIC + b"\x01")
    with pytest.raises(DeserializationError, match="looks like a text payload"):
        read_layout(b"11\n" + b"1" * 40)


# -- FrameReader ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=12))
def test_frame_reader_yields_the_same_messages_whatever_the_chunking(
    cuts: list[int],
) -> None:
    serde = ComputeSerializer()
    bundle = b"".join(serde.pack_frames([serde.dumps_frames(x) for x in SAMPLES[:3]]))
    wire = b"".join(serde.dumps(x) for x in SAMPLES) + bundle
    points = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    reader = FrameReader()
    units = []
    for start, end in itertools.pairwise(points):
        units.extend(reader.feed(wire[start:end]))
    reader.eof()
    assert len(units) == len(SAMPLES) + 1
    for unit, expected in zip(units, SAMPLES, strict=False):
        assert not stream.is_bundle(unit)
        assert same(serde.loads_frames(unit), expected)
    assert stream.is_bundle(units[-1])
    assert all(
        same(a, b)
        for a, b in zip(
            serde.unpack_frames_and_deserialize(units[-1]), SAMPLES[:3], strict=False
        )
    )


def test_frame_reader_messages_are_writable_memory() -> None:
    serde = ComputeSerializer()
    (unit,) = FrameReader().feed(serde.dumps(np.arange(4.0)))
    array = serde.loads_frames(unit)
    array[0] = 7.0  # a bytes blob would give a read-only array
    assert array[0] == 7.0


def test_frame_reader_reports_a_stream_truncated_inside_a_message() -> None:
    blob = ComputeSerializer().dumps(np.arange(100.0))
    for cut in (2, 20, 40, len(blob) - 1):
        reader = FrameReader()
        assert reader.feed(blob[:cut]) == []
        with pytest.raises(DeserializationError, match="truncated stream"):
            reader.eof()
    FrameReader().eof()  # between units: a clean end


def test_frame_reader_fails_for_good_after_a_bad_header() -> None:
    reader = FrameReader()
    with pytest.raises(DeserializationError, match="not a binary message"):
        reader.feed(b"garbage" * 10)
    with pytest.raises(DeserializationError, match="not a binary message"):
        reader.feed(ComputeSerializer().dumps(1))


def test_frame_reader_checks_the_size_of_a_whole_bundle() -> None:
    serde = ComputeSerializer()
    bundle = b"".join(serde.pack_frames([serde.dumps_frames(b"x" * 600)] * 3))
    with pytest.raises(DeserializationError, match=r"the bundle .* max_size=1000"):
        FrameReader(Limits(max_size=1000)).feed(bundle)


def test_hostile_header_is_refused_before_anything_is_allocated() -> None:
    # 1 TiB announced: refused from the 32-byte header, under the default limits.
    header = hostile_header(body=2**40)
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        reader = FrameReader()
        with pytest.raises(DeserializationError, match="max_size"):
            reader.feed(header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_an_announced_size_within_limits_is_not_allocated_ahead_of_the_bytes() -> None:
    # 3 GiB announced (under the default 4 GiB max_size), 64 KiB sent: the
    # reader holds what it received, not what the peer announced.
    header = hostile_header(body=3 * 2**30)
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        reader = FrameReader()
        reader.feed(header)
        for _ in range(16):
            reader.feed(bytes(4096))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    with pytest.raises(DeserializationError, match="truncated stream"):
        reader.eof()


# -- real asyncio streams --------------------------------------------------------------


async def _serve(handler: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


def test_read_frames_over_a_real_asyncio_connection() -> None:
    serde = ComputeSerializer()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (unit := await read_frames(reader)) is not None:
            if stream.is_bundle(unit):
                reply: Any = serde.unpack_frames_and_deserialize(unit)
            else:
                reply = serde.loads_frames(unit)
            writer.writelines(serde.dumps_frames(reply))
            await writer.drain()
        writer.close()

    async def main() -> list[Any]:
        server, port = await _serve(echo)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got = []
            for obj in SAMPLES:
                writer.writelines(serde.dumps_frames(obj))
                await writer.drain()
                unit = await read_frames(reader)
                assert unit is not None
                got.append(serde.loads_frames(unit))
            bundle = serde.pack_frames(
                [serde.dumps_frames(len), serde.dumps_frames((1,))]
            )
            bundle += serde.dumps_frames({})
            bundle[0] = struct.pack("<4sB3xI4x", b"\x93FRB", 1, 3)
            writer.writelines(bundle)
            unit = await read_frames(reader)
            assert unit is not None
            got.append(serde.loads_frames(unit))
            writer.close()
            await writer.wait_closed()
            return got

    got = asyncio.run(main())
    assert all(same(a, b) for a, b in zip(got, SAMPLES, strict=False))
    assert got[-1] == [len, (1,), {}]


def _hostile_exchange(payload: bytes, limits: Limits) -> BaseException | None:
    """Run a server reading with ``read_frames`` against a peer that sends
    ``payload`` and closes; what the server's read raised."""
    seen: list[BaseException | None] = []

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await read_frames(reader, limits)
            seen.append(None)
        except BaseException as error:
            seen.append(error)
        writer.close()

    async def main() -> None:
        server, port = await _serve(handle)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            for _ in range(200):
                if seen:
                    return
                await asyncio.sleep(0.01)

    asyncio.run(main())
    assert seen, "the server never finished reading"
    return seen[0]


def test_a_hostile_peer_announcing_a_huge_frame_is_refused_before_allocation() -> None:
    tracemalloc.start()
    try:
        error = _hostile_exchange(hostile_header(body=2**40), Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, DeserializationError)
    assert "max_size" in str(error)
    assert peak < 8 << 20


def test_a_truncated_stream_is_reported_not_hung_on() -> None:
    blob = ComputeSerializer().dumps(np.arange(1000.0))
    error = _hostile_exchange(blob[:-10], Limits())
    assert isinstance(error, DeserializationError)
    assert "truncated stream" in str(error)


def test_a_buffered_protocol_with_frame_reader_receives_messages() -> None:
    serde = ComputeSerializer()
    received: list[Any] = []

    class Receiver(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.frames = FrameReader()

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.frames.get_buffer(sizehint)

        def buffer_updated(self, nbytes: int) -> None:
            for unit in self.frames.buffer_updated(nbytes):
                received.append(serde.loads_frames(unit))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Receiver, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            big = np.arange(300_000.0)  # larger than the reader's scratch area
            for obj in [*SAMPLES, big]:
                writer.writelines(serde.dumps_frames(obj))
            await writer.drain()
            for _ in range(500):
                if len(received) == len(SAMPLES) + 1:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            await writer.wait_closed()

    asyncio.run(main())
    assert len(received) == len(SAMPLES) + 1
    assert all(same(a, b) for a, b in zip(received, SAMPLES, strict=False))
    assert np.array_equal(received[-1], np.arange(300_000.0))


# -- one-frame and coalesced frame lists -----------------------------------------------


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: type(o).__name__)
def test_a_one_frame_list_is_the_blob_form(obj: Any) -> None:
    serde = ComputeSerializer()
    assert same(serde.loads_frames([serde.dumps(obj)]), obj)
    assert same(serde.loads_frames([bytearray(serde.dumps(obj))]), obj)


def test_coalesce_below_makes_a_small_message_one_frame() -> None:
    serde = ComputeSerializer(coalesce_below=1024)
    frames = serde.dumps_frames({"a": 1})
    assert len(frames) == 1
    assert frames[0] == ComputeSerializer().dumps({"a": 1})
    assert serde.loads_frames(frames) == {"a": 1}
    small_array = serde.dumps_frames(np.arange(10.0))
    assert len(small_array) == 1
    assert np.array_equal(
        ComputeSerializer().loads_frames(small_array), np.arange(10.0)
    )


def test_coalescing_leaves_large_frames_uncopied() -> None:
    array = np.arange(100_000.0)
    serde = ComputeSerializer(coalesce_below=4096)
    exact = ComputeSerializer().dumps_frames(array)
    frames = serde.dumps_frames(array)
    assert len(frames) == len(exact) - 1  # header and body joined
    big = [f for f in frames if memoryview(f).nbytes >= 4096]
    assert big and all(np.shares_memory(np.frombuffer(f, np.uint8), array) for f in big)
    assert np.array_equal(serde.loads_frames(frames), array)


def test_coalesced_bundles_decode() -> None:
    serde = ComputeSerializer()
    bundle = serde.pack_frames(
        [
            serde.dumps_frames(len),
            serde.dumps_frames((np.arange(3.0),)),
            serde.dumps_frames({}),
        ]
    )
    fn, args, kwargs = serde.unpack_frames_and_deserialize(
        stream.coalesce_frames(bundle, 1 << 20)
    )
    assert fn is len and np.array_equal(args[0], np.arange(3.0)) and kwargs == {}
    assert serde.unpack_frames_and_deserialize([b"".join(bundle)])[0] is len


def test_a_frame_split_across_buffers_is_rejected() -> None:
    serde = ComputeSerializer()
    blob = serde.dumps(np.arange(100.0))
    with pytest.raises(DeserializationError):
        serde.loads_frames([blob[:50], blob[50:]])
    with pytest.raises(DeserializationError, match="never split"):
        stream.split_frames([blob[:50], blob[50:]])
    with pytest.raises(DeserializationError, match="unexpected bytes"):
        stream.split_frames([blob, b"x"])


# -- buffers at the front of larger ones -----------------------------------------------


def test_dumps_into_and_loads_prefix_walk_a_buffer_of_several_messages() -> None:
    serde = ComputeSerializer()
    ring = bytearray(1 << 20)
    pos = 0
    for obj in SAMPLES:
        pos += serde.dumps_into(obj, memoryview(ring)[pos:])
    view = memoryview(ring)
    pos = 0
    for obj in SAMPLES:
        got, used = serde.loads_prefix(view[pos:])
        assert same(got, obj)
        pos += used
    assert pos == sum(len(serde.dumps(obj)) for obj in SAMPLES)


def test_dumps_into_a_buffer_too_small_says_how_many_bytes_are_needed() -> None:
    serde = ComputeSerializer()
    needed = len(serde.dumps(np.arange(100.0)))
    target = bytearray(b"\xff" * (needed - 1))
    with pytest.raises(stream.BufferTooSmallError) as info:
        serde.dumps_into(np.arange(100.0), target)
    assert info.value.needed == needed and info.value.available == needed - 1
    assert f"needs {needed} bytes" in str(info.value)
    assert target == b"\xff" * (needed - 1)  # nothing written
    with pytest.raises(TypeError, match="writable"):
        serde.dumps_into(1, bytes(100))


def test_loads_prefix_of_a_truncated_message_or_a_bundle_is_refused() -> None:
    serde = ComputeSerializer()
    blob = serde.dumps(np.arange(100.0))
    with pytest.raises(DeserializationError, match="truncated message"):
        serde.loads_prefix(blob[:-1])
    bundle = b"".join(serde.pack_frames([serde.dumps_frames(1)]))
    with pytest.raises(DeserializationError, match="bundle"):
        serde.loads_prefix(bundle)
    assert stream.prefix_length(bundle + b"rest") == len(bundle)


def test_shared_memory_round_trip_between_two_handles() -> None:
    from multiprocessing import shared_memory

    serde = ComputeSerializer()
    segment = shared_memory.SharedMemory(create=True, size=1 << 20)
    try:
        array = np.arange(1000.0)
        written = serde.dumps_into(array, segment.buf)
        written += serde.dumps_into({"tail": True}, segment.buf[written:])
        other = shared_memory.SharedMemory(name=segment.name)
        try:
            got, used = serde.loads_prefix(other.buf)
            tail, used2 = serde.loads_prefix(other.buf[used:])
            assert np.array_equal(got, array) and tail == {"tail": True}
            assert used + used2 == written
            assert got.flags.writeable  # shared memory is writable: no copy made
            del got  # release the view before the segment closes
        finally:
            other.close()
    finally:
        segment.close()
        segment.unlink()


# -- writable arrays -------------------------------------------------------------------


def test_arrays_from_bytes_are_read_only_unless_writable_is_asked() -> None:
    blob = ComputeSerializer().dumps(np.arange(4.0))
    assert not ComputeSerializer().loads(blob).flags.writeable
    array = ComputeSerializer(writable=True).loads(blob)
    array[0] = 5.0
    assert array[0] == 5.0
    frames = ComputeSerializer().dumps_frames(np.arange(4.0))
    assert ComputeSerializer(writable=True).loads_frames(frames).flags.writeable


def test_writable_copies_nothing_that_is_already_writable() -> None:
    source = bytearray(ComputeSerializer().dumps(np.arange(4.0)))
    array = ComputeSerializer(writable=True).loads(source)
    assert np.shares_memory(array, np.frombuffer(source, np.uint8))


def test_writable_can_be_switched_on_an_existing_serializer() -> None:
    serde = ComputeSerializer()
    blob = serde.dumps(np.arange(4.0))
    serde.writable = True
    assert serde.loads(blob).flags.writeable
    serde.writable = False
    assert not serde.loads(blob).flags.writeable


def test_writable_applies_to_bundles_too() -> None:
    serde = ComputeSerializer()
    bundle = b"".join(
        serde.pack_frames(
            [
                serde.dumps_frames(len),
                serde.dumps_frames((np.arange(3.0),)),
                serde.dumps_frames({}),
            ]
        )
    )
    _, (array,), _ = serde.unpack_frames_and_deserialize(bundle)
    assert not array.flags.writeable
    _, (array,), _ = ComputeSerializer(writable=True).unpack_frames_and_deserialize(
        bundle
    )
    assert array.flags.writeable


def test_coalesce_below_can_be_set_on_an_existing_serializer() -> None:
    serde = ComputeSerializer()
    assert len(serde.dumps_frames({"a": 1})) == 2
    serde.coalesce_below = 1024
    assert len(serde.dumps_frames({"a": 1})) == 1
    serde.coalesce_below = 0
    assert len(serde.dumps_frames({"a": 1})) == 2


# -- malformed input: only DeserializationError ---------------------------------------

_WIRE_SERDE = ComputeSerializer(strategy_data="json")
_WIRE = b"".join(
    [
        _WIRE_SERDE.dumps({"a": [1, 2]}),
        b"".join(
            _WIRE_SERDE.pack_frames(
                [_WIRE_SERDE.dumps_frames(x) for x in ([1], {"k": "v"}, "s")]
            )
        ),
        ComputeSerializer().dumps(np.arange(5.0)),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(_WIRE) - 1),
    value=st.integers(min_value=0, max_value=255),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_a_corrupted_stream_raises_only_deserialization_error(
    position: int, value: int, chunk: int
) -> None:
    wire = bytearray(_WIRE)
    wire[position] = value
    reader = FrameReader(Limits(max_size=1 << 20, max_frames=64))
    serde = ComputeSerializer(policy=Policy.untrusted_input(), strategy_data="json")
    try:
        for start in range(0, len(wire), chunk):
            for unit in reader.feed(wire[start : start + chunk]):
                try:
                    if stream.is_bundle(unit):
                        serde.unpack_frames_and_deserialize(unit)
                    else:
                        serde.loads_frames(unit)
                except DeserializationError:
                    pass
        reader.eof()
    except DeserializationError:
        pass


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=5))
def test_a_blob_cut_anywhere_decodes_or_raises_deserialization_error(
    cuts: list[int],
) -> None:
    serde = ComputeSerializer()
    obj = [np.arange(20.0), {"k": "v"}]
    blob = serde.dumps(obj)
    points = sorted({0, len(blob), *(c % len(blob) for c in cuts)})
    pieces = [blob[a:b] for a, b in itertools.pairwise(points)]
    try:
        got = serde.loads_frames(pieces)
    except DeserializationError:
        return
    assert np.array_equal(got[0], obj[0]) and got[1] == obj[1]
