"""The contenders: freight's three paths and the peers it is measured against.

A contender is an ``encode(obj) -> wire`` and ``decode(wire) -> obj`` pair plus how to
count its wire size.  freight is measured through its public facade only:

- ``freight_blob``   ``ComputeSerializer()``, whatever its defaults are:
  ``dumps``/``loads``
- ``freight_frames`` the same serializer's ``dumps_frames``/``loads_frames``
- ``freight_text``   ``ComputeSerializer("DillCode", "DillDataBase64")``
  ``serialize``/``deserialize``: the reference-compatible text path (ids 01/00)

For callables freight caches payloads by function identity, so each freight path is
measured *cold* (``clear_cache()`` before every encode; the main figures) and, in rows
marked *cached*, hot (the same function object again: a dictionary lookup).  The peers
run in the same process: the reference SDK's default ``ComputeSerializer``, raw pickle
protocol 5 in-band and out-of-band, cloudpickle, dill and msgpack.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import cloudpickle
import dill
import msgpack

from payloads import Payload

Family = Literal["freight", "reference", "peer"]

#: The freight row every peer is compared with (ratios freight/peer).
MAIN_FREIGHT = "freight_blob"

#: Display names, in table order; ``*_cached`` rows only exist for callables.
LABELS: dict[str, str] = {
    "freight_blob": "freight default blob",
    "freight_frames": "freight default frames",
    "freight_text": "freight compat text",
    "freight_blob_cached": "freight default blob, cached",
    "freight_frames_cached": "freight default frames, cached",
    "freight_text_cached": "freight compat text, cached",
    "reference": "reference SDK 4.19 default",
    "pickle5": "pickle 5 in-band",
    "pickle5_oob": "pickle 5 out-of-band",
    "cloudpickle": "cloudpickle",
    "dill": "dill",
    "msgpack": "msgpack",
}

#: The contenders drawn in the throughput plot (cached rows are not).
PLOTTED: tuple[str, ...] = (
    "freight_blob",
    "freight_frames",
    "freight_text",
    "reference",
    "pickle5",
    "pickle5_oob",
    "cloudpickle",
    "dill",
    "msgpack",
)


@dataclass(frozen=True)
class Contender:
    """One way to encode and decode a payload."""

    key: str
    family: Family
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    #: Identifier(s) of the strategy used, e.g. ``"p5"``; empty for raw libraries.
    strategy: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def base_key(self) -> str:
        """The key without the ``_cached`` suffix (the domain rules use it)."""
        return self.key.removesuffix("_cached")


def strategy_id(identifier: str) -> str:
    """``"p5\\n"`` -> ``"p5"``: an identifier header as a table shows it."""
    return identifier.rstrip("\n")


@dataclass
class Serializers:
    """The serializer objects, made once per run so setup is never timed."""

    freight_default: Any
    freight_default_cold: Any
    freight_text: Any
    freight_text_cold: Any
    reference: Any

    @classmethod
    def create(cls) -> Serializers:
        from globus_compute_sdk.serialize import ComputeSerializer as Reference

        from freight.serialize import ComputeSerializer

        def text() -> Any:
            return ComputeSerializer(
                strategy_code="DillCode", strategy_data="DillDataBase64"
            )

        return cls(
            freight_default=ComputeSerializer(),
            freight_default_cold=ComputeSerializer(),
            freight_text=text(),
            freight_text_cold=text(),
            reference=Reference(),
        )

    def identifiers(self) -> dict[str, dict[str, str]]:
        """Code and data strategy identifiers of each serializer, for the report."""
        pairs = {
            "freight_default": self.freight_default,
            "freight_text": self.freight_text,
            "reference": self.reference,
        }
        return {
            name: {
                "code": strategy_id(serde.code_serializer.identifier),
                "data": strategy_id(serde.data_serializer.identifier),
            }
            for name, serde in pairs.items()
        }


def wire_size(wire: Any) -> int:
    """Bytes on the wire: a blob's length, a text payload's UTF-8 length, the sum of
    a frame list's frames, or pickle's in-band bytes plus its out-of-band buffers."""
    if isinstance(wire, str):
        return len(wire) if wire.isascii() else len(wire.encode("utf-8"))
    if isinstance(wire, list | tuple):
        return sum(wire_size(part) for part in wire)
    with memoryview(wire) as view:
        return view.nbytes


def wire_buffers(wire: Any) -> list[Any]:
    """The binary buffers a wire form is made of (none for text)."""
    if isinstance(wire, str):
        return []
    if isinstance(wire, list | tuple):
        return [b for part in wire for b in wire_buffers(part)]
    return [wire]


# Protocol 5 passed positionally: ``partial(pickle.dumps, protocol=5)`` copies its
# keyword dict on every call, which would triple the time of a tiny payload.
def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, 5)


def _pickle_oob_dumps(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return data, buffers


def _pickle_oob_loads(wire: tuple[bytes, list[pickle.PickleBuffer]]) -> Any:
    data, buffers = wire
    return pickle.loads(data, buffers=buffers)


def _cold(serde: Any, encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``encode`` preceded by emptying ``serde``'s function cache, every call."""
    clear = serde.clear_cache

    def encode_cold(obj: Any) -> Any:
        clear()
        return encode(obj)

    return encode_cold


def _freight(payload: Payload, s: Serializers) -> list[Contender]:
    default_ids = s.identifiers()["freight_default"]
    text_ids = s.identifiers()["freight_text"]
    kind = "code" if payload.is_function else "data"
    fd, ft = default_ids[kind], text_ids[kind]
    if not payload.is_function:
        d, t = s.freight_default, s.freight_text
        return [
            Contender("freight_blob", "freight", d.dumps, d.loads, fd),
            Contender("freight_frames", "freight", d.dumps_frames, d.loads_frames, fd),
            Contender("freight_text", "freight", t.serialize, t.deserialize, ft),
        ]
    dc, tc = s.freight_default_cold, s.freight_text_cold
    d, t = s.freight_default, s.freight_text
    return [
        Contender("freight_blob", "freight", _cold(dc, dc.dumps), dc.loads, fd),
        Contender(
            "freight_frames",
            "freight",
            _cold(dc, dc.dumps_frames),
            dc.loads_frames,
            fd,
        ),
        Contender(
            "freight_text", "freight", _cold(tc, tc.serialize), tc.deserialize, ft
        ),
        Contender("freight_blob_cached", "freight", d.dumps, d.loads, fd),
        Contender(
            "freight_frames_cached", "freight", d.dumps_frames, d.loads_frames, fd
        ),
        Contender("freight_text_cached", "freight", t.serialize, t.deserialize, ft),
    ]


def _peers(payload: Payload, s: Serializers) -> list[Contender]:
    ref_ids = s.identifiers()["reference"]
    ref_id = ref_ids["code" if payload.is_function else "data"]
    return [
        Contender(
            "reference",
            "reference",
            s.reference.serialize,
            s.reference.deserialize,
            ref_id,
        ),
        Contender("pickle5", "peer", _pickle_dumps, pickle.loads),
        Contender("pickle5_oob", "peer", _pickle_oob_dumps, _pickle_oob_loads),
        Contender("cloudpickle", "peer", cloudpickle.dumps, cloudpickle.loads),
        Contender("dill", "peer", dill.dumps, dill.loads),
        Contender("msgpack", "peer", msgpack.packb, msgpack.unpackb),
    ]


def for_payload(
    payload: Payload, serializers: Serializers
) -> tuple[list[Contender], list[tuple[Contender, str]]]:
    """The contenders that apply to ``payload``, and the skipped ones with why."""
    applicable: list[Contender] = []
    skipped: list[tuple[Contender, str]] = []
    for contender in [*_freight(payload, serializers), *_peers(payload, serializers)]:
        reason = payload.spec.out_of_domain.get(contender.base_key)
        if reason is None:
            applicable.append(contender)
        else:
            skipped.append((contender, reason))
    return applicable, skipped
