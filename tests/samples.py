"""Callables the code-strategy tests serialize: one of each shape a user sends.

Module-level and self-contained, so every strategy that reads source can read them.
``by_value`` builds functions that no module can import, which forces the pickle
family to carry them by value, as it does for code typed into ``__main__``.
"""

from __future__ import annotations

import functools
import hashlib
import linecache
from collections.abc import Callable
from typing import Any

from freight.testing import assert_same_value


def add(x, y):
    return x + y


def with_defaults(x, y=10, *args, z=3, **kwargs):
    return (x, y, args, z, sorted(kwargs.items()))


def keyword_only(a, *, scale=2, offset=0):
    return a * scale + offset


SQUARE = lambda x: x * x  # noqa: E731 -- a module-level lambda: dill sends it by value


def make_closure(factor):
    def scaled(x):
        return x * factor

    return scaled


def shout(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return str(fn(*args, **kwargs)).upper()

    return wrapper


@shout
def greet(name):
    return f"hello {name}"


def by_value(source: str, name: str) -> Callable[..., Any]:
    """Define ``name`` from ``source`` in a module that cannot be imported.

    The source is registered with ``linecache`` so ``inspect.getsource`` finds it,
    as it does for a notebook cell.  The file name holds a hash of the source, so
    two sources defining the same name do not share an entry: each function's
    source stays its own.
    """
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    filename = f"<freight-test-{name}-{digest[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__freight_by_value__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


def assert_exactly_same(actual: Any, expected: Any) -> None:
    """``freight.testing.assert_same_value``, and the key order of plain dicts
    (which that leaves alone, since a strategy may sort keys): pickle, JSON and
    msgpack keep it on both sides of the wire, and the tests here rely on it.
    Looked for through lists, tuples and dict values."""
    assert_same_value(actual, expected)
    difference = _order_difference(actual, expected, "value", set())
    if difference is not None:
        raise AssertionError(difference)


def exactly_same(actual: Any, expected: Any) -> bool:
    """``assert_exactly_same`` as a predicate."""
    try:
        assert_exactly_same(actual, expected)
    except AssertionError:
        return False
    return True


def _order_difference(
    a: Any, e: Any, path: str, seen: set[tuple[int, int]]
) -> str | None:
    if (id(a), id(e)) in seen:
        return None
    seen.add((id(a), id(e)))
    if isinstance(e, dict):
        if list(a) != list(e):
            return f"{path}: keys in order {list(a)!r}, expected {list(e)!r}"
        pairs = [(a[k], e[k], f"{path}[{k!r}]") for k in e]
    elif isinstance(e, list | tuple):
        pairs = [
            (x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, e, strict=True))
        ]
    else:
        return None
    for x, y, where in pairs:
        found = _order_difference(x, y, where, seen)
        if found is not None:
            return found
    return None
