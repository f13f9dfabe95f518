"""``ComputeSerializer``: strategy choice, dispatch, allowlists, packing, checks."""

from __future__ import annotations

import types
import warnings
from typing import Any

import pytest
import samples

from freight.plugins.combo_strategies import (
    AllCodeStrategies,
    AllDataStrategies,
    CombinedCode,
)
from freight.plugins.dill_strategies import (
    DillCode,
    DillCodeSource,
    DillCodeTextInspect,
    DillDataBase64,
    PickleCode,
)
from freight.plugins.json_strategies import JSONData
from freight.plugins.source_strategies import PureSourceDill, PureSourceTextInspect
from freight.serialize import (
    DEFAULT_CODE_STRATEGY,
    DEFAULT_DATA_STRATEGY,
    AllowlistWildcard,
    BytesStrategy,
    ComputeSerializer,
    DeserializationError,
    SerdeError,
    SerializationError,
    StrategyRegistry,
    TextStrategy,
    hookimpl,
)

# -- spies -----------------------------------------------------------------------------


class SpyData(BytesStrategy):
    """A data strategy that records every decode-side call it receives."""

    identifier = "q0\n"
    for_code = False
    name = "spy-data"
    calls: list[tuple[str, Any]] = []  # noqa: RUF012

    def encode(self, obj: Any) -> bytes:
        return repr(obj).encode()

    def deserialize(self, payload: str) -> Any:
        type(self).calls.append(("deserialize", payload))
        return super().deserialize(payload)

    def chomp(self, payload: str) -> str:
        type(self).calls.append(("chomp", payload))
        return super().chomp(payload)

    def decode(self, data: bytes) -> Any:
        type(self).calls.append(("decode", data))
        return data.decode()


class SpyCode(TextStrategy):
    """A code strategy that records every decode-side call it receives."""

    identifier = "q1\n"
    for_code = True
    name = "spy-code"
    calls: list[tuple[str, Any]] = []  # noqa: RUF012

    def encode_text(self, obj: Any) -> str:
        return obj.__name__

    def deserialize(self, payload: str) -> Any:
        type(self).calls.append(("deserialize", payload))
        return super().deserialize(payload)

    def decode_text(self, text: str) -> Any:
        type(self).calls.append(("decode_text", text))
        return getattr(samples, text)


class PlainData(TextStrategy):
    """An allowed data strategy for the spy registry."""

    identifier = "q2\n"
    for_code = False
    name = "plain-data"

    def encode_text(self, obj: Any) -> str:
        return str(obj)

    def decode_text(self, text: str) -> Any:
        return text


class PlainCode(TextStrategy):
    """An allowed code strategy for the spy registry: names a function in samples."""

    identifier = "q4\n"
    for_code = True
    name = "plain-code"

    def encode_text(self, obj: Any) -> str:
        return obj.__name__

    def decode_text(self, text: str) -> Any:
        return getattr(samples, text)


class ExplodingData(TextStrategy):
    """A data strategy whose decoder always raises a non-freight exception."""

    identifier = "q3\n"
    for_code = False
    name = "exploding-data"

    def encode_text(self, obj: Any) -> str:
        return str(obj)

    def decode_text(self, text: str) -> Any:
        raise KeyError("boom in decoder")


@pytest.fixture
def spy_registry() -> StrategyRegistry:
    SpyData.calls.clear()
    SpyCode.calls.clear()

    @hookimpl
    def freight_strategies() -> list[Any]:
        return [SpyData, SpyCode, PlainData, PlainCode, ExplodingData]

    registry = StrategyRegistry(entry_point_group=None)
    registry.register_plugin(
        types.SimpleNamespace(freight_strategies=freight_strategies), "spies"
    )
    return registry


# -- construction ----------------------------------------------------------------------


def test_defaults_are_the_fast_pickle_strategies():
    s = ComputeSerializer()
    assert s.code_serializer.identifier == "cp\n"
    assert s.data_serializer.identifier == "p5\n"
    assert DEFAULT_CODE_STRATEGY == "CloudPickleCode"
    assert DEFAULT_DATA_STRATEGY == "PickleData"
    assert s.allowed_deserializer_types == set()


def test_default_strategy_instances_are_exposed_like_the_reference():
    import freight.serialize

    assert freight.serialize.DEFAULT_STRATEGY_CODE.identifier == "cp\n"
    assert freight.serialize.DEFAULT_STRATEGY_DATA.identifier == "p5\n"


@pytest.mark.parametrize(
    "code",
    [
        PureSourceDill(),
        PureSourceDill,
        "freight.plugins.source_strategies.PureSourceDill",
        "freight.serialize.PureSourceDill",
        "source-dill",
        "PureSourceDill",
        "sd",
        "sd\n",
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v),
)
def test_code_strategy_given_every_way(code):
    assert type(ComputeSerializer(strategy_code=code).code_serializer) is PureSourceDill


@pytest.mark.parametrize(
    "data",
    [
        JSONData(),
        JSONData,
        "freight.plugins.json_strategies.JSONData",
        "freight.serialize.JSONData",
        "json",
        "JSONData",
        "11",
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v),
)
def test_data_strategy_given_every_way(data):
    assert type(ComputeSerializer(strategy_data=data).data_serializer) is JSONData


def test_instance_passed_in_is_used_as_given():
    mine = JSONData()
    assert ComputeSerializer(strategy_data=mine).data_serializer is mine


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy_code": JSONData}, "JSONData is a data serialization strategy"),
        ({"strategy_code": "dill-data"}, "expected a code strategy"),
        ({"strategy_data": DillCode}, "DillCode is a code serialization strategy"),
        ({"strategy_data": AllCodeStrategies()}, "expected a data strategy"),
    ],
)
def test_strategy_of_the_wrong_kind_raises_serde_error(kwargs, match):
    with pytest.raises(SerdeError, match=match):
        ComputeSerializer(**kwargs)


@pytest.mark.parametrize("code", [PickleCode, PickleCode(), "pickle-code", "02"])
def test_decode_only_pickle_code_cannot_be_selected(code):
    with pytest.raises(SerdeError, match="decode-only"):
        ComputeSerializer(strategy_code=code)


@pytest.mark.parametrize("code", [DillCodeSource, CombinedCode, DillCodeTextInspect])
def test_deprecated_strategy_warns(code):
    with pytest.warns(DeprecationWarning, match=code.__name__):
        s = ComputeSerializer(strategy_code=code)
    assert type(s.code_serializer) is code


def test_current_strategies_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ComputeSerializer(AllCodeStrategies, AllDataStrategies)
        ComputeSerializer(PureSourceTextInspect, JSONData)


@pytest.mark.parametrize(
    "value", ["no-such-strategy", "freight.nowhere.Thing", 42, object]
)
def test_unknown_strategy_raises_serde_error(value):
    with pytest.raises(SerdeError):
        ComputeSerializer(strategy_code=value)


def test_unregistered_strategy_class_raises_serde_error():
    class Unregistered(JSONData):
        identifier = "uu\n"

    with pytest.raises(SerdeError, match="not a registered"):
        ComputeSerializer(strategy_data=Unregistered)


# -- serialize / deserialize -----------------------------------------------------------


def test_serialize_chooses_code_or_data_by_callable():
    s = ComputeSerializer(PureSourceTextInspect, JSONData)
    assert s.serialize(samples.add).startswith("st\n")
    assert s.serialize({"a": 1}).startswith("11\n")
    assert s.serialize([1, 2]) == "11\n[1, 2]"


def test_callable_instance_goes_to_the_code_strategy():
    class CallableThing:
        def __call__(self):
            return 1

    s = ComputeSerializer(DillCode, DillDataBase64)
    assert s.serialize(CallableThing()).startswith("01\n")
    assert s.serialize(CallableThing).startswith("01\n")


def test_default_serializer_round_trips_function_and_data():
    s = ComputeSerializer()
    assert s.deserialize(s.serialize(samples.add))(2, 3) == 5
    value = {"a": [1, 2.5, None], "b": ("x", b"y"), "c": {1, 2}}
    assert s.deserialize(s.serialize(value)) == value


@pytest.mark.parametrize(
    ("code", "data"),
    [
        (DillCode, DillDataBase64),
        (PureSourceTextInspect, JSONData),
        (PureSourceDill, AllDataStrategies),
        (AllCodeStrategies, JSONData),
    ],
)
def test_deserialize_dispatches_on_the_header(code, data):
    writer = ComputeSerializer(code, data)
    reader = ComputeSerializer()  # different configured strategies
    fn_payload = writer.serialize(samples.add)
    data_payload = writer.serialize({"k": [1, 2]})
    assert fn_payload.startswith(code.identifier)
    assert data_payload.startswith(data.identifier)
    assert reader.deserialize(fn_payload)(4, 5) == 9
    assert reader.deserialize(data_payload) == {"k": [1, 2]}


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("zz\nbody", "unknown strategy identifier 'zz\\\\n'"),
        ("01", "too short"),
        ("", "too short"),
        ("0123", "malformed identifier header"),
    ],
)
def test_bad_header_raises_deserialization_error(payload, match):
    with pytest.raises(DeserializationError, match=match):
        ComputeSerializer().deserialize(payload)


@pytest.mark.parametrize("payload", [b"01\nabc", None, 5, ["01\n"]])
def test_non_str_payload_raises_deserialization_error(payload):
    with pytest.raises(DeserializationError, match="expected a str payload"):
        ComputeSerializer().deserialize(payload)


# -- allowlists ------------------------------------------------------------------------


def test_wildcards_allow_every_selectable_strategy_of_their_kind():
    s = ComputeSerializer(
        allowed_deserializer_types=[AllowlistWildcard.CODE, AllowlistWildcard.DATA]
    )
    allowed = s.allowed_deserializer_types
    assert {DillCode, AllCodeStrategies, PureSourceDill, CombinedCode} <= allowed
    assert {DillDataBase64, JSONData, AllDataStrategies} <= allowed
    assert PickleCode not in allowed  # decode-only is not selectable


def test_wildcards_accepted_as_their_string_values():
    s = ComputeSerializer(
        allowed_deserializer_types=[AllowlistWildcard.CODE.value, "freight.*Data"]
    )
    assert JSONData in s.allowed_deserializer_types


def test_code_wildcard_with_specific_data_entry():
    s = ComputeSerializer(allowed_deserializer_types=[AllowlistWildcard.CODE, JSONData])
    allowed = s.allowed_deserializer_types
    assert DillCode in allowed and PureSourceTextInspect in allowed
    assert JSONData in allowed
    assert DillDataBase64 not in allowed


@pytest.mark.parametrize(
    "allowlist",
    [
        [DillCode],
        [JSONData, DillDataBase64],
        [AllowlistWildcard.CODE],
        [AllowlistWildcard.DATA],
        ["json"],
    ],
)
def test_allowlist_needs_one_code_and_one_data_entry(allowlist):
    with pytest.raises(SerdeError, match="at least one code and one data"):
        ComputeSerializer(allowed_deserializer_types=allowlist)


@pytest.mark.parametrize(
    "allowlist",
    [
        [AllowlistWildcard.CODE, DillCode, JSONData],
        [AllowlistWildcard.DATA, JSONData, DillCode],
        [AllowlistWildcard.CODE, AllowlistWildcard.DATA, "json"],
    ],
)
def test_wildcard_mixed_with_specific_entry_of_same_kind_raises(allowlist):
    with pytest.raises(SerdeError, match="Cannot mix"):
        ComputeSerializer(allowed_deserializer_types=allowlist)


def test_allowlist_entries_accept_every_strategylike_form():
    s = ComputeSerializer(
        allowed_deserializer_types=[
            "freight.plugins.dill_strategies.DillCode",
            "source-dill",
            JSONData(),
            AllDataStrategies,
        ]
    )
    assert s.allowed_deserializer_types == {
        DillCode,
        PureSourceDill,
        JSONData,
        AllDataStrategies,
    }


def test_unknown_allowlist_entry_raises_serde_error():
    with pytest.raises(SerdeError):
        ComputeSerializer(allowed_deserializer_types=[DillCode, "no-such-thing"])


def test_allowed_payloads_decode():
    s = ComputeSerializer(allowed_deserializer_types=[DillCode, JSONData])
    writer = ComputeSerializer(DillCode, JSONData)
    assert s.deserialize(writer.serialize(samples.add))(1, 1) == 2
    assert s.deserialize(writer.serialize([1, "a"])) == [1, "a"]


def test_disallowed_data_payload_raises_with_the_references_wording():
    s = ComputeSerializer(allowed_deserializer_types=[DillCode, JSONData])
    payload = ComputeSerializer(DillCode, DillDataBase64).serialize({"x": 1})
    with pytest.raises(DeserializationError) as excinfo:
        s.deserialize(payload)
    message = str(excinfo.value)
    assert "Data serializer DillDataBase64 disabled by current configuration" in message
    assert "*arguments*" in message
    assert "Allowed serializers: DillCode, JSONData" in message


def test_disallowed_code_payload_raises_with_the_references_wording():
    s = ComputeSerializer(allowed_deserializer_types=[PureSourceDill, JSONData])
    payload = ComputeSerializer(DillCode, DillDataBase64).serialize(samples.add)
    with pytest.raises(
        DeserializationError,
        match=r"Code serializer DillCode disabled by current configuration",
    ) as excinfo:
        s.deserialize(payload)
    assert "*function*" in str(excinfo.value)


def test_disallowed_strategys_decoder_never_runs(spy_registry):
    writer = ComputeSerializer(SpyCode, SpyData, registry=spy_registry)
    payload = writer.serialize({"secret": 1})
    assert payload.startswith("q0\n")
    # Sanity: without an allowlist the spy decodes it, and the spy does record calls.
    assert ComputeSerializer(SpyCode, PlainData, registry=spy_registry).deserialize(
        payload
    ) == repr({"secret": 1})
    assert ("decode", repr({"secret": 1}).encode()) in SpyData.calls
    SpyData.calls.clear()

    reader = ComputeSerializer(
        SpyCode,
        PlainData,
        allowed_deserializer_types=[SpyCode, PlainData],
        registry=spy_registry,
    )
    with pytest.raises(DeserializationError, match="disabled by current configuration"):
        reader.deserialize(payload)

    assert SpyData.calls == []


def test_disallowed_code_strategys_decoder_never_runs(spy_registry):
    payload = SpyCode().serialize(samples.add)
    allowed = ComputeSerializer(
        PlainCode,
        PlainData,
        allowed_deserializer_types=[SpyCode, PlainData],
        registry=spy_registry,
    )
    assert allowed.deserialize(payload) is samples.add  # sanity: the spy works
    assert SpyCode.calls
    SpyCode.calls.clear()

    reader = ComputeSerializer(
        PlainCode,
        PlainData,
        allowed_deserializer_types=[PlainCode, PlainData],
        registry=spy_registry,
    )
    with pytest.raises(
        DeserializationError,
        match="Code serializer SpyCode disabled by current configuration",
    ):
        reader.deserialize(payload)

    assert SpyCode.calls == []


def test_disallowed_payload_inside_unpack_and_deserialize_never_decodes(spy_registry):
    writer = ComputeSerializer(SpyCode, SpyData, registry=spy_registry)
    packed = writer.pack_buffers(
        [writer.serialize(samples.add), writer.serialize(()), writer.serialize({})]
    )
    SpyData.calls.clear()
    reader = ComputeSerializer(
        SpyCode,
        PlainData,
        allowed_deserializer_types=[SpyCode, PlainData],
        registry=spy_registry,
    )
    with pytest.raises(DeserializationError, match="disabled by current configuration"):
        reader.unpack_and_deserialize(packed)
    assert SpyData.calls == []


def test_wildcard_allowlist_is_resolved_in_the_serializers_registry(spy_registry):
    s = ComputeSerializer(
        SpyCode,
        PlainData,
        allowed_deserializer_types=[AllowlistWildcard.CODE, AllowlistWildcard.DATA],
        registry=spy_registry,
    )
    assert s.allowed_deserializer_types == {
        SpyCode,
        PlainCode,
        SpyData,
        PlainData,
        ExplodingData,
    }


# -- serialize_from_list ---------------------------------------------------------------


def test_serialize_from_list_uses_first_strategy_that_works():
    payload = ComputeSerializer.serialize_from_list(
        {"a": 1}, [JSONData, DillDataBase64]
    )
    assert payload == '11\n{"a": 1}'


def test_serialize_from_list_falls_back_to_next_strategy():
    payload = ComputeSerializer.serialize_from_list({1, 2}, [JSONData, DillDataBase64])
    assert payload.startswith("00\n")
    assert ComputeSerializer().deserialize(payload) == {1, 2}


def test_serialize_from_list_skips_strategies_of_the_wrong_kind():
    payload = ComputeSerializer.serialize_from_list(
        samples.add, [JSONData, "source-text-inspect"]
    )
    assert payload.startswith("st\n")


def test_serialize_from_list_with_empty_list_uses_defaults():
    assert ComputeSerializer.serialize_from_list([1], []).startswith("p5\n")
    assert ComputeSerializer.serialize_from_list(samples.add, []).startswith("cp\n")


def test_serialize_from_list_all_failing_raises_with_exception_group_cause():
    with pytest.raises(SerializationError) as excinfo:
        ComputeSerializer.serialize_from_list(
            {1, 2}, [JSONData, DillCode, "no-such-strategy"]
        )
    cause = excinfo.value.__cause__
    assert isinstance(cause, ExceptionGroup)
    assert len(cause.exceptions) == 3
    assert isinstance(cause.exceptions[0], TypeError)  # json refused the set
    assert all(isinstance(e, SerdeError) for e in cause.exceptions[1:])


# -- several payloads ------------------------------------------------------------------


def test_pack_and_unpack_buffers_round_trip():
    buffers = ["01\nabc", "", "11\n[1]\n\n", "ünïcödé\n" * 3]
    packed = ComputeSerializer.pack_buffers(buffers)
    assert packed == "".join(f"{len(b)}\n{b}" for b in buffers)
    assert ComputeSerializer.unpack_buffers(packed) == buffers


def test_unpack_and_deserialize_round_trips_function_args_kwargs():
    s = ComputeSerializer()
    packed = s.pack_buffers(
        [
            s.serialize(samples.keyword_only),
            s.serialize((3,)),
            s.serialize({"scale": 4}),
        ]
    )
    fn, args, kwargs = s.unpack_and_deserialize(packed)
    assert args == (3,)
    assert kwargs == {"scale": 4}
    assert fn(*args, **kwargs) == 12


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_unpack_and_deserialize_requires_exactly_three_buffers(count):
    s = ComputeSerializer()
    packed = s.pack_buffers([s.serialize(i) for i in range(count)])
    with pytest.raises(DeserializationError, match=f"got {count}"):
        s.unpack_and_deserialize(packed)


def test_unpack_and_deserialize_rejects_bad_framing():
    with pytest.raises(DeserializationError):
        ComputeSerializer().unpack_and_deserialize("999\n00\nabc")


# -- check_strategies ------------------------------------------------------------------


def test_check_strategies_returns_function_args_kwargs():
    s = ComputeSerializer()
    result = s.check_strategies(samples.with_defaults, 1, 2, 3, z=4, extra=5)
    assert isinstance(result, list) and len(result) == 3
    fn, args, kwargs = result
    assert args == (1, 2, 3)
    assert kwargs == {"z": 4, "extra": 5}
    assert fn(*args, **kwargs) == samples.with_defaults(1, 2, 3, z=4, extra=5)


@pytest.mark.parametrize("code", [DillCode, AllCodeStrategies, PureSourceTextInspect])
def test_check_strategies_function_works_with_each_code_strategy(code):
    fn, args, kwargs = ComputeSerializer(code, JSONData).check_strategies(
        samples.add, 2, y=40
    )
    assert fn(*args, **kwargs) == 42


def test_check_strategies_reports_serialization_failure():
    s = ComputeSerializer(strategy_data=JSONData)
    with pytest.raises(SerializationError, match="check_strategies") as excinfo:
        s.check_strategies(samples.add, {1, 2})
    assert excinfo.value.__cause__ is not None


# -- failures name the strategy --------------------------------------------------------


def test_serialize_failure_names_the_strategy_and_chains_cause():
    s = ComputeSerializer(strategy_data=JSONData)
    with pytest.raises(SerializationError) as excinfo:
        s.serialize({1, 2})
    assert "JSONData" in str(excinfo.value)
    assert "Data serialization strategy" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, TypeError)


def test_code_serialize_failure_names_the_strategy_and_chains_cause():
    s = ComputeSerializer(strategy_code=PureSourceTextInspect)
    with pytest.raises(SerializationError) as excinfo:
        s.serialize(len)  # a builtin has no Python source
    assert "Code serialization strategy PureSourceTextInspect" in str(excinfo.value)
    assert excinfo.value.__cause__ is not None


def test_decoder_exception_is_wrapped_naming_the_strategy(spy_registry):
    s = ComputeSerializer(SpyCode, PlainData, registry=spy_registry)
    with pytest.raises(DeserializationError) as excinfo:
        s.deserialize("q3\nanything")
    message = str(excinfo.value)
    assert "ExplodingData" in message
    assert "boom in decoder" in message
    assert isinstance(excinfo.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("payload", "strategy", "cause"),
    [
        ("11\n{not json", "JSONData", ValueError),
        ("00\nAAAA", "DillDataBase64", Exception),
        ("01\n", "DillCode", Exception),
        ("st\nno separator here", "PureSourceTextInspect", ValueError),
    ],
)
def test_builtin_decoder_failure_names_strategy_and_chains_cause(
    payload, strategy, cause
):
    with pytest.raises(DeserializationError) as excinfo:
        ComputeSerializer().deserialize(payload)
    assert strategy in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, cause)


def test_invalid_base64_body_error_names_the_strategy():
    with pytest.raises(DeserializationError) as excinfo:
        ComputeSerializer().deserialize("00\na")
    message = str(excinfo.value)
    assert "base64" in message
    assert "DillDataBase64" in message, message
    assert excinfo.value.__cause__ is not None
