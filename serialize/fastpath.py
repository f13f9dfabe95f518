"""The binary envelope's per-message paths: ``dumps`` / ``loads`` of one blob.

A fast path holds no state of its own.  It reads tables that its
``ComputeSerializer`` keeps and fills, and calls back into the serializer for
everything it does not do itself:

* ``encoders``: ``{type: (function, *args)}`` from the data strategy's
  ``body_encoder()``;
* ``heads``: the data strategy's whole headers of buffer-free messages, by body
  size (``make_header(size)`` makes a missing one);
* ``known``: headers of buffer-free messages decoded before, by message length,
  as ``(head, start, small, decode, strategy)`` (the facade's ``_learn``).

There are two implementations with the same behaviour: the C extension
``freight.serialize._accel`` (built at install time when a C compiler is present)
and ``PyFastPath`` below, which is its specification.  ``FastPath`` is the C one
when it imported, unless the environment variable ``FREIGHT_PURE_PYTHON`` was set
to a non-empty value at import time; ``ACCELERATED`` says which is in use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ACCELERATED", "FastPath", "FastPathLike", "PyFastPath"]


class FastPathLike(Protocol):
    """What the facade needs of either implementation."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: Any) -> Any: ...


class PyFastPath:
    """The per-message paths in Python: the specification of ``_accel.FastPath``."""

    __slots__ = (
        "_assemble",
        "_decode_failed",
        "_dumps_code",
        "_encode_failed",
        "_encoders",
        "_heads",
        "_known",
        "_loads_slow",
        "_make_header",
        "_strategy",
        "_to_frames",
    )

    def __init__(
        self,
        strategy: Any,
        encoders: dict[type, tuple[Any, ...]],
        heads: dict[int, bytes],
        make_header: Callable[[int], bytes],
        assemble: Callable[[Any, Any], bytes],
        dumps_code: Callable[[Any], bytes],
        encode_failed: Callable[[Any, Exception], BaseException],
        known: dict[int, Any],
        loads_slow: Callable[[Any], Any],
        decode_failed: Callable[[Any, Exception], BaseException],
    ) -> None:
        self._strategy = strategy
        self._to_frames = strategy.to_frames
        self._encoders = encoders
        self._heads = heads
        self._make_header = make_header
        self._assemble = assemble
        self._dumps_code = dumps_code
        self._encode_failed = encode_failed
        self._known = known
        self._loads_slow = loads_slow
        self._decode_failed = decode_failed

    def dumps(self, obj: Any) -> bytes:
        """The blob for ``obj``, made by the data strategy (``dumps_code(obj)`` for
        a callable).

        An object whose type has an encoder is ``header + body`` with ``body`` from
        it; if that raises an ``Exception`` or returns anything but ``bytes``,
        ``to_frames`` is asked instead.  ``to_frames`` giving a ``bytes`` body and
        no buffers is ``header + body`` too; any other result goes to
        ``assemble(body, buffers)``.  An ``Exception`` from ``to_frames`` (or a
        result that is not a pair) raises ``encode_failed(strategy, exc)`` from it.
        """
        spec = self._encoders.get(type(obj))
        if spec is not None:
            try:
                body = spec[0](obj, *spec[1:])
            except Exception:
                pass  # to_frames encodes again and reports it
            else:
                if type(body) is bytes:
                    return self._blob(body)
        if callable(obj):
            return self._dumps_code(obj)
        try:
            frames = self._to_frames(obj)
            if type(frames) is not tuple:
                frames = tuple(frames)
            if len(frames) != 2:
                raise ValueError("to_frames must return (body, buffers)")
        except Exception as e:
            raise self._encode_failed(self._strategy, e) from e
        body, buffers = frames
        if not buffers and type(body) is bytes:
            return self._blob(body)
        return self._assemble(body, buffers)

    def _blob(self, body: bytes) -> bytes:
        size = len(body)
        header = self._heads.get(size)
        if header is None:
            header = self._make_header(size)
        return header + body

    def loads(self, data: Any) -> Any:
        """The object the blob ``data`` holds.

        A ``bytes`` whose length has an entry in ``known`` and whose first bytes
        equal its head is ``decode(data[start:])`` (a ``memoryview`` slice unless
        the entry says small); an ``Exception`` from ``decode`` raises
        ``decode_failed(strategy, exc)`` from it.  Anything else goes to
        ``loads_slow(data)``.
        """
        if type(data) is bytes:
            known = self._known.get(len(data))
            if known is not None:
                head, start, small, decode, strategy = known
                if data[:start] == head:
                    body = data[start:] if small else memoryview(data)[start:]
                    try:
                        return decode(body)
                    except Exception as e:
                        raise self._decode_failed(strategy, e) from e
        return self._loads_slow(data)


def _choose() -> tuple[Callable[..., FastPathLike], bool]:
    if os.environ.get("FREIGHT_PURE_PYTHON"):
        return PyFastPath, False
    try:
        from freight.serialize import _accel
    except ImportError:  # built without a compiler: the Python twin serves
        return PyFastPath, False
    return _accel.FastPath, True


FastPath, ACCELERATED = _choose()
