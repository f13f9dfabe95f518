"""Decode limits: total size, frame count and nesting depth, checked before allocation.

Exceeding a limit raises ``DeserializationError`` naming it.  The facade makes its
``Limits`` the active ones while a strategy decodes, so strategies whose formats nest
(JSON, msgpack) can enforce ``max_depth`` through ``check_depth``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from freight.serialize.errors import DeserializationError

#: Above the nesting the JSON and msgpack decoders accept anyway (Python's
#: recursion limit, msgpack's stack), so the default costs nothing.
DEFAULT_MAX_DEPTH = 1000


@dataclass(frozen=True)
class Limits:
    """Bounds on what a serializer decodes; all checked before allocation.

    ``max_size``: bytes of a binary message or bundle (blob length, or the sum of
    its frames), or characters of a text payload.  ``max_frames``: out-of-band
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
    """Raise ``DeserializationError`` if ``value`` nests lists, tuples and dicts
    deeper than the active ``max_depth``.  Walks only when the limit is below
    ``DEFAULT_MAX_DEPTH``, which the decoders already enforce themselves."""
    limit = _active.get().max_depth
    if limit >= DEFAULT_MAX_DEPTH:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            raise DeserializationError(
                f"{what} nests deeper than the decode limit max_depth={limit}"
            )
        stack.extend((child, depth + 1) for child in children)


def depth_exceeded(error: BaseException, what: str) -> DeserializationError:
    """The error for a decoder that hit its own nesting bound (RecursionError,
    msgpack's stack limit)."""
    return DeserializationError(
        f"{what} nests deeper than the decoder allows (decode limit max_depth="
        f"{_active.get().max_depth}): {type(error).__name__}"
    )
