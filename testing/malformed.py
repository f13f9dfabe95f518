"""Malformed payloads: valid payloads, damaged by a plan drawn beforehand.

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

Envelopes are told apart by what their payloads are (``Envelope.text``,
``Envelope.framed``), never by name: a binary envelope's payload is read with
``Envelope.parse`` and made again with ``Envelope.wrap``, so a new envelope is
damaged as the built-in one of its shape is.

**What hypothesis draws never depends on the payload.**  Every choice a damage
needs (where to cut, which bits, which part, what junk) is drawn first, as a
``DamagePlan`` of payload-independent numbers and bytes (``damage_plans``), and
``apply_damage`` then applies it to the seed, reducing positions modulo the
lengths it finds.  A strategy whose payloads differ from one encode to the next
(a random nonce, a timestamp: honest if it does not claim ``DETERMINISTIC``) gets
the same draws when hypothesis replays or shrinks an example, so the kit is not
flaky for it (hypothesis would otherwise stop with ``FlakyStrategyDefinition``).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from freight.serialize import BytesStrategy, SerializationStrategy, binary
from freight.serialize.b64 import decode_base64, encode_base64
from freight.serialize.envelope import Envelope, envelope_named
from freight.testing.assertions import (
    Envelopelike,
    Strategy,
    frame_message,
    kit_serializer,
    short_repr,
)

DAMAGE = ("truncated", "bit-flipped", "extended", "garbage", "oversized")

MiB = 1 << 20

_POSITION = st.integers(0, 2**32 - 1)


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


@dataclasses.dataclass(frozen=True)
class DamagePlan:
    """Every choice one damage makes, drawn before the payload is known.

    Positions are reduced modulo the length of what they apply to, so one plan
    applies to payloads of any length.
    """

    damage: str
    #: Binary envelopes: damage the framing itself rather than body and buffers.
    envelope_itself: bool = False
    #: Text envelope of a ``BytesStrategy``: damage the bytes under the base64.
    under_base64: bool = False
    #: The second form of a damage: junk alone rather than appended, a buffer
    #: frame dropped or added, the body length rather than the buffer count.
    variant: bool = False
    #: Which body/buffer part to damage (modulo the candidates).
    part: int = 0
    #: Where to cut (modulo the length).
    cut: int = 0
    #: ``(position, bit)`` pairs to flip.
    flips: tuple[tuple[int, int], ...] = ()
    #: Bytes appended (``extended``) or, in the binary framing, a frame added.
    extra: bytes = b""
    #: Text appended or, for ``garbage``, the whole text body.
    text: str = ""
    #: The body and buffers of a ``garbage`` payload.
    garbage: tuple[bytes, ...] = (b"",)
    #: ``oversized``: how many bytes of junk, and the seed they come from.
    junk_size: int = 0
    junk_seed: int = 0
    #: ``oversized`` framing: the declared body length and buffer count.
    huge_length: int = 2**32
    huge_count: int = 2**16

    def __repr__(self) -> str:
        fields = [
            f"{f.name}={short_repr(getattr(self, f.name), 80)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default or f.name == "damage"
        ]
        return f"DamagePlan({', '.join(fields)})"

    def junk(self) -> bytes:
        return random.Random(self.junk_seed).randbytes(self.junk_size)


@st.composite
def damage_plans(
    draw: DrawFn, damage: str, *, oversized_size: int = 4 * MiB
) -> DamagePlan:
    """Plans for ``damage``; what is drawn depends on ``damage`` only."""
    if damage not in DAMAGE:
        raise ValueError(f"unknown damage {damage!r}; use one of {DAMAGE}")
    plan: dict[str, Any] = {
        "envelope_itself": draw(st.integers(0, 3)) == 0,
        "under_base64": draw(st.booleans()),
        "variant": draw(st.booleans()),
        "part": draw(_POSITION),
    }
    if damage == "truncated":
        plan["cut"] = draw(_POSITION)
    elif damage == "bit-flipped":
        flips = st.tuples(_POSITION, st.integers(0, 7))
        plan["flips"] = tuple(draw(st.lists(flips, min_size=1, max_size=3)))
    elif damage == "extended":
        plan["extra"] = draw(st.binary(min_size=1, max_size=64))
        plan["text"] = draw(st.text(min_size=1, max_size=64))
    elif damage == "garbage":
        body = draw(st.binary(max_size=256))
        buffers = draw(st.lists(st.binary(max_size=64), max_size=2))
        plan["garbage"] = (body, *buffers)
        plan["text"] = draw(st.text(max_size=256))
    else:
        top = max(1, oversized_size)
        plan["junk_size"] = draw(st.integers(max(1, oversized_size // 2), top))
        plan["junk_seed"] = draw(st.integers(0, 2**32 - 1))
        plan["huge_length"] = draw(st.integers(2**32, 2**63))
        plan["huge_count"] = draw(st.integers(2**16, 2**32 - 1))
    return DamagePlan(damage, **plan)


def damaged_payloads(
    strategy: Strategy,
    envelope: Envelopelike,
    seed: Any,
    damage: str,
    *,
    oversized_size: int = 4 * MiB,
) -> SearchStrategy[Any]:
    """Damaged versions of ``seed``, a valid payload of ``strategy`` in
    ``envelope`` (a str, a bytes blob, or a list of frames)."""
    chosen = envelope_named(envelope)
    return damage_plans(damage, oversized_size=oversized_size).map(
        lambda plan: apply_damage(plan, strategy, chosen, seed)
    )


def apply_damage(
    plan: DamagePlan, strategy: Strategy, envelope: Envelopelike, seed: Any
) -> Any:
    """``seed`` (a valid payload of ``strategy`` in ``envelope``, an ``Envelope``
    or its name) damaged as ``plan`` says.  Deterministic; a damage that cannot
    apply (truncating an empty payload) leaves the payload as it is."""
    chosen = envelope_named(envelope)
    instance = kit_serializer(strategy).strategy
    if chosen.text:
        return _damaged_text(plan, instance, seed)
    if chosen.framed:
        return _damaged_frames(plan, instance, chosen, seed)
    return _damaged_blob(plan, instance, chosen, seed)


def _damaged_bytes(plan: DamagePlan, data: bytes) -> bytes:
    damage = plan.damage
    if damage == "truncated":
        return data[: plan.cut % len(data)] if data else data
    if damage == "bit-flipped":
        if not data:
            return data
        out = bytearray(data)
        for position, bit in plan.flips:
            out[position % len(out)] ^= 1 << bit
        return bytes(out)
    if damage == "extended":
        return data + plan.extra
    if damage == "garbage":
        return plan.garbage[0]
    junk = plan.junk()
    return junk if plan.variant else data + junk


def _damaged_text(plan: DamagePlan, strategy: SerializationStrategy, seed: str) -> str:
    ident = strategy.identifier
    body = seed[len(ident) :]
    damage = plan.damage
    if isinstance(strategy, BytesStrategy) and plan.under_base64:
        # Damage the bytes under the base64, so the damage reaches decode().
        return ident + encode_base64(_damaged_bytes(plan, decode_base64(body)))
    if damage == "truncated":
        return seed[: plan.cut % len(seed)] if seed else seed
    if damage == "bit-flipped":
        chars = list(seed)
        start = len(ident) if body else 0
        if len(chars) <= start:
            return seed
        for position, bit in plan.flips:
            i = start + position % (len(chars) - start)
            chars[i] = chr(ord(chars[i]) ^ (1 << bit))
        return "".join(chars)
    if damage == "extended":
        return seed + plan.text
    if damage == "garbage":
        return ident + plan.text
    junk = plan.junk().decode("latin-1")
    return ident + junk if plan.variant else seed + junk


def _parts(message: binary.Message) -> tuple[bytes, list[bytes], bytes]:
    return (
        bytes(message.body),
        [bytes(b) for b in message.buffers],
        bytes(message.metadata),
    )


def _damaged_blob(
    plan: DamagePlan, strategy: SerializationStrategy, envelope: Envelope, seed: Any
) -> Any:
    """A payload that is one binary object: its bytes damaged (and given as the
    payload), or its message's contents damaged and wrapped again."""
    if plan.envelope_itself:
        data = envelope.canonical(seed)
        assert isinstance(data, bytes), "a binary envelope's payload is bytes"
        return _damaged_bytes(plan, data)
    body, buffers, metadata = _parts(envelope.parse(seed))
    return envelope.wrap(_damaged_contents(plan, strategy, body, buffers, metadata))


def _damaged_frames(
    plan: DamagePlan, strategy: SerializationStrategy, envelope: Envelope, seed: Any
) -> Any:
    """A payload that is a frame list: its framing or its contents damaged."""
    if plan.envelope_itself:
        frames = [bytes(memoryview(f).cast("B")) for f in seed]
        return envelope.wrap(_damaged_framing(plan, frames))
    body, buffers, metadata = _parts(envelope.parse(seed))
    return envelope.wrap(_damaged_contents(plan, strategy, body, buffers, metadata))


def _damaged_contents(
    plan: DamagePlan,
    strategy: SerializationStrategy,
    body: bytes,
    buffers: list[bytes],
    metadata: bytes,
) -> list[bytes]:
    """Damage the body or a buffer, then frame the result correctly again."""
    damage = plan.damage
    parts = [body, *buffers]
    if damage == "garbage":
        parts = list(plan.garbage)
    elif damage == "truncated" and buffers and plan.variant:
        parts.pop(1 + plan.part % len(buffers))  # a missing buffer frame
    elif damage in ("extended", "oversized") and plan.variant:
        # An unexpected buffer frame.
        parts.append(plan.extra if damage == "extended" else plan.junk())
    else:
        candidates = [
            i
            for i, p in enumerate(parts)
            if p or damage not in ("truncated", "bit-flipped")
        ]
        if candidates:
            i = candidates[plan.part % len(candidates)]
            parts[i] = _damaged_bytes(plan, parts[i])
    framed = frame_message(strategy, parts[0], parts[1:], metadata)
    return [bytes(f) for f in framed]


def _damaged_framing(plan: DamagePlan, frames: list[bytes]) -> list[bytes]:
    """Damage the header frame or the frame list (framing's checks, not the
    strategy's, should catch these)."""
    damage = plan.damage
    header, rest = frames[0], frames[1:]
    if damage == "truncated":
        if rest and plan.variant:
            return [header, *rest[:-1]]
        return [_damaged_bytes(plan, header), *rest]
    if damage == "bit-flipped":
        return [_damaged_bytes(plan, header), *rest]
    if damage == "extended":
        if plan.variant:
            return [*frames, plan.extra]
        return [header + plan.extra, *rest]
    if damage == "garbage":
        return [plan.garbage[0][:64], *rest]
    # Oversized: the header declares a huge body or buffer count (the layout is in
    # BINARY_FORMAT.md: after the 12-byte prefix, a u32 buffer count and a u64 body
    # length), so framing must refuse it before allocating.
    damaged = bytearray(header)
    if plan.variant and len(damaged) >= 24:
        damaged[16:24] = plan.huge_length.to_bytes(8, "little")
    elif len(damaged) >= 16:
        damaged[12:16] = plan.huge_count.to_bytes(4, "little")
    return [bytes(damaged), *rest]
