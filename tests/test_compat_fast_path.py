"""The fast compatible path: ``00`` (``DillDataBase64``) and ``01`` (``DillCode``)
payloads made with plain pickle where that is equivalent and dill only where needed,
proven against the real reference (globus-compute-sdk 4.19) in both directions.

Whether a payload carries dill's by-value reductions is visible in its body: they are
globals of ``dill._dill``, so a body without ``b"dill"`` is a plain pickle.  (By-value
functions get those reductions from the C pickler too, see the last section; spying
on ``dill.dumps`` tells which pickler wrote them.)  Which decoder read a payload is
observed by spying on ``dill.loads``.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import math
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import dill
import globus_compute_sdk.serialize as R
import numpy as np
import pytest
import samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import assert_exactly_same

import freight.serialize as F
from freight.plugins import dill_strategies

FREIGHT = F.ComputeSerializer("DillCode", "DillDataBase64", cache_code=False)
REFERENCE = R.ComputeSerializer()


def body(payload: str) -> bytes:
    """The pickle stream inside a ``00``/``01`` text payload."""
    assert payload[:3] in ("00\n", "01\n")
    return base64.b64decode(payload[3:])


def made_by_dill(payload: str) -> bool:
    return b"dill" in body(payload)


@pytest.fixture
def dill_loads_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts decodes by dill's Unpickler (still decoding) while the test runs."""
    calls: list[int] = []
    real = dill_strategies._Unpickler.load

    def spy(self: Any) -> Any:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(dill_strategies._Unpickler, "load", spy)
    yield calls


# -- data ----------------------------------------------------------------------------


class Tagged(np.ndarray):
    """An ndarray subclass whose attribute only dill carries (in ``__dict__``)."""


def tagged_array() -> Tagged:
    array = np.arange(4.0).view(Tagged)
    array.tag = "kept"  # type: ignore[attr-defined]
    return array


PLAIN_DATA = [
    pytest.param(None, id="none"),
    pytest.param(-(2**100), id="bigint"),
    pytest.param("h\u00e9llo \ud800", id="str-surrogate"),
    pytest.param(b"\x00bytes", id="bytes"),
    pytest.param({"a": [1, 2.5, None], (1, 2): {3, 4}}, id="mixed"),
    pytest.param([{"i": i, "s": str(i)} for i in range(500)], id="list-of-dicts"),
    pytest.param(frozenset({"x", 1}), id="frozenset"),
    pytest.param([samples.add, samples.greet], id="functions-in-data"),
]


@pytest.mark.parametrize("value", PLAIN_DATA)
def test_plain_data_is_plain_pickle_and_the_reference_reads_it(value: Any) -> None:
    payload = FREIGHT.serialize(value)
    assert payload.startswith("00\n")
    assert not made_by_dill(payload)
    assert_exactly_same(REFERENCE.deserialize(payload), value)
    assert_exactly_same(FREIGHT.deserialize(payload), value)


def test_numpy_arrays_are_plain_pickle_and_the_reference_reads_them() -> None:
    array = np.arange(10_000, dtype=np.float64).reshape(100, 100)
    payload = FREIGHT.serialize(array)
    assert not made_by_dill(payload)
    np.testing.assert_array_equal(REFERENCE.deserialize(payload), array)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([lambda x: x + 1], id="lambda-in-list"),
        pytest.param({"f": samples.make_closure(2)}, id="closure-in-dict"),
        pytest.param(
            (samples.by_value("def g(x):\n    return -x\n", "g"),), id="by-value"
        ),
    ],
)
def test_data_holding_unnameable_code_goes_through_dill(value: Any) -> None:
    payload = FREIGHT.serialize(value)
    assert made_by_dill(payload)
    for decoded in (REFERENCE.deserialize(payload), FREIGHT.deserialize(payload)):
        fn = decoded[0] if isinstance(decoded, list | tuple) else decoded["f"]
        original = value[0] if isinstance(value, list | tuple) else value["f"]
        assert fn(3) == original(3)


def test_dataclass_sentinels_keep_their_identity() -> None:
    payload = FREIGHT.serialize([dataclasses.MISSING, dataclasses.KW_ONLY])
    assert REFERENCE.deserialize(payload) == [dataclasses.MISSING, dataclasses.KW_ONLY]
    assert REFERENCE.deserialize(payload)[0] is dataclasses.MISSING
    assert FREIGHT.deserialize(payload)[0] is dataclasses.MISSING


def test_ndarray_subclass_attributes_survive_as_under_dill() -> None:
    payload = FREIGHT.serialize({"a": tagged_array()})
    assert made_by_dill(payload)
    for decoded in (REFERENCE.deserialize(payload), FREIGHT.deserialize(payload)):
        assert type(decoded["a"]) is Tagged and decoded["a"].tag == "kept"
    untagged = np.arange(3.0).view(Tagged)  # nothing in __dict__: plain pickle
    assert not made_by_dill(FREIGHT.serialize(untagged))


MAIN_SOURCE = """
class MainPoint:
    def __init__(self, x):
        self.x = x

def main_double(x):
    return 2 * x
"""


@pytest.fixture
def main_things(monkeypatch: pytest.MonkeyPatch) -> tuple[type, Callable[..., Any]]:
    """A class and a function defined as if typed at the ``__main__`` prompt, so
    plain pickle would send them by reference to the sender's ``__main__``."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(MAIN_SOURCE, namespace)
    for name in ("MainPoint", "main_double"):
        monkeypatch.setattr(sys.modules["__main__"], name, namespace[name], False)
    return namespace["MainPoint"], namespace["main_double"]


def test_main_objects_go_through_dill(main_things: tuple[type, Any]) -> None:
    cls, fn = main_things
    assert b"__main__" in pickle.dumps(fn)  # plain pickle would send a name
    payload = FREIGHT.serialize([cls(5)])
    assert made_by_dill(payload)
    assert REFERENCE.deserialize(payload)[0].x == 5
    code = FREIGHT.serialize(fn)
    assert code.startswith("01\n") and made_by_dill(code)
    assert REFERENCE.deserialize(code)(4) == 8
    assert FREIGHT.deserialize(code)(4) == 8


@pytest.mark.parametrize("value", PLAIN_DATA)
def test_reference_data_payloads_decode_in_freight(value: Any) -> None:
    assert_exactly_same(FREIGHT.deserialize(REFERENCE.serialize(value)), value)


def test_reference_array_payloads_decode_in_freight() -> None:
    array = np.arange(5000.0)
    np.testing.assert_array_equal(
        FREIGHT.deserialize(REFERENCE.serialize(array)), array
    )
    tagged = FREIGHT.deserialize(REFERENCE.serialize(tagged_array()))
    assert tagged.tag == "kept"


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=32),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text() | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_property_data_payloads_cross_both_ways(value: Any) -> None:
    payload = FREIGHT.serialize(value)
    # made_by_dill() looks for dill's name in the body, which plain data may hold.
    if "dill" not in repr(value):
        assert not made_by_dill(payload)
    assert_exactly_same(REFERENCE.deserialize(payload), value)
    assert_exactly_same(FREIGHT.deserialize(REFERENCE.serialize(value)), value)


def test_nan_crosses() -> None:
    assert math.isnan(REFERENCE.deserialize(FREIGHT.serialize(math.nan)))


# -- code ----------------------------------------------------------------------------


DECORATED_SOURCE = """
import functools

def tag(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return ("wrapped", fn(*args))
    return wrapper

@tag
def h(x):
    return x + 1
"""

CLOSURE_SOURCE = """
def outer(n):
    def inner(x):
        return x + n
    return inner
"""


#: kind -> (function, arguments, goes through dill?)
CODE: dict[str, tuple[Callable[..., Any], tuple[Any, ...], bool]] = {
    "plain": (samples.add, (2, 3), False),
    "defaults": (samples.with_defaults, (1,), False),
    "keyword-only": (samples.keyword_only, (4,), False),
    "decorated": (samples.greet, ("you",), False),
    "builtin": (len, ([1, 2],), False),
    "partial": (functools.partial(samples.add, 10), (5,), False),
    "closure": (samples.make_closure(3), (5,), True),
    "lambda": (lambda x, y=2: x**y, (7,), True),
    "by-value": (
        samples.by_value("def f(x, *, k=1):\n    return [x] * k\n", "f"),
        ("v",),
        True,
    ),
    "by-value-closure": (samples.by_value(CLOSURE_SOURCE, "outer")(9), (1,), True),
    "by-value-decorated": (samples.by_value(DECORATED_SOURCE, "h"), (1,), True),
}


@pytest.mark.parametrize("kind", sorted(CODE))
def test_freight_code_payloads_run_in_the_reference(kind: str) -> None:
    fn, args, _ = CODE[kind]
    payload = FREIGHT.serialize(fn)
    assert payload.startswith("01\n")
    assert REFERENCE.deserialize(payload)(*args) == fn(*args)
    assert FREIGHT.deserialize(payload)(*args) == fn(*args)


@pytest.mark.parametrize("kind", sorted(CODE))
def test_reference_code_payloads_run_in_freight(kind: str) -> None:
    fn, args, _ = CODE[kind]
    assert FREIGHT.deserialize(REFERENCE.serialize(fn))(*args) == fn(*args)


@pytest.mark.parametrize("kind", sorted(CODE))
def test_dill_is_used_for_code_only_where_needed(kind: str) -> None:
    fn, _, needs_dill = CODE[kind]
    assert made_by_dill(FREIGHT.serialize(fn)) is needs_dill


@pytest.mark.parametrize("kind", ["plain", "decorated", "builtin"])
def test_importable_functions_arrive_as_the_same_object(kind: str) -> None:
    fn = CODE[kind][0]
    assert REFERENCE.deserialize(FREIGHT.serialize(fn)) is fn


def test_plain_payloads_match_the_bytes_dill_writes_for_them() -> None:
    # By-reference streams: the C pickler and dill's pickler agree on the opcodes
    # that matter, so the reference sees what its own encoder would have sent.
    for fn in (samples.add, samples.greet):
        ours = pickle_loads_globals(body(FREIGHT.serialize(fn)))
        theirs = pickle_loads_globals(body(REFERENCE.serialize(fn)))
        assert ours == theirs


def pickle_loads_globals(data: bytes) -> list[str]:
    import pickletools

    return [
        str(arg)
        for op, arg, _ in pickletools.genops(data)
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "GLOBAL")
    ]


# -- which decoder ---------------------------------------------------------------------


def test_small_plain_payloads_decode_without_dill(dill_loads_calls: list[int]) -> None:
    for value in ({"a": 1}, [1.5, "x"], samples.add):
        FREIGHT.deserialize(FREIGHT.serialize(value))
    assert dill_loads_calls == []


def test_dill_payloads_decode_with_dill(dill_loads_calls: list[int]) -> None:
    FREIGHT.deserialize(FREIGHT.serialize(samples.make_closure(1)))
    FREIGHT.deserialize(REFERENCE.serialize(samples.make_closure(1)))
    assert len(dill_loads_calls) == 2


SCANNED_SIZES = [0, 64, dill_strategies._SCAN_LIMIT // 2]


@pytest.mark.parametrize("padding", SCANNED_SIZES)
@pytest.mark.parametrize(
    "marker", [b"dill", b"__builtin__", b"__main__"], ids=lambda m: m.decode()
)
def test_any_dill_marker_in_a_small_body_selects_dill(
    marker: bytes, padding: int, dill_loads_calls: list[int]
) -> None:
    # Even as data (a false positive): only the decoder changes, not the value.
    value = {"note": marker, "pad": "p" * padding}
    assert len(body(FREIGHT.serialize(value))) <= dill_strategies._SCAN_LIMIT
    assert FREIGHT.deserialize(FREIGHT.serialize(value)) == value
    assert len(dill_loads_calls) == 1


@pytest.mark.parametrize("padding", SCANNED_SIZES)
def test_a_small_body_without_markers_skips_dill(
    padding: int, dill_loads_calls: list[int]
) -> None:
    value = {"note": b"dil_l _mai n_ _builtin_", "pad": "p" * padding}
    assert FREIGHT.deserialize(FREIGHT.serialize(value)) == value
    assert dill_loads_calls == []


def test_large_bodies_are_not_scanned(dill_loads_calls: list[int]) -> None:
    value = "x" * (2 * dill_strategies._SCAN_LIMIT)
    assert FREIGHT.deserialize(FREIGHT.serialize(value)) == value
    assert len(dill_loads_calls) == 1  # dill.loads reads any pickle


def test_main_dict_payloads_need_dill() -> None:
    # dill writes the receiver's __main__ namespace as ``__builtin__.__main__``,
    # which only dill's Unpickler resolves.
    main = sys.modules["__main__"].__dict__
    payload = "00\n" + base64.b64encode(dill.dumps(main)).decode()
    assert b"__builtin__" in body(payload)
    assert FREIGHT.deserialize(payload) is sys.modules["__main__"].__dict__


# -- by-value functions through the C pickler ------------------------------------------


def _attributed() -> Callable[..., Any]:
    def documented(x: int, *, k: int = 2) -> list[int]:
        """A docstring."""
        return [x] * k

    documented.marker = "attribute"  # type: ignore[attr-defined]
    return documented


def _nested(n: int) -> Callable[..., Any]:
    helper = samples.make_closure(n)
    return lambda x: helper(x) + sum(i for i in range(n))


#: Functions dill sends by value and the C pickler now writes the same way.
BY_VALUE = {
    "closure": (samples.make_closure(3), (5,)),
    "module-lambda": (samples.SQUARE, (7,)),
    "attributes": (_attributed(), (4,)),
    "nested-closures-and-genexpr": (_nested(4), (1,)),
}


@pytest.fixture
def dill_dumps_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    calls: list[Any] = []
    real = dill.dumps

    def spy(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        calls.append(obj)
        return bytes(real(obj, *args, **kwargs))

    monkeypatch.setattr(dill, "dumps", spy)
    yield calls


def assert_same_function(ours: Any, theirs: Any, args: tuple[Any, ...]) -> None:
    """Everything dill restores about a function, compared."""
    for name in (
        "__code__",
        "__name__",
        "__qualname__",
        "__module__",
        "__doc__",
        "__defaults__",
        "__kwdefaults__",
        "__annotations__",
        "__dict__",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.__globals__ is theirs.__globals__
    assert ours(*args) == theirs(*args)


@pytest.mark.parametrize("kind", sorted(BY_VALUE))
def test_by_value_functions_decode_as_dills_own_payloads_do(
    kind: str, dill_dumps_calls: list[Any]
) -> None:
    fn, args = BY_VALUE[kind]
    ours = dill_strategies.compat_dumps(fn)
    assert dill_dumps_calls == []  # written by the C pickler
    theirs = dill.dumps(fn)
    assert_same_function(dill.loads(ours), dill.loads(theirs), args)
    assert REFERENCE.deserialize(FREIGHT.serialize(fn))(*args) == fn(*args)


@pytest.fixture
def main_function() -> Callable[..., Any]:
    """A function defined in the real ``__main__`` namespace, as in a notebook."""
    main = sys.modules["__main__"].__dict__
    exec("def __freight_triple__(x):\n    return 3 * x\n", main)
    fn = main.pop("__freight_triple__")
    return fn  # type: ignore[no-any-return]


def test_main_functions_bind_the_receivers_main_namespace(
    main_function: Callable[..., Any], dill_dumps_calls: list[Any]
) -> None:
    ours = dill_strategies.compat_dumps(main_function)
    assert dill_dumps_calls == []
    decoded = dill.loads(ours)
    assert decoded.__globals__ is sys.modules["__main__"].__dict__
    assert_same_function(decoded, dill.loads(dill.dumps(main_function)), (4,))
    assert REFERENCE.deserialize(FREIGHT.serialize(main_function))(4) == 12


def test_dill_recurse_setting_is_honoured(
    monkeypatch: pytest.MonkeyPatch, dill_dumps_calls: list[Any]
) -> None:
    # With recurse on, dill carries the globals a __main__ function uses, so it
    # runs where __main__ lacks them; the C path would only name __main__'s dict.
    monkeypatch.setitem(dill.settings, "recurse", True)
    main = sys.modules["__main__"].__dict__
    exec("__freight_k__ = 14\ndef __freight_g__():\n    return __freight_k__\n", main)
    fn = main.pop("__freight_g__")
    payload = dill_strategies.compat_dumps(fn)
    del main["__freight_k__"]  # as on a receiver that never defined it
    assert len(dill_dumps_calls) == 1
    assert dill.loads(payload)() == 14


def test_a_function_met_twice_is_written_once(dill_dumps_calls: list[Any]) -> None:
    # The second reference is pickle's memo, not a cycle: no reason to use dill.
    closure = samples.make_closure(3)
    decoded = dill.loads(dill_strategies.compat_dumps([closure, closure]))
    assert dill_dumps_calls == []
    assert decoded[0] is decoded[1] and decoded[0](5) == closure(5)


def _recursive() -> Callable[[int], int]:
    def countdown(n: int) -> int:
        return 0 if n == 0 else countdown(n - 1)

    return countdown


def _empty_cell() -> Callable[[], Any]:
    def later() -> Any:
        return value  # noqa: F821 -- bound below, then deleted

    value = 1
    del value
    return later


#: Functions the C pickler leaves to dill, and why.
TO_DILL = {
    "self-referencing-closure": _recursive(),  # dill post-processes the cycle
    "empty-cell": _empty_cell(),
    "module-in-closure": (lambda m=math: lambda: m.pi)(),
    "globals-of-no-module": samples.by_value("def g(x):\n    return -x\n", "g"),
    # Named like samples.add but not that object: plain pickle refuses it.
    "not-found-by-its-name": types.FunctionType(
        samples.add.__code__, samples.add.__globals__
    ),
}


@pytest.mark.parametrize("kind", sorted(TO_DILL))
def test_what_dill_handles_differently_still_goes_to_dill(
    kind: str, dill_dumps_calls: list[Any]
) -> None:
    fn = TO_DILL[kind]
    payload = FREIGHT.serialize(fn)
    assert len(dill_dumps_calls) == 1
    decoded = REFERENCE.deserialize(payload)
    assert decoded.__code__ == fn.__code__
