"""The reference SDK's dill family: identifiers ``00``, ``01``, ``02``, ``03``, ``04``.

Wire-compatible with ``globus_compute_sdk.serialize`` 4.19: each body is a dill (or,
for ``02``, pickle) byte string, base64-encoded in the text envelope.  freight writes
base64 on one line where the reference breaks it every 76 columns; both decoders
accept both.

``00`` and ``01`` take a fast path whose payloads the reference's ``dill.loads``
reads as it would read dill's own: they are written by the C pickler (at dill's
protocol 5, see ``compat_parts``), which writes dill's own reductions for
functions that go by value (lambdas, closures, ``__main__`` code), and by dill only
where the C pickler cannot mean the same (see below); small bodies that cannot need
dill's ``Unpickler`` are read with ``pickle.loads``.  See ``compat_parts`` and
``compat_loads``.  Text payloads of large bodies are base64-encoded from the
pickler's parts and decoded as a stream (``freight.serialize.b64``), so an array's
memory is copied once each way, into the base64 and out of it.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import pickle
import sys
import textwrap
from types import CellType, CodeType, FunctionType
from typing import Any

import dill
import dill._dill as _dill
import dill.source

from freight.plugins.source_strategies import (
    exec_source,
    require_self_contained,
    source_text,
)
from freight.serialize import (
    BytesStrategy,
    MissingGlobal,
    Property,
    SerializationError,
    hookimpl,
)
from freight.serialize.b64 import BinaryReader

# -- the fast compatible path ------------------------------------------------------
#
# The reference decodes 00/01 bodies with dill.loads, which reads any pickle, so the
# only question when encoding is whether a stream means what dill's would.  dill
# (0.3.9, dill/_dill.py) pickles with the pure-Python pickler, ten times slower than
# the C one.  For everything plain pickle accepts it writes the same reductions,
# except for
# * functions that cannot be found by name (lambdas, closures, __main__ code): by
#   value, as dill._dill._create_function(code, globals, name, defaults, closure)
#   with the function's attributes as BUILD state, code as _create_code(...) and
#   cells as _create_cell(...).  _CompatPickler writes exactly those reductions
#   (save_function, save_code and save_cell with dill's default settings), using
#   dill's own helpers to decide and to lay out the code object's fields, so the
#   receiver's dill.loads builds the same function.  The globals are the defining
#   module's __dict__, looked up on the receiver (dill writes a reference to it
#   too); the cases dill handles otherwise -- globals that are no module's dict,
#   empty or self-referencing cells (dill's post-processing), modules in a
#   closure -- go to dill;
# * classes of __main__: by value;
# * dataclasses' sentinels (MISSING, KW_ONLY, field kinds): by reference, where plain
#   pickle would rebuild new, non-identical instances;
# * instances of numpy.ndarray subclasses that keep the ndarray reduction: dill also
#   restores their __dict__ (Pickler.save's "numpy hack"), plain pickle drops it.
# _CompatPickler is the C pickler refusing the last three, so dill takes over.  It
# finds them as objects, not by scanning the output: scanning an 80 MB body for a
# name costs more than pickling it does.


class _DillNeeded(Exception):
    """This object must go through dill to mean what it means under dill."""


_DILL_BY_REFERENCE = frozenset(
    type(getattr(dataclasses, name))
    for name in ("MISSING", "KW_ONLY", "_HAS_DEFAULT_FACTORY", "_FIELD")
    if hasattr(dataclasses, name)
)


class _CompatPickler(pickle.Pickler):
    """The C pickler writing dill's reductions for by-value functions, and refusing
    the few objects dill would pickle differently (see above)."""

    def __init__(self, file: _Parts, protocol: int) -> None:
        super().__init__(file, protocol)
        self._ndarray = getattr(sys.modules.get("numpy"), "ndarray", None)
        # By-value functions whose reduction is being written: meeting one again
        # before pickle has memoized it is a cycle, which dill post-processes.
        self._started: set[int] = set()

    # Called for every object of a non-builtin type, classes and functions included
    # (never for int, str, list, dict ...) that is not memoized yet, before pickle
    # reduces it; the classes and functions an object's reduction names pass
    # through here too.
    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is FunctionType:
            if _probably_importable(obj):
                return NotImplemented
            return self._function(obj)
        if kind is CodeType:
            return _dill._create_code, _code_fields(obj)
        if kind is CellType:
            try:
                return _dill._create_cell, (obj.cell_contents,)
            except ValueError:  # an empty cell
                raise _DillNeeded from None
        if isinstance(obj, type):
            if getattr(obj, "__module__", None) == "__main__":
                raise _DillNeeded
        elif kind in _DILL_BY_REFERENCE:
            raise _DillNeeded
        else:
            ndarray = self._ndarray
            if (
                ndarray is not None
                and kind is not ndarray
                and isinstance(obj, ndarray)
                and kind.__reduce_ex__ is ndarray.__reduce_ex__
                and kind.__reduce__ is ndarray.__reduce__
                and getattr(obj, "__dict__", None)
            ):
                raise _DillNeeded
        return NotImplemented

    def _function(self, fn: FunctionType) -> tuple[Any, ...]:
        """dill's by-value reduction of ``fn`` (``save_function``, recurse off)."""
        if dill.settings["recurse"]:
            raise _DillNeeded  # dill copies the globals the function uses
        if id(fn) in self._started:
            raise _DillNeeded
        self._started.add(id(fn))
        module = fn.__module__
        globs = fn.__globals__
        if (
            module is None
            or getattr(_dill._import_module(module, True), "__dict__", None)
            is not globs
        ):
            raise _DillNeeded  # dill copies such globals and post-processes them
        attributes = {}
        for name in ("__doc__", "__kwdefaults__", "__annotations__"):
            value = getattr(fn, name, None)
            if value is not None:
                attributes[name] = value
        if fn.__qualname__ != fn.__name__:
            attributes["__qualname__"] = fn.__qualname__
        if globs.get("__name__", _ABSENT) != module:
            attributes["__module__"] = module
        state: Any = fn.__dict__
        if type(state) is not dict:
            attributes["__dict__"] = state
            state = None
        if attributes:
            state = state, attributes
        fields = (fn.__code__, _module_dict(module), fn.__name__, fn.__defaults__)
        return _dill._create_function, (*fields, fn.__closure__), state


_ABSENT = object()


class _Call:
    """Pickles as the call ``func(*args)``, which the receiver makes."""

    __slots__ = ("args", "func")

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def _module_dict(name: str) -> _Call:
    """The receiver's namespace of module ``name``: dill writes the global
    ``name.__dict__`` (``__builtin__.__main__`` for ``__main__``), which means the
    same as ``getattr(_import_module(name), "__dict__")``."""
    return _Call(getattr, _Call(_dill._import_module, name), "__dict__")


class _FieldsRecorder:
    """Stands in for dill's pickler to catch the fields ``save_code`` lays out."""

    _trace_depth = None  # dill's trace logger: not tracing

    def __init__(self) -> None:
        self.fields: tuple[Any, ...] = ()

    def save_reduce(self, func: Any, args: tuple[Any, ...], obj: Any = None) -> None:
        self.fields = args


def _code_fields(code: CodeType) -> tuple[Any, ...]:
    """The arguments of ``_create_code`` for ``code``, laid out by dill itself
    (the layout depends on the Python version)."""
    recorder = _FieldsRecorder()
    _dill.save_code(recorder, code)
    return recorder.fields


_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


def _probably_importable(fn: FunctionType) -> bool:
    """Whether ``fn``'s module and qualified name likely find it, so it goes by
    reference as dill sends it.  Pickle checks that the name finds this very
    function and refuses it if not; dill then takes over.  Where this says no,
    so does dill's ``_locate_function`` (``__main__`` or no module; a local or
    lambda ``<...>`` name that no attribute lookup finds)."""
    module = fn.__module__
    return module is not None and module != "__main__" and "<" not in fn.__qualname__


_dill_settings = dill.settings  # (read per payload: a global is one lookup)


class _Parts:
    """A pickler's file that keeps what it is written, uncopied: the pickler's
    own output in pieces, and each large payload (``bytes``, a ``PickleBuffer``,
    a ``memoryview`` of a str's UTF-8) as the object it was handed."""

    __slots__ = ("parts", "write")

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.write = self.parts.append


def compat_parts(obj: Any) -> list[Any]:
    """A pickle of ``obj`` that ``dill.loads`` reads as it would read dill's own,
    as buffers whose concatenation is the pickle.

    The C pickler (``_CompatPickler``) where it means the same: data, importable
    functions and classes (by reference, as dill sends them), and lambdas,
    closures and ``__main__`` functions (by value, with dill's reductions).
    ``dill.dumps`` for what it alone handles: classes of ``__main__``,
    self-referencing or empty closure cells, globals that are no module's
    namespace, modules and other objects plain pickle refuses.
    """
    kind = type(obj)
    # dill's protocol setting, except that its default, 4, becomes 5: protocol 4
    # plus out-of-band buffers (PEP 574), which every Python the reference
    # supports reads; written in-band, an array's memory reaches the file
    # uncopied.
    protocol = _dill_settings["protocol"]
    if protocol == 4:
        protocol = 5
    if kind in _SCALARS:  # names no global: skip _CompatPickler's set-up
        return [pickle.dumps(obj, protocol)]
    if kind is FunctionType and _probably_importable(obj):
        # What _CompatPickler would write, without its set-up (a third of the
        # cost of a module-level function).
        try:
            return [pickle.dumps(obj, protocol)]
        except Exception:
            pass  # not found under its name: as below, dill decides
    file = _Parts()
    try:
        _CompatPickler(file, protocol).dump(obj)
    except Exception:
        # PicklingError, AttributeError ("Can't pickle local object"), TypeError,
        # _DillNeeded: dill either carries it or explains why not.
        return [bytes(dill.dumps(obj))]
    return file.parts


def compat_dumps(obj: Any) -> bytes:
    """``compat_parts(obj)`` joined into one pickle."""
    parts = compat_parts(obj)
    if len(parts) == 1 and type(parts[0]) is bytes:
        return parts[0]
    return b"".join(parts)


# Decoding.  Everything dill's Unpickler does that pickle's does not is keyed on a
# name in the stream (dill 0.3.9, dill/_dill.py):
# * Unpickler.find_class maps ("__builtin__", "__main__") to the receiver's __main__
#   dict and ("__builtin__", "NoneType") to NoneType (stock pickle cannot import a
#   module "__builtin__" at protocol >= 3), and module "dill.dill" to "dill._dill";
# * Unpickler.load re-points an object whose class's __module__ is "__main__" at the
#   receiver's class of that name; that class, or the by-value type that
#   dill._dill._create_type builds, is named in the stream, so "__main__" or "dill"
#   is too;
# * dill's reconstructors (_create_function, _create_code, _create_array,
#   _load_type ...) are globals of module dill._dill.
# A body without the names "dill", "__builtin__" and "__main__" unpickles
# identically with pickle.loads; a false positive (the bytes b"dill" inside some
# data) only costs the other decoder.
# dill.loads costs pickle.loads plus ~2 us (a Python-level find_class and set-up),
# so a body up to _SCAN_LIMIT bytes (break-even with dill.loads near 2 KiB) is
# scanned first, for b"dill" and b"__" (in both other names): two bytes.find
# calls, cheaper than one regex search for the three names from 40 bytes on
# (0.15 against 0.21 us at 38 bytes, 0.35 against 0.79 us at 216).  Data with a
# dunder name in it (rare) pays dill.loads.
_SCAN_LIMIT = 1024


class _Unpickler(dill.Unpickler):  # type: ignore[misc]
    """dill's Unpickler, whose failed name lookups raise ``MissingGlobal`` (with
    the module and name as fields) instead of pickle's ``AttributeError``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except AttributeError as e:
            raise MissingGlobal(
                f"Can't get attribute {name!r} on module {module!r}",
                module=module,
                name=name,
            ) from e


def compat_loads(data: bytes) -> Any:
    """Unpickle a ``00``/``01`` body as ``dill.loads`` does; with ``pickle.loads``
    when the body is small and names nothing only dill's Unpickler handles.

    A name the body refers to that cannot be found raises ``MissingGlobal``
    (``pickle.loads`` only says so in words, so its ``AttributeError`` sends the
    body to dill's Unpickler, which names the module and the name)."""
    if len(data) <= _SCAN_LIMIT and data.find(b"__") < 0 and data.find(b"dill") < 0:
        try:
            return pickle.loads(data)
        except AttributeError:
            pass
    return _Unpickler(io.BytesIO(data)).load()


class _Compat(BytesStrategy):
    """``00`` and ``01``: a pickle that dill reads (``compat_parts``,
    ``compat_loads``), base64 in text payloads."""

    libraries = ("dill",)

    # Functions rather than methods: a Python frame less per payload.
    encode = staticmethod(compat_dumps)
    encode_parts = staticmethod(compat_parts)
    decode = staticmethod(compat_loads)

    def decode_from(self, file: BinaryReader) -> Any:
        return _Unpickler(file).load()


class DillDataBase64(_Compat):
    """Python data as a pickle that dill reads, base64 in text payloads: plain
    pickle where that is equivalent, ``dill.dumps`` where needed
    (``compat_parts``)."""

    identifier = "00\n"
    for_code = False
    name = "dill-data"


class DillCode(_Compat):
    """A callable as dill would send it: by value for ``__main__`` and notebook code,
    lambdas and closures; by reference for importable functions (``compat_parts``
    writes dill's reductions with the C pickler where it can).  Decorated functions
    work; by-value code needs the sender's Python minor version on the receiving
    side."""

    identifier = "01\n"
    for_code = True
    name = "dill-code"


class PickleCode(BytesStrategy):
    """Decode-only: reads very old payloads made with ``pickle.dumps``."""

    identifier = "02\n"
    for_code = True
    name = "pickle-code"
    deprecated = True
    decode_only = True

    def encode(self, obj: Any) -> bytes:
        raise SerializationError(
            "PickleCode is decode-only; pickle serialization of code is no longer"
            " supported"
        )

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)


class DillCodeTextInspect(BytesStrategy):
    """Deprecated: the function's ``inspect.getsource`` text, dill-pickled with its
    name.  Use ``PureSourceTextInspect``."""

    identifier = "03\n"
    for_code = True
    name = "dill-code-text-inspect"
    deprecated = True
    properties = Property.PORTABLE

    def encode(self, obj: Any) -> bytes:
        require_self_contained(obj)
        source = textwrap.dedent(source_text(obj, inspect.getsource))
        return bytes(dill.dumps((obj.__name__, source)))

    def decode(self, data: bytes) -> Any:
        return exec_source(*dill.loads(data))


class DillCodeSource(BytesStrategy):
    """Deprecated: the function's ``dill.source.getsource`` text, dill-pickled with
    its name.  Use ``PureSourceDill``."""

    identifier = "04\n"
    for_code = True
    name = "dill-code-source"
    deprecated = True
    properties = Property.PORTABLE

    def encode(self, obj: Any) -> bytes:
        require_self_contained(obj)
        source = source_text(obj, lambda fn: dill.source.getsource(fn, lstrip=True))
        return bytes(dill.dumps((obj.__name__, source)))

    def decode(self, data: bytes) -> Any:
        return exec_source(*dill.loads(data))


@hookimpl
def freight_strategies() -> list[type[BytesStrategy]]:
    return [DillDataBase64, DillCode, PickleCode, DillCodeTextInspect, DillCodeSource]
