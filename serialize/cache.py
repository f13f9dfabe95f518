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
from collections.abc import Callable
from typing import Any

_FunctionType = types.FunctionType
#: What an entry holds: the function's weak reference, the three attributes it
#: is checked against, and the payload.
_Entry = tuple["weakref.ref[Any]", Any, Any, Any, Any]


class CacheTable:
    """The cached payloads of one strategy in one envelope, by function identity.

    ``get`` and ``put`` are the per-message calls: one dict access each, plus the
    checks that make an entry valid (see the module docstring).
    """

    __slots__ = ("_entries", "_forget", "_refs")

    def __init__(
        self,
        refs: dict[int, weakref.ref[Any]],
        forget: Callable[[weakref.ref[Any]], None],
    ) -> None:
        self._entries: dict[int, _Entry] = {}
        # Shared by every table of one FunctionCache: the weak references, and
        # the callback that drops a dead function's entries from all of them.
        self._refs = refs
        self._forget = forget

    def get(self, fn: Any) -> Any:
        """The cached payload for ``fn``; ``None`` if there is none or it is stale."""
        entry = self._entries.get(id(fn))
        if entry is None:
            return None
        cached = entry[0]()
        if cached is None or cached is not fn:  # a dead function's id, reused
            return None
        if (
            cached.__code__ is entry[1]
            and cached.__defaults__ is entry[2]
            and cached.__kwdefaults__ is entry[3]
        ):
            return entry[4]
        return None

    def put(self, fn: Any, payload: Any) -> None:
        """Remember ``payload`` for ``fn`` if ``fn`` is a plain Python function."""
        if type(fn) is not _FunctionType:
            return
        ident = id(fn)
        ref = self._refs.get(ident)
        if ref is None or ref() is not fn:
            ref = self._refs[ident] = weakref.ref(fn, self._forget)
        self._entries[ident] = (
            ref,
            fn.__code__,
            fn.__defaults__,
            fn.__kwdefaults__,
            payload,
        )

    def drop(self, ident: int) -> None:
        """Forget the entry of the function whose ``id`` is ``ident``, if any."""
        self._entries.pop(ident, None)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class FunctionCache:
    """Serialized forms of functions, one ``CacheTable`` per (strategy
    identifier, envelope)."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], CacheTable] = {}
        # One weak reference per live function, shared by the tables; its death
        # drops the function's entries everywhere.  (A per-entry callback closure
        # would cost more on every put.)
        self._refs: dict[int, weakref.ref[Any]] = {}

    def table(self, identifier: str, envelope: str) -> CacheTable:
        """The table for payloads of strategy ``identifier`` in ``envelope``
        (made on first use; the same object afterwards)."""
        key = (identifier, envelope)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = CacheTable(self._refs, self._forget)
        return table

    def _forget(self, ref: weakref.ref[Any]) -> None:
        """A cached function died: drop its entries (before its id is reused)."""
        for ident, known in list(self._refs.items()):
            if known is ref:
                del self._refs[ident]
                for table in self._tables.values():
                    table.drop(ident)

    def clear(self) -> None:
        """Forget every payload.  (The weak references stay: they cost nothing,
        die with their functions, and spare the next ``put`` making them again.)"""
        for table in self._tables.values():
            table.clear()

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())
