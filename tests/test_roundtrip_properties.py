"""Round-trip properties of every registered strategy, over the values it promises.

Each registered data strategy must give back an equal value for everything in its
domain, and each code strategy must give back a callable that computes the same
results as the original, for random arguments, in each of the facade's envelopes:
the text payload, the binary blob and the binary frame list.  Domains and supported
callables are declared per registered strategy name below; a strategy registered
without a declaration fails the "is declared" tests, so a new plugin cannot slip
past unexercised.
"""

from __future__ import annotations

import base64
import contextlib
import decimal
import inspect
import pickle
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import samples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from freight.serialize import (
    ComputeSerializer,
    RegisteredStrategy,
    default_registry,
    pack_buffers,
    unpack_buffers,
)
from freight.testing import ENVELOPES, assert_roundtrip
from freight.testing import values as kit_values

# -- what is registered ---------------------------------------------------------------

REGISTERED = list(default_registry())
DATA_RECORDS = [r for r in REGISTERED if not r.for_code and not r.strategy.decode_only]
CODE_RECORDS = [r for r in REGISTERED if r.for_code and not r.strategy.decode_only]
DECODE_ONLY_CODE_RECORDS = [
    r for r in REGISTERED if r.for_code and r.strategy.decode_only
]


def record_id(rec: RegisteredStrategy) -> str:
    return f"{rec.cls.__name__}[{rec.identifier.strip()}]"


@contextlib.contextmanager
def selecting(rec: RegisteredStrategy) -> Iterator[None]:
    """Selecting a deprecated strategy must warn; selecting any other must not fail."""
    if rec.strategy.deprecated:
        with pytest.warns(DeprecationWarning, match=rec.cls.__name__):
            yield
    else:
        yield


def code_serializer(rec: RegisteredStrategy) -> ComputeSerializer:
    with selecting(rec):
        return ComputeSerializer(strategy_code=rec.cls)


# -- envelopes ------------------------------------------------------------------------

#: Every round trip runs once per envelope (text, blob, frames), through the kit's
#: ``assert_roundtrip``: the payload names the strategy, frames are copied as a
#: transport would, and a binary payload is decoded twice (the second time by a
#: serializer that has seen its header).
each_envelope = pytest.mark.parametrize("envelope", ENVELOPES)


# -- data domains ---------------------------------------------------------------------

# The domains are freight.testing's generators, the ones the conformance kit offers
# plugin authors; results are compared with its strict ``assert_same_value``.
json_values = kit_values.json_values()
picklable_values = kit_values.picklable_values()
msgpack_values = kit_values.msgpack_values()

JSON_DOMAIN = "json-able values"
PICKLE_DOMAIN = "picklable values"
MSGPACK_DOMAIN = "msgpack values"
#: Exceptions only; ``tests/test_remote_errors.py`` holds its properties.
EXCEPTION_DOMAIN = "exceptions"

#: Registered data strategy name -> the widest domain it promises to round-trip.
DATA_DOMAINS: dict[str, str] = {
    "json": JSON_DOMAIN,  # JSONData
    "dill-data": PICKLE_DOMAIN,  # DillDataBase64
    "all-data": PICKLE_DOMAIN,  # AllDataStrategies: JSON when it can, else dill
    "pickle": PICKLE_DOMAIN,  # PickleData
    "msgpack": MSGPACK_DOMAIN,  # MsgpackData
    "exception": EXCEPTION_DOMAIN,  # ExceptionData
    "zstd-pickle": PICKLE_DOMAIN,  # examples/freight-zstd
}
#: Every domain but the exceptions' includes JSON values (msgpack's with 64-bit ints).
JSON_VALUE_RECORDS = [
    r for r in DATA_RECORDS if DATA_DOMAINS.get(r.name) in (JSON_DOMAIN, PICKLE_DOMAIN)
]
MSGPACK_DOMAIN_RECORDS = [
    r for r in DATA_RECORDS if DATA_DOMAINS.get(r.name) == MSGPACK_DOMAIN
]

PICKLE_DOMAIN_RECORDS = [
    r for r in DATA_RECORDS if DATA_DOMAINS.get(r.name) == PICKLE_DOMAIN
]

DATA_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_every_registered_data_strategy_has_a_declared_domain() -> None:
    undeclared = [record_id(r) for r in DATA_RECORDS if r.name not in DATA_DOMAINS]
    assert not undeclared, (
        f"data strategies {undeclared} have no domain in DATA_DOMAINS; declare which"
        " values they round-trip so the property tests cover them"
    )


def test_the_built_in_data_strategies_are_all_registered() -> None:
    # The tables above are not vacuous: the built-ins are found through the registry.
    assert {"json", "dill-data", "all-data"} <= {r.name for r in DATA_RECORDS}


@each_envelope
@pytest.mark.parametrize("rec", JSON_VALUE_RECORDS, ids=record_id)
@DATA_SETTINGS
@given(value=json_values)
def test_every_general_data_strategy_round_trips_json_values(
    rec: RegisteredStrategy, envelope: str, value: Any
) -> None:
    assert_roundtrip(rec.strategy, value, envelopes=[envelope])


@each_envelope
@pytest.mark.parametrize("rec", MSGPACK_DOMAIN_RECORDS, ids=record_id)
@DATA_SETTINGS
@given(value=msgpack_values)
def test_msgpack_data_strategies_round_trip_msgpack_values(
    rec: RegisteredStrategy, envelope: str, value: Any
) -> None:
    assert_roundtrip(rec.strategy, value, envelopes=[envelope])


@each_envelope
@pytest.mark.parametrize("rec", PICKLE_DOMAIN_RECORDS, ids=record_id)
@DATA_SETTINGS
@given(value=picklable_values)
@example(value=(1, 2))
@example(value={1: "one"})
@example(value=[("nested", b"bytes"), {frozenset({1}): decimal.Decimal("1.5")}])
def test_dill_based_data_strategies_round_trip_picklable_values(
    rec: RegisteredStrategy, envelope: str, value: Any
) -> None:
    # Types all the way down (assert_same_value): equality alone accepts a set for
    # a frozenset and bytes for a bytearray.
    assert_roundtrip(rec.strategy, value, envelopes=[envelope])


# -- callables ------------------------------------------------------------------------

ints = st.integers(min_value=-(10**6), max_value=10**6)
texts = st.text(max_size=12)
scalars = ints | texts
kwarg_names = st.text(string.ascii_letters, min_size=1, max_size=6).filter(
    lambda k: k not in {"x", "y", "z"}
)

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_POLY = samples.by_value("def poly(a, b=3, *, c=1):\n    return a * b + c\n", "poly")
_OUTER = samples.by_value(
    "def outer(k):\n"
    "    def inner(x, y=0):\n"
    "        return x + y + k\n"
    "    return inner\n",
    "outer",
)


@st.composite
def add_calls(draw: st.DrawFn) -> Call:
    x, y = draw(st.tuples(ints, ints) | st.tuples(texts, texts))
    return samples.add, (x, y), {}


@st.composite
def with_defaults_calls(draw: st.DrawFn) -> Call:
    args = [draw(scalars)]
    if draw(st.booleans()):
        args.append(draw(scalars))
        args.extend(draw(st.lists(scalars, max_size=3)))
    kwargs = draw(st.dictionaries(kwarg_names, scalars, max_size=3))
    if draw(st.booleans()):
        kwargs["z"] = draw(scalars)
    return samples.with_defaults, tuple(args), kwargs


@st.composite
def keyword_only_calls(draw: st.DrawFn) -> Call:
    a: int | str
    offset: int | str
    if draw(st.booleans()):
        a, offset = draw(ints), draw(ints)
    else:
        a, offset = draw(texts), draw(texts)
    kwargs: dict[str, Any] = {"offset": offset}
    if draw(st.booleans()):
        kwargs["scale"] = draw(st.integers(0, 4))
    return samples.keyword_only, (a,), kwargs


@st.composite
def by_value_function_calls(draw: st.DrawFn) -> Call:
    kwargs = {"c": draw(ints)} if draw(st.booleans()) else {}
    return _POLY, (draw(ints), draw(st.integers(-5, 5))), kwargs


@st.composite
def closure_calls(draw: st.DrawFn) -> Call:
    factor = draw(st.integers(-100, 100))
    x = draw(ints | texts) if factor >= 0 else draw(ints)
    return samples.make_closure(factor), (x,), {}


@st.composite
def by_value_closure_calls(draw: st.DrawFn) -> Call:
    return _OUTER(draw(ints)), (draw(ints),), {"y": draw(ints)}


@st.composite
def decorated_calls(draw: st.DrawFn) -> Call:
    return samples.greet, (draw(texts),), {}


#: Sample callable kind -> a strategy for (callable, args, kwargs).
SAMPLE_CALLS: dict[str, st.SearchStrategy[Call]] = {
    "plain": add_calls(),
    "defaults-and-varargs": with_defaults_calls(),
    "keyword-only": keyword_only_calls(),
    "by-value-function": by_value_function_calls(),
    "closure": closure_calls(),
    "by-value-closure": by_value_closure_calls(),
    "decorated": decorated_calls(),
}

SELF_CONTAINED = ("plain", "defaults-and-varargs", "keyword-only", "by-value-function")
NEEDS_PICKLE = ("closure", "by-value-closure", "decorated")

#: Registered code strategy name -> the sample callables it promises to carry.
#: Source strategies carry self-contained functions only; the pickle family (and
#: the combos holding a pickle member) also carry closures and decorated functions.
CODE_SUPPORT: dict[str, tuple[str, ...]] = {
    "dill-code": SELF_CONTAINED + NEEDS_PICKLE,  # DillCode
    "all-code": SELF_CONTAINED + NEEDS_PICKLE,  # AllCodeStrategies
    "combined-code": SELF_CONTAINED + NEEDS_PICKLE,  # CombinedCode (deprecated)
    "source-text-inspect": SELF_CONTAINED,  # PureSourceTextInspect
    "source-dill": SELF_CONTAINED,  # PureSourceDill
    "dill-code-text-inspect": SELF_CONTAINED,  # DillCodeTextInspect (deprecated)
    "dill-code-source": SELF_CONTAINED,  # DillCodeSource (deprecated)
    "cloudpickle": SELF_CONTAINED + NEEDS_PICKLE,  # CloudPickleCode
}

#: Decode-only code strategy name -> how old payloads of that kind were made.
DECODE_ONLY_ENCODERS: dict[str, Callable[[Callable[..., Any]], bytes]] = {
    "pickle-code": pickle.dumps,  # PickleCode
}

CODE_CASES = [
    pytest.param(rec, kind, id=f"{record_id(rec)}-{kind}")
    for rec in CODE_RECORDS
    for kind in CODE_SUPPORT.get(rec.name, ())
]

CODE_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_every_registered_code_strategy_declares_its_supported_callables() -> None:
    undeclared = [record_id(r) for r in CODE_RECORDS if r.name not in CODE_SUPPORT]
    assert not undeclared, (
        f"code strategies {undeclared} have no entry in CODE_SUPPORT; declare which"
        " sample callables they carry so the property tests cover them"
    )
    undeclared = [
        record_id(r)
        for r in DECODE_ONLY_CODE_RECORDS
        if r.name not in DECODE_ONLY_ENCODERS
    ]
    assert not undeclared, (
        f"decode-only code strategies {undeclared} have no entry in"
        " DECODE_ONLY_ENCODERS"
    )


def test_the_sample_table_names_only_known_samples() -> None:
    for kinds in CODE_SUPPORT.values():
        assert set(kinds) <= set(SAMPLE_CALLS)
    assert {"dill-code", "all-code", "combined-code", "source-text-inspect"} <= {
        r.name for r in CODE_RECORDS
    }


@each_envelope
@pytest.mark.parametrize(("rec", "kind"), CODE_CASES)
@CODE_SETTINGS
@given(data=st.data())
def test_code_strategy_round_trips_supported_callables(
    rec: RegisteredStrategy, kind: str, envelope: str, data: st.DataObject
) -> None:
    fn, args, kwargs = data.draw(SAMPLE_CALLS[kind], label="call")
    assert_roundtrip(rec.strategy, fn, envelopes=[envelope], args=args, kwargs=kwargs)


@pytest.mark.parametrize(
    ("rec", "kind"), [c for c in CODE_CASES if c.values[1] in SELF_CONTAINED]
)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_check_strategies_round_trips_function_and_arguments(
    rec: RegisteredStrategy, kind: str, data: st.DataObject
) -> None:
    fn, args, kwargs = data.draw(SAMPLE_CALLS[kind], label="call")
    serializer = code_serializer(rec)
    new_fn, new_args, new_kwargs = serializer.check_strategies(fn, *args, **kwargs)
    assert new_args == args
    assert new_kwargs == kwargs
    assert new_fn(*new_args, **new_kwargs) == fn(*args, **kwargs)


@pytest.mark.parametrize("rec", DECODE_ONLY_CODE_RECORDS, ids=record_id)
@settings(max_examples=10, deadline=None)
@given(call=add_calls())
def test_decode_only_code_strategies_still_decode_old_payloads(
    rec: RegisteredStrategy, call: Call
) -> None:
    fn, args, kwargs = call
    encode = DECODE_ONLY_ENCODERS[rec.name]
    payload = rec.identifier + base64.b64encode(encode(fn)).decode("ascii")
    roundtripped = ComputeSerializer().deserialize(payload)
    assert roundtripped(*args, **kwargs) == fn(*args, **kwargs)


def test_by_value_sources_defining_the_same_name_keep_their_own_source() -> None:
    # linecache holds each source under its own file name, so inspect (and every
    # source strategy) reads back the text that defined the function.
    first_source = "def twin(x):\n    return x + 1\n"
    second_source = "def twin(x):\n    return x - 1\n"
    first = samples.by_value(first_source, "twin")
    second = samples.by_value(second_source, "twin")
    assert inspect.getsource(first) == first_source
    assert inspect.getsource(second) == second_source
    assert (first(1), second(1)) == (2, 0)


# -- framing --------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(buffers=st.lists(st.text(), max_size=6))
def test_pack_buffers_round_trips_any_list_of_text(buffers: list[str]) -> None:
    packed = pack_buffers(buffers)
    assert unpack_buffers(packed) == buffers
    assert (
        ComputeSerializer.unpack_buffers(ComputeSerializer.pack_buffers(buffers))
        == buffers
    )
