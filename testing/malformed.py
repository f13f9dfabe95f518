"""Hypothesis strategies for malformed payloads: valid payloads, damaged.

A damaged payload starts from a valid one (the *seed*, made by the strategy under
test from a value of its domain) and is hurt in one of five ways, ``DAMAGE``:

* ``truncated`` -- cut short, or a buffer frame dropped;
* ``bit-flipped`` -- one to three bits flipped;
* ``extended`` -- junk appended, or an extra buffer frame;
* ``garbage`` -- a random body under the strategy's own header;
* ``oversized`` -- megabytes of junk, or a header that declares more than is there.

Most damage is done to the *body and buffers* and then framed correctly again, so
it gets past the envelope and reaches the strategy's decoder; for a
``BytesStrategy`` the text envelope's base64 is decoded, damaged and re-encoded for
the same reason.  A quarter of the binary cases damage the envelope itself.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from freight.serialize import BytesStrategy, SerializationStrategy, binary
from freight.serialize.b64 import decode_base64, encode_base64
from freight.testing.assertions import (
    Strategy,
    frame_message,
    kit_serializer,
    short_repr,
)

DAMAGE = ("truncated", "bit-flipped", "extended", "garbage", "oversized")

MiB = 1 << 20


class Damaged:
    """A damaged payload, with a repr short enough for a falsifying example."""

    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        payload = self.payload
        if isinstance(payload, list):
            sizes = [len(frame) for frame in payload]
            return f"Damaged(frames of {sizes} bytes: {short_repr(payload, 300)})"
        return f"Damaged({short_repr(payload, 300)})"


def damaged_payloads(
    strategy: Strategy,
    envelope: str,
    seed: Any,
    damage: str,
    *,
    oversized_size: int = 4 * MiB,
) -> SearchStrategy[Any]:
    """Damaged versions of ``seed``, a valid payload of ``strategy`` in
    ``envelope`` (a str, a bytes blob, or a list of frames)."""
    if damage not in DAMAGE:
        raise ValueError(f"unknown damage {damage!r}; use one of {DAMAGE}")
    instance = kit_serializer(strategy).strategy
    if envelope == "text":
        return _damaged_text(instance, seed, damage, oversized_size)
    if envelope == "blob":
        return _damaged_blob(instance, bytes(seed), damage, oversized_size)
    if envelope == "frames":
        frames = [bytes(memoryview(f).cast("B")) for f in seed]
        return _damaged_frames(instance, frames, damage, oversized_size)
    raise ValueError(f"unknown envelope {envelope!r}")


def _junk(draw: DrawFn, oversized_size: int) -> bytes:
    size = draw(st.integers(max(1, oversized_size // 2), max(1, oversized_size)))
    return random.Random(draw(st.integers(0, 2**32 - 1))).randbytes(size)


@st.composite
def _damaged_bytes(
    draw: DrawFn, data: bytes, damage: str, oversized_size: int
) -> bytes:
    if damage == "truncated":
        if not data:
            return draw(st.nothing())
        return data[: draw(st.integers(0, len(data) - 1))]
    if damage == "bit-flipped":
        if not data:
            return draw(st.nothing())
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            out[draw(st.integers(0, len(out) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if damage == "extended":
        return data + draw(st.binary(min_size=1, max_size=64))
    if damage == "garbage":
        return draw(st.binary(max_size=256))
    junk = _junk(draw, oversized_size)
    return junk if draw(st.booleans()) else data + junk


@st.composite
def _damaged_text(
    draw: DrawFn,
    strategy: SerializationStrategy,
    seed: str,
    damage: str,
    oversized_size: int,
) -> str:
    ident = strategy.identifier
    body = seed[len(ident) :]
    if isinstance(strategy, BytesStrategy) and draw(st.booleans()):
        # Damage the bytes under the base64, so the damage reaches decode().
        raw = decode_base64(body)
        return ident + encode_base64(draw(_damaged_bytes(raw, damage, oversized_size)))
    if damage == "truncated":
        return seed[: draw(st.integers(0, len(seed) - 1))]
    if damage == "bit-flipped":
        chars = list(seed)
        start = len(ident) if body else 0
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(start, len(chars) - 1))
            chars[i] = chr(ord(chars[i]) ^ (1 << draw(st.integers(0, 7))))
        return "".join(chars)
    if damage == "extended":
        return seed + draw(st.text(min_size=1, max_size=64))
    if damage == "garbage":
        return ident + draw(st.text(max_size=256))
    junk = _junk(draw, oversized_size).decode("latin-1")
    return ident + junk if draw(st.booleans()) else seed + junk


def _parts(message: binary.Message) -> tuple[bytes, list[bytes], bytes]:
    return (
        bytes(message.body),
        [bytes(b) for b in message.buffers],
        bytes(message.metadata),
    )


@st.composite
def _damaged_blob(
    draw: DrawFn,
    strategy: SerializationStrategy,
    seed: bytes,
    damage: str,
    oversized_size: int,
) -> bytes:
    if draw(st.integers(0, 3)) == 0:  # the envelope itself
        return draw(_damaged_bytes(seed, damage, oversized_size))
    body, buffers, metadata = _parts(binary.parse_blob(seed))
    frames = draw(
        _damaged_contents(strategy, body, buffers, metadata, damage, oversized_size)
    )
    return b"".join(frames)


@st.composite
def _damaged_frames(
    draw: DrawFn,
    strategy: SerializationStrategy,
    seed: list[bytes],
    damage: str,
    oversized_size: int,
) -> list[bytes]:
    if draw(st.integers(0, 3)) == 0:  # the envelope itself
        return draw(_damaged_framing(seed, damage, oversized_size))
    body, buffers, metadata = _parts(binary.parse_message(seed))
    return draw(
        _damaged_contents(strategy, body, buffers, metadata, damage, oversized_size)
    )


@st.composite
def _damaged_contents(
    draw: DrawFn,
    strategy: SerializationStrategy,
    body: bytes,
    buffers: list[bytes],
    metadata: bytes,
    damage: str,
    oversized_size: int,
) -> list[bytes]:
    """Damage the body or a buffer, then frame the result correctly again."""
    parts = [body, *buffers]
    if damage == "garbage":
        parts = [
            draw(st.binary(max_size=256)),
            *draw(st.lists(st.binary(max_size=64), max_size=2)),
        ]
    elif damage == "truncated" and buffers and draw(st.booleans()):
        parts.pop(draw(st.integers(1, len(parts) - 1)))  # a missing buffer frame
    elif damage in ("extended", "oversized") and draw(st.booleans()):
        extra = (
            draw(st.binary(min_size=1, max_size=64))
            if damage == "extended"
            else _junk(draw, oversized_size)
        )
        parts.append(extra)  # an unexpected buffer frame
    else:
        candidates = [
            i
            for i, p in enumerate(parts)
            if p or damage not in ("truncated", "bit-flipped")
        ]
        if not candidates:
            return draw(st.nothing())
        i = draw(st.sampled_from(candidates))
        parts[i] = draw(_damaged_bytes(parts[i], damage, oversized_size))
    framed = frame_message(strategy, parts[0], parts[1:], metadata)
    return [bytes(f) for f in framed]


@st.composite
def _damaged_framing(
    draw: DrawFn, frames: list[bytes], damage: str, oversized_size: int
) -> list[bytes]:
    """Damage the header frame or the frame list (framing's checks, not the
    strategy's, should catch these)."""
    header, rest = frames[0], frames[1:]
    if damage == "truncated":
        drop_a_frame = draw(st.booleans())
        if rest and drop_a_frame:
            return [header, *rest[:-1]]
        return [header[: draw(st.integers(0, len(header) - 1))], *rest]
    if damage == "bit-flipped":
        return [draw(_damaged_bytes(header, damage, oversized_size)), *rest]
    if damage == "extended":
        if draw(st.booleans()):
            return [*frames, draw(st.binary(max_size=64))]
        return [header + draw(st.binary(min_size=1, max_size=64)), *rest]
    if damage == "garbage":
        return [draw(st.binary(min_size=0, max_size=64)), *rest]
    # Oversized: the header declares a huge body or buffer count (the layout is in
    # BINARY_FORMAT.md: after the 12-byte prefix, a u32 buffer count and a u64 body
    # length), so framing must refuse it before allocating.
    damaged = bytearray(header)
    if draw(st.booleans()) and len(damaged) >= 24:
        damaged[16:24] = draw(st.integers(2**32, 2**63)).to_bytes(8, "little")
    elif len(damaged) >= 16:
        damaged[12:16] = draw(st.integers(2**16, 2**32 - 1)).to_bytes(4, "little")
    return [bytes(damaged), *rest]
