"""The cold path (issue 10, sections 2 and 6): messages that never repeat, messages
with out-of-band buffers, and received memory of any buffer type all take the
learned fast path, and that path never changes a verdict.

A serializer learns a message's 12-byte header prefix (magic, version, flags,
producer Python, identifier) once; after that only each message's lengths are
checked.  Every test here runs with the C fast path and its pure-Python twin.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np
import pytest

from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    Limits,
    SerializationError,
    binary,
    facade,
)

pytestmark = pytest.mark.usefixtures("each_fast_path")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every full parse of a message (the general path)."""
    seen: list[str] = []
    parse_blob, parse_message = binary.parse_blob, binary.parse_message

    def blob(*args: Any) -> Any:
        seen.append("blob")
        return parse_blob(*args)

    def message(*args: Any) -> Any:
        seen.append("frames")
        return parse_message(*args)

    monkeypatch.setattr(binary, "parse_blob", blob)
    monkeypatch.setattr(binary, "parse_message", message)
    return seen


def distinct_dicts(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": "x" * i, "ok": True} for i in range(count)]


def test_a_stream_of_distinct_lengths_is_parsed_once(parses):
    sender, receiver = ComputeSerializer(), ComputeSerializer()
    values = distinct_dicts(50)
    blobs = [sender.dumps(v) for v in values]
    assert len({len(b) for b in blobs}) == len(blobs)
    assert [receiver.loads(b) for b in blobs] == values
    frames = [sender.dumps_frames(v) for v in values]
    assert [receiver.loads_frames(f) for f in frames] == values
    assert parses == []  # decided when the serializer was made


@pytest.mark.parametrize("size", [1, 10, 1000, 100_000])
def test_a_message_with_buffers_is_parsed_once_and_stays_zero_copy(parses, size):
    sender, receiver = ComputeSerializer(), ComputeSerializer()
    for n in range(size, size + 5):
        array = np.arange(n, dtype=np.float64)
        frames = sender.dumps_frames(array)
        assert len(frames) == 3
        decoded = receiver.loads_frames(frames)
        assert np.array_equal(decoded, array)
        assert np.shares_memory(decoded, np.frombuffer(frames[2], np.uint8))
        blob = sender.dumps(array)
        assert b"".join(frames) == blob
        from_blob = receiver.loads(blob)
        assert np.array_equal(from_blob, array)
        assert np.shares_memory(from_blob, np.frombuffer(blob, np.uint8))
    assert parses == []


RECEIVED = {
    "memoryview": memoryview,
    "bytearray": bytearray,
    "numpy-uint8": lambda b: np.frombuffer(b, np.uint8),
    "char-format": lambda b: memoryview(b).cast("c"),
    "2-d": lambda b: np.frombuffer(b, np.uint8).reshape(1, -1),
    "shared-slice": lambda b: memoryview(bytearray(b"..." + b + b"..."))[3:-3],
}


@pytest.mark.parametrize("kind", sorted(RECEIVED))
@pytest.mark.parametrize("container", [list, tuple])
def test_received_memory_of_any_buffer_type_takes_the_fast_path(
    parses, kind, container
):
    wrap = RECEIVED[kind]
    sender, receiver = ComputeSerializer(), ComputeSerializer()
    values: list[Any] = [{"k": "v" * 40}, np.arange(16.0), "s" * 9000]
    for value in values * 2:
        frames = [bytes(f) for f in sender.dumps_frames(value)]
        blob = b"".join(frames)
        got = receiver.loads(wrap(blob))
        got_frames = receiver.loads_frames(container(wrap(f) for f in frames))
        for result in (got, got_frames):
            if isinstance(value, np.ndarray):
                assert np.array_equal(result, value)
            else:
                assert result == value
    assert parses == []


def test_a_refused_own_strategy_is_not_learned_and_refuses_every_time():
    from freight.serialize import Policy

    sender = ComputeSerializer()
    s = ComputeSerializer(strategy_data="JSONData")
    s.policy = Policy.untrusted_input()
    blob = sender.dumps({"a": 1})
    assert blob[:12] not in s._known
    for _ in range(2):
        with pytest.raises(DeserializationError):
            s.loads(blob)


def test_a_non_contiguous_buffer_is_refused_as_before():
    s = ComputeSerializer()
    blob = s.dumps({"a": 1})
    s.loads(blob)
    strided = np.frombuffer(blob * 2, np.uint8)[::2]
    with pytest.raises(DeserializationError, match="contiguous"):
        s.loads(strided)
    with pytest.raises(DeserializationError, match="contiguous"):
        s.loads_frames([strided, b""])


def outcome(s: ComputeSerializer, form: str, frames: list[bytes]) -> Any:
    try:
        if form == "blob":
            result = s.loads(b"".join(frames))
        else:
            result = s.loads_frames([memoryview(f) for f in frames])
        return ("ok", [bytes(memoryview(part).cast("B")) for part in result])
    except DeserializationError as e:
        return ("error", str(e))


@pytest.mark.parametrize("form", ["blob", "frames"])
def test_every_changed_length_byte_decodes_as_for_a_fresh_serializer(form):
    """A learned prefix never stands for the lengths: a message with buffers whose
    counts, lengths or reserved bytes change is judged as a fresh serializer
    judges it."""
    s = ComputeSerializer()
    value = [np.arange(4, dtype=np.uint8), pickle.PickleBuffer(b"abcdefgh")]
    frames = [bytes(f) for f in s.dumps_frames(value)]
    assert len(frames) == 4
    assert outcome(s, form, frames)[0] == "ok"
    header = frames[0]
    for offset in range(binary.PREFIX_SIZE, binary.MESSAGE_HEADER_SIZE + 16):
        for new in {header[offset] ^ 0x01, header[offset] ^ 0x80, 0, 0xFF}:
            changed = bytearray(header)
            changed[offset] = new
            wire = [bytes(changed), *frames[1:]]
            assert outcome(s, form, wire) == outcome(ComputeSerializer(), form, wire)
    for cut in (1, 3):  # a short buffer frame, or a blob missing its last bytes
        wire = [*frames[:-1], frames[-1][:-cut]]
        assert outcome(s, form, wire)[0] == "error"


def test_frame_and_size_limits_apply_to_learned_messages_with_buffers():
    buffers = [pickle.PickleBuffer(b"x" * 100) for _ in range(3)]
    s = ComputeSerializer(limits=Limits(max_frames=2, max_size=600))
    assert len(s.loads(s.dumps(buffers[:1]))) == 1  # learned
    assert len(s.loads_frames(s.dumps_frames(buffers[:2]))) == 2
    with pytest.raises(DeserializationError, match="max_frames"):
        s.loads(s.dumps(buffers))
    with pytest.raises(DeserializationError, match="max_frames"):
        s.loads_frames(s.dumps_frames(buffers))
    big = [pickle.PickleBuffer(b"y" * 700)]
    with pytest.raises(DeserializationError, match="max_size"):
        s.loads(s.dumps(big))
    with pytest.raises(DeserializationError, match="max_size"):
        s.loads_frames(s.dumps_frames(big))


def test_messages_with_other_flags_are_never_learned(monkeypatch):
    """A flag outside ``LEARNABLE_FLAGS`` (a codec, say) changes how frames are
    read: its messages must take the general path every time."""
    monkeypatch.setattr(binary, "_KNOWN_FLAGS", binary._KNOWN_FLAGS | 0x04)
    s = ComputeSerializer()
    header, body = s.dumps_frames({"a": 1})
    flagged = bytearray(header)
    flagged[5] |= 0x04
    assert s.loads_frames([bytes(flagged), body]) == {"a": 1}
    assert s.loads(bytes(flagged) + body) == {"a": 1}
    assert bytes(flagged[:12]) not in s._known
    assert header[:12] in s._known  # its own prefix: decided when it was made


def test_messages_from_another_python_are_never_learned():
    s = ComputeSerializer()
    header, body = s.dumps_frames({"a": 1})
    other = bytearray(header)
    other[7] ^= 0x01  # the producer's minor version
    assert s.loads_frames([bytes(other), body]) == {"a": 1}
    assert bytes(other[:12]) not in s._known


class NotABuffer:
    pass


@pytest.mark.parametrize("method", ["dumps", "dumps_frames"])
@pytest.mark.parametrize("where", ["body", "buffer"])
def test_a_frame_without_the_buffer_protocol_is_an_encode_error(
    monkeypatch, method, where
):
    s = ComputeSerializer()
    frames = (NotABuffer(), []) if where == "body" else (b"", [NotABuffer()])
    monkeypatch.setattr(type(s.data_serializer), "to_frames", lambda self, o: frames)
    s.data_serializer = s.data_serializer  # rebuild the fast path
    with pytest.raises(SerializationError, match="PickleData") as info:
        getattr(s, method)([1])
    assert isinstance(info.value.__cause__, TypeError)


def test_headers_made_by_both_twins_are_binary_message_header():
    s = ComputeSerializer()
    heads = s._codec_of(s.data_serializer).headers
    for value in (7, "s" * 5, "s" * 5000, ["l"] * 30_000):
        header, body = s.dumps_frames(value)
        expected = binary.buffer_free_header(heads.prefix, len(body), heads.meta)
        assert header == expected
        assert s.dumps(value) == expected + body
    array = np.arange(3.0)
    frames = s.dumps_frames(array)
    body, buffers = s.data_serializer.to_frames(array)
    assert frames[0] == binary.message_header(heads.prefix, body, buffers, heads.meta)
    n, body_length, _ = struct.unpack_from("<IQI", frames[0], binary.PREFIX_SIZE)
    assert (n, body_length) == (1, len(frames[1]))


def test_the_c_twin_agrees_on_small_body():
    accel = pytest.importorskip("freight.serialize._accel")
    assert accel.SMALL_BODY == binary.SMALL_BODY
    assert facade._MAX_KNOWN_HEADERS > 0
