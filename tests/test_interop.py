"""Wire compatibility with the reference, globus-compute-sdk 4.19, in both directions.

Every payload the reference's ``ComputeSerializer`` makes must decode in freight's,
and every text payload freight makes must decode in the reference's, with the same
identifier header on both sides.  Where a strategy cannot carry a shape (source
strategies and closures or decorators), it must fail in both implementations: a
shape that works on one side only would be a compatibility break too.

The reference's package is imported as ``R`` and freight's as ``F``; the helpers
name the encoding side first (``ref_to_freight``: the reference encodes, freight
decodes).
"""

from __future__ import annotations

import base64
import codecs
import json
import math
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import freight.serialize as F
import globus_compute_sdk.serialize as R
import pytest
import samples
from globus_compute_sdk import errors as ref_errors
from globus_compute_sdk.serialize import concretes as ref_concretes
from globus_compute_sdk.serialize import utils as ref_utils
from hypothesis import given, settings
from hypothesis import strategies as st

# -- helpers -------------------------------------------------------------------------

#: Strategies the reference documents as deprecated since 4.0.0; freight warns when
#: one is selected, and only then.
DEPRECATED = frozenset({"DillCodeTextInspect", "DillCodeSource", "CombinedCode"})

DATA_STRATEGIES = ["DillDataBase64", "JSONData", "AllDataStrategies"]
CODE_STRATEGIES = [
    "DillCode",
    "DillCodeTextInspect",
    "DillCodeSource",
    "CombinedCode",
    "AllCodeStrategies",
    "PureSourceTextInspect",
    "PureSourceDill",
]
IDENTIFIERS = {
    "DillDataBase64": "00\n",
    "DillCode": "01\n",
    "PickleCode": "02\n",
    "DillCodeTextInspect": "03\n",
    "DillCodeSource": "04\n",
    "CombinedCode": "10\n",
    "JSONData": "11\n",
    "AllCodeStrategies": "12\n",
    "AllDataStrategies": "13\n",
    "PureSourceTextInspect": "st\n",
    "PureSourceDill": "sd\n",
}


def ref_class(name: str) -> Any:
    """The reference's strategy class called ``name`` (``PickleCode`` is not
    exported from its package, only from ``concretes``)."""
    return getattr(ref_concretes, name)


def freight_class(name: str) -> Any:
    return getattr(F, name)


def ref_serializer(*, code: str | None = None, data: str | None = None) -> Any:
    return R.ComputeSerializer(
        strategy_code=ref_class(code) if code else None,
        strategy_data=ref_class(data) if data else None,
    )


def freight_serializer(*, code: str | None = None, data: str | None = None) -> Any:
    """freight's serializer with these strategies, asserting that it warns
    ``DeprecationWarning`` exactly when a deprecated strategy is selected."""
    kwargs = {
        "strategy_code": freight_class(code) if code else None,
        "strategy_data": freight_class(data) if data else None,
    }
    if {code, data} & DEPRECATED:
        with pytest.warns(DeprecationWarning):
            return F.ComputeSerializer(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return F.ComputeSerializer(**kwargs)


#: Decoders with no allowlist, as a receiving side with default settings has.
REF_DECODER = R.ComputeSerializer()
FREIGHT_DECODER = F.ComputeSerializer()


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down; floats compare by ``repr``
    so that ``-0.0`` differs from ``0.0`` and ``nan`` matches ``nan``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def json_normal(value: Any) -> Any:
    """What a JSON round trip makes of ``value`` (tuples become lists, ...)."""
    return json.loads(json.dumps(value))


def members(payload: str) -> list[str]:
    """The member headers of a ``12``/``13`` combo payload, read with the
    reference's own framing code."""
    return [part[:3] for part in ref_utils.unpack_buffers(payload[3:])]


# -- identifiers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(IDENTIFIERS))
def test_strategy_identifier_and_kind_match_reference(name: str) -> None:
    assert freight_class(name).identifier == ref_class(name).identifier
    assert ref_class(name).identifier == IDENTIFIERS[name]
    assert freight_class(name).for_code == ref_class(name).for_code


def test_default_strategies_match_reference() -> None:
    fr, ref = F.ComputeSerializer(), R.ComputeSerializer()
    assert fr.code_serializer.identifier == ref.code_serializer.identifier == "01\n"
    assert fr.data_serializer.identifier == ref.data_serializer.identifier == "00\n"


# -- data ----------------------------------------------------------------------------

BIG_STRING = ("freight:\u00e9\U0001d11e\n" * 200_000)[: 2 * 1024 * 1024]

# (id, value, JSON-able): JSON-able values go through all three data strategies.
DATA_VALUES: list[tuple[str, Any, bool]] = [
    ("none", None, True),
    ("true", True, True),
    ("false", False, True),
    ("zero", 0, True),
    ("int", -42, True),
    ("bigint", 2**200 + 1, True),
    ("neg-bigint", -(3**150), True),
    ("float", 3.141592653589793, True),
    ("neg-zero", -0.0, True),
    ("inf", float("inf"), True),
    ("nan", float("nan"), True),
    ("tiny-float", 5e-324, True),
    ("empty-str", "", True),
    ("unicode", "h\u00e9llo w\u00f6rld \u2713 \u4e2d\u6587", True),
    ("astral", "\U0001d11e\U0001f389\U0001f600 \U00010348", True),
    ("newlines-colons", "a:b:c\n12\n\n00\n:\r\n\t\x00end", True),
    ("header-lookalike", "01\nnot a function", True),
    ("lone-surrogate", "\ud800x", True),
    ("nested-list", [1, [2, [3, [None, "x"]]], [], [[]]], True),
    ("nested-dict", {"a": {"b": {"c": [1, 2.5, None]}}, "": {}, "k:v\n": "x"}, True),
    ("list-of-dicts", [{"i": i, "s": str(i) * i} for i in range(50)], True),
    ("tuple", (1, "two", (3.0, None)), True),
    ("large-string", BIG_STRING, True),
    ("bytes", b"\x00\x01\xff binary\n:", False),
    ("empty-bytes", b"", False),
    ("tuple-with-bytes", ("x", b"y", (1,)), False),
    ("int-keys", {1: "one", (2, 3): [b"z"], None: -0.0}, False),
]


def data_cases(strategies: list[str], *, json_only: bool = False) -> list[Any]:
    return [
        pytest.param(strategy, value, jsonable, id=f"{strategy}-{vid}")
        for strategy in strategies
        for vid, value, jsonable in DATA_VALUES
        if jsonable or not json_only
    ]


def expected_data(strategy: str, value: Any, jsonable: bool) -> Any:
    """What a receiver gets back: the value itself, except where JSON carries it
    (JSONData always; AllDataStrategies when JSON can), which turns tuples into
    lists, as the reference does too."""
    if strategy == "JSONData" or (strategy == "AllDataStrategies" and jsonable):
        return json_normal(value)
    return value


SUPPORTED_DATA = data_cases(["DillDataBase64", "AllDataStrategies"]) + data_cases(
    ["JSONData"], json_only=True
)


@pytest.mark.parametrize(("strategy", "value", "jsonable"), SUPPORTED_DATA)
def test_data_reference_payload_decodes_in_freight(
    strategy: str, value: Any, jsonable: bool
) -> None:
    payload = ref_serializer(data=strategy).serialize(value)
    assert payload[:3] == IDENTIFIERS[strategy]
    assert same(
        FREIGHT_DECODER.deserialize(payload), expected_data(strategy, value, jsonable)
    )


@pytest.mark.parametrize(("strategy", "value", "jsonable"), SUPPORTED_DATA)
def test_data_freight_payload_decodes_in_reference(
    strategy: str, value: Any, jsonable: bool
) -> None:
    payload = freight_serializer(data=strategy).serialize(value)
    assert isinstance(payload, str)
    assert payload[:3] == IDENTIFIERS[strategy]
    assert same(
        REF_DECODER.deserialize(payload), expected_data(strategy, value, jsonable)
    )


@pytest.mark.parametrize(("strategy", "value", "jsonable"), SUPPORTED_DATA)
def test_data_headers_and_combo_members_match(
    strategy: str, value: Any, jsonable: bool
) -> None:
    ref_payload = ref_serializer(data=strategy).serialize(value)
    fr_payload = freight_serializer(data=strategy).serialize(value)
    assert fr_payload[:3] == ref_payload[:3]
    if strategy == "AllDataStrategies":
        assert members(fr_payload) == members(ref_payload)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(value, id=vid)
        for vid, value, jsonable in DATA_VALUES
        if not jsonable and vid != "int-keys"
    ]
    + [pytest.param({1, 2}, id="set"), pytest.param(1 + 2j, id="complex")],
)
def test_json_data_rejects_non_json_values_in_both(value: Any) -> None:
    with pytest.raises(ref_errors.SerializationError):
        ref_serializer(data="JSONData").serialize(value)
    with pytest.raises(F.SerializationError):
        freight_serializer(data="JSONData").serialize(value)


# -- code ----------------------------------------------------------------------------

BY_VALUE_SOURCE = """\
def by_value_fn(x, y=2, *rest, label="a:b\\n", **extra):
    total = x + y + sum(rest)
    return {"total": total, "label": label, "extra": sorted(extra.items())}
"""
by_value_fn = samples.by_value(BY_VALUE_SOURCE, "by_value_fn")


@dataclass(frozen=True)
class Sample:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def expected(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


SAMPLES = {
    "plain": Sample(samples.add, (2, 3), {}),
    "defaults": Sample(samples.with_defaults, (1,), {"z": 5, "q": "a:b"}),
    "defaults-varargs": Sample(samples.with_defaults, (1, 2, 3, 4), {}),
    "keyword-only": Sample(samples.keyword_only, (3,), {"offset": 1}),
    "closure": Sample(samples.make_closure(7), (6,), {}),
    "decorated": Sample(samples.greet, ("freight",), {}),
    "by-value": Sample(by_value_fn, (1, 2, 3), {"label": "x:y", "k": 1}),
}

# What each strategy cannot carry, in the reference and (so) in freight.  The
# source-based strategies send text only: a closure's captured variables and a
# decorator's wrapper do not travel.  The combos do carry a DillCode part, and the
# decorated function works through it (its source parts fail to decode), but a
# closure's source parts *decode* -- to a function missing its captured variable --
# and the combos return the first part that decodes, so closures fail in them too,
# in the reference as much as in freight (see the DillCode-part tests below).
UNSUPPORTED = {
    "DillCode": set(),
    "DillCodeTextInspect": {"closure", "decorated"},
    "DillCodeSource": {"closure", "decorated"},
    "CombinedCode": {"closure"},
    "AllCodeStrategies": {"closure"},
    "PureSourceTextInspect": {"closure", "decorated"},
    "PureSourceDill": {"closure", "decorated"},
}


def code_cases(*, supported: bool) -> list[Any]:
    return [
        pytest.param(strategy, sample, id=f"{strategy}-{sample}")
        for strategy in CODE_STRATEGIES
        for sample in SAMPLES
        if (sample not in UNSUPPORTED[strategy]) == supported
    ]


@pytest.mark.parametrize(("strategy", "sample"), code_cases(supported=True))
def test_code_reference_payload_decodes_and_runs_in_freight(
    strategy: str, sample: str
) -> None:
    s = SAMPLES[sample]
    payload = ref_serializer(code=strategy).serialize(s.fn)
    assert payload[:3] == IDENTIFIERS[strategy]
    decoded = FREIGHT_DECODER.deserialize(payload)
    assert callable(decoded)
    assert same(decoded(*s.args, **s.kwargs), s.expected())


@pytest.mark.parametrize(("strategy", "sample"), code_cases(supported=True))
def test_code_freight_payload_decodes_and_runs_in_reference(
    strategy: str, sample: str
) -> None:
    s = SAMPLES[sample]
    payload = freight_serializer(code=strategy).serialize(s.fn)
    assert isinstance(payload, str)
    assert payload[:3] == IDENTIFIERS[strategy]
    decoded = REF_DECODER.deserialize(payload)
    assert callable(decoded)
    assert same(decoded(*s.args, **s.kwargs), s.expected())


@pytest.mark.parametrize(("strategy", "sample"), code_cases(supported=True))
def test_code_headers_and_combo_members_match(strategy: str, sample: str) -> None:
    fn = SAMPLES[sample].fn
    ref_payload = ref_serializer(code=strategy).serialize(fn)
    fr_payload = freight_serializer(code=strategy).serialize(fn)
    assert fr_payload[:3] == ref_payload[:3]
    if strategy == "AllCodeStrategies":
        assert members(fr_payload) == members(ref_payload)
    if strategy == "CombinedCode":
        # The member bodies are base64 or source text that starts "name:"; the
        # headers are what must agree.  Read them with freight's parser, which
        # (unlike the reference's) is not confused by ':' inside source bodies.
        parse = F.CombinedCode().get_multiple_payloads
        assert [i for i, _ in parse(fr_payload)] == [i for i, _ in parse(ref_payload)]


@dataclass
class Outcome:
    stage: str  # "serialize", "deserialize", "call" or "ok"
    error: BaseException | None = None


def attempt(encoder: Any, decoder: Any, s: Sample) -> Outcome:
    try:
        payload = encoder.serialize(s.fn)
    except Exception as e:
        return Outcome("serialize", e)
    try:
        decoded = decoder.deserialize(payload)
    except Exception as e:
        return Outcome("deserialize", e)
    try:
        result = decoded(*s.args, **s.kwargs)
    except Exception as e:
        return Outcome("call", e)
    return Outcome("ok" if same(result, s.expected()) else "wrong result")


@pytest.mark.parametrize(("strategy", "sample"), code_cases(supported=False))
def test_code_unsupported_shape_fails_in_both(strategy: str, sample: str) -> None:
    """Every pairing of encoder and decoder fails to reproduce the function; freight
    reports a failure in its own stage with its own exception type."""
    s = SAMPLES[sample]
    encoders = {"ref": ref_serializer(code=strategy)}
    encoders["freight"] = freight_serializer(code=strategy)
    decoders = {"ref": REF_DECODER, "freight": FREIGHT_DECODER}
    for enc_name, encoder in encoders.items():
        for dec_name, decoder in decoders.items():
            outcome = attempt(encoder, decoder, s)
            where = f"{enc_name} -> {dec_name}"
            assert outcome.stage not in ("ok", "wrong result"), where
            if outcome.stage == "serialize" and enc_name == "freight":
                assert isinstance(outcome.error, F.SerializationError), where
            if outcome.stage == "deserialize" and dec_name == "freight":
                assert isinstance(outcome.error, F.DeserializationError), where


@pytest.mark.parametrize("sample", ["closure", "decorated", "by-value"])
@pytest.mark.parametrize("encoder_side", ["ref", "freight"])
def test_combined_code_dill_part_carries_the_function_in_both(
    encoder_side: str, sample: str
) -> None:
    """``variation=2`` (1-based) is CombinedCode's DillCode part, in both."""
    s = SAMPLES[sample]
    if encoder_side == "ref":
        payload = ref_serializer(code="CombinedCode").serialize(s.fn)
    else:
        payload = freight_serializer(code="CombinedCode").serialize(s.fn)
    for decoder in (ref_class("CombinedCode")(), freight_class("CombinedCode")()):
        fn = decoder.deserialize(payload, variation=2)
        assert same(fn(*s.args, **s.kwargs), s.expected())


@pytest.mark.parametrize("sample", ["closure", "decorated", "by-value"])
@pytest.mark.parametrize("encoder_side", ["ref", "freight"])
def test_all_code_strategies_dill_part_carries_the_function_in_both(
    encoder_side: str, sample: str
) -> None:
    s = SAMPLES[sample]
    if encoder_side == "ref":
        payload = ref_serializer(code="AllCodeStrategies").serialize(s.fn)
    else:
        payload = freight_serializer(code="AllCodeStrategies").serialize(s.fn)
    parts = [p for p in ref_utils.unpack_buffers(payload[3:]) if p[:3] == "01\n"]
    assert len(parts) == 1
    for decoder in (REF_DECODER, FREIGHT_DECODER):
        fn = decoder.deserialize(parts[0])
        assert same(fn(*s.args, **s.kwargs), s.expected())


@pytest.mark.parametrize("sample", ["plain", "defaults", "keyword-only", "by-value"])
def test_freight_decodes_every_part_of_a_reference_combined_code_payload(
    sample: str,
) -> None:
    """Including the source parts whose bodies contain ':', which the reference's
    own parser splits wrongly."""
    s = SAMPLES[sample]
    payload = ref_serializer(code="CombinedCode").serialize(s.fn)
    decoder = freight_class("CombinedCode")()
    parts = decoder.get_multiple_payloads(payload)
    assert [ident for ident, _ in parts] == ["04\n", "01\n", "03\n", "sd\n", "st\n"]
    for variation in range(1, len(parts) + 1):
        fn = decoder.deserialize(payload, variation=variation)
        assert same(fn(*s.args, **s.kwargs), s.expected()), variation


# -- PickleCode (02): decode-only ----------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda b: codecs.encode(b, "base64").decode(), id="76-columns"),
        pytest.param(lambda b: base64.b64encode(b).decode(), id="one-line"),
    ],
)
def test_pickle_code_payload_decodes_in_freight(encode: Callable[[bytes], str]) -> None:
    payload = "02\n" + encode(pickle.dumps(samples.add))
    assert REF_DECODER.deserialize(payload)(2, 3) == 5  # the reference reads it
    decoded = FREIGHT_DECODER.deserialize(payload)
    assert decoded is samples.add
    assert decoded(2, 3) == 5


@pytest.mark.parametrize(
    "strategylike",
    [
        pytest.param(lambda: F.PickleCode, id="class"),
        pytest.param(lambda: F.PickleCode(), id="instance"),
        pytest.param(lambda: "02", id="identifier"),
        pytest.param(lambda: "02\n", id="identifier-newline"),
        pytest.param(lambda: "PickleCode", id="class-name"),
    ],
)
def test_freight_refuses_to_select_pickle_code(strategylike: Callable[[], Any]) -> None:
    with pytest.raises(F.SerdeError):
        F.ComputeSerializer(strategy_code=strategylike())


def test_reference_refuses_to_select_pickle_code_too() -> None:
    with pytest.raises(ref_errors.SerdeError):
        R.ComputeSerializer(strategy_code=ref_class("PickleCode"))


def test_freight_will_not_serialize_with_pickle_code_from_a_list() -> None:
    with pytest.raises(F.SerializationError):
        F.ComputeSerializer.serialize_from_list(samples.add, [F.PickleCode])


# -- pack_buffers --------------------------------------------------------------------

BUFFER_LISTS = {
    "none": [],
    "one-empty": [""],
    "several-empty": ["", "", ""],
    "simple": ["a", "bc", "def"],
    "unicode": ["h\u00e9llo", "\U0001d11e\U0001f389", "\u4e2d\u6587:\u2713"],
    "newlines": ["\n", "a\nb\n", "\n\n\n", "12\n34", "3\nabc"],
    "header-lookalikes": ["00\nabc", "5\n", "0\n", "-1\n", "01\n:02\n:"],
    "mixed-with-empties": ["", "x", "", "\U0001f600\n", ""],
    "large": ["x" * 100_000, "\n" * 1000, "y"],
}


@pytest.mark.parametrize("buffers", list(BUFFER_LISTS.values()), ids=list(BUFFER_LISTS))
def test_pack_buffers_identical_to_reference(buffers: list[str]) -> None:
    expected = ref_utils.pack_buffers(buffers)
    assert R.ComputeSerializer.pack_buffers(buffers) == expected
    assert F.ComputeSerializer.pack_buffers(buffers) == expected
    assert F.pack_buffers(buffers) == expected


@pytest.mark.parametrize("buffers", list(BUFFER_LISTS.values()), ids=list(BUFFER_LISTS))
def test_unpack_buffers_agrees_on_both_sides_output(buffers: list[str]) -> None:
    for packed in (F.pack_buffers(buffers), ref_utils.pack_buffers(buffers)):
        assert ref_utils.unpack_buffers(packed) == buffers
        assert R.ComputeSerializer.unpack_buffers(packed) == buffers
        assert F.unpack_buffers(packed) == buffers
        assert F.ComputeSerializer.unpack_buffers(packed) == buffers


MESSAGE_STRATEGIES = [
    ("DillCode", "DillDataBase64"),
    ("AllCodeStrategies", "AllDataStrategies"),
    ("PureSourceTextInspect", "JSONData"),
    ("PureSourceDill", "AllDataStrategies"),
    ("CombinedCode", "DillDataBase64"),
]
MESSAGE_SAMPLES = ["by-value", "defaults", "decorated"]


def message_cases() -> list[Any]:
    return [
        pytest.param(code, data, sample, id=f"{code}+{data}-{sample}")
        for code, data in MESSAGE_STRATEGIES
        for sample in MESSAGE_SAMPLES
        if sample not in UNSUPPORTED[code]
    ]


def pack_message(serializer: Any, s: Sample) -> str:
    return str(
        serializer.pack_buffers(
            [
                serializer.serialize(s.fn),
                serializer.serialize(s.args),
                serializer.serialize(s.kwargs),
            ]
        )
    )


def check_message(decoded: list[Any], s: Sample) -> None:
    assert len(decoded) == 3
    fn, args, kwargs = decoded
    assert same(fn(*args, **kwargs), s.expected())


@pytest.mark.parametrize(("code", "data", "sample"), message_cases())
def test_reference_packed_message_decodes_in_freight(
    code: str, data: str, sample: str
) -> None:
    s = SAMPLES[sample]
    packed = pack_message(ref_serializer(code=code, data=data), s)
    check_message(FREIGHT_DECODER.unpack_and_deserialize(packed), s)


@pytest.mark.parametrize(("code", "data", "sample"), message_cases())
def test_freight_packed_message_decodes_in_reference(
    code: str, data: str, sample: str
) -> None:
    s = SAMPLES[sample]
    serializer = freight_serializer(code=code, data=data)
    packed = pack_message(serializer, s)
    assert packed == ref_utils.pack_buffers(ref_utils.unpack_buffers(packed))
    check_message(REF_DECODER.unpack_and_deserialize(packed), s)


# -- properties ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)

hashables = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10)
)
picklable_values = st.recursive(
    hashables | st.complex_numbers(allow_nan=False) | st.binary(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(hashables, children, max_size=5)
        | st.frozensets(hashables, max_size=5)
        | st.sets(hashables, max_size=5)
    ),
    max_leaves=20,
)

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)

# Built once: hypothesis refuses function-scoped fixtures, and none are deprecated.
REF_DATA = {name: ref_serializer(data=name) for name in DATA_STRATEGIES}
FREIGHT_DATA = {name: freight_serializer(data=name) for name in DATA_STRATEGIES}


def roundtrip_both_ways(strategy: str, value: Any, expected: Any) -> None:
    ref_payload = REF_DATA[strategy].serialize(value)
    fr_payload = FREIGHT_DATA[strategy].serialize(value)
    assert ref_payload[:3] == fr_payload[:3] == IDENTIFIERS[strategy]
    assert same(FREIGHT_DECODER.deserialize(ref_payload), expected)
    assert same(REF_DECODER.deserialize(fr_payload), expected)


@PROPERTY_SETTINGS
@given(value=json_values, strategy=st.sampled_from(DATA_STRATEGIES))
def test_property_json_values_cross_decode(strategy: str, value: Any) -> None:
    expected = value if strategy == "DillDataBase64" else json_normal(value)
    roundtrip_both_ways(strategy, value, expected)


@PROPERTY_SETTINGS
@given(
    value=picklable_values,
    strategy=st.sampled_from(["DillDataBase64", "AllDataStrategies"]),
)
def test_property_picklable_values_cross_decode(strategy: str, value: Any) -> None:
    ref_payload = REF_DATA[strategy].serialize(value)
    fr_payload = FREIGHT_DATA[strategy].serialize(value)
    assert ref_payload[:3] == fr_payload[:3] == IDENTIFIERS[strategy]
    if strategy == "AllDataStrategies":
        assert members(fr_payload) == members(ref_payload)
    # Whatever the reference makes of its own payload is what freight must make of
    # it, and of freight's (AllDataStrategies prefers its JSON part when there is one).
    expected = REF_DECODER.deserialize(ref_payload)
    if strategy == "DillDataBase64":
        assert same(expected, value)
    assert same(FREIGHT_DECODER.deserialize(ref_payload), expected)
    assert same(REF_DECODER.deserialize(fr_payload), expected)


@PROPERTY_SETTINGS
@given(buffers=st.lists(st.text(), max_size=8))
def test_property_pack_buffers_identical_and_cross_unpack(buffers: list[str]) -> None:
    ref_packed = ref_utils.pack_buffers(buffers)
    fr_packed = F.pack_buffers(buffers)
    assert fr_packed == ref_packed == F.ComputeSerializer.pack_buffers(buffers)
    assert F.unpack_buffers(ref_packed) == buffers
    assert ref_utils.unpack_buffers(fr_packed) == buffers


def test_same_helper_distinguishes_what_equality_hides() -> None:
    assert same(-0.0, -0.0) and not same(-0.0, 0.0)
    assert same(math.nan, float("nan"))
    assert not same((1, 2), [1, 2]) and not same(1, True) and not same(1, 1.0)
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})
