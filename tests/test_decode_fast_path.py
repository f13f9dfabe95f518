"""The decode fast path: what a strategy's ``from_frames`` is handed, and headers the
facade has already checked once.

``loads`` / ``loads_frames`` remember the header of a buffer-free message they
decoded (metadata included, by message length) and skip the parse for the same
header bytes again.  These tests hold that remembering never changes a verdict: a
changed byte anywhere in the header decodes, or fails, exactly as it would for a
serializer that has seen nothing; the allowlist, a restricted unpickler and the
decode limits apply every time.
"""

from __future__ import annotations

import types
from typing import Any, ClassVar

import pytest

from freight.plugins import json_strategies
from freight.plugins.pickle_strategies import SAFE_DATA_GLOBALS, PickleData
from freight.serialize import (
    BytesStrategy,
    ComputeSerializer,
    DeserializationError,
    Limits,
    StrategyRegistry,
    hookimpl,
)
from freight.serialize.binary import SMALL_BODY

# Every test here runs with the C fast path and with its pure-Python twin.
pytestmark = pytest.mark.usefixtures("each_fast_path")


class BodyTypes(BytesStrategy):
    """Bytes pass through unchanged; records the type of every body it is handed."""

    identifier = "T2\n"
    for_code = False
    name = "test-body-types"
    seen: ClassVar[list[type]] = []

    def encode(self, obj: Any) -> bytes:
        return bytes(obj)

    def decode(self, data: bytes) -> Any:
        return data

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        type(self).seen.append(type(body))
        return super().from_frames(body, buffers)


@hookimpl
def _local() -> list[type[BytesStrategy]]:
    return [BodyTypes]


@pytest.fixture
def registry() -> StrategyRegistry:
    BodyTypes.seen.clear()
    registry = StrategyRegistry(entry_point_group=None)
    registry.register_plugin(json_strategies, json_strategies.__name__)
    registry.register_plugin(types.SimpleNamespace(freight_strategies=_local), "local")
    return registry


@pytest.fixture
def spy(registry: StrategyRegistry) -> ComputeSerializer:
    from freight.plugins import dill_strategies

    registry.register_plugin(dill_strategies, dill_strategies.__name__)
    return ComputeSerializer(
        strategy_code="DillCode", strategy_data="test-body-types", registry=registry
    )


# -- what from_frames is handed ------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, SMALL_BODY])
def test_a_small_body_is_handed_over_as_bytes(spy, size):
    data = b"x" * size
    blob = spy.dumps(data)
    for _ in range(2):  # the first decode parses, the second takes the fast path
        assert spy.loads(blob) == data
        assert spy.loads(memoryview(blob)) == data
        assert spy.loads(bytearray(blob)) == data
    assert set(BodyTypes.seen) == {bytes}


def test_a_large_body_in_a_blob_is_a_view_of_it(spy):
    data = b"x" * (SMALL_BODY + 1)
    blob = spy.dumps(data)
    for _ in range(2):
        assert spy.loads(blob) == data
        assert spy.loads(bytearray(blob)) == data
    assert set(BodyTypes.seen) == {memoryview}


def test_a_bytes_body_frame_is_handed_over_as_it_is(spy, monkeypatch):
    data = b"y" * (SMALL_BODY * 4)
    frames = spy.dumps_frames(data)
    handed: list[Any] = []
    original = BodyTypes.from_frames

    def record(self: Any, body: Any, buffers: Any) -> Any:
        handed.append(body)
        return original(self, body, buffers)

    monkeypatch.setattr(BodyTypes, "from_frames", record)
    for _ in range(2):
        assert spy.loads_frames(frames) == data
    assert all(body is frames[1] for body in handed) and len(handed) == 2


def test_the_default_body_decoder_is_from_frames_without_buffers(spy):
    strategy = spy.data_serializer
    assert strategy.body_decoder()(b"abc") == strategy.from_frames(b"abc", [])


# -- remembered headers never change a verdict ---------------------------------------


def outcome(s: ComputeSerializer, form: str, wire: list[bytes]) -> Any:
    try:
        if form == "blob":
            return ("ok", s.loads(b"".join(wire)))
        return ("ok", s.loads_frames(list(wire)))
    except DeserializationError as e:
        return ("error", str(e))


@pytest.mark.parametrize("form", ["blob", "frames"])
def test_every_changed_header_byte_decodes_as_for_a_fresh_serializer(form):
    s = ComputeSerializer()
    header, body = (bytes(f) for f in s.dumps_frames({"k": [1, 2, 3]}))
    assert outcome(s, form, [header, body]) == ("ok", {"k": [1, 2, 3]})
    for offset in range(len(header)):
        for value in {header[offset] ^ 0x01, header[offset] ^ 0x80, 0}:
            if value == header[offset]:
                continue
            changed = bytearray(header)
            changed[offset] = value
            wire = [bytes(changed), body]
            assert outcome(s, form, wire) == outcome(ComputeSerializer(), form, wire), (
                f"byte {offset} set to {value:#x}"
            )
    # And the original still takes its (fast) way.
    assert outcome(s, form, [header, body]) == ("ok", {"k": [1, 2, 3]})


def test_the_allowlist_applies_to_a_message_as_long_as_a_remembered_one(registry):
    from freight.plugins import dill_strategies

    registry.register_plugin(dill_strategies, dill_strategies.__name__)
    json_s = ComputeSerializer("DillCode", "json", registry=registry)
    allowed = ComputeSerializer(
        "DillCode",
        "json",
        registry=registry,
        allowed_deserializer_types=["json", "DillCode"],
    )
    spy = ComputeSerializer("DillCode", "test-body-types", registry=registry)
    known = json_s.dumps("abcdefgh")
    forbidden = spy.dumps(b'"abcdefgh"')
    assert allowed.loads(known) == "abcdefgh"
    assert allowed.loads(known) == "abcdefgh"
    with pytest.raises(DeserializationError, match="BodyTypes disabled"):
        allowed.loads(forbidden)
    assert BodyTypes.seen == []


def same_length_str_blob(s: ComputeSerializer, length: int) -> bytes:
    """A blob of ``s`` for a str, exactly ``length`` bytes long."""
    for n in range(length):
        blob = s.dumps("a" * n)
        if len(blob) == length:
            return blob
    raise AssertionError(f"no str blob of {length} bytes")


def test_a_restricted_unpickler_refuses_every_time():
    s = ComputeSerializer(strategy_data=PickleData(SAFE_DATA_GLOBALS))
    # Not in SAFE_DATA_GLOBALS, made by a serializer that does not restrict.
    evil = ComputeSerializer().dumps(types.SimpleNamespace(a=1))
    fine = same_length_str_blob(s, len(evil))
    assert s.loads(fine) == s.loads(fine)  # remembered: evil's header is the same
    for _ in range(2):
        with pytest.raises(DeserializationError, match="not in the unpickler"):
            s.loads(evil)


def test_decode_limits_apply_on_the_fast_path():
    s = ComputeSerializer(strategy_data="msgpack", limits=Limits(max_depth=5))
    shallow, deep = [[[[1, 2, 3]]]], [[[[[[1]]]]]]
    shallow_blob = s.dumps(shallow)
    deep_blob = ComputeSerializer(strategy_data="msgpack").dumps(deep)
    assert len(shallow_blob) == len(deep_blob)  # one remembered header serves both
    assert s.loads(shallow_blob) == shallow
    assert s.loads(shallow_blob) == shallow
    for _ in range(2):
        with pytest.raises(DeserializationError, match="max_depth"):
            s.loads(deep_blob)


def test_the_remembered_headers_are_bounded():
    s = ComputeSerializer()
    for n in range(5000):
        assert s.loads(s.dumps(b"z" * n)) == b"z" * n
    assert 0 < len(s._known) <= 4096
