"""Payloads of functions already serialized, so sending one again is a dict lookup.

A function submitted many times (a map over inputs, a batch) is serialized once per
strategy and envelope.  The cache is keyed by the function object's identity and
holds it weakly, so it never keeps a function alive.

An entry is reused only while the function is the same object with the same
``__code__``, ``__defaults__`` and ``__kwdefaults__`` (reassigning any of them
re-serializes).  What the cache cannot see, and so does not notice: rebinding a
global the function reads, changing a captured closure variable, or mutating an
object the function refers to.  After such a change, call ``clear()`` (or
``ComputeSerializer.clear_cache()``), or construct the serializer with
``cache_code=False``.  Only plain Python functions are cached; methods, partials and
callable instances are serialized every time, since their state lives elsewhere.
"""

from __future__ import annotations

import types
import weakref
from typing import Any

_Key = tuple[int, str, str]
_FunctionType = types.FunctionType


class FunctionCache:
    """Serialized forms of functions, by (function identity, strategy, envelope)."""

    def __init__(self) -> None:
        self._entries: dict[_Key, tuple[Any, ...]] = {}
        # One weak reference per live function; its death drops the function's
        # entries.  (A per-entry callback closure would cost more on every put.)
        self._refs: dict[int, weakref.ref[Any]] = {}

    def get(self, fn: Any, identifier: str, envelope: str) -> Any:
        """The cached payload for ``fn``; ``None`` if there is none or it is stale."""
        entry = self._entries.get((id(fn), identifier, envelope))
        if entry is None:
            return None
        ref, code, defaults, kwdefaults, payload = entry
        if ref() is not fn:
            return None
        if (
            fn.__code__ is code
            and fn.__defaults__ is defaults
            and fn.__kwdefaults__ is kwdefaults
        ):
            return payload
        return None

    def put(self, fn: Any, identifier: str, envelope: str, payload: Any) -> None:
        """Remember ``payload`` for ``fn`` if ``fn`` is a plain Python function."""
        if type(fn) is not _FunctionType:
            return
        ident = id(fn)
        ref = self._refs.get(ident)
        if ref is None or ref() is not fn:
            ref = self._refs[ident] = weakref.ref(fn, self._forget)
        self._entries[ident, identifier, envelope] = (
            ref,
            fn.__code__,
            fn.__defaults__,
            fn.__kwdefaults__,
            payload,
        )

    def _forget(self, ref: weakref.ref[Any]) -> None:
        """A cached function died: drop its entries (before its id is reused)."""
        for ident, known in list(self._refs.items()):
            if known is ref:
                del self._refs[ident]
                for key in [k for k in self._entries if k[0] == ident]:
                    del self._entries[key]

    def clear(self) -> None:
        """Forget every payload.  (The weak references stay: they cost nothing,
        die with their functions, and spare the next ``put`` making them again.)"""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
