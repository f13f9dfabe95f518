"""Assertion helpers: round trips, type-strict equality, malformed input, determinism.

Every helper takes the strategy as a class or an instance and goes through its
``StrategyCodec`` (``freight.serialize.envelope``): the single-strategy object
``ComputeSerializer`` itself uses for a strategy's steps, so what is checked is what
a user gets -- the framing, header checks, limits, error wrapping and the fast
paths (``body_encoder()`` / ``body_decoder()``) included -- without a facade, a
registry or a strategy for the other slot.  A class is used as its default-registry
instance if it is registered there, else as a fresh instance, so a strategy can be
tested before it is installed and without touching the process-wide registry.

Envelopes are ``Envelope`` objects (``ENVELOPES``: text, blob, frames); wherever a
helper takes an envelope it also takes its name, and a new ``Envelope`` subclass
works with every helper.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import types
import unittest
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from freight.serialize import (
    DeserializationError,
    SerdeError,
    SerializationStrategy,
    binary,
    default_registry,
)
from freight.serialize.envelope import (
    ENVELOPES as ENVELOPES,
)
from freight.serialize.envelope import (
    FRAMES,
    TEXT,
    Envelope,
    StrategyCodec,
    envelope_named,
    envelope_of,
)

#: What a helper takes as an envelope: an ``Envelope`` or its name.
Envelopelike = str | Envelope

#: Seconds one decode of malformed input may take before it counts as a hang.
DECODE_TIME_LIMIT = 20.0

MiB = 1 << 20

Strategy = SerializationStrategy | type[SerializationStrategy]


def default_memory_limit(payload_size: int) -> int:
    """Bytes a decode of a ``payload_size``-byte malformed payload may allocate at
    its peak: 32 times the input, and never less than 64 MiB."""
    return max(64 * MiB, 32 * payload_size)


# -- the serializer a check goes through ---------------------------------------------


class KitSerializer:
    """One strategy under test, and the ``StrategyCodec`` it is used through.

    ``encode(envelope, value)`` / ``decode(envelope, payload)`` speak any envelope
    (an ``Envelope`` or its name).  A decode-only strategy is used as any other:
    the codec encodes with whatever the strategy can do.
    """

    def __init__(self, strategy: Strategy) -> None:
        cls = strategy if isinstance(strategy, type) else type(strategy)
        if not (isinstance(cls, type) and issubclass(cls, SerializationStrategy)):
            raise TypeError(
                f"expected a SerializationStrategy class or instance, got {strategy!r}"
            )
        self.cls = cls
        self.strategy: SerializationStrategy = (
            strategy
            if isinstance(strategy, SerializationStrategy)
            else _instance_of(cls)
        )
        self.selectable = not self.strategy.decode_only
        self.codec = StrategyCodec(self.strategy)

    @property
    def serde(self) -> StrategyCodec:
        """The codec (the name of the ``ComputeSerializer`` this once was)."""
        return self.codec

    @property
    def name(self) -> str:
        return self.cls.__name__

    def encode(self, envelope: Envelopelike, value: Any) -> Any:
        """``value``'s payload in ``envelope``: a str, a bytes blob or a frame list
        for the built-in ones."""
        chosen = envelope_named(envelope)
        if self.selectable and callable(value) != self.strategy.for_code:
            kind = "a callable" if callable(value) else "not callable"
            raise TypeError(
                f"{short_repr(value)} is {kind}, so ComputeSerializer would not"
                f" hand it to {self.name} (for_code={self.strategy.for_code})"
            )
        return chosen.dump(self.codec, value)

    def decode(self, envelope: Envelopelike, payload: Any) -> Any:
        """The value ``payload`` (in ``envelope``) represents, via the codec."""
        return envelope_named(envelope).load(self.codec, payload)


def _instance_of(cls: type[SerializationStrategy]) -> SerializationStrategy:
    """The default registry's instance of ``cls`` if it is registered there, else
    a fresh one (nothing is registered anywhere)."""
    try:
        return default_registry().resolve(cls).strategy
    except SerdeError:
        return cls()


_kits: weakref.WeakKeyDictionary[Any, KitSerializer] = weakref.WeakKeyDictionary()


def kit_serializer(strategy: Strategy) -> KitSerializer:
    """The (cached) ``KitSerializer`` for a strategy class or instance."""
    try:
        kit = _kits.get(strategy)
    except TypeError:  # unhashable or not weakly referenceable: no caching
        return KitSerializer(strategy)
    if kit is None:
        kit = KitSerializer(strategy)
        with contextlib.suppress(TypeError):
            _kits[strategy] = kit
    return kit


def serializer_for(strategy: Strategy) -> StrategyCodec:
    """The ``StrategyCodec`` the kit uses for ``strategy``: ``serialize`` /
    ``deserialize``, ``dumps`` / ``loads``, ``dumps_frames`` / ``loads_frames``,
    ``encode`` / ``decode`` in any envelope, with ``ComputeSerializer``'s checks
    and error wrapping for that one strategy."""
    return kit_serializer(strategy).codec


def frame_message(
    strategy: SerializationStrategy,
    body: Any,
    buffers: Sequence[Any],
    metadata: bytes = b"",
) -> list[Any]:
    """``[header, body, *buffers]``: a binary message for ``strategy`` around any
    body and buffers, well-formed as an envelope whatever the body holds."""
    prefix = binary.message_prefix(strategy.identifier, text_body=strategy.text_body)
    try:
        header = binary.message_header(prefix, body, buffers, metadata)
    except TypeError:  # an envelope without header metadata
        header = binary.message_header(prefix, body, buffers)
    return [header, body, *buffers]


def transported(envelope: Envelopelike, payload: Any) -> Any:
    """``payload`` as the receiving side sees it: bytes copies of every frame, so
    nothing decoded can alias the sender's objects (``Envelope.received``)."""
    return envelope_named(envelope).received(payload)


# -- memory ------------------------------------------------------------------------


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (part of the stable ABI since 3.11)."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
        ("strides", ctypes.POINTER(ctypes.c_ssize_t)),
        ("suboffsets", ctypes.POINTER(ctypes.c_ssize_t)),
        ("internal", ctypes.c_void_p),
    ]


def buffer_span(obj: Any) -> tuple[int, int] | None:
    """``(address, length)`` of the memory ``obj`` exposes through the buffer
    protocol (its first byte, and its extent), or ``None`` if it exposes none.
    Works for bytes, bytearray, memoryview, PickleBuffer, numpy arrays and any
    other exporter, without numpy."""
    view = _PyBuffer()
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
    get.restype = ctypes.c_int
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = [ctypes.POINTER(_PyBuffer)]
    release.restype = None
    try:
        # PyBUF_RECORDS_RO: any strided layout, with shape and strides.
        get(obj, ctypes.byref(view), 0x10 | 0x8 | 0x4)
    except (TypeError, BufferError, ValueError):
        return None
    try:
        start = view.buf or 0
        if not view.len or not view.strides:
            return start, view.len
        low = high = 0
        for dim in range(view.ndim):
            reach = (view.shape[dim] - 1) * view.strides[dim]
            low, high = low + min(reach, 0), high + max(reach, 0)
        return start + low, high - low + view.itemsize
    finally:
        release(ctypes.byref(view))


def shares_memory(a: Any, b: Any) -> bool:
    """Whether the memory ``a`` and ``b`` expose (buffer protocol) overlaps: one
    is a view of the other, or both of a third."""
    span_a, span_b = buffer_span(a), buffer_span(b)
    if span_a is None or span_b is None or not span_a[1] or not span_b[1]:
        return False
    (start_a, len_a), (start_b, len_b) = span_a, span_b
    return start_a < start_b + len_b and start_b < start_a + len_a


# -- type-strict equality ------------------------------------------------------------


def assert_same_value(actual: Any, expected: Any) -> None:
    """Assert ``actual`` is ``expected`` rebuilt: equal, and of the same type at every
    level (``1.0`` is not ``1``, a tuple is not a list), NaN equal to NaN, ``-0.0``
    not ``0.0``, aware datetimes with the same offset.  Sets, dicts, numpy arrays,
    memoryviews, Decimals (compared exactly) and objects with a ``__dict__`` are
    compared member by member.

    Raises ``AssertionError`` naming the path to the first difference.
    """
    difference = _difference(actual, expected, "value", set())
    if difference is not None:
        raise AssertionError(difference)


_MISSING = object()


def _difference(a: Any, e: Any, path: str, seen: set[tuple[int, int]]) -> str | None:
    if type(a) is not type(e):
        return (
            f"{path}: expected {type(e).__qualname__} {short_repr(e)},"
            f" got {type(a).__qualname__} {short_repr(a)}"
        )
    kind = type(e)
    if kind is float:
        return None if _same_float(a, e) else _mismatch(path, a, e)
    if kind is complex:
        same = _same_float(a.real, e.real) and _same_float(a.imag, e.imag)
        return None if same else _mismatch(path, a, e)
    if isinstance(e, decimal.Decimal):
        return None if a.compare_total(e) == 0 else _mismatch(path, a, e)
    if isinstance(e, dt.datetime | dt.time):
        same = (a.replace(tzinfo=None), a.utcoffset(), a.fold) == (
            e.replace(tzinfo=None),
            e.utcoffset(),
            e.fold,
        )
        return None if same else _mismatch(path, a, e)
    if isinstance(e, str | bytes | bytearray | int | enum.Enum) or e is None:
        return None if a == e else _mismatch(path, a, e)
    if isinstance(e, memoryview):
        same = (a.format, a.shape, a.tobytes()) == (e.format, e.shape, e.tobytes())
        return None if same else _mismatch(path, a, e)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(e, numpy.ndarray | numpy.generic):
        return _numpy_difference(numpy, a, e, path)
    key = (id(a), id(e))
    if key in seen:
        return None
    seen.add(key)
    if isinstance(e, tuple | list):
        if len(a) != len(e):
            return f"{path}: expected {len(e)} items, got {len(a)}: {short_repr(a)}"
        for i, (x, y) in enumerate(zip(a, e, strict=True)):
            found = _difference(x, y, f"{path}[{i}]", seen)
            if found:
                return found
        return None
    if isinstance(e, Mapping):
        return _mapping_difference(a, e, path, seen)
    if isinstance(e, set | frozenset):
        return _set_difference(a, e, path, seen)
    if dataclasses.is_dataclass(e):
        for field in dataclasses.fields(e):
            found = _difference(
                getattr(a, field.name),
                getattr(e, field.name),
                f"{path}.{field.name}",
                seen,
            )
            if found:
                return found
        return None
    if isinstance(e, _NAMED):
        found = _named_difference(a, e, path)
        if found or a is e:
            return found
    elif isinstance(e, functools.partial):
        found = _difference(
            (a.func, a.args, a.keywords), (e.func, e.args, e.keywords), path, seen
        )
        if found:
            return found
    if hasattr(e, "__dict__") and _default_eq(type(e)):
        return _difference(vars(a), vars(e), f"{path}.__dict__", seen)
    try:
        same = bool(a == e)
    except Exception as exc:  # an __eq__ that cannot answer
        return f"{path}: cannot compare {short_repr(a)} with {short_repr(e)}: {exc!r}"
    return None if same else _mismatch(path, a, e)


#: Objects that are what their name says: the same value is the same object
#: where the name leads to one, else an object of that name (and code).
_NAMED = (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType)


def _named_difference(a: Any, e: Any, path: str) -> str | None:
    """A function, builtin, class or module the receiver finds by name must come
    back as that very object; one it cannot (by value) as one of the same
    qualified name and, for a function, the same bytecode."""
    if _found_by_name(e):
        return None if a is e else f"{path}: expected {e!r} itself, got {a!r}"
    same = getattr(a, "__qualname__", None) == getattr(e, "__qualname__", None)
    code = getattr(e, "__code__", None)
    if code is not None:
        other = getattr(a, "__code__", None)
        same = same and other is not None and other.co_code == code.co_code
    return None if same else _mismatch(path, a, e)


def _default_eq(cls: type) -> bool:
    """Whether ``cls`` compares by identity (``object.__eq__``)."""
    eq: object = cls.__eq__
    return eq is object.__eq__


def _same_float(a: float, e: float) -> bool:
    if math.isnan(e):
        return math.isnan(a)
    return a == e and math.copysign(1.0, a) == math.copysign(1.0, e)


def _mismatch(path: str, a: Any, e: Any) -> str:
    return f"{path}: expected {short_repr(e)}, got {short_repr(a)}"


def _mapping_difference(
    a: Mapping[Any, Any], e: Mapping[Any, Any], path: str, seen: set[tuple[int, int]]
) -> str | None:
    actual_keys = {k: k for k in a}
    for k in e:
        ak = actual_keys.get(k, _MISSING)
        if ak is _MISSING:
            return f"{path}: key {short_repr(k)} is missing"
        found = _difference(ak, k, f"{path} key {short_repr(k)}", seen) or _difference(
            a[ak], e[k], f"{path}[{short_repr(k)}]", seen
        )
        if found:
            return found
    extra = [k for k in a if k not in e]
    if extra:
        return f"{path}: unexpected keys {short_repr(extra)}"
    if type(e).__eq__ is not dict.__eq__ and list(a) != list(e):  # OrderedDict
        return (
            f"{path}: keys in order {short_repr(list(a))},"
            f" expected {short_repr(list(e))}"
        )
    return None


def _set_difference(
    a: Any, e: Any, path: str, seen: set[tuple[int, int]]
) -> str | None:
    actual_members = {x: x for x in a}
    for x in e:
        ax = actual_members.get(x, _MISSING)
        if ax is _MISSING:
            return f"{path}: member {short_repr(x)} is missing"
        found = _difference(ax, x, f"{path} member {short_repr(x)}", seen)
        if found:
            return found
    if len(a) != len(e):
        return f"{path}: expected {len(e)} members, got {len(a)}: {short_repr(a)}"
    return None


def _numpy_difference(numpy: Any, a: Any, e: Any, path: str) -> str | None:
    if a.dtype != e.dtype or a.shape != e.shape:
        return (
            f"{path}: expected {e.dtype} of shape {e.shape},"
            f" got {a.dtype} of shape {a.shape}"
        )
    nan_aware = e.dtype.kind in "fc"
    if numpy.array_equal(a, e, equal_nan=nan_aware):
        return None
    return _mismatch(path, a, e)


def short_repr(value: Any, limit: int = 200) -> str:
    """A repr that stays readable for multi-megabyte values."""
    if isinstance(value, str) and len(value) > limit:
        return f"<str of {len(value)} characters, starting {value[:40]!r}>"
    if isinstance(value, bytes | bytearray | memoryview):
        size = memoryview(value).nbytes
        if size > 64:
            head = bytes(memoryview(value).cast("B")[:16])
            return f"<{type(value).__name__} of {size} bytes, starting {head!r}>"
    text = repr(value)
    if len(text) > limit:
        text = f"{text[: limit - 60]} ... {text[-40:]} ({len(text)} characters)"
    return text


# -- round trips ---------------------------------------------------------------------


def assert_roundtrip(
    strategy: Strategy,
    value: Any,
    *,
    envelopes: Iterable[Envelopelike] = ENVELOPES,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Assert ``value`` comes back unchanged through ``strategy`` in each envelope.

    Data comes back as ``assert_same_value`` judges it.  A callable (for a code
    strategy) must come back callable; given ``args`` and/or ``kwargs``, calling
    the copy must return the same result as calling the original (or raise the
    same exception type).  Every payload is also checked against the contract: the
    text payload starts with the identifier, the binary header names it, and a
    ``text_body`` strategy's binary body is UTF-8.  Frames are copied to bytes
    before decoding, as a transport would.  A blob is made by the serializer's
    ``dumps``, so a value whose type the strategy's ``body_encoder()`` covers is
    encoded by it.  Binary payloads are decoded twice: the second time the
    serializer has seen the header, and a message without buffers goes through
    the strategy's ``body_decoder()``.
    """
    kit = kit_serializer(strategy)
    if not kit.strategy.for_code:
        _check_body_encoder(kit, value)
    for envelope in map(envelope_named, envelopes):
        where = f"{kit.name} ({envelope} envelope)"
        try:
            payload = kit.encode(envelope, value)
        except SerdeError as e:
            raise AssertionError(
                f"{where} could not serialize {short_repr(value)}: {e}"
            ) from e
        _check_payload_shape(kit, envelope, payload, where)
        for attempt in ("first",) if envelope.text else ("first", "second"):
            received = envelope.received(payload)
            here = where if attempt == "first" else f"{where}, decoding it again"
            try:
                decoded = kit.decode(envelope, received)
            except SerdeError as e:
                raise AssertionError(
                    f"{here} could not deserialize its own payload for"
                    f" {short_repr(value)}: {e}"
                ) from e
            if kit.strategy.for_code:
                _check_callable_copy(value, decoded, args, kwargs, here)
                continue
            try:
                assert_same_value(decoded, value)
            except AssertionError as e:
                raise AssertionError(f"{here} changed the value: {e}") from None


def _check_body_encoder(kit: KitSerializer, value: Any) -> None:
    """Each part of ``value`` (itself, and items of the containers in it, up to
    ``_PARTS``) whose type ``body_encoder()`` covers must come back from the body it
    makes, through ``from_frames``: that body is sent in place of ``to_frames``'.
    (An encoder may raise or return something else than bytes: the serializer then
    asks ``to_frames``.)"""
    spec = kit.strategy.body_encoder()
    if spec is None:
        return
    for part in _parts(value):
        if type(part) not in spec.types:
            continue
        try:
            body = spec.function(part, *spec.args)
        except Exception:
            continue
        if type(body) is not bytes:
            continue
        where = f"{kit.name}.body_encoder() on {short_repr(part)}"
        try:
            decoded = kit.strategy.from_frames(body, [])
        except Exception as e:
            raise AssertionError(
                f"{where} made a body from_frames cannot read: {e!r}"
            ) from e
        try:
            assert_same_value(decoded, part)
        except AssertionError as e:
            raise AssertionError(f"{where} disagrees with to_frames: {e}") from None


_PARTS = 64


def _parts(value: Any) -> Iterator[Any]:
    """``value`` and what the lists, tuples, sets and dicts in it hold (keys too),
    breadth first, at most ``_PARTS`` of them."""
    queue = [value]
    for count, item in enumerate(queue):
        if count == _PARTS:
            return
        yield item
        if type(item) in (list, tuple, set, frozenset):
            queue.extend(item)
        elif type(item) is dict:
            for key, val in item.items():
                queue.extend((key, val))


def _check_payload_shape(
    kit: KitSerializer, envelope: Envelope, payload: Any, where: str
) -> None:
    identifier = kit.strategy.identifier
    if envelope.text:
        if not isinstance(payload, str) or not payload.startswith(identifier):
            raise AssertionError(
                f"{where}: the text payload must be a str starting with the"
                f" identifier {identifier!r}, got {short_repr(payload)}"
            )
        return
    try:
        message = envelope.parse(payload)
    except DeserializationError as e:
        raise AssertionError(f"{where}: the binary message does not parse: {e}") from e
    if message.identifier != identifier:
        raise AssertionError(
            f"{where}: the binary header names {message.identifier!r},"
            f" not {identifier!r}"
        )
    if kit.strategy.text_body:
        try:
            str(message.body, "utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise AssertionError(
                f"{where}: text_body is True but the binary body is not UTF-8 ({e});"
                " set text_body = False (BytesStrategy does) for a bytes body"
            ) from e


def _found_by_name(fn: Any) -> bool:
    """Whether ``fn``'s module and qualified name (a module's own name) lead to
    ``fn`` in this process."""
    if isinstance(fn, types.ModuleType):
        return sys.modules.get(fn.__name__) is fn
    obj: Any = sys.modules.get(getattr(fn, "__module__", None) or "")
    for part in str(getattr(fn, "__qualname__", "")).split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def _check_callable_copy(
    original: Any,
    copy_: Any,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    where: str,
) -> None:
    if not callable(copy_):
        raise AssertionError(f"{where} turned {original!r} into {short_repr(copy_)}")
    if copy_ is original and not _found_by_name(original):
        # Pickling by reference may give back the very object, but only for one
        # the receiver can import by name; anything else must be rebuilt.
        raise AssertionError(
            f"{where} gave back the very object {original!r}, which cannot be"
            " imported by name: the payload did not carry it"
        )
    if args is None and kwargs is None:
        return
    call_args, call_kwargs = tuple(args or ()), dict(kwargs or {})
    expected, expected_error = _call(original, call_args, call_kwargs)
    got, got_error = _call(copy_, call_args, call_kwargs)
    call = _describe_call(original, call_args, call_kwargs)
    if expected_error is not None or got_error is not None:
        if type(got_error) is not type(expected_error):
            raise AssertionError(
                f"{where}: {call} raised {expected_error!r} on the original but"
                f" {got_error!r} on the copy"
            ) from got_error
        return
    try:
        assert_same_value(got, expected)
    except AssertionError as e:
        raise AssertionError(f"{where}: the copy of {call} differs: {e}") from None


def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, Exception | None]:
    try:
        return fn(*args, **kwargs), None
    except Exception as e:
        return None, e


def _describe_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [short_repr(a, 60) for a in args] + [
        f"{k}={short_repr(v, 60)}" for k, v in kwargs.items()
    ]
    name = getattr(fn, "__qualname__", repr(fn))
    return f"{name}({', '.join(parts)})"


# -- determinism ---------------------------------------------------------------------


def assert_deterministic(
    strategy: Strategy,
    value: Any,
    *,
    envelopes: Iterable[Envelopelike] = (TEXT, FRAMES),
) -> None:
    """Assert serializing ``value`` again, or a deep copy of it, gives byte-identical
    payloads in each envelope (what ``Property.DETERMINISTIC`` promises within one
    process; ``assert_deterministic_across_processes`` checks other processes)."""
    kit = kit_serializer(strategy)
    others: list[tuple[str, Any]] = [("the same value again", value)]
    with contextlib.suppress(Exception):
        others.append(("a deep copy of the value", copy.deepcopy(value)))
    for envelope in map(envelope_named, envelopes):
        first = envelope.canonical(kit.encode(envelope, value))
        for label, other in others:
            again = envelope.canonical(kit.encode(envelope, other))
            if again != first:
                raise AssertionError(
                    f"{kit.name} declares Property.DETERMINISTIC, but serializing"
                    f" {label} gave a different {envelope} payload for"
                    f" {short_repr(value)}: {_first_difference(first, again)}"
                )


def _first_difference(a: str | bytes, b: str | bytes) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return (
                f"first difference at offset {i}:"
                f" {a[i : i + 16]!r} vs {b[i : i + 16]!r}"
            )
    return f"lengths {len(a)} and {len(b)}"


def encoded_payloads(
    strategy: Strategy, values: Iterable[Any]
) -> list[tuple[str, bytes]]:
    """The text payload and the joined frames of each value (for comparing
    processes)."""
    kit = kit_serializer(strategy)
    return [
        (
            str(TEXT.canonical(kit.encode(TEXT, v))),
            b"".join(FRAMES.received(kit.encode(FRAMES, v))),
        )
        for v in values
    ]


_CHILD = """
import importlib, pickle, sys
module, qualname, out = sys.argv[1:4]
try:
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
except Exception as e:
    sys.stderr.write(f"{type(e).__name__}: {e}")
    sys.exit(3)
from freight.testing.assertions import encoded_payloads
values = pickle.load(sys.stdin.buffer)
with open(out, "wb") as f:
    pickle.dump(encoded_payloads(obj, values), f)
"""


def assert_deterministic_across_processes(
    strategy: type[SerializationStrategy], values: Iterable[Any]
) -> None:
    """Assert a fresh interpreter, with a different hash seed, serializes each of
    ``values`` to the same payloads as this one.

    The values travel to it pickled; the strategy class is imported there by its
    module and qualified name.  Raises ``unittest.SkipTest`` (a skip under pytest)
    if the class cannot be imported in a fresh interpreter or no value can be
    pickled.
    """
    picklable = []
    for value in values:
        with contextlib.suppress(Exception):
            pickle.dumps(value, protocol=5)
            picklable.append(value)
    if not picklable:
        raise unittest.SkipTest("no value of the domain could be sent to a subprocess")
    mine = encoded_payloads(strategy, picklable)
    seed = "4242" if os.environ.get("PYTHONHASHSEED") != "4242" else "2424"
    env = {
        **os.environ,
        "PYTHONHASHSEED": seed,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "payloads.pickle")
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                strategy.__module__,
                strategy.__qualname__,
                out,
            ],
            input=pickle.dumps(picklable, protocol=5),
            capture_output=True,
            env=env,
            timeout=300,
        )
        if result.returncode == 3:
            raise unittest.SkipTest(
                f"{strategy.__module__}.{strategy.__qualname__} cannot be imported in"
                f" a fresh interpreter: {result.stderr.decode(errors='replace')}"
            )
        if result.returncode != 0:
            raise AssertionError(
                f"serializing in a fresh interpreter failed:\n"
                f"{result.stderr.decode(errors='replace')}"
            )
        with open(out, "rb") as f:
            theirs = pickle.load(f)
    for value, (text_a, frames_a), (text_b, frames_b) in zip(
        picklable, mine, theirs, strict=True
    ):
        for envelope, a, b in (
            (TEXT, text_a, text_b),
            (FRAMES, frames_a, frames_b),
        ):
            if a != b:
                raise AssertionError(
                    f"{strategy.__name__} declares Property.DETERMINISTIC, but a"
                    f" process with PYTHONHASHSEED={seed} made a different"
                    f" {envelope} payload for {short_repr(value)}:"
                    f" {_first_difference(a, b)}"
                )


# -- malformed input -----------------------------------------------------------------


class _Escaped(AssertionError):
    """An exception other than ``DeserializationError`` escaped a decoder."""


class DecodeTimeout(BaseException):
    """Raised into a decode that ran past its time limit (a ``BaseException`` so
    that no ``except Exception`` on the way can swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``DecodeTimeout`` in the block if it runs longer than ``seconds``.

    Works in the main thread on POSIX when nothing else uses ``SIGALRM``; a no-op
    otherwise (and against code stuck inside a C call).
    """
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise DecodeTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclasses.dataclass
class Traced:
    """Filled in when a ``traced()`` block ends: bytes allocated at its peak, and
    still held after it."""

    peak: int = 0
    retained: int = 0


@contextlib.contextmanager
def traced() -> Iterator[Traced]:
    """Measure the memory a block allocates (``tracemalloc``): its peak and what it
    still holds, above what was traced when it began.  Works whether or not
    something else is already tracing, and leaves tracing as it found it."""
    memory = Traced()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    try:
        yield memory
    finally:
        current, peak = tracemalloc.get_traced_memory()
        if not was_tracing:
            tracemalloc.stop()
        memory.peak, memory.retained = peak - before, current - before


def assert_rejects_malformed(
    strategy: Strategy,
    payload: Any,
    *,
    allow_success: bool = False,
    strict: bool = False,
    seconds: float | None = DECODE_TIME_LIMIT,
    memory_limit: int | None = None,
    envelope: Envelopelike | None = None,
) -> DeserializationError | None:
    """Assert decoding ``payload`` through ``strategy``'s ``StrategyCodec``
    raises ``DeserializationError`` and nothing else, within ``seconds`` and
    allocating at most ``memory_limit`` bytes (``default_memory_limit``).

    ``payload`` is a str (text envelope), bytes-like (a blob) or a list of frames,
    or a payload of ``envelope`` if one is given (an ``Envelope`` or its name).
    With ``allow_success`` a payload that decodes is accepted too (fuzzing: a
    mutation may leave a payload valid).  With ``strict`` the strategy's own
    decoder (``deserialize`` / ``from_frames``) is also called directly and must
    raise only ``DeserializationError``: the facade wraps anything else, but a
    combo strategy or a direct caller sees it raw.  Returns the error, or ``None``
    if the payload decoded.
    """
    kit = kit_serializer(strategy)
    chosen = envelope_of(payload) if envelope is None else envelope_named(envelope)
    size = chosen.size(payload)
    limit = default_memory_limit(size) if memory_limit is None else memory_limit
    where = f"{kit.name}'s StrategyCodec ({chosen} envelope)"
    error = _guarded_decode(
        lambda: kit.decode(chosen, payload), where, size, seconds, limit
    )
    if error is None and not allow_success:
        raise AssertionError(
            f"{where} decoded a malformed {size}-byte payload instead of raising"
            " DeserializationError"
        )
    if strict:
        _strict_decode(kit, chosen, payload, size, seconds, limit)
    return error


def _guarded_decode(
    decode: Callable[[], Any],
    where: str,
    size: int,
    seconds: float | None,
    limit: int,
) -> DeserializationError | None:
    error: DeserializationError | None = None
    with traced() as memory:
        try:
            with time_limit(seconds):
                decode()
        except DeserializationError as e:
            error = e
        except DecodeTimeout:
            raise AssertionError(
                f"{where} did not finish decoding a malformed {size}-byte payload"
                f" within {seconds} s"
            ) from None
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            raise _Escaped(
                f"{where} let {type(e).__name__} escape on a malformed {size}-byte"
                f" payload ({e}); only DeserializationError may"
            ) from e
    if memory.peak > limit:
        raise AssertionError(
            f"{where} allocated {memory.peak / MiB:.1f} MiB decoding a malformed"
            f" {size}-byte payload (limit {limit / MiB:.1f} MiB): check declared"
            " lengths against what the input can hold before allocating"
        )
    return error


def _strict_decode(
    kit: KitSerializer,
    envelope: Envelope,
    payload: Any,
    size: int,
    seconds: float | None,
    limit: int,
) -> None:
    strategy = kit.strategy
    if envelope.text:
        if not payload.startswith(strategy.identifier):
            return  # the facade's header check refuses it; no decoder is involved

        def decode() -> Any:
            return strategy.deserialize(payload)

        method = "deserialize"
    else:
        try:
            message = envelope.parse(payload)
        except DeserializationError:
            return  # damaged framing: the envelope's job, checked above
        if message.identifier != strategy.identifier:
            return

        def decode() -> Any:
            return strategy.from_frames(message.body, message.buffers)

        method = "from_frames"
    where = f"{kit.name}.{method}() called directly"
    try:
        _guarded_decode(decode, where, size, seconds, limit)
    except _Escaped as e:
        raise AssertionError(
            f"{e}. A decoder should raise DeserializationError saying what was"
            " wrong (ComputeSerializer and StrategyCodec wrap other exceptions,"
            " but a combo strategy or a direct caller sees them raw); or declare"
            " strict_errors=False"
        ) from e.__cause__


def payload_of(strategy: Strategy, envelope: Envelopelike, value: Any) -> Any:
    """``value``'s payload through ``strategy`` in ``envelope``, as received (frames
    copied to bytes): a valid seed for damaging."""
    kit = kit_serializer(strategy)
    return transported(envelope, kit.encode(envelope, value))
