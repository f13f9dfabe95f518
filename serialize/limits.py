"""Decode limits: total size, frame count and nesting depth, checked before allocation.

Exceeding a limit raises ``DeserializationError`` naming it.  The facade makes its
``Limits`` the active ones while a strategy decodes, so strategies whose formats nest
(JSON, msgpack) can enforce ``max_depth`` through ``check_depth`` (or
``loads_json``), and strategies that copy can count what they materialise
against ``max_size`` with a ``SizeBudget``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import compress
from typing import Any

from freight.serialize.errors import DeserializationError

#: The default ``max_depth``.  It is enforced exactly, like any other value: the
#: decoders' own bounds (msgpack's stack of 1024 levels, the interpreter's recursion
#: limit for ``json``) are not relied on to match it.
DEFAULT_MAX_DEPTH = 1000

#: Before Python 3.12 ``json``'s C scanner counts its nesting against
#: ``sys.getrecursionlimit()``, so it cannot return a value nested deeper than that.
_JSON_NESTING_IS_RECURSION_BOUNDED = sys.version_info < (3, 12)


@dataclass(frozen=True)
class Limits:
    """Bounds on what a serializer decodes; all checked before allocation.

    ``max_size``: bytes of a binary message or bundle (blob length, or the sum of
    its frames), or characters of a text payload; and, separately, the bytes a
    decoder materialises by copying received buffers (``SizeBudget``), counting
    every copy.  ``max_frames``: out-of-band
    buffers in one message, messages in a bundle, payloads in ``pack_buffers``
    text.  ``max_depth``: container nesting of decoded values, enforced by the
    strategies whose formats nest (JSON, msgpack, exceptions); pickle-family
    decoders build nesting without recursion.

    These limits bound the framing and the safe decoders.  They cannot bound what
    a pickle-family decoder allocates: a 9-byte pickle can make CPython's
    unpickler grow its memo table to gigabytes.  Pickle is code execution; use
    ``Policy.untrusted_input()`` (or an allowlist) for input you do not trust.
    """

    max_size: int = 4 * 1024**3
    max_frames: int = 65_536
    max_depth: int = DEFAULT_MAX_DEPTH

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_size:
            raise DeserializationError(
                f"{what} is {size} long, over the decode limit max_size={self.max_size}"
            )

    def check_frames(self, count: int, what: str) -> None:
        if count > self.max_frames:
            raise DeserializationError(
                f"{what}: {count} exceeds the decode limit max_frames={self.max_frames}"
            )


DEFAULT_LIMITS = Limits()

_active: ContextVar[Limits] = ContextVar(
    "freight_decode_limits", default=DEFAULT_LIMITS
)


def active_limits() -> Limits:
    """The limits of the decode in progress (for strategies that enforce them)."""
    return _active.get()


def run_within(limits: Limits, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` with ``limits`` the active limits for the strategies it
    calls.  (A plain set and reset: a generator-based context manager cost a
    small decode several times its own time.)"""
    token = _active.set(limits)
    try:
        return function(*args)
    finally:
        _active.reset(token)


def check_depth(value: Any, what: str = "decoded value") -> None:
    """Raise ``DeserializationError`` naming ``max_depth`` if ``value`` nests lists,
    tuples and dicts (dict keys included) deeper than the active ``max_depth``.
    The walk visits every container once, iteratively; callers skip it when they
    know the value cannot nest that deep."""
    limit = _active.get().max_depth
    # Level by level; the containers of each level are picked out at C speed.
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise DeserializationError(
                f"{what} nests deeper than the decode limit max_depth={limit}"
            )
        deeper: list[Any] = []
        for item in level:
            if type(item) is dict:
                deeper += compress(item, map(_IS_CONTAINER, map(type, item)))
                item = item.values()
            deeper += compress(item, map(_IS_CONTAINER, map(type, item)))
        level = deeper


#: What ``check_depth`` counts as nesting (exact types: what the decoders build).
_CONTAINERS = frozenset({list, tuple, dict})
_IS_CONTAINER = _CONTAINERS.__contains__


def loads_json(text: str, what: str = "the JSON document") -> Any:
    """``json.loads(text)`` within the active ``max_depth``: a document nested
    deeper raises ``DeserializationError`` naming it, whatever the interpreter's
    recursion limit.  The value is walked (``check_depth``) only when ``text``
    could nest deeper than the limit: not when the recursion limit already bounds
    ``json`` (before Python 3.12) within it, nor when ``text`` has too few
    characters or opening brackets.  Invalid JSON raises ``json``'s ValueError."""
    try:
        value = json.loads(text)
    except RecursionError as e:
        raise depth_exceeded(e, what) from e
    limit = _active.get().max_depth
    if _JSON_NESTING_IS_RECURSION_BOUNDED and sys.getrecursionlimit() <= limit:
        return value
    # Each level takes an opening and a closing bracket.
    if len(text) <= 2 * limit or text.count("[") + text.count("{") <= limit:
        return value
    check_depth(value, what)
    return value


class SizeBudget:
    """The bytes one decode may still materialise by copying: ``spend(n, what)``
    before each copy of ``n`` bytes, and every copy counts (a payload that refers
    to one received buffer a thousand times, each reference a copy, spends its
    size a thousand times).  The budget is the active ``max_size``, or ``within``
    if that is smaller (a decoder that copies each received buffer at most once
    passes the total it received).  Raises ``DeserializationError`` naming
    ``max_size`` once the copies would exceed the budget.  Not thread-safe: make
    one per decode."""

    __slots__ = ("left", "limit", "max_size")

    def __init__(self, within: int | None = None) -> None:
        self.max_size = _active.get().max_size
        self.limit = self.max_size if within is None else min(within, self.max_size)
        self.left = self.limit

    def spend(self, size: int, what: str) -> None:
        if size > self.left:
            bound = (
                f"the decode limit max_size={self.max_size}"
                if self.limit == self.max_size
                else f"{self.limit} bytes (what was received; max_size={self.max_size})"
            )
            raise DeserializationError(
                f"{what}: copying {size} more bytes would take the bytes this decode"
                f" materialises past {bound}; {self.limit - self.left} copied so far"
            )
        self.left -= size


def depth_exceeded(error: BaseException, what: str) -> DeserializationError:
    """The error for a decoder that hit its own nesting bound (RecursionError,
    msgpack's stack limit)."""
    return DeserializationError(
        f"{what} nests deeper than the decoder allows (decode limit max_depth="
        f"{_active.get().max_depth}): {type(error).__name__}"
    )
