"""StrategyCodec and the Envelope objects (freight.serialize.envelope).

The codec is one strategy under one set of limits and policy; ComputeSerializer
uses it for its per-strategy steps, and the conformance kit goes through it.  These
tests hold it to the facade's behaviour for the same strategy, and show that a new
envelope is one class the kit accepts.
"""

from __future__ import annotations

import base64
import binascii
import pickle
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    Limits,
    Policy,
    SerdeError,
    SerializationError,
    SerializationStrategy,
    StrategyNotAllowed,
    binary,
    default_registry,
)
from freight.serialize.envelope import (
    BLOB,
    ENVELOPES,
    FRAMES,
    TEXT,
    Envelope,
    StrategyCodec,
    envelope_named,
    envelope_of,
)
from freight.serialize.limits import DEFAULT_LIMITS
from freight.testing import (
    assert_rejects_malformed,
    assert_roundtrip,
    json_values,
    payload_of,
    serializer_for,
    strategy_conformance,
)
from freight.testing.assertions import KitSerializer
from freight.testing.malformed import DamagePlan, apply_damage


def registered(name: str) -> SerializationStrategy:
    return default_registry().resolve(name).strategy


def add_one(x: int) -> int:
    return x + 1


VALUE = {"a": [1, 2.5, "three"], "b": None, "c": {"d": True}}


# -- envelopes --------------------------------------------------------------------


def test_envelopes_are_their_names():
    assert ENVELOPES == ("text", "blob", "frames")
    assert (TEXT, BLOB, FRAMES) == ENVELOPES
    assert {"text": 1}[TEXT] == 1 and hash(FRAMES) == hash("frames")
    for envelope in ENVELOPES:
        assert envelope_named(str(envelope)) is envelope
        assert envelope_named(envelope) is envelope
        assert pickle.loads(pickle.dumps(envelope)) == envelope
    with pytest.raises(ValueError, match="unknown envelope 'json'"):
        envelope_named("json")


def test_the_envelope_of_a_payload_is_told_by_its_type():
    assert envelope_of("11\n{}") is TEXT
    assert envelope_of(b"\x93FRT") is BLOB
    assert envelope_of(memoryview(b"x")) is BLOB
    assert envelope_of([b"h", b"b"]) is FRAMES
    with pytest.raises(TypeError, match="got int"):
        envelope_of(3)


# -- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("name", ["JSONData", "PickleData", "MsgpackData"])
def test_a_data_codec_round_trips_in_every_envelope(name: str, envelope: Envelope):
    codec = StrategyCodec(registered(name))
    payload = codec.encode(VALUE, envelope)
    assert envelope.holds(payload)
    assert codec.decode(envelope.received(payload), envelope) == VALUE
    assert codec.decode(envelope.received(payload)) == VALUE  # type tells


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("name", ["CloudPickleCode", "DillCode", "PureSourceDill"])
def test_a_code_codec_round_trips_in_every_envelope(name: str, envelope: Envelope):
    codec = StrategyCodec(registered(name))
    payload = codec.encode(add_one, str(envelope))  # by name too
    assert codec.decode(envelope.received(payload), envelope)(2) == 3


def test_out_of_band_buffers_travel_as_frames_and_come_back_as_views():
    codec = StrategyCodec(registered("PickleData"))
    array = np.arange(100_000, dtype=np.float64)
    frames = codec.dumps_frames(array)
    assert len(frames) == 3 and np.shares_memory(np.frombuffer(frames[2]), array)
    received = FRAMES.received(frames)
    decoded = codec.loads_frames(received)
    assert np.array_equal(decoded, array)
    assert np.shares_memory(decoded, np.frombuffer(received[2]))
    assert np.array_equal(codec.loads(codec.dumps(array)), array)


def test_a_decode_only_strategy_has_a_codec_too():
    strategy = registered("PickleCode")
    assert strategy.decode_only
    codec = StrategyCodec(strategy)
    body = pickle.dumps(add_one)
    text = "02\n" + base64.b64encode(body).decode()
    assert codec.deserialize(text) is add_one
    assert codec.loads_frames(frame([body], strategy)) is add_one
    assert codec.loads(b"".join(frame([body], strategy))) is add_one
    # It encodes what the strategy can: here, nothing (the strategy says why).
    with pytest.raises(SerializationError, match="PickleCode is decode-only"):
        codec.serialize(add_one)


@settings(max_examples=40, deadline=None)
@given(value=json_values(), envelope=st.sampled_from(ENVELOPES))
def test_the_codec_and_the_facade_make_the_same_payloads(
    value: Any, envelope: Envelope
):
    serde = ComputeSerializer(strategy_data="JSONData")
    codec = StrategyCodec(serde.data_serializer)
    ours = envelope.canonical(codec.encode(value, envelope))
    facade = {TEXT: serde.serialize, BLOB: serde.dumps, FRAMES: serde.dumps_frames}
    assert ours == envelope.canonical(facade[envelope](value))
    assert codec.decode(envelope.received(codec.encode(value, envelope))) == value


def test_the_facade_keeps_one_codec_per_strategy_under_its_settings():
    limits = Limits(max_size=1 << 20)
    serde = ComputeSerializer(limits=limits)
    assert isinstance(serde.data_codec, StrategyCodec)
    assert serde.data_codec.strategy is serde.data_serializer
    assert serde.code_codec.strategy is serde.code_serializer
    assert serde.data_codec.limits is limits
    serde.limits = None
    assert serde.data_codec.limits is DEFAULT_LIMITS
    serde.policy = Policy.untrusted_input()
    assert serde.data_codec.policy == Policy.untrusted_input()


# -- the same checks as the facade ------------------------------------------------


class Spy(SerializationStrategy):
    """JSON-ish text strategy that records every body it is asked to decode."""

    identifier = "Y7\n"
    for_code = False
    name = "codec-test-spy"
    seen: ClassVar[list[Any]] = []

    def serialize(self, data: Any) -> str:
        return self.identifier + repr(data)

    def deserialize(self, payload: str) -> Any:
        self.seen.append(payload)
        raise ValueError("the spy decodes nothing")


def test_a_payload_of_another_strategy_is_refused_before_its_body_is_read():
    spy = Spy()
    codec = StrategyCodec(spy)
    other = StrategyCodec(registered("JSONData"))
    for envelope in ENVELOPES:
        with pytest.raises(StrategyNotAllowed, match="decodes only Spy") as info:
            codec.decode(other.encode([1], envelope), envelope)
        assert info.value.identifier == "11\n"
    assert Spy.seen == []
    # As the facade refuses a strategy outside its allowlist: the same type.
    serde = ComputeSerializer(allowed_deserializer_types=["JSONData", "DillCode"])
    with pytest.raises(StrategyNotAllowed):
        serde.deserialize(StrategyCodec(registered("PickleData")).serialize([1]))


@pytest.mark.parametrize("payload", ["", "1", "11", "1x1", "\n\n\n{}"])
def test_a_malformed_text_header_gets_the_facades_error(payload: str):
    codec = StrategyCodec(registered("JSONData"))
    with pytest.raises(DeserializationError) as ours:
        codec.deserialize(payload)
    with pytest.raises(DeserializationError) as theirs:
        ComputeSerializer().deserialize(payload)
    assert str(ours.value) == str(theirs.value)


def test_the_type_errors_are_the_facades():
    codec, serde = StrategyCodec(registered("JSONData")), ComputeSerializer()
    for call, bad in [
        (lambda s: s.deserialize(b"11\n[]"), "binary payloads go to loads"),
        (lambda s: s.loads("11\n[]"), "got str"),
        (lambda s: s.loads_frames(b"xyz"), "a single blob goes to loads"),
    ]:
        with pytest.raises(DeserializationError, match=bad) as ours:
            call(codec)
        with pytest.raises(DeserializationError) as theirs:
            call(serde)
        assert str(ours.value) == str(theirs.value)


def test_the_policy_refuses_as_the_facades_does():
    pickle_data = registered("PickleData")
    codec = StrategyCodec(pickle_data, policy=Policy.untrusted_input())
    serde = ComputeSerializer(strategy_data="JSONData", policy=Policy.untrusted_input())
    payload = StrategyCodec(pickle_data).serialize([1])
    blob = StrategyCodec(pickle_data).dumps([1])
    for decode in (lambda s: s.deserialize(payload), lambda s: s.loads(blob)):
        with pytest.raises(DeserializationError, match="lacks SAFE_FOR_UNTRUSTED") as a:
            decode(codec)
        with pytest.raises(DeserializationError) as b:
            decode(serde)
        assert str(a.value) == str(b.value)
    portable = Policy.portable()
    with pytest.raises(SerdeError) as refused:
        ComputeSerializer(strategy_data=pickle_data, policy=portable)
    codec = StrategyCodec(pickle_data, policy=portable)
    for envelope in ENVELOPES:
        with pytest.raises(SerializationError) as ours:
            codec.encode([1], envelope)
        assert str(ours.value) == str(refused.value)


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_the_limits_apply_as_in_the_facade(envelope: Envelope):
    limits = Limits(max_size=1024, max_depth=5)
    codec = StrategyCodec(registered("JSONData"), limits=limits)
    serde = ComputeSerializer(strategy_data="JSONData", limits=limits)
    maker = StrategyCodec(registered("JSONData"))
    decode = {TEXT: serde.deserialize, BLOB: serde.loads, FRAMES: serde.loads_frames}
    for value, limit in [("x" * 2000, "max_size"), ([[[[[[[1]]]]]]], "max_depth")]:
        payload = envelope.received(maker.encode(value, envelope))
        with pytest.raises(DeserializationError, match=limit) as ours:
            codec.decode(payload, envelope)
        with pytest.raises(DeserializationError) as theirs:
            decode[envelope](payload)
        assert str(ours.value) == str(theirs.value)


class Fails(SerializationStrategy):
    identifier = "Y8\n"
    for_code = False
    name = "codec-test-fails"

    def serialize(self, data: Any) -> str:
        raise TypeError(f"cannot encode {data!r}")

    def deserialize(self, payload: str) -> Any:
        raise KeyError(payload)

    def from_frames(self, body: Any, buffers: list[memoryview]) -> Any:
        raise KeyError(bytes(body))


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_strategy_failures_are_wrapped_naming_the_strategy(envelope: Envelope):
    codec = StrategyCodec(Fails())
    with pytest.raises(SerializationError, match="Data serialization strategy Fails"):
        codec.encode(1, envelope)
    payload = "Y8\nbody" if envelope.text else envelope.wrap(frame([b"body"], Fails()))
    with pytest.raises(DeserializationError, match=r"Fails \('Y8\\n'\) failed") as e:
        codec.decode(payload, envelope)
    assert isinstance(e.value.__cause__, KeyError)


def frame(parts: list[bytes], strategy: SerializationStrategy) -> list[bytes]:
    prefix = binary.message_prefix(strategy.identifier, text_body=strategy.text_body)
    header = binary.message_header(prefix, parts[0], parts[1:])
    return [header, *parts]


# -- the kit goes through it ------------------------------------------------------


def test_the_kit_uses_a_codec_and_registers_nothing():
    before = [rec.identifier for rec in default_registry()]
    kit = KitSerializer(Spy)
    assert isinstance(kit.codec, StrategyCodec) and kit.serde is kit.codec
    assert isinstance(serializer_for(registered("JSONData")), StrategyCodec)
    assert [rec.identifier for rec in default_registry()] == before
    assert kit.encode("text", 5) == kit.encode(TEXT, 5) == "Y7\n5"


class Base64Envelope(Envelope):
    """A binary message as ASCII base64, for a transport that carries only text
    bytes: a new envelope, defined as one class."""

    name = "base64-blob"

    def dump(self, codec: StrategyCodec, obj: Any) -> Any:
        return base64.b64encode(codec.dumps(obj))

    def load(self, codec: StrategyCodec, payload: Any) -> Any:
        return codec.loads(self._blob(payload))

    def parse(self, payload: Any, limits: Limits = DEFAULT_LIMITS) -> binary.Message:
        return binary.parse_blob(self._blob(payload), limits)

    def wrap(self, frames: Any) -> Any:
        return base64.b64encode(b"".join(bytes(f) for f in frames))

    @staticmethod
    def _blob(payload: Any) -> bytes:
        try:
            return base64.b64decode(bytes(payload), validate=True)
        except (binascii.Error, ValueError) as e:
            raise DeserializationError(f"not base64: {e}") from e


B64 = Base64Envelope()


def test_a_new_envelope_works_with_the_kits_helpers():
    assert B64 == "base64-blob" and envelope_named(B64) is B64
    assert_roundtrip(registered("JSONData"), VALUE, envelopes=(B64,))
    assert_roundtrip(registered("PickleData"), np.arange(10.0), envelopes=(B64,))
    seed = payload_of(registered("JSONData"), B64, VALUE)
    assert base64.b64decode(seed).startswith(binary.MESSAGE_MAGIC)
    for damage, itself in [
        ("truncated", False),
        ("garbage", False),
        ("extended", True),
    ]:
        plan = DamagePlan(damage, envelope_itself=itself, cut=7, extra=b"!!")
        damaged = apply_damage(plan, registered("JSONData"), B64, seed)
        assert damaged != seed
        assert_rejects_malformed(
            registered("JSONData"), damaged, envelope=B64, allow_success=True
        )


def test_the_kit_reports_a_strategy_broken_in_a_new_envelope():
    class LosesTuples(SerializationStrategy):
        identifier = "Y9\n"
        for_code = False
        name = "codec-test-loses-tuples"

        def serialize(self, data: Any) -> str:
            return self.identifier + repr(list(data))

        def deserialize(self, payload: str) -> Any:
            return eval(payload[3:])  # a list: the tuple is lost

    with pytest.raises(AssertionError, match=r"base64-blob envelope\) changed"):
        assert_roundtrip(LosesTuples, (1, 2), envelopes=(B64,))


#: The conformance kit in a new envelope, as a plugin author would write it.
TestJSONDataInBase64 = strategy_conformance(
    registered("JSONData"),
    values=json_values(),
    envelopes=(TEXT, B64),
    damages=("truncated", "extended", "bit-flipped"),
    max_examples=5,
    oversized_size=1 << 12,
)


def test_conformance_classes_take_envelopes_and_names_but_not_unknown_ones():
    assert TestJSONDataInBase64.envelopes == (TEXT, B64)
    by_name = strategy_conformance(
        registered("JSONData"), values=json_values(), envelopes=("blob",)
    )
    assert by_name.envelopes == (BLOB,)
    with pytest.raises(TypeError, match="unknown envelope 'json'"):
        strategy_conformance(
            registered("JSONData"), values=json_values(), envelopes=("json",)
        )


# -- frame codecs -----------------------------------------------------------------


def test_frame_compression_works_both_ways_with_the_facade():
    pytest.importorskip("zstandard")
    from freight.serialize.codecs import FrameCodecs

    zstd = FrameCodecs(codec="zstd", min_size=0)
    codec = StrategyCodec(registered("PickleData"), compression=zstd)
    serde = ComputeSerializer(compression=zstd)
    array = np.zeros(100_000)
    frames = codec.dumps_frames(array)
    assert sum(memoryview(f).nbytes for f in frames) < array.nbytes // 100
    assert np.array_equal(codec.loads_frames(FRAMES.received(frames)), array)
    assert np.array_equal(serde.loads(codec.dumps(array)), array)
    assert np.array_equal(codec.loads(serde.dumps(array)), array)
    lz4_only = StrategyCodec(
        registered("PickleData"), compression=FrameCodecs(decode=frozenset({"lz4"}))
    )
    with pytest.raises(DeserializationError, match="does not decode"):
        lz4_only.loads(codec.dumps(array))
