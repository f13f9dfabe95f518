"""The binary envelope's per-message paths: ``dumps`` / ``loads`` (one blob) and
``dumps_frames`` / ``loads_frames`` (a list of frames).

A fast path holds no state of its own.  It reads tables that its
``ComputeSerializer`` keeps and fills, and calls back into the serializer for
everything it does not do itself:

* ``encoders``: ``{type: (function, *args)}`` from the data strategy's
  ``body_encoder()``;
* ``heads``: the data strategy's whole headers of buffer-free messages, by body
  size (``make_header(size)`` makes a missing one);
* ``known``: headers of buffer-free messages decoded before, by message length,
  as ``(head, small, decode, strategy)`` (the facade's ``_learn``).

There are two implementations with the same behaviour: the C extension
``freight.serialize._accel`` and ``PyFastPath`` below, which is its
specification.  ``FastPath`` is the one ``freight.serialize.accel`` chose;
``ACCELERATED`` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from freight.serialize.accel import ACCEL, ACCELERATED
from freight.serialize.errors import raise_from

__all__ = ["ACCELERATED", "FastPath", "FastPathLike", "PyFastPath"]


class FastPathLike(Protocol):
    """What the facade needs of either implementation."""

    def dumps(self, obj: Any) -> bytes: ...

    def dumps_frames(self, obj: Any) -> list[Any]: ...

    def loads(self, data: Any) -> Any: ...

    def loads_frames(self, frames: Any) -> Any: ...


class PyFastPath:
    """The per-message paths in Python: the specification of ``_accel.FastPath``.

    Callbacks into the serializer: ``assemble(body, buffers)`` and
    ``code_frames(fn)`` return a message's frames as a tuple (``code_frames``
    through the function cache); ``loads_slow(data)`` and
    ``loads_frames_slow(frames)`` decode what the fast paths do not;
    ``encode_failed`` / ``decode_failed(strategy, exc)`` make the exception to
    raise from a strategy's ``exc`` (``exc`` itself: it propagates unchanged).
    """

    __slots__ = (
        "_assemble",
        "_code_frames",
        "_decode_failed",
        "_encode_failed",
        "_encoders",
        "_heads",
        "_known",
        "_loads_frames_slow",
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
        assemble: Callable[[Any, Any], tuple[Any, ...]],
        code_frames: Callable[[Any], tuple[Any, ...]],
        encode_failed: Callable[[Any, Exception], BaseException],
        known: dict[int, Any],
        loads_slow: Callable[[Any], Any],
        loads_frames_slow: Callable[[Any], Any],
        decode_failed: Callable[[Any, Exception], BaseException],
    ) -> None:
        self._strategy = strategy
        self._to_frames = strategy.to_frames
        self._encoders = encoders
        self._heads = heads
        self._make_header = make_header
        self._assemble = assemble
        self._code_frames = code_frames
        self._encode_failed = encode_failed
        self._known = known
        self._loads_slow = loads_slow
        self._loads_frames_slow = loads_frames_slow
        self._decode_failed = decode_failed

    def dumps(self, obj: Any) -> bytes:
        """The message for ``obj`` as one blob (see ``dumps_frames``)."""
        body = self._direct(obj)
        if body is None:
            if callable(obj):
                return b"".join(self._code_frames(obj))
            body, buffers = self._pair(obj)
            if buffers or type(body) is not bytes:
                return b"".join(self._assemble(body, buffers))
        return self._header(len(body)) + body

    def dumps_frames(self, obj: Any) -> list[Any]:
        """The message for ``obj`` as a list of frames, made by the data strategy
        (by ``code_frames(obj)`` for a callable).

        An object whose type has an encoder is ``[header, body]`` with ``body``
        from it; if that raises an ``Exception`` or returns anything but
        ``bytes``, ``to_frames`` is asked instead.  ``to_frames`` giving a
        ``bytes`` body and no buffers is ``[header, body]`` too; any other result
        goes to ``assemble(body, buffers)``.  An ``Exception`` from ``to_frames``
        (or a result that is not a pair) raises ``encode_failed(strategy, exc)``
        from it.
        """
        body = self._direct(obj)
        if body is None:
            if callable(obj):
                return list(self._code_frames(obj))
            body, buffers = self._pair(obj)
            if buffers or type(body) is not bytes:
                return list(self._assemble(body, buffers))
        return [self._header(len(body)), body]

    def _direct(self, obj: Any) -> bytes | None:
        spec = self._encoders.get(type(obj))
        if spec is None:
            return None
        try:
            body = spec[0](obj, *spec[1:])
        except Exception:
            return None  # to_frames encodes again and reports it
        return body if type(body) is bytes else None

    def _pair(self, obj: Any) -> tuple[Any, Any]:
        try:
            frames = self._to_frames(obj)
            if type(frames) is not tuple:
                frames = tuple(frames)
            if len(frames) != 2:
                raise ValueError("to_frames must return (body, buffers)")
        except Exception as e:
            raise self._encode_failed(self._strategy, e) from e
        return frames

    def _header(self, size: int) -> bytes:
        header = self._heads.get(size)
        if header is None:
            header = self._make_header(size)
        return header

    def loads(self, data: Any) -> Any:
        """The object the blob ``data`` holds.

        A ``bytes`` whose length has an entry in ``known`` and whose first bytes
        equal its head is ``decode(body)``, ``body`` being the rest (``bytes`` if
        the entry says small, else a ``memoryview`` of ``data``); an
        ``Exception`` from ``decode`` raises ``decode_failed(strategy, exc)``
        from it.  Anything else goes to ``loads_slow(data)``.
        """
        if type(data) is bytes:
            known = self._known.get(len(data))
            if known is not None:
                head, small, decode, strategy = known
                if data.startswith(head):
                    start = len(head)
                    body = data[start:] if small else memoryview(data)[start:]
                    try:
                        return decode(body)
                    except Exception as e:
                        raise_from(self._decode_failed(strategy, e), e)
        return self._loads_slow(data)

    def loads_frames(self, frames: Any) -> Any:
        """The object a frame list holds: as ``loads`` for a list of exactly two
        ``bytes``, a header frame equal to a learned head and the body (handed to
        ``decode`` as it is); anything else goes to ``loads_frames_slow``."""
        if type(frames) is list and len(frames) == 2:
            header, body = frames
            if type(header) is bytes and type(body) is bytes:
                known = self._known.get(len(header) + len(body))
                if known is not None and header == known[0]:
                    try:
                        return known[2](body)
                    except Exception as e:
                        raise_from(self._decode_failed(known[3], e), e)
        return self._loads_frames_slow(frames)


FastPath: Callable[..., FastPathLike] = PyFastPath if ACCEL is None else ACCEL.FastPath
