"""Plain-source code strategies: identifiers ``st`` and ``sd``.

The body is ``name + ":" + source``; decoding executes the source in a fresh
namespace and returns the object bound to ``name``.  Portable across Python versions
(nothing is pickled), but only for self-contained functions: closures' captured
variables, decorators and module globals are not carried.  Decoding executes code, so
only accept these payloads from peers you trust.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import dill.source

from freight.serialize import (
    ClosureNotCarried,
    Property,
    SourceDoesNotDefine,
    SourceUnavailable,
    TextStrategy,
    hookimpl,
)

_SEPARATOR = ":"


def require_self_contained(fn: Any) -> None:
    """Raise ``ClosureNotCarried`` (a ``ValueError``) if ``fn`` closes over
    variables, which source cannot carry.

    The reference sends such a function anyway and it fails with ``NameError`` when
    called; refusing at encode time lets a combo fall through to a member that
    carries the closure.
    """
    freevars = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    if freevars:
        raise ClosureNotCarried(
            f"{fn.__qualname__!r} is a closure over {', '.join(freevars)}; source"
            " strategies cannot carry captured variables",
            function=str(fn.__qualname__),
            names=tuple(freevars),
        )


def source_text(fn: Any, getsource: Callable[[Any], str]) -> str:
    """``getsource(fn)``; raises ``SourceUnavailable`` if it finds no source (the
    function was typed interactively or made by ``exec()``, or is not Python)."""
    try:
        return getsource(fn)
    except (OSError, TypeError) as e:
        name = str(getattr(fn, "__qualname__", None) or type(fn).__name__)
        builtin = not hasattr(fn, "__code__")
        what = f"{name!r} is not Python code" if builtin else f"no source for {name!r}"
        raise SourceUnavailable(f"{what}: {e}", function=name, builtin=builtin) from e


def exec_source(name: str, source: str) -> Any:
    """Execute ``source`` in a fresh namespace and return what it binds to ``name``;
    raises ``SourceDoesNotDefine`` (a ``ValueError``) if it binds nothing there."""
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    try:
        return namespace[name]
    except KeyError:
        raise SourceDoesNotDefine(
            f"the source does not define {name!r}", name=name
        ) from None


class _PureSource(TextStrategy):
    for_code = True
    properties = Property.PORTABLE | Property.DETERMINISTIC

    def source_of(self, fn: Any) -> str:
        raise NotImplementedError

    def encode_text(self, obj: Any) -> str:
        require_self_contained(obj)
        name: str = obj.__name__
        return name + _SEPARATOR + source_text(obj, self.source_of)

    def decode_text(self, text: str) -> Any:
        name, sep, source = text.partition(_SEPARATOR)
        if not sep:
            raise ValueError("no ':' separating the function name from its source")
        return exec_source(name, source)


class PureSourceTextInspect(_PureSource):
    """The function's ``inspect.getsource`` text, sent as is (dedented)."""

    identifier = "st\n"
    name = "source-text-inspect"

    def source_of(self, fn: Any) -> str:
        return textwrap.dedent(inspect.getsource(fn))


class PureSourceDill(_PureSource):
    """The function's ``dill.source.getsource`` text, sent as is; unlike
    ``inspect``, dill finds source typed into an interactive interpreter."""

    identifier = "sd\n"
    name = "source-dill"

    def source_of(self, fn: Any) -> str:
        return str(dill.source.getsource(fn, lstrip=True))


@hookimpl
def freight_strategies() -> list[type[TextStrategy]]:
    return [PureSourceTextInspect, PureSourceDill]
