"""``freight.serialize.b64``: base64 of bodies in parts, and bodies read as a file,
agree with plain base64 of the whole body; malformed text fails the same way.

The last section runs large text payloads through ``ComputeSerializer``, where these
are used: they round-trip, the reference decodes them, and decoding does not hold
the decoded body twice.
"""

from __future__ import annotations

import base64
import pickle

import dill
import globus_compute_sdk.serialize as R
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import traced

import freight.serialize as F
from freight.serialize.b64 import (
    READ_CHUNK,
    Base64Reader,
    decode_base64,
    encode_base64,
    encode_base64_parts,
)
from freight.serialize.strategy import STREAM_TEXT

# -- encode_base64_parts -----------------------------------------------------------


@given(st.lists(st.binary(max_size=40), max_size=8), st.sampled_from(["", "00\n"]))
def test_parts_encode_as_their_concatenation(parts: list[bytes], prefix: str) -> None:
    joined = b"".join(parts)
    assert encode_base64_parts(prefix, parts) == prefix + encode_base64(joined)
    assert encode_base64_parts(prefix, parts) == prefix + base64.b64encode(
        joined
    ).decode("ascii")


@pytest.mark.parametrize(
    "part",
    [
        pickle.PickleBuffer(np.arange(20, dtype="u2")),
        memoryview(np.arange(6, dtype="u2").reshape(2, 3)),
        bytearray(b"abcd"),
    ],
    ids=["PickleBuffer", "2-d memoryview", "bytearray"],
)
def test_a_single_part_may_be_any_buffer(part: object) -> None:
    flat = memoryview(part).cast("B").tobytes()  # type: ignore[arg-type]
    assert encode_base64_parts("00\n", [part]) == "00\n" + encode_base64(flat)


def test_parts_may_be_buffers_of_any_shape_and_order() -> None:
    grid = np.arange(3 * 5, dtype="u2").reshape(3, 5)
    parts = [
        b"\x01",
        pickle.PickleBuffer(np.asfortranarray(grid)),  # Fortran order: raw() bytes
        memoryview(grid),  # 2-d, format "H"
        bytearray(b"xy"),
        b"",
        pickle.PickleBuffer(b"z"),
    ]
    joined = b"".join(
        [b"\x01", np.asfortranarray(grid).tobytes("A"), grid.tobytes(), b"xyz"]
    )
    assert encode_base64_parts("p5\n", parts) == "p5\n" + encode_base64(joined)


def test_pickler_parts_of_an_array_encode_as_its_pickle() -> None:
    arr = np.random.default_rng(1).random(100_000)  # 800 KB: written uncopied
    written: list[object] = []

    class File:
        write = written.append

    pickle.Pickler(File(), 5).dump(arr)
    assert any(type(part) is pickle.PickleBuffer for part in written)
    assert encode_base64_parts("00\n", written) == "00\n" + encode_base64(
        pickle.dumps(arr, 5)
    )


# -- Base64Reader ------------------------------------------------------------------


def _wrapped(text: str, width: int, newline: str) -> str:
    return newline.join(text[i : i + width] for i in range(0, len(text), width))


@st.composite
def texts(draw: st.DrawFn) -> tuple[bytes, str]:
    """Bytes and a base64 text of them: one line, or wrapped as the reference
    (76 columns, trailing newline) or with CRLF at some width."""
    data = draw(st.binary(max_size=3000))
    text = base64.b64encode(data).decode("ascii")
    layout = draw(st.sampled_from(["line", "reference", "crlf"]))
    if layout == "reference":
        text = base64.encodebytes(data).decode("ascii")
    elif layout == "crlf":
        text = _wrapped(text, draw(st.integers(1, 100)), "\r\n")
    return data, text


@settings(max_examples=200)
@given(texts(), st.lists(st.tuples(st.sampled_from("rnil"), st.integers(0, 700))))
def test_reader_reads_what_the_text_encodes(
    sample: tuple[bytes, str], calls: list[tuple[str, int]]
) -> None:
    data, text = sample
    reader = Base64Reader("01\n" + text, 3)
    got = bytearray()
    for kind, size in calls:
        if kind == "r":
            got += reader.read(size)
        elif kind == "n":
            buffer = bytearray(size)
            got += buffer[: reader.readinto(buffer)]
        elif kind == "i":
            got += reader.readline(size)
        else:
            got += reader.readline()
    got += reader.read()
    assert bytes(got) == data
    assert reader.read(5) == b"" and reader.readline() == b""
    reader.finish()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 76])
def test_reader_reads_any_wrapping_a_byte_at_a_time(newline: str, width: int) -> None:
    # One-byte reads make the smallest steps: each must still advance through
    # the text, and no step may split a quantum or a CRLF.
    data = bytes(range(256))
    text = _wrapped(base64.b64encode(data).decode("ascii"), width, newline)
    reader = Base64Reader("01\n" + text, 3)
    one = bytearray(1)
    got = bytearray()
    while reader.readinto(one):
        got += one
        got += reader.read(1)
    assert bytes(got) == data
    reader.finish()


def test_reader_lines_end_at_newline_bytes() -> None:
    reader = Base64Reader(encode_base64(b"I42\nI7\nlast"))
    assert [reader.readline(), reader.readline(), reader.readline()] == [
        b"I42\n",
        b"I7\n",
        b"last",
    ]


def test_reader_decodes_a_large_readinto_in_steps() -> None:
    data = np.random.default_rng(2).bytes(3 * READ_CHUNK + 7)
    reader = Base64Reader(encode_base64(data))
    assert reader.read(5) == data[:5]
    target = bytearray(len(data) - 9)
    assert reader.readinto(target) == len(target)
    assert target == data[5:-4]
    assert reader.read() == data[-4:]


BAD = [
    ("a character outside the alphabet", lambda t: t[:1000] + "*" + t[1001:]),
    ("padding in the middle", lambda t: t[:996] + "AA==" + t[1000:]),
    ("a truncated quantum", lambda t: t[:-1]),
    ("a lone carriage return", lambda t: t[:500] + "\r" + t[500:]),
]


@pytest.mark.parametrize("damage", [d for _, d in BAD], ids=[n for n, _ in BAD])
def test_reader_refuses_what_decode_base64_refuses(damage) -> None:
    text = damage(encode_base64(bytes(range(256)) * 600))
    with pytest.raises(F.DeserializationError):
        decode_base64(text)
    reader = Base64Reader(text)
    with pytest.raises(F.DeserializationError, match="base64"):
        while reader.read(4096):
            pass
        reader.finish()


def test_finish_checks_the_text_left_unread() -> None:
    text = encode_base64(b"x" * 100_000)
    reader = Base64Reader(text[:-8] + "!!!!" + text[-4:])
    assert reader.read(10) == b"x" * 10
    with pytest.raises(F.DeserializationError, match="not valid base64"):
        reader.finish()


# -- large text payloads through ComputeSerializer ---------------------------------

ARRAY = np.random.default_rng(3).random(1_000_000)  # 8 MB
LARGE_DATA = {
    "array": ARRAY,
    "bytes": ARRAY.tobytes(),
    "nested": {"a": ARRAY[:50_000], "b": [ARRAY.tobytes()[:100_000], "s" * 70_000]},
}
DATA_STRATEGIES = ["DillDataBase64", "PickleData"]


def _same(a: object, b: object) -> bool:
    return pickle.dumps(a, 5) == pickle.dumps(b, 5)


@pytest.mark.parametrize("strategy", DATA_STRATEGIES)
@pytest.mark.parametrize("name", list(LARGE_DATA))
def test_large_text_payloads_round_trip(strategy: str, name: str) -> None:
    serde = F.ComputeSerializer(strategy_data=strategy)
    payload = serde.serialize(LARGE_DATA[name])
    assert len(payload) >= STREAM_TEXT
    assert _same(serde.deserialize(payload), LARGE_DATA[name])


@pytest.mark.parametrize("name", list(LARGE_DATA))
def test_large_compat_payloads_cross_decode_with_the_reference(name: str) -> None:
    ours = F.ComputeSerializer("DillCode", "DillDataBase64")
    reference = R.ComputeSerializer()
    value = LARGE_DATA[name]
    assert _same(reference.deserialize(ours.serialize(value)), value)
    wrapped = reference.serialize(value)  # dill, base64 in 76-column lines
    assert "\n" in wrapped[3:-1]
    assert _same(ours.deserialize(wrapped), value)


@pytest.mark.parametrize("strategy", DATA_STRATEGIES)
def test_damaged_large_payload_is_refused(strategy: str) -> None:
    serde = F.ComputeSerializer(strategy_data=strategy)
    payload = serde.serialize(ARRAY)
    middle = len(payload) // 2
    for damaged in (
        payload[:middle],  # truncated: pickle runs out of input
        payload[:middle] + "#" + payload[middle + 1 :],
        payload + "AAAA#",  # past pickle's STOP
    ):
        with pytest.raises(F.DeserializationError):
            serde.deserialize(damaged)


def test_large_payload_decodes_into_the_array_without_a_second_copy() -> None:
    serde = F.ComputeSerializer("DillCode", "DillDataBase64")
    payload = serde.serialize(ARRAY)
    with traced() as memory:
        decoded = serde.deserialize(payload)
    assert np.array_equal(decoded, ARRAY)
    # The array's own memory, plus steps of READ_CHUNK: decoding the whole body
    # first, then unpickling it, would peak at twice the array.
    assert memory.peak < ARRAY.nbytes + 4 * READ_CHUNK


def test_large_payload_encodes_without_pickling_the_array_into_a_copy() -> None:
    serde = F.ComputeSerializer("DillCode", "DillDataBase64")
    with traced() as memory:
        payload = serde.serialize(ARRAY)
    base64_size = len(payload)
    # The text, plus the base64 of the array before it is joined to the header;
    # an in-band pickle would add the array's size again.
    assert memory.peak < 2 * base64_size + ARRAY.nbytes // 4
    assert dill.loads(base64.b64decode(payload[3:])).tobytes() == ARRAY.tobytes()
