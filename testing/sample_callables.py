"""Hypothesis strategies for the callables a code strategy promises to carry.

Each strategy draws a ``CallableCase``: the callable and a hypothesis strategy for
``(args, kwargs)`` to call it with, so a round trip is checked by calling the
original and the copy and comparing results.  Unpack it as ``fn, arguments = case``.

Every shape comes in two flavours:

* **importable** -- defined at the top of this module, so ``inspect.getsource`` reads
  it and pickle can refer to it by name;
* **by value** -- compiled from source into a module nobody can import, with the
  source registered in ``linecache``, the way code typed into ``__main__`` or a
  notebook cell reaches a serializer: pickle-family strategies must carry it by
  value, and source strategies still find its text.

``by_value=None`` (the default) mixes both; ``True`` or ``False`` picks one.  The
sample functions are self-contained (no globals, builtin annotations only) so that
source-based strategies can execute them in a fresh namespace.
"""

from __future__ import annotations

import functools
import itertools
import linecache
from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

Arguments = tuple[tuple[Any, ...], dict[str, Any]]


class CallableCase(NamedTuple):
    """A callable and the arguments it is defined for."""

    function: Callable[..., Any]
    arguments: SearchStrategy[Arguments]

    def __repr__(self) -> str:
        fn = self.function
        name = getattr(fn, "__qualname__", None) or repr(fn)
        module = getattr(fn, "__module__", "?")
        return f"CallableCase({module}.{name})"


# -- argument domains ----------------------------------------------------------------

_small_ints = st.integers(-1000, 1000)
_words = st.text(alphabet="abc xyz", max_size=20)


def _positional(*strategies: SearchStrategy[Any]) -> SearchStrategy[Arguments]:
    return st.tuples(*strategies).map(lambda args: (args, {}))


# -- importable samples --------------------------------------------------------------


def add(x: int, y: int) -> int:
    return x + y


def polynomial(x: int, a: int = 1, b: int = 0, *, c: int = 0) -> int:
    return a * x * x + b * x + c


def count_words(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def describe_call(*args: int, **kwargs: int) -> tuple[int, list[str], int]:
    return (len(args), sorted(kwargs), sum(args) + sum(kwargs.values()))


def make_scaler(factor: int) -> Callable[[int], int]:
    def scaled(x: int) -> int:
        return x * factor

    return scaled


def make_lookup(table: list[int], offset: int) -> Callable[[int], int]:
    def lookup(i: int) -> int:
        return table[i % len(table)] + offset

    return lookup


def make_pipeline(a: int, b: int) -> Callable[[int], int]:
    first = make_scaler(a)

    def pipeline(x: int) -> int:
        return first(x) + b

    return pipeline


square = lambda x: x * x  # noqa: E731 - a module-level lambda is the shape under test
clamp = lambda x, low=-10, high=10: max(low, min(high, x))  # noqa: E731


def negated(fn: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        return -fn(*args, **kwargs)

    return wrapper


@negated
def negated_sum(x: int, y: int = 1) -> int:
    return x + y


@functools.lru_cache(maxsize=None)  # noqa: UP033 - the decorator's own spelling
def cached_fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


# -- by-value samples ----------------------------------------------------------------

_BY_VALUE_SOURCES = {
    "add": """\
def add(x, y):
    return x + y
""",
    "polynomial": """\
def polynomial(x, a=1, b=0, *, c=0):
    return a * x * x + b * x + c
""",
    "count_words": """\
def count_words(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts
""",
    "make_scaler": """\
def make_scaler(factor):
    def scaled(x):
        return x * factor

    return scaled
""",
    "make_lookup": """\
def make_lookup(table, offset):
    def lookup(i):
        return table[i % len(table)] + offset

    return lookup
""",
    "cube": """\
cube = lambda x: x * x * x
""",
    "negated_sum": """\
import functools


def negated(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return -fn(*args, **kwargs)

    return wrapper


@negated
def negated_sum(x, y=1):
    return x + y
""",
}

#: The ``__name__`` of the module by-value samples live in; no importer finds it.
BY_VALUE_MODULE = "__freight_testing_by_value__"
_counter = itertools.count()
_by_value_cache: dict[str, Callable[..., Any]] = {}


def define_by_value(source: str, name: str) -> Callable[..., Any]:
    """Execute ``source`` as an unimportable module and return what it binds to
    ``name``.

    The source is registered with ``linecache`` under a unique file name, so
    ``inspect.getsource`` and ``dill.source`` read it as they read a notebook cell.
    """
    filename = f"<freight-testing-{name}-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": BY_VALUE_MODULE}
    exec(compile(source, filename, "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    return fn


def _by_value(name: str) -> Callable[..., Any]:
    fn = _by_value_cache.get(name)
    if fn is None:
        fn = _by_value_cache[name] = define_by_value(_BY_VALUE_SOURCES[name], name)
    return fn


def _flavours(
    importable: Callable[..., Any], name: str, by_value: bool | None
) -> SearchStrategy[Callable[..., Any]]:
    """``importable`` and/or the by-value twin named ``name``, built lazily."""
    options: list[SearchStrategy[Callable[..., Any]]] = []
    if by_value is not True:
        options.append(st.just(importable))
    if by_value is not False:
        options.append(st.builds(lambda: _by_value(name)))
    return st.one_of(options)


def _cases(
    functions: SearchStrategy[Callable[..., Any]],
    arguments: SearchStrategy[Arguments],
) -> SearchStrategy[CallableCase]:
    return st.builds(CallableCase, functions, st.just(arguments))


# -- the public strategies -----------------------------------------------------------


def functions(*, by_value: bool | None = None) -> SearchStrategy[CallableCase]:
    """Plain functions: positional, defaulted, keyword-only and variadic arguments."""
    polynomial_args = st.tuples(
        _small_ints, st.fixed_dictionaries({}, optional={"c": _small_ints})
    ).map(lambda t: ((t[0],), t[1]))
    cases = [
        _cases(_flavours(add, "add", by_value), _positional(_small_ints, _small_ints)),
        _cases(_flavours(polynomial, "polynomial", by_value), polynomial_args),
        _cases(_flavours(count_words, "count_words", by_value), _positional(_words)),
    ]
    if by_value is not True:
        variadic = st.tuples(
            st.lists(_small_ints, max_size=4).map(tuple),
            st.dictionaries(st.sampled_from("pqr"), _small_ints, max_size=3),
        )
        cases.append(_cases(st.just(describe_call), variadic))
    return st.one_of(cases)


def closures(*, by_value: bool | None = None) -> SearchStrategy[CallableCase]:
    """Functions that capture variables of an enclosing call (drawn per case)."""
    cases: list[SearchStrategy[CallableCase]] = []

    def scaler(factor: int, flavour: int) -> Callable[..., Any]:
        factory = make_scaler if flavour == 0 else _by_value("make_scaler")
        return factory(factor)

    def lookup(table: list[int], offset: int, flavour: int) -> Callable[..., Any]:
        factory = make_lookup if flavour == 0 else _by_value("make_lookup")
        return factory(table, offset)

    flavours = st.sampled_from([0, 1] if by_value is None else [1] if by_value else [0])
    cases.append(
        _cases(st.builds(scaler, _small_ints, flavours), _positional(_small_ints))
    )
    cases.append(
        _cases(
            st.builds(
                lookup,
                st.lists(_small_ints, min_size=1, max_size=5),
                _small_ints,
                flavours,
            ),
            _positional(_small_ints),
        )
    )
    if by_value is not True:
        cases.append(
            _cases(
                st.builds(make_pipeline, _small_ints, _small_ints),
                _positional(_small_ints),
            )
        )
    return st.one_of(cases)


def lambdas(*, by_value: bool | None = None) -> SearchStrategy[CallableCase]:
    """Lambda expressions (``__name__ == "<lambda>"``)."""
    cases = [_cases(_flavours(square, "cube", by_value), _positional(_small_ints))]
    if by_value is not True:
        clamp_args = st.tuples(
            _small_ints, st.fixed_dictionaries({}, optional={"high": _small_ints})
        ).map(lambda t: ((t[0],), t[1]))
        cases.append(_cases(st.just(clamp), clamp_args))
    return st.one_of(cases)


def decorated_functions(
    *, by_value: bool | None = None
) -> SearchStrategy[CallableCase]:
    """Functions wrapped by decorators (``functools.wraps``; ``lru_cache`` when
    importable)."""
    cases = [
        _cases(
            _flavours(negated_sum, "negated_sum", by_value),
            st.tuples(
                _small_ints, st.fixed_dictionaries({}, optional={"y": _small_ints})
            ).map(lambda t: ((t[0],), t[1])),
        )
    ]
    if by_value is not True:
        cases.append(_cases(st.just(cached_fibonacci), _positional(st.integers(0, 60))))
    return st.one_of(cases)


def callables(*, by_value: bool | None = None) -> SearchStrategy[CallableCase]:
    """Every shape: functions, closures, lambdas and decorated functions."""
    return st.one_of(
        functions(by_value=by_value),
        closures(by_value=by_value),
        lambdas(by_value=by_value),
        decorated_functions(by_value=by_value),
    )
