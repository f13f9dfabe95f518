"""Policies by strategy properties, decode limits, configured decoders and version
awareness in the binary envelope."""

from __future__ import annotations

import json
import types
import warnings
from typing import Any

import pytest

from freight.serialize import (
    BytesStrategy,
    ComputeSerializer,
    DeserializationError,
    Limits,
    Policy,
    Property,
    SerdeError,
    StrategyRegistry,
    VersionMismatchWarning,
    binary,
    default_registry,
    hookimpl,
)

# Every test here runs with the C fast path and with its pure-Python twin.
pytestmark = pytest.mark.usefixtures("each_fast_path")


class SpyData(BytesStrategy):
    """A data strategy with no properties that records whether it decoded."""

    identifier = "Y1\n"
    for_code = False
    name = "spy-data"
    decoded: list[bytes] = []  # noqa: RUF012

    def encode(self, obj: Any) -> bytes:
        return repr(obj).encode()

    def decode(self, data: bytes) -> Any:
        type(self).decoded.append(data)
        return data.decode()


@pytest.fixture
def registry() -> StrategyRegistry:
    """The built-ins plus the spy, in a registry of the test's own."""
    reg = StrategyRegistry()

    @hookimpl
    def freight_strategies() -> list[type]:
        return [SpyData]

    reg.register_plugin(
        types.SimpleNamespace(freight_strategies=freight_strategies), "spy"
    )
    SpyData.decoded.clear()
    return reg


# -- policies ------------------------------------------------------------------------


def test_untrusted_input_policy_refuses_unsafe_decoders_before_decoding(registry):
    producer = ComputeSerializer(strategy_data="spy-data", registry=registry)
    guarded = ComputeSerializer(
        strategy_data="json", registry=registry, policy=Policy.untrusted_input()
    )

    for payload, decode in [
        (producer.serialize(1), guarded.deserialize),
        (producer.dumps(1), guarded.loads),
        (producer.dumps_frames(1), guarded.loads_frames),
    ]:
        with pytest.raises(DeserializationError, match="SAFE_FOR_UNTRUSTED"):
            decode(payload)  # type: ignore[operator]
    assert SpyData.decoded == []
    assert guarded.deserialize(guarded.serialize({"a": [1]})) == {"a": [1]}
    assert guarded.loads(guarded.dumps({"a": [1]})) == {"a": [1]}


def test_untrusted_input_policy_refuses_pickle_family_payloads():
    guarded = ComputeSerializer(strategy_data="json", policy=Policy.untrusted_input())
    dill_payload = ComputeSerializer(strategy_data="dill-data").serialize([1, 2])
    with pytest.raises(DeserializationError, match=r"DillDataBase64.*lacks"):
        guarded.deserialize(dill_payload)


def test_encode_policy_picks_qualifying_strategies_when_none_is_given():
    serde = ComputeSerializer(policy=Policy.portable())
    assert Property.PORTABLE in serde.data_serializer.properties
    assert Property.PORTABLE in serde.code_serializer.properties
    assert serde.deserialize(serde.serialize({"x": 1})) == {"x": 1}
    assert serde.deserialize(serde.serialize(_plus_one))(1) == 2


def test_encode_policy_refuses_an_explicit_strategy_that_lacks_a_property():
    with pytest.raises(SerdeError, match=r"DillDataBase64.*may not encode.*PORTABLE"):
        ComputeSerializer(strategy_data="dill-data", policy=Policy.portable())


def test_encode_policy_with_no_qualifying_strategy_says_so():
    with pytest.raises(SerdeError, match="no registered code strategy satisfies"):
        ComputeSerializer(policy=Policy(encode=Property.SAFE_FOR_UNTRUSTED))


def test_every_builtin_declares_properties_consistent_with_its_kind():
    for rec in default_registry():
        props = rec.strategy.properties
        assert isinstance(props, Property)
        if rec.for_code:
            # Decoding code is running code: never safe on hostile input.
            assert Property.SAFE_FOR_UNTRUSTED not in props, rec


# -- limits --------------------------------------------------------------------------


def test_max_size_applies_to_every_envelope():
    serde = ComputeSerializer(strategy_data="json", limits=Limits(max_size=64))
    big = "x" * 100
    text_payload = serde.serialize(big)
    for decode, payload in [
        (serde.deserialize, text_payload),
        (serde.loads, serde.dumps(big)),
        (serde.loads_frames, serde.dumps_frames(big)),
        (serde.unpack_and_deserialize, serde.pack_buffers([text_payload] * 3)),
    ]:
        with pytest.raises(DeserializationError, match="max_size=64"):
            decode(payload)  # type: ignore[operator]
    assert serde.deserialize(serde.serialize("small")) == "small"


def test_max_frames_bounds_buffers_and_bundle_messages():
    serde = ComputeSerializer(strategy_data="json", limits=Limits(max_frames=2))
    one = serde.dumps_frames(1)
    bundle = serde.pack_frames([one, one, one])
    with pytest.raises(DeserializationError, match="max_frames=2"):
        serde.unpack_frames_and_deserialize(bundle)
    with pytest.raises(DeserializationError, match="max_frames=2"):
        serde.unpack_frames_and_deserialize(b"".join(bundle))
    header = bytearray(binary.message_header(bytes(one[0][:12]), b"", [b"", b"", b""]))
    with pytest.raises(DeserializationError, match="max_frames=2"):
        serde.loads_frames([bytes(header), b"", b"", b"", b""])
    with pytest.raises(DeserializationError, match="max_frames=2"):
        serde.loads(bytes(header) + b"")  # the blob form of the same message
    packed = serde.pack_buffers([serde.serialize(1)] * 3)
    with pytest.raises(DeserializationError, match="max_frames=2"):
        serde.unpack_and_deserialize(packed)


def test_max_depth_is_enforced_for_json_and_named_in_the_error():
    shallow = ComputeSerializer(strategy_data="json", limits=Limits(max_depth=5))
    deep = [[[[[[["x"]]]]]]]
    payload = ComputeSerializer(strategy_data="json").serialize(deep)
    with pytest.raises(DeserializationError, match="max_depth=5"):
        shallow.deserialize(payload)
    with pytest.raises(DeserializationError, match="max_depth=5"):
        shallow.loads(ComputeSerializer(strategy_data="json").dumps(deep))
    assert shallow.deserialize(shallow.serialize([[["ok"]]])) == [[["ok"]]]


def test_pathologically_deep_json_is_a_clear_error_not_a_crash():
    payload = "11\n" + "[" * 100_000 + "]" * 100_000
    with pytest.raises(DeserializationError, match="max_depth"):
        ComputeSerializer().deserialize(payload)


# -- configured instances decode their own identifier --------------------------------


class Prefixing(BytesStrategy):
    identifier = "Y2\n"
    for_code = False
    name = "prefixing"

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix

    def encode(self, obj: Any) -> bytes:
        return self.prefix + json.dumps(obj).encode()

    def decode(self, data: bytes) -> Any:
        if not data.startswith(self.prefix):
            raise ValueError(f"expected prefix {self.prefix!r}")
        return json.loads(data[len(self.prefix) :])


def test_the_configured_instance_decodes_its_own_identifier(registry):
    @hookimpl
    def freight_strategies() -> list[type]:
        return [Prefixing]

    registry.register_plugin(
        types.SimpleNamespace(freight_strategies=freight_strategies), "prefixing"
    )
    configured = ComputeSerializer(strategy_data=Prefixing(b"v2:"), registry=registry)
    payload = configured.serialize([1])
    assert configured.deserialize(payload) == [1]
    assert configured.loads(configured.dumps([1])) == [1]
    # The registry's unconfigured instance would not read it.
    plain = ComputeSerializer(strategy_data="json", registry=registry)
    with pytest.raises(DeserializationError, match="Prefixing"):
        plain.deserialize(payload)


# -- version awareness ---------------------------------------------------------------


def _as_if_made_by(frames: list[Any], minor: int) -> list[Any]:
    header = bytearray(frames[0])
    header[7] = minor
    return [bytes(header), *frames[1:]]


def test_binary_header_records_python_and_library_versions():
    serde = ComputeSerializer(strategy_code="dill-code", strategy_data="dill-data")
    message = binary.parse_message(serde.dumps_frames([1]))
    import sys

    assert message.python == sys.version_info[:2]
    meta = json.loads(bytes(message.metadata))
    assert meta["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "dill" in meta


def test_code_from_another_python_minor_warns_naming_both_versions():
    serde = ComputeSerializer(strategy_code="dill-code")
    frames = _as_if_made_by(serde.dumps_frames(len), minor=99)
    with pytest.warns(
        VersionMismatchWarning, match=r"Python 3\.99.*decoded by Python 3\.\d+"
    ) as info:
        assert serde.loads_frames(frames) is len
    message = str(info[0].message)
    assert "not portable" in message
    assert (
        "PureSourceTextInspect" in message
    )  # a portable alternative, from the registry


def test_failed_decode_of_foreign_code_explains_the_version_mismatch():
    serde = ComputeSerializer(strategy_code="dill-code")
    frames = _as_if_made_by(serde.dumps_frames(len), minor=99)
    frames[1] = b"\x80\x05garbage"
    header = binary.parse_message([frames[0], serde.dumps_frames(len)[1]])
    assert header.python[1] == 99
    frames[0] = binary.message_header(
        bytes(frames[0][:12]), frames[1], [], bytes(header.metadata)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VersionMismatchWarning)
        with pytest.raises(
            DeserializationError, match=r"made by Python .* not portable"
        ):
            serde.loads_frames(frames)


def test_portable_code_and_data_from_another_python_do_not_warn():
    serde = ComputeSerializer(
        strategy_code="source-text-inspect", strategy_data="dill-data"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", VersionMismatchWarning)
        code = _as_if_made_by(serde.dumps_frames(_plus_one), minor=99)
        assert serde.loads_frames(code)(1) == 2
        data = _as_if_made_by(serde.dumps_frames([1, 2]), minor=99)
        assert serde.loads_frames(data) == [1, 2]


def _plus_one(x):
    return x + 1


def test_max_depth_is_enforced_for_msgpack():
    shallow = ComputeSerializer(strategy_data="msgpack", limits=Limits(max_depth=3))
    with pytest.raises(DeserializationError, match="max_depth=3"):
        shallow.loads(ComputeSerializer(strategy_data="msgpack").dumps([[[[1]]]]))
    assert shallow.loads(shallow.dumps([[1]])) == [[1]]
    # Deeper than msgpack's own stack: still a DeserializationError naming the limit.
    deep = b"\x91" * 5000 + b"\x01"
    prefix = bytes(shallow.dumps_frames(1)[0][:12])
    frames = [binary.message_header(prefix, deep, []), deep]
    with pytest.raises(DeserializationError, match="max_depth"):
        ComputeSerializer(strategy_data="msgpack").loads_frames(frames)


# -- settings changed after construction ---------------------------------------------
# A serializer remembers verdicts (admitted decoders, learned headers).  Replacing a
# setting must make the next decode judge afresh, on the binary fast path and the
# text path alike.


def learned(s: ComputeSerializer, value: Any) -> tuple[bytes, str]:
    """A blob and a text payload for ``value``, each decoded once (so remembered)."""
    blob, payload = s.dumps(value), s.serialize(value)
    assert s.loads(blob) == value and s.deserialize(payload) == value
    assert s._known and s._admitted
    return blob, payload


def test_a_narrowed_allowlist_refuses_what_was_decoded_before():
    s = ComputeSerializer(strategy_data="JSONData")
    blob, payload = learned(s, {"a": [1, 2]})
    s.allowed_deserializer_types = ["DillCode", "PickleData"]
    for decode, data in ((s.loads, blob), (s.deserialize, payload)):
        with pytest.raises(DeserializationError, match="JSONData"):
            decode(data)


def test_an_untrusted_policy_refuses_what_was_decoded_before():
    s = ComputeSerializer(strategy_code="PureSourceTextInspect")
    blob, payload = learned(s, [1, 2])  # p5: pickle
    s.policy = Policy.untrusted_input()
    for decode, data in ((s.loads, blob), (s.deserialize, payload)):
        with pytest.raises(DeserializationError, match="PickleData"):
            decode(data)


def test_a_policy_refusing_an_encoding_strategy_is_not_taken():
    s = ComputeSerializer()  # pickle and cloudpickle encode: not portable
    before = s.policy
    with pytest.raises(SerdeError, match="may not encode"):
        s.policy = Policy.portable()
    assert s.policy is before


def test_lowered_limits_apply_to_headers_decoded_before():
    s = ComputeSerializer(strategy_data="JSONData")
    value = {"deep": [[[[1]]]], "pad": "x" * 100}
    blob, payload = learned(s, value)
    s.limits = Limits(max_depth=3)
    for decode, data in ((s.loads, blob), (s.deserialize, payload)):
        with pytest.raises(DeserializationError, match="max_depth=3"):
            decode(data)
    s.limits = Limits(max_size=64)
    with pytest.raises(DeserializationError, match="max_size=64"):
        s.loads(blob)


def test_limits_equal_to_the_defaults_are_the_defaults():
    from freight.serialize.limits import DEFAULT_LIMITS

    assert ComputeSerializer(limits=Limits()).limits is DEFAULT_LIMITS


def test_a_replaced_code_strategy_encodes_and_decodes_its_identifier():
    s = ComputeSerializer()
    learned(s, 7)
    s.code_serializer = "DillCode"
    payload = s.serialize(len)
    assert payload.startswith("01\n")
    assert s.deserialize(payload) is len
    assert s._admitted["01\n"].strategy is s.code_serializer


@pytest.mark.parametrize(
    ("value", "error"),
    [("DillCode", "is a code serialization strategy"), ("no-such", "no-such")],
)
def test_a_data_strategy_is_checked_when_assigned(value, error):
    s = ComputeSerializer()
    before = s.data_serializer
    with pytest.raises(SerdeError, match=error):
        s.data_serializer = value
    assert s.data_serializer is before
