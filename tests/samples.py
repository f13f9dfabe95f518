"""Callables the code-strategy tests serialize: one of each shape a user sends.

Module-level and self-contained, so every strategy that reads source can read them.
``by_value`` builds functions that no module can import, which forces the pickle
family to carry them by value, as it does for code typed into ``__main__``.
"""

from __future__ import annotations

import functools
import linecache
from collections.abc import Callable
from typing import Any


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
    as it does for a notebook cell.
    """
    filename = f"<freight-test-{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__freight_by_value__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down; floats compare by ``repr``
    so that ``-0.0`` differs from ``0.0`` and ``nan`` matches ``nan``; dict keys
    compare in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)
