"""The binary envelope's per-message paths: ``dumps`` / ``loads`` (one blob) and
``dumps_frames`` / ``loads_frames`` (a list of frames).

A fast path holds no state of its own.  It reads tables that its
``ComputeSerializer`` keeps and fills, and calls back into the serializer for
everything it does not do itself:

* ``encoders``: ``{type: (function, *args)}`` from the data strategy's
  ``body_encoder()``;
* ``prefix`` / ``meta``: the first 12 header bytes and the metadata of the data
  strategy's messages in this process, from which every header is made;
* ``known``: what the serializer learned to decode, by the 12-byte header prefix
  (magic, version, flags, producer Python, identifier) of a message it decoded
  before: ``(decode, decode_frames, strategy, max_size, max_frames)`` (the
  facade's ``_learn``).  A prefix stands for every check the general path makes
  of those 12 bytes, and for the allowlist and policy verdict on the identifier,
  so a message of any length, with or without buffers, needs only its lengths
  checked.

There are two implementations with the same behaviour: the C extension
``freight.serialize._accel`` and ``PyFastPath`` below, which is its
specification.  ``FastPath`` is the one ``freight.serialize.accel`` chose;
``ACCELERATED`` says which.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

from freight.serialize.accel import ACCEL, ACCELERATED
from freight.serialize.binary import (
    MESSAGE_HEADER_SIZE,
    PREFIX_SIZE,
    SMALL_BODY,
    buffer_free_header,
    byte_view,
    message_header,
    nbytes,
)
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

    Callbacks into the serializer: ``code_frames(fn)`` returns a callable's
    message frames as a tuple (through the function cache); ``loads_slow(data)``
    and ``loads_frames_slow(frames)`` decode what the fast paths do not;
    ``encode_failed`` / ``decode_failed(strategy, exc)`` make the exception to
    raise from a strategy's ``exc`` (``exc`` itself: it propagates unchanged).
    """

    __slots__ = (
        "_code_frames",
        "_decode_failed",
        "_encode_failed",
        "_encoders",
        "_heads",
        "_known",
        "_loads_frames_slow",
        "_loads_slow",
        "_meta",
        "_prefix",
        "_strategy",
        "_to_frames",
    )

    def __init__(
        self,
        strategy: Any,
        encoders: dict[type, tuple[Any, ...]],
        prefix: bytes,
        meta: bytes,
        code_frames: Callable[[Any], tuple[Any, ...]],
        encode_failed: Callable[[Any, Exception], BaseException],
        known: dict[bytes, Any],
        loads_slow: Callable[[Any], Any],
        loads_frames_slow: Callable[[Any], Any],
        decode_failed: Callable[[Any, Exception], BaseException],
    ) -> None:
        self._strategy = strategy
        self._to_frames = strategy.to_frames
        self._encoders = encoders
        # Headers of buffer-free messages made before, by body size (a cache
        # of this twin's own: the C twin makes a header faster than it looks
        # one up).
        self._heads: dict[int, bytes] = {}
        self._prefix = prefix
        self._meta = meta
        self._code_frames = code_frames
        self._encode_failed = encode_failed
        self._known = known
        self._loads_slow = loads_slow
        self._loads_frames_slow = loads_frames_slow
        self._decode_failed = decode_failed

    # -- encoding ----------------------------------------------------------------

    def dumps(self, obj: Any) -> bytes:
        """The message for ``obj`` as one blob: ``b"".join`` of ``dumps_frames``."""
        body = self._direct(obj)
        if body is None:
            if callable(obj):
                return b"".join(self._code_frames(obj))
            body, buffers = self._pair(obj)
            if buffers or type(body) is not bytes:
                return b"".join(self._frames(body, buffers))
        return self._header(len(body)) + body

    def dumps_frames(self, obj: Any) -> list[Any]:
        """The message for ``obj`` as a list of frames, made by the data strategy
        (by ``code_frames(obj)`` for a callable).

        An object whose type has an encoder is ``[header, body]`` with ``body``
        from it; if that raises an ``Exception`` or returns anything but
        ``bytes``, ``to_frames`` is asked instead.  ``to_frames`` gives
        ``(body, buffers)``: ``[header, body, *buffers]``, the header made from
        ``prefix``, the lengths and ``meta`` (``binary.message_header``).  An
        ``Exception`` from ``to_frames`` (or a result that is not a pair, or a
        body or buffer without the buffer protocol) raises
        ``encode_failed(strategy, exc)`` from it.
        """
        body = self._direct(obj)
        if body is None:
            if callable(obj):
                return list(self._code_frames(obj))
            body, buffers = self._pair(obj)
            if buffers or type(body) is not bytes:
                return self._frames(body, buffers)
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

    def _frames(self, body: Any, buffers: Any) -> list[Any]:
        try:
            if buffers:
                buffers = list(buffers)
                head = message_header(self._prefix, body, buffers, self._meta)
                return [head, body, *buffers]
            return [self._header(nbytes(body)), body]
        except Exception as e:
            raise self._encode_failed(self._strategy, e) from e

    def _header(self, size: int) -> bytes:
        header = self._heads.get(size)
        if header is None:
            header = buffer_free_header(self._prefix, size, self._meta)
            if size < _CACHED_HEADS:
                self._heads[size] = header
        return header

    # -- decoding ----------------------------------------------------------------

    def loads(self, data: Any) -> Any:
        """The object the blob ``data`` (any C-contiguous buffer) holds.

        A blob whose first 12 bytes are a prefix in ``known`` and whose lengths
        add up (reserved bytes zero, at most ``max_frames`` buffers, at most
        ``max_size`` bytes, the lengths summing to the blob's) decodes at once:
        ``decode(body)`` without buffers, ``decode_frames(body, buffers)`` with
        them, ``body`` being ``bytes`` up to ``binary.SMALL_BODY`` bytes and a
        ``memoryview`` of ``data`` beyond, the buffers ``memoryview`` s of
        ``data``.  An ``Exception`` from the decoder raises
        ``decode_failed(strategy, exc)`` from it.  Anything else goes to
        ``loads_slow(data)``, which parses in full and reports what is wrong.
        """
        view = byte_view(data)
        if view is not None and len(view) >= _FIXED:
            entry = self._known.get(bytes(view[:_PREFIX_SIZE]))
            if entry is not None:
                parts = _blob_parts(data, view, entry)
                if parts is not None:
                    return self._run(entry, *parts)
        return self._loads_slow(data)

    def loads_frames(self, frames: Any) -> Any:
        """The object a frame list (a ``list`` or ``tuple`` of C-contiguous
        buffers) holds: as ``loads``, with a header frame of exactly the length
        its fields give and one frame per buffer, each as long as the header
        says.  A ``bytes`` body frame is handed over as it is; another one as
        ``bytes`` up to ``binary.SMALL_BODY`` bytes, as a view beyond.
        Anything else goes to ``loads_frames_slow(frames)``."""
        if type(frames) in _FRAME_LISTS and len(frames) >= 2:
            header = byte_view(frames[0])
            if header is not None and len(header) >= _FIXED:
                entry = self._known.get(bytes(header[:_PREFIX_SIZE]))
                if entry is not None:
                    parts = _frame_parts(frames, header, entry)
                    if parts is not None:
                        return self._run(entry, *parts)
        return self._loads_frames_slow(frames)

    def _run(self, entry: Any, body: Any, buffers: list[memoryview]) -> Any:
        try:
            if buffers:
                return entry[1](body, buffers)
            return entry[0](body)
        except Exception as e:
            raise_from(self._decode_failed(entry[2], e), e)


#: The Python twin keeps the headers of bodies smaller than this.
_CACHED_HEADS = 1024
_FIXED = MESSAGE_HEADER_SIZE
_PREFIX_SIZE = PREFIX_SIZE
_FRAME_LISTS = (list, tuple)
# buffer count, body length, metadata length, reserved (must be zero)
_COUNTS = struct.Struct("<IQII")


def _blob_parts(
    data: Any, view: memoryview, entry: Any
) -> tuple[Any, list[memoryview]] | None:
    """``(body, buffers)`` of a blob whose prefix is learned, or ``None`` if its
    lengths do not add up (the general path then says why)."""
    n, body_length, meta_length, reserved = _COUNTS.unpack_from(view, _PREFIX_SIZE)
    size = len(view)
    if reserved or n > entry[4] or size > entry[3] or _FIXED + 8 * n > size:
        return None
    lengths = struct.unpack_from(f"<{n}Q", view, _FIXED) if n else ()
    start = _FIXED + 8 * n + meta_length
    end = start + body_length
    if end + sum(lengths) != size:
        return None
    if body_length > SMALL_BODY:
        body: Any = view[start:end]
    elif type(data) is bytes:
        body = data[start:end]
    else:
        body = view[start:end].tobytes()
    buffers = []
    for length in lengths:
        buffers.append(view[end : end + length])
        end += length
    return body, buffers


def _frame_parts(
    frames: Any, header: memoryview, entry: Any
) -> tuple[Any, list[memoryview]] | None:
    """As ``_blob_parts``, for a frame list."""
    n, body_length, meta_length, reserved = _COUNTS.unpack_from(header, _PREFIX_SIZE)
    if (
        reserved
        or n > entry[4]
        or len(frames) != n + 2
        or len(header) != _FIXED + 8 * n + meta_length
    ):
        return None
    frame = frames[1]
    if type(frame) is bytes:
        body: Any = frame
    else:
        body = byte_view(frame)
        if body is None:
            return None
        if len(body) <= SMALL_BODY:
            body = body.tobytes()
    if len(body) != body_length:
        return None
    total = len(header) + body_length
    buffers = []
    for frame, length in zip(
        frames[2:], struct.unpack_from(f"<{n}Q", header, _FIXED), strict=True
    ):
        view = byte_view(frame)
        if view is None or len(view) != length:
            return None
        buffers.append(view)
        total += length
    if total > entry[3]:
        return None
    return body, buffers


FastPath: Callable[..., FastPathLike] = PyFastPath if ACCEL is None else ACCEL.FastPath
