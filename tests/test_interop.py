"""Wire compatibility with the reference, globus-compute-sdk 4.19, in both directions.

Every payload the reference's ``ComputeSerializer`` makes must decode in freight's,
and every text payload freight makes must decode in the reference's, with the same
identifier header on both sides.  Where a strategy cannot carry a shape, a
reference-made payload must fail in freight exactly as it fails in the reference: a
shape that works on one side only would be a compatibility break too.

Three deliberate divergences are pinned here, each in the direction of failing
early or losing less, never of making a payload the other side cannot read:

* base64 bodies: the reference skips characters outside the alphabet; freight
  rejects them (it still accepts the reference's 76-column line breaks);
* closures (including a decorator's wrapper): freight's source-based strategies
  refuse them at encode time, so freight's combo payloads for them carry only the
  ``DillCode`` member and work on both sides, while the reference's (source member
  first) decode to a function that raises ``NameError`` on both sides;
* ``AllDataStrategies``: freight sends the JSON member only when JSON gives the value
  back unchanged, so its payloads round-trip exactly on both sides, while the
  reference's (JSON first) turn tuples into lists, keys into strings, ... on both.

The reference's package is imported as ``R`` and freight's as ``F``; the helpers
name the encoding side first (``ref_to_freight``: the reference encodes, freight
decodes).
"""

from __future__ import annotations

import base64
import codecs
import functools
import json
import math
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import globus_compute_sdk.serialize as R
import pytest
import samples
from globus_compute_sdk import errors as ref_errors
from globus_compute_sdk.serialize import concretes as ref_concretes
from globus_compute_sdk.serialize import utils as ref_utils
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import assert_exactly_same, exactly_same

import freight.serialize as F

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


def json_normal(value: Any) -> Any:
    """What a JSON round trip makes of ``value`` (tuples become lists, ...)."""
    return json.loads(json.dumps(value))


def json_encodable(value: Any) -> bool:
    """Whether ``json.dumps`` (the reference's ``JSONData``) takes ``value``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def json_exact(value: Any) -> bool:
    """Whether a JSON round trip gives ``value`` back unchanged, types included."""
    return json_encodable(value) and exactly_same(json_normal(value), value)


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


def test_reference_defaults_are_selectable_by_their_names() -> None:
    # freight's own defaults are the faster p5/cp; the reference's stay one name away.
    fr = F.ComputeSerializer("DillCode", "DillDataBase64")
    ref = R.ComputeSerializer()
    assert fr.code_serializer.identifier == ref.code_serializer.identifier == "01\n"
    assert fr.data_serializer.identifier == ref.data_serializer.identifier == "00\n"
    assert F.ComputeSerializer().data_serializer.identifier == "p5\n"


# -- data ----------------------------------------------------------------------------

BIG_STRING = ("freight:\u00e9\U0001d11e\n" * 200_000)[: 2 * 1024 * 1024]

# (id, value, JSON-able): JSON-able values (``json.dumps`` takes them, perhaps
# lossily) go through all three data strategies.
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
    ("list-with-tuple", [1, [2, (3, "x")]], True),
    ("jsonable-non-str-keys", {1: "one", 2.5: [], None: 0, False: "f"}, True),
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


def expected_data(strategy: str, value: Any, jsonable: bool, *, made_by: str) -> Any:
    """What either receiver gets back from a payload ``made_by`` "ref" or
    "freight": the value itself, except where JSON carries it, which turns tuples
    into lists and keys into strings.  JSONData always does; the reference's
    AllDataStrategies does whenever JSON can, freight's only when JSON gives the
    value back unchanged (otherwise it sends the dill member alone)."""
    if strategy == "JSONData":
        return json_normal(value)
    if strategy == "AllDataStrategies" and made_by == "ref" and jsonable:
        return json_normal(value)
    return value


def data_members(value: Any, *, made_by: str) -> list[str]:
    """The members of an AllDataStrategies payload for ``value``: JSON then dill
    if the reference's JSON member takes it / freight's JSON member keeps it
    exactly; dill alone otherwise."""
    with_json = json_encodable(value) if made_by == "ref" else json_exact(value)
    return ["11\n", "00\n"] if with_json else ["00\n"]


SUPPORTED_DATA = data_cases(["DillDataBase64", "AllDataStrategies"]) + data_cases(
    ["JSONData"], json_only=True
)


@pytest.mark.parametrize(("strategy", "value", "jsonable"), SUPPORTED_DATA)
def test_data_reference_payload_decodes_in_freight(
    strategy: str, value: Any, jsonable: bool
) -> None:
    payload = ref_serializer(data=strategy).serialize(value)
    assert payload[:3] == IDENTIFIERS[strategy]
    expected = expected_data(strategy, value, jsonable, made_by="ref")
    assert_exactly_same(REF_DECODER.deserialize(payload), expected)
    assert_exactly_same(FREIGHT_DECODER.deserialize(payload), expected)


@pytest.mark.parametrize(("strategy", "value", "jsonable"), SUPPORTED_DATA)
def test_data_freight_payload_decodes_in_reference(
    strategy: str, value: Any, jsonable: bool
) -> None:
    payload = freight_serializer(data=strategy).serialize(value)
    assert isinstance(payload, str)
    assert payload[:3] == IDENTIFIERS[strategy]
    expected = expected_data(strategy, value, jsonable, made_by="freight")
    assert_exactly_same(REF_DECODER.deserialize(payload), expected)
    assert_exactly_same(FREIGHT_DECODER.deserialize(payload), expected)


@pytest.mark.parametrize(("strategy", "value", "jsonable"), SUPPORTED_DATA)
def test_data_headers_and_combo_members(
    strategy: str, value: Any, jsonable: bool
) -> None:
    """Same headers; AllDataStrategies members differ exactly where JSON would
    change the value (freight then leaves its JSON member out)."""
    ref_payload = ref_serializer(data=strategy).serialize(value)
    fr_payload = freight_serializer(data=strategy).serialize(value)
    assert fr_payload[:3] == ref_payload[:3]
    if strategy == "AllDataStrategies":
        assert members(ref_payload) == data_members(value, made_by="ref")
        assert members(fr_payload) == data_members(value, made_by="freight")
        if json_exact(value) or not jsonable:
            assert members(fr_payload) == members(ref_payload)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param((1, "two", (3.0, None)), id="tuple"),
        pytest.param({1: "one", None: [2]}, id="non-str-keys"),
        pytest.param([1, (2, 3)], id="nested-tuple"),
        pytest.param({"k": {True: "t"}}, id="nested-bool-key"),
    ],
)
def test_all_data_strategies_lossy_only_when_the_reference_encodes(value: Any) -> None:
    """The asymmetry itself: a value JSON would change comes back changed from the
    reference's payload and unchanged from freight's, whichever side decodes."""
    assert json_encodable(value) and not json_exact(value)
    ref_payload = ref_serializer(data="AllDataStrategies").serialize(value)
    fr_payload = freight_serializer(data="AllDataStrategies").serialize(value)
    assert members(ref_payload) == ["11\n", "00\n"]
    assert members(fr_payload) == ["00\n"]
    for decoder in (REF_DECODER, FREIGHT_DECODER):
        assert_exactly_same(decoder.deserialize(ref_payload), json_normal(value))
        assert not exactly_same(decoder.deserialize(ref_payload), value)
        assert_exactly_same(decoder.deserialize(fr_payload), value)


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

#: The samples that close over variables: a closure, and a decorated function
#: (its wrapper closes over the function it wraps).  Source text cannot carry
#: captured variables.
CLOSURES = frozenset({"closure", "decorated"})
SOURCE_STRATEGIES = frozenset(
    {"DillCodeTextInspect", "DillCodeSource", "PureSourceTextInspect", "PureSourceDill"}
)
#: The combos' members, in order, when every member accepts the function.
COMBO_MEMBERS = {
    "AllCodeStrategies": ["st\n", "sd\n", "01\n"],
    "CombinedCode": ["04\n", "01\n", "03\n", "sd\n", "st\n"],
}

# What each strategy cannot carry when the REFERENCE encodes.  Its source-based
# strategies send a closure's or a decorated function's text without the captured
# variables or the decorator.  Its combos also carry a DillCode member, and the
# decorated function works through it (its source members fail to decode), but a
# closure's source members *decode* -- to a function missing its captured variable
# -- and the combos return the first member that decodes, so closures fail in them,
# in freight exactly as in the reference.
REF_UNSUPPORTED = {
    "DillCode": set(),
    "DillCodeTextInspect": {"closure", "decorated"},
    "DillCodeSource": {"closure", "decorated"},
    "CombinedCode": {"closure"},
    "AllCodeStrategies": {"closure"},
    "PureSourceTextInspect": {"closure", "decorated"},
    "PureSourceDill": {"closure", "decorated"},
}
# What each strategy cannot carry when FREIGHT encodes: its source-based strategies
# refuse closures at encode time, so its combos carry only the DillCode member for
# them, which works in both decoders.
FREIGHT_UNSUPPORTED = {
    strategy: set(CLOSURES) if strategy in SOURCE_STRATEGIES else set()
    for strategy in CODE_STRATEGIES
}
UNSUPPORTED = {"ref": REF_UNSUPPORTED, "freight": FREIGHT_UNSUPPORTED}


def code_cases(made_by: str, *, supported: bool) -> list[Any]:
    return [
        pytest.param(strategy, sample, id=f"{strategy}-{sample}")
        for strategy in CODE_STRATEGIES
        for sample in SAMPLES
        if (sample not in UNSUPPORTED[made_by][strategy]) == supported
    ]


def code_members(strategy: str, payload: str) -> list[str]:
    """The member headers of a ``10`` or ``12`` payload.  ``10`` is read with
    freight's parser, which (unlike the reference's) is not confused by ':' inside
    source bodies."""
    if strategy == "CombinedCode":
        return [i for i, _ in F.CombinedCode().get_multiple_payloads(payload)]
    return members(payload)


def test_closure_samples_are_exactly_those_with_free_variables() -> None:
    assert {name for name, s in SAMPLES.items() if s.fn.__code__.co_freevars} == (
        CLOSURES
    )


@pytest.mark.parametrize(("strategy", "sample"), code_cases("ref", supported=True))
def test_code_reference_payload_decodes_and_runs_in_freight(
    strategy: str, sample: str
) -> None:
    s = SAMPLES[sample]
    payload = ref_serializer(code=strategy).serialize(s.fn)
    assert payload[:3] == IDENTIFIERS[strategy]
    decoded = FREIGHT_DECODER.deserialize(payload)
    assert callable(decoded)
    assert_exactly_same(decoded(*s.args, **s.kwargs), s.expected())


@pytest.mark.parametrize(("strategy", "sample"), code_cases("freight", supported=True))
def test_code_freight_payload_decodes_and_runs_in_both(
    strategy: str, sample: str
) -> None:
    s = SAMPLES[sample]
    payload = freight_serializer(code=strategy).serialize(s.fn)
    assert isinstance(payload, str)
    assert payload[:3] == IDENTIFIERS[strategy]
    for decoder in (REF_DECODER, FREIGHT_DECODER):
        decoded = decoder.deserialize(payload)
        assert callable(decoded)
        assert_exactly_same(decoded(*s.args, **s.kwargs), s.expected())


@pytest.mark.parametrize(("strategy", "sample"), code_cases("freight", supported=True))
def test_code_headers_and_combo_members(strategy: str, sample: str) -> None:
    """Same headers; the combos' members agree except for closures, for which
    freight sends the DillCode member alone."""
    fn = SAMPLES[sample].fn
    ref_payload = ref_serializer(code=strategy).serialize(fn)
    fr_payload = freight_serializer(code=strategy).serialize(fn)
    assert fr_payload[:3] == ref_payload[:3]
    if strategy in COMBO_MEMBERS:
        assert code_members(strategy, ref_payload) == COMBO_MEMBERS[strategy]
        expected = ["01\n"] if sample in CLOSURES else COMBO_MEMBERS[strategy]
        assert code_members(strategy, fr_payload) == expected


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
    return Outcome("ok" if exactly_same(result, s.expected()) else "wrong result")


@pytest.mark.parametrize(("strategy", "sample"), code_cases("ref", supported=False))
def test_code_reference_payload_of_unsupported_shape_fails_alike_in_both(
    strategy: str, sample: str
) -> None:
    """The reference encodes it; freight's decoder fails in the same stage as the
    reference's, with its own exception type when decoding fails and with the same
    exception when the decoded function fails on being called."""
    s = SAMPLES[sample]
    encoder = ref_serializer(code=strategy)
    in_ref = attempt(encoder, REF_DECODER, s)
    in_freight = attempt(encoder, FREIGHT_DECODER, s)
    assert in_ref.stage in ("deserialize", "call"), in_ref
    assert in_freight.stage == in_ref.stage, (in_freight, in_ref)
    if in_freight.stage == "deserialize":
        assert isinstance(in_freight.error, F.DeserializationError)
    else:
        assert type(in_freight.error) is type(in_ref.error), (in_freight, in_ref)
    if strategy in COMBO_MEMBERS:  # a closure: its first member is source
        assert in_ref.stage == "call"
        assert isinstance(in_ref.error, NameError)


@pytest.mark.parametrize(("strategy", "sample"), code_cases("freight", supported=False))
def test_code_freight_refuses_unsupported_shape_at_encode_time(
    strategy: str, sample: str
) -> None:
    """freight's source-based strategies refuse a closure when encoding
    (``SerializationError`` caused by ``ValueError``) rather than send text that
    fails on the receiving side."""
    assert strategy in SOURCE_STRATEGIES and sample in CLOSURES
    with pytest.raises(F.SerializationError) as info:
        freight_serializer(code=strategy).serialize(SAMPLES[sample].fn)
    assert isinstance(info.value.__cause__, ValueError)
    assert "closure" in str(info.value.__cause__)


@pytest.mark.parametrize("strategy", sorted(COMBO_MEMBERS))
def test_combo_closure_works_from_freight_and_fails_from_the_reference(
    strategy: str,
) -> None:
    """The asymmetry itself, decoded on both sides: freight's combo payload for a
    closure is its DillCode member alone and runs; the reference's leads with
    source that decodes and then raises ``NameError`` on being called."""
    s = SAMPLES["closure"]
    fr_payload = freight_serializer(code=strategy).serialize(s.fn)
    ref_payload = ref_serializer(code=strategy).serialize(s.fn)
    assert code_members(strategy, fr_payload) == ["01\n"]
    assert code_members(strategy, ref_payload) == COMBO_MEMBERS[strategy]
    for decoder in (REF_DECODER, FREIGHT_DECODER):
        assert_exactly_same(decoder.deserialize(fr_payload)(*s.args), s.expected())
        broken = decoder.deserialize(ref_payload)
        with pytest.raises(NameError):
            broken(*s.args)


@pytest.mark.parametrize("sample", ["closure", "decorated", "by-value"])
@pytest.mark.parametrize("encoder_side", ["ref", "freight"])
def test_combined_code_dill_part_carries_the_function_in_both(
    encoder_side: str, sample: str
) -> None:
    """CombinedCode's DillCode part, selected with ``variation`` (1-based), decodes
    in both: the 2nd part in the reference's payloads, and in freight's except for
    closures, where it is the only part."""
    s = SAMPLES[sample]
    if encoder_side == "ref":
        payload = ref_serializer(code="CombinedCode").serialize(s.fn)
    else:
        payload = freight_serializer(code="CombinedCode").serialize(s.fn)
    variation = code_members("CombinedCode", payload).index("01\n") + 1
    assert variation == (1 if encoder_side == "freight" and sample in CLOSURES else 2)
    for decoder in (ref_class("CombinedCode")(), freight_class("CombinedCode")()):
        fn = decoder.deserialize(payload, variation=variation)
        assert_exactly_same(fn(*s.args, **s.kwargs), s.expected())


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
        assert_exactly_same(fn(*s.args, **s.kwargs), s.expected())


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
        assert exactly_same(fn(*s.args, **s.kwargs), s.expected()), variation


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


# -- base64 bodies ------------------------------------------------------------------

LONG_DATA = list(range(100))
BIG_PARTIAL = functools.partial(samples.add, 10**300)

#: Reference-made payloads with base64 bodies long enough to be wrapped at 76
#: columns (PickleCode's as very old senders made it, with ``codecs``), and a check
#: of what decodes from them.
BASE64_PAYLOADS: dict[str, tuple[Callable[[], str], Callable[[Any], bool]]] = {
    "DillDataBase64": (
        lambda: ref_serializer(data="DillDataBase64").serialize(LONG_DATA),
        lambda v: exactly_same(v, LONG_DATA),
    ),
    "DillCode": (
        lambda: ref_serializer(code="DillCode").serialize(by_value_fn),
        lambda f: exactly_same(f(1), by_value_fn(1)),
    ),
    "PickleCode": (
        lambda: "02\n" + codecs.encode(pickle.dumps(BIG_PARTIAL), "base64").decode(),
        lambda f: f(5) == 10**300 + 5,
    ),
    "DillCodeTextInspect": (
        lambda: ref_serializer(code="DillCodeTextInspect").serialize(by_value_fn),
        lambda f: exactly_same(f(1), by_value_fn(1)),
    ),
    "DillCodeSource": (
        lambda: ref_serializer(code="DillCodeSource").serialize(by_value_fn),
        lambda f: exactly_same(f(1), by_value_fn(1)),
    ),
}


@pytest.mark.parametrize("name", sorted(BASE64_PAYLOADS))
def test_reference_base64_line_breaks_decode_in_both(name: str) -> None:
    """freight's strict base64 still takes the reference's 76-column lines, and
    CRLF line ends (which the reference takes too)."""
    make, check = BASE64_PAYLOADS[name]
    payload = make()
    assert payload[:3] == IDENTIFIERS[name]
    lines = payload[3:].split("\n")
    assert len(lines) > 2 and lines[-1] == ""
    assert all(len(line) == 76 for line in lines[:-2]), "wrapped at 76 columns"
    crlf = payload[:3] + payload[3:].replace("\n", "\r\n")
    for variant in (payload, crlf):
        assert check(REF_DECODER.deserialize(variant))
        assert check(FREIGHT_DECODER.deserialize(variant))


@pytest.mark.parametrize(
    "junk", ["*", "!", " ", "\t", "\r", "\x00", "-", "_", "\u00e9"]
)
@pytest.mark.parametrize("name", sorted(BASE64_PAYLOADS))
def test_junk_in_base64_body_skipped_by_reference_rejected_by_freight(
    name: str, junk: str
) -> None:
    """A character outside the base64 alphabet: the reference skips it and decodes
    as if it were not there; freight refuses the payload."""
    make, check = BASE64_PAYLOADS[name]
    payload = make()
    corrupt = payload[:13] + junk + payload[13:]
    assert check(REF_DECODER.deserialize(corrupt))
    with pytest.raises(F.DeserializationError):
        FREIGHT_DECODER.deserialize(corrupt)


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
MESSAGE_SAMPLES = ["by-value", "defaults", "decorated", "closure"]


def message_cases(made_by: str) -> list[Any]:
    return [
        pytest.param(code, data, sample, id=f"{code}+{data}-{sample}")
        for code, data in MESSAGE_STRATEGIES
        for sample in MESSAGE_SAMPLES
        if sample not in UNSUPPORTED[made_by][code]
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
    assert_exactly_same(fn(*args, **kwargs), s.expected())


@pytest.mark.parametrize(("code", "data", "sample"), message_cases("ref"))
def test_reference_packed_message_decodes_in_freight(
    code: str, data: str, sample: str
) -> None:
    s = SAMPLES[sample]
    packed = pack_message(ref_serializer(code=code, data=data), s)
    check_message(FREIGHT_DECODER.unpack_and_deserialize(packed), s)


@pytest.mark.parametrize(("code", "data", "sample"), message_cases("freight"))
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
    assert_exactly_same(FREIGHT_DECODER.deserialize(ref_payload), expected)
    assert_exactly_same(REF_DECODER.deserialize(fr_payload), expected)


@PROPERTY_SETTINGS
@given(value=json_values, strategy=st.sampled_from(DATA_STRATEGIES))
def test_property_json_values_cross_decode(strategy: str, value: Any) -> None:
    assert json_exact(value)
    expected = value if strategy == "DillDataBase64" else json_normal(value)
    roundtrip_both_ways(strategy, value, expected)
    if strategy == "AllDataStrategies":
        for serializer in (REF_DATA[strategy], FREIGHT_DATA[strategy]):
            assert members(serializer.serialize(value)) == ["11\n", "00\n"]


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
        assert members(ref_payload) == data_members(value, made_by="ref")
        assert members(fr_payload) == data_members(value, made_by="freight")
    # freight's payload comes back exactly, whichever side decodes it.
    assert_exactly_same(REF_DECODER.deserialize(fr_payload), value)
    assert_exactly_same(FREIGHT_DECODER.deserialize(fr_payload), value)
    # Whatever the reference makes of its own payload -- lossy where its
    # AllDataStrategies carries JSON -- is what freight must make of it.
    expected = REF_DECODER.deserialize(ref_payload)
    lossy = strategy == "AllDataStrategies" and json_encodable(value)
    assert_exactly_same(expected, json_normal(value) if lossy else value)
    assert_exactly_same(FREIGHT_DECODER.deserialize(ref_payload), expected)


@PROPERTY_SETTINGS
@given(buffers=st.lists(st.text(), max_size=8))
def test_property_pack_buffers_identical_and_cross_unpack(buffers: list[str]) -> None:
    ref_packed = ref_utils.pack_buffers(buffers)
    fr_packed = F.pack_buffers(buffers)
    assert fr_packed == ref_packed == F.ComputeSerializer.pack_buffers(buffers)
    assert F.unpack_buffers(ref_packed) == buffers
    assert ref_utils.unpack_buffers(fr_packed) == buffers


def test_same_helper_distinguishes_what_equality_hides() -> None:
    assert exactly_same(-0.0, -0.0) and not exactly_same(-0.0, 0.0)
    assert exactly_same(math.nan, float("nan"))
    assert not exactly_same((1, 2), [1, 2])
    assert not exactly_same(1, True) and not exactly_same(1, 1.0)
    assert not exactly_same({"a": 1, "b": 2}, {"b": 2, "a": 1})
    # Objects that compare by identity: a different function is not the same.
    add_1, add_2 = functools.partial(samples.add, 1), functools.partial(samples.add, 2)
    assert not exactly_same([add_1], [add_2]) and exactly_same([add_1], [add_1])
