"""Pickle protocol 5: ``PickleData`` (``p5``) and ``CloudPickleCode`` (``cp``).

Both pickle by reference with the standard library's C pickler wherever that is
correct, and hand over to cloudpickle only for what must travel by value: objects
the plain pickler refuses (lambdas, closures, local classes, anything from a module
that cannot be imported) and anything whose plain pickle names ``__main__`` (the
receiving process has a different ``__main__``).  Decoding is always
``pickle.loads``: cloudpickle's output is an ordinary pickle stream.

In the binary envelope, buffers that pickle protocol 5 hands out of band (numpy
arrays, ``pickle.PickleBuffer``) become frames of their own without being copied,
and come back as views of the received frames.  Large top-level ``bytes``,
``bytearray``, ``str`` and any top-level ``memoryview`` skip pickle entirely (see
``PickleData``).  The text envelope carries the in-band pickle, base64-encoded.

Decoding a pickle runs code named by the payload: accept these payloads only from
peers you trust (the facade's allowlist enforces that per identifier).
"""

from __future__ import annotations

import functools
import operator
import pickle
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from freight.plugins.restricted_pickle import (
    SAFE_DATA_GLOBALS,
    GlobalsAllowlist,
    restricted_loads,
)
from freight.serialize import (
    BodyEncoder,
    BytesStrategy,
    DeserializationError,
    Property,
    SerializationError,
    hookimpl,
)
from freight.serialize.b64 import BinaryReader
from freight.serialize.binary import BufferLike, utf8_buffer

__all__ = [
    "PROTOCOL",
    "SAFE_DATA_GLOBALS",
    "CloudPickleCode",
    "GlobalsAllowlist",
    "PickleData",
    "dumps",
    "dumps_frames",
]

#: The pickle protocol of every payload made here (out-of-band buffers need 5).
PROTOCOL = 5

# A plain pickle that names a global of __main__ refers to the sender's __main__,
# which the receiver does not have; cloudpickle carries those objects by value.  A
# protocol 5 stream from the C pickler names every global with STACK_GLOBAL
# (b"\x93") after pushing the module name as a str: SHORT_BINUNICODE, length 8,
# b"__main__" (or a memo reference to that same str, written that way before).
# So a body without a b"\x93" byte names no global at all: one memchr.  Only a
# body with one (any global, or the byte inside binary data) is searched for the
# module name's opcode, _MAIN_OPCODE.  Below _TWO_WAY_FROM bytes bytes.find runs
# CPython 3.11's default search, whose skip table text defeats (5 ns a byte: a
# small dict with a 600-character name spent 1.6 us there, a regex 0.3 us); from
# there on it runs the two-way algorithm, faster than the regex on records
# (338 KB of 10 000 small dicts: 123 against 191 us, and pickling them 1.6 ms).
# A false positive (the string "__main__" in data that also holds a global) only
# costs the cloudpickle fallback.
_MAIN = b"__main__"
_MAIN_OPCODE = b"\x8c\x08" + _MAIN
_search_main_opcode = re.compile(re.escape(_MAIN_OPCODE)).search
_TWO_WAY_FROM = 30_000
_STACK_GLOBAL = b"\x93"

# Bodies that carry one top-level buffer as frame 0 instead of a pickle.  Pickle
# protocol 5 streams start with b"\x80\x05", so a leading b"R" cannot be a pickle.
_RAW = 0x52  # b"R"
_RAW_BYTES = b"Rb"
_RAW_BYTEARRAY = b"Ra"
_RAW_STR = b"Rs"  # frame 0 is the str's UTF-8 (surrogates pass through)
_RAW_MEMORYVIEW = b"Rm"  # optionally followed by b"<format>;<d0>,<d1>,..."

_SCALARS: frozenset[type] = frozenset({int, float, bool, type(None), complex})
_FunctionType = types.FunctionType

#: Top-level ``bytes`` / ``bytearray`` of at least this many bytes skip pickle:
#: their memory is the message's one buffer, with no copy on either side.  Below
#: it the pickled form is faster, because a message with a buffer cannot take the
#: learned-header fast path of ``loads``.  Round trips through ``ComputeSerializer``
#: (development machine, blob / frames, microseconds), raw against pickled:
#: 64 KiB 16.6 / 13.3 against 8.2 / 6.9; 256 KiB 294 / 13 against 450 / 234.
RAW_BYTES_THRESHOLD = 128 << 10
#: Top-level ``str`` of at least this many characters skip pickle (its UTF-8
#: encoding is the buffer).  A str is copied on decode either way, so the raw path
#: only saves pickle's encode copy, which pays later than for bytes: 256 KiB round
#: trips took 59 / 43 us raw against 35 / 30 us pickled.
RAW_STR_THRESHOLD = 512 << 10


# Modules registered with ``cloudpickle.register_pickle_by_value`` are in
# cloudpickle's _PICKLE_BY_VALUE_MODULES; plain pickle would send their objects by
# reference, so while any is registered everything goes through cloudpickle.
# (cloudpickle is only consulted once something has imported it.)  dumps() and
# dumps_frames() read it inline: a function call costs a small payload ~5%.
_modules = sys.modules
_CLOUDPICKLE = "cloudpickle.cloudpickle"


def _cloudpickle() -> Any:
    import cloudpickle  # 30 ms to import, so only once something needs it

    return cloudpickle


# Both functions below pickle ``obj`` by reference with the C pickler where that is
# correct, by value with cloudpickle where it must be.  pickle.dumps raises
# PicklingError, AttributeError ("Can't pickle local object"), TypeError ... for what
# it cannot name; cloudpickle then either carries it by value or explains why not,
# and its exception is the one that propagates.  They are written out flat because
# they are the whole cost of a small payload.


def dumps(obj: Any) -> bytes:
    """The in-band protocol 5 pickle of ``obj`` (buffers copied into the stream)."""
    cp = _modules.get(_CLOUDPICKLE)
    if cp is None or not cp._PICKLE_BY_VALUE_MODULES:
        try:
            body = pickle.dumps(obj, PROTOCOL)
        except Exception:
            pass
        else:
            if body.find(_STACK_GLOBAL) < 0 or (
                _search_main_opcode(body) is None
                if len(body) < _TWO_WAY_FROM
                else body.find(_MAIN_OPCODE) < 0
            ):
                return body
    return _cloudpickle().dumps(obj, PROTOCOL)  # type: ignore[no-any-return]


def dumps_frames(obj: Any) -> tuple[bytes, list[BufferLike]]:
    """The protocol 5 pickle of ``obj`` and its out-of-band buffers, as flat byte
    views of the buffers' own memory (``PickleBuffer.raw()``: no copy)."""
    cp = _modules.get(_CLOUDPICKLE)
    if cp is None or not cp._PICKLE_BY_VALUE_MODULES:
        buffers: list[pickle.PickleBuffer] = []
        try:
            if type(obj) is _FunctionType:
                # Plain pickle sends a function by name or not at all, and a name
                # holds no buffers (the buffer_callback keyword costs a function's
                # pickle a sixth).
                body = pickle.dumps(obj, PROTOCOL)
            else:
                body = pickle.dumps(obj, PROTOCOL, buffer_callback=buffers.append)
        except Exception:
            pass
        else:
            if body.find(_STACK_GLOBAL) < 0 or (
                _search_main_opcode(body) is None
                if len(body) < _TWO_WAY_FROM
                else body.find(_MAIN_OPCODE) < 0
            ):
                return body, list(map(_raw, buffers)) if buffers else []
    return _by_value_frames(obj)


def _by_value_frames(obj: Any) -> tuple[bytes, list[BufferLike]]:
    """``dumps_frames`` by cloudpickle: what plain pickle refused or would name in
    ``__main__``, and everything while a module is registered by value."""
    buffers: list[pickle.PickleBuffer] = []
    body = _cloudpickle().dumps(obj, PROTOCOL, buffer_callback=buffers.append)
    return body, list(map(_raw, buffers))


# PickleBuffer.raw as a function: map() applies it with no Python frame (a list
# comprehension is a function call of its own in Python 3.11).
_raw = pickle.PickleBuffer.raw


class _PickleFamily(BytesStrategy):
    """Protocol 5 pickle with a cloudpickle fallback, in both envelopes.

    Text payloads carry the in-band pickle as base64; binary messages carry
    out-of-band buffers as frames.
    """

    text_body = False
    libraries = ("cloudpickle",)

    def encode(self, obj: Any) -> bytes:
        return dumps(obj)

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)

    def decode_from(self, file: BinaryReader) -> Any:
        return pickle.load(file)

    # (No method of its own: a Python frame less per message.)
    to_frames = staticmethod(dumps_frames)

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        if buffers:
            return pickle.loads(body, buffers=buffers)
        return pickle.loads(body)

    def body_decoder(self) -> Callable[[bytes | memoryview], Any]:
        return pickle.loads


class PickleData(_PickleFamily):
    """Python data as a pickle protocol 5 stream; cloudpickle for what must go by
    value (instances of ``__main__`` or local classes, lambdas in the data).

    Zero-copy in the binary envelope: numpy arrays and ``PickleBuffer`` s travel as
    frames of their own and decode as views of the received frames (writable only if
    the received memory is).  A top-level ``bytes``/``bytearray``/``str`` of at least
    ``RAW_BYTES_THRESHOLD`` bytes (``RAW_STR_THRESHOLD`` characters), or any
    top-level ``memoryview``, is not pickled at all: its memory is the one frame.
    It decodes as the same type: a ``memoryview`` of the received frame (same format
    and shape); the received ``bytes`` object itself when the frame is exactly one;
    otherwise one copy.  Nested ``bytes`` are copied into the stream, as pickle does.

    Decoding executes code named by the payload: trusted peers only.
    """

    identifier = "p5\n"
    for_code = False
    name = "pickle"
    properties = Property.ZERO_COPY

    def __init__(
        self, allowed_globals: Mapping[str, Iterable[str] | str] | None = None
    ) -> None:
        """``allowed_globals`` restricts decoding to the classes and functions it
        names, ``{module: names}`` or ``{module: "*"}`` (see ``GlobalsAllowlist``;
        ``SAFE_DATA_GLOBALS`` is a starting point); ``None`` (the registered
        instance) decodes anything.  Use a restricted instance as a serializer's
        data strategy: it is then the one that decodes ``p5`` payloads, and,
        unless an allowlist says otherwise, the only decoder beside the
        ``SAFE_FOR_UNTRUSTED`` ones (``restricts_decoding``)::

            ComputeSerializer(strategy_data=PickleData(SAFE_DATA_GLOBALS))

        Restricted is not ``SAFE_FOR_UNTRUSTED``: the allowlist bounds what can
        run, not how much memory an allowed constructor may be asked for (see
        ``freight.plugins.restricted_pickle``).
        """
        self.allowed_globals = (
            None if allowed_globals is None else GlobalsAllowlist(allowed_globals)
        )

    @property
    def restricts_decoding(self) -> bool:
        """Whether this instance decodes with the restricted unpickler.  A
        ``ComputeSerializer`` given such an instance and no allowlist decodes
        only it and strategies safe for untrusted input (``cp``, ``00``, ``13``
        ... are refused)."""
        return self.allowed_globals is not None

    def decode(self, data: bytes) -> Any:
        return self._loads(data, ())

    def decode_from(self, file: BinaryReader) -> Any:
        if self.allowed_globals is None:
            return pickle.load(file)
        # The restricted unpickler may read the stream twice (restricted_pickle).
        return restricted_loads(file.read(), self.allowed_globals)

    def encode(self, obj: Any) -> bytes:
        if type(obj) is memoryview:
            # Plain pickle refuses memoryviews; rebuild one from its bytes instead,
            # using only builtins, so any unpickler can read it.
            obj = _MemoryviewReduce(obj)
        return dumps(obj)

    def to_frames(self, obj: Any) -> tuple[bytes, list[Any]]:
        kind = type(obj)
        if kind in _SCALARS:
            # Nothing to hand out of band and nothing that can name __main__.
            return pickle.dumps(obj, PROTOCOL), []
        if kind in _TOP_LEVEL_BUFFERS:
            return _top_level_frames(obj, kind)
        # dumps_frames(obj), inline: a Python frame is a tenth of a small message.
        cp = _modules.get(_CLOUDPICKLE)
        if kind is _FunctionType or (cp is not None and cp._PICKLE_BY_VALUE_MODULES):
            return dumps_frames(obj)
        buffers: list[pickle.PickleBuffer] = []
        try:
            body = pickle.dumps(obj, PROTOCOL, buffer_callback=buffers.append)
        except Exception:
            return _by_value_frames(obj)
        if body.find(_STACK_GLOBAL) < 0 or (
            _search_main_opcode(body) is None
            if len(body) < _TWO_WAY_FROM
            else body.find(_MAIN_OPCODE) < 0
        ):
            return body, list(map(_raw, buffers)) if buffers else buffers
        return _by_value_frames(obj)

    def body_encoder(self) -> BodyEncoder:
        # As to_frames: a scalar is pickle.dumps(obj, PROTOCOL), with no buffers.
        return BodyEncoder(_SCALARS, pickle.dumps, (PROTOCOL,))

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        if body and body[0] == _RAW:
            return _raw_from_frames(body, buffers)
        if self.allowed_globals is not None:
            return self._loads(body, buffers)
        if buffers:
            return pickle.loads(body, buffers=buffers)
        return pickle.loads(body)  # the buffers keyword alone costs a small payload

    def body_decoder(self) -> Callable[[bytes | memoryview], Any]:
        # A raw-buffer body always has its buffer, so without buffers the body
        # is a pickle (and a stray raw tag fails as one).
        if self.allowed_globals is None:
            return pickle.loads
        return functools.partial(self._loads, buffers=())

    def _loads(self, data: Any, buffers: Iterable[Any]) -> Any:
        allowed = self.allowed_globals
        if allowed is None:
            return pickle.loads(data, buffers=buffers)
        return restricted_loads(data, allowed, buffers)


class CloudPickleCode(_PickleFamily):
    """A callable as a pickle protocol 5 stream: importable functions by reference
    (plain pickle), and by value with cloudpickle what the receiver could not import:
    ``__main__`` and notebook code, lambdas, closures, functions from modules that
    cannot be imported or that were registered with
    ``cloudpickle.register_pickle_by_value``.

    By-value code needs the sender's Python minor version on the receiving side.
    Arrays a function closes over travel out of band in the binary envelope.
    Decoding executes code named by the payload: trusted peers only.
    """

    identifier = "cp\n"
    for_code = True
    name = "cloudpickle"


# -- top-level buffers -------------------------------------------------------------

_TOP_LEVEL_BUFFERS = frozenset({bytes, str, bytearray, memoryview})


def _top_level_frames(obj: Any, kind: type) -> tuple[bytes, list[Any]]:
    """``PickleData.to_frames`` for a top-level ``bytes``, ``str``, ``bytearray``
    or ``memoryview``: large ones (any memoryview) raw as frame 0, small ones
    pickled."""
    if kind is memoryview:
        return _memoryview_frames(obj)
    if kind is str:
        if len(obj) >= RAW_STR_THRESHOLD:
            return _RAW_STR, [utf8_buffer(obj)]
        return pickle.dumps(obj, PROTOCOL), []
    if len(obj) >= RAW_BYTES_THRESHOLD:
        return (_RAW_BYTES if kind is bytes else _RAW_BYTEARRAY), [obj]
    if kind is bytes:
        return pickle.dumps(obj, PROTOCOL), []
    return dumps_frames(obj)


class _MemoryviewReduce:
    """Pickles as ``memoryview(data)`` (then ``.cast(format, shape)``), with no
    freight name in the stream."""

    def __init__(self, view: memoryview) -> None:
        self.view = view

    def __reduce__(self) -> tuple[Any, ...]:
        view = self.view
        if view.format == "B" and view.ndim == 1:
            return memoryview, (view.tobytes(),)
        flat = _MemoryviewReduce(memoryview(view.tobytes()))
        return operator.methodcaller("cast", view.format, view.shape), (flat,)


def _memoryview_frames(view: memoryview) -> tuple[bytes, list[BufferLike]]:
    """``view``'s memory as frame 0, its format and shape in the body."""
    if view.c_contiguous:
        flat = view.cast("B") if (view.ndim != 1 or view.format != "B") else view
    else:
        flat = memoryview(view.tobytes())  # a strided view must be copied once
    if view.format == "B" and view.ndim == 1:
        return _RAW_MEMORYVIEW, [flat]
    shape = tuple(view.shape or ())
    try:  # the cast the receiver will do, tried now so that decoding cannot fail
        flat.cast(view.format, shape)  # type: ignore[call-overload]
    except (TypeError, ValueError) as e:
        raise SerializationError(
            f"cannot carry a memoryview of format {view.format!r} and shape"
            f" {view.shape}: {e}; cast it to 'B' first"
        ) from e
    spec = f"{view.format};{','.join(map(str, shape))}"
    return _RAW_MEMORYVIEW + spec.encode("ascii"), [flat]


def _raw_from_frames(body: bytes | memoryview, buffers: list[memoryview]) -> Any:
    if len(buffers) != 1:
        raise DeserializationError(
            f"PickleData: a raw-buffer body takes exactly 1 buffer, got {len(buffers)}"
        )
    frame = buffers[0]
    tag = bytes(body[:2])
    if tag == _RAW_BYTES and len(body) == 2:
        owner = frame.obj
        # The received frame is itself a bytes object: return it, uncopied.
        if type(owner) is bytes and len(owner) == frame.nbytes:
            return owner
        return frame.tobytes()
    if tag == _RAW_STR and len(body) == 2:
        return str(frame, "utf-8", "surrogatepass")
    if tag == _RAW_BYTEARRAY and len(body) == 2:
        return bytearray(frame)
    if tag == _RAW_MEMORYVIEW:
        if len(body) == 2:
            return frame
        return _cast(frame, bytes(body[2:]))
    raise DeserializationError(f"PickleData: unknown raw-buffer body {bytes(body)!r}")


def _cast(frame: memoryview, spec: bytes) -> memoryview:
    try:
        fmt, _, dims = spec.decode("ascii").partition(";")
        shape = [int(d) for d in dims.split(",")] if dims else []
        return frame.cast(fmt, shape)  # type: ignore[call-overload,no-any-return]
    except (UnicodeDecodeError, TypeError, ValueError) as e:
        raise DeserializationError(
            f"PickleData: bad memoryview format/shape {spec!r} for a"
            f" {frame.nbytes}-byte frame: {e}"
        ) from e


@hookimpl
def freight_strategies() -> list[type[BytesStrategy]]:
    return [PickleData, CloudPickleCode]
