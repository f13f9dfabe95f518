"""The restricted unpickler behind ``PickleData(allowed_globals=...)``.

What it guarantees, on any payload:

* **Only allowlisted globals are loaded** (``GlobalsAllowlist``).  A ``"*"`` entry
  covers plain names only: a dotted name (``Fraction.__init__.__globals__``, which
  protocol 4 would walk attribute by attribute) must be listed explicitly.
* **BUILD never touches a class, a module or a function, and never sets a dunder
  attribute.**  A payload may set the state (``__setstate__``, or ``__dict__`` /
  slot items) of an *instance* of a type it named, with ``str`` keys that are not
  ``__dunder__`` names; a payload that BUILDs anything else is refused.  So is
  APPEND / SETITEM / ADDITEMS on a class, a module or a function.
* **numpy arrays are rebuilt by safe constructors, never from pickled dtype
  state.**  The names numpy's pickles use (``numpy.dtype``, ``numpy.ndarray``,
  ``_reconstruct``, ``_frombuffer``, ``scalar``) are replaced, when a payload calls
  them, by constructors that accept only a plain descriptor: kind ``b i u f c S U``,
  no fields, no sub-array, no object references, a byte order of ``< > | =``, and
  a dtype state (``elsize``, ``alignment``, ``flags``) equal to what numpy itself
  gives that descriptor, with a buffer exactly ``prod(shape) * itemsize`` bytes
  long.  Structured, void, object, datetime and sub-array dtypes are refused, as is
  calling ``numpy.ndarray`` / ``numpy.dtype`` (or a subclass) directly.  Arrays the
  sender's ordinary pickler made (``_frombuffer`` for contiguous arrays, with
  out-of-band buffers; ``_reconstruct`` + BUILD otherwise) decode as before.
  numpy names *other* than these that an allowlist admits are called as they are.
* **The builtins of ``SAFE_DATA_GLOBALS`` cannot be asked for much more than the
  payload holds**: a ``range`` of more items than the payload has bytes (at least
  65,536) may not be passed to anything, ``bytes`` / ``bytearray`` may not be
  asked for more bytes than that, ``int`` / ``Fraction`` refuse what would
  expand an exponent (``Fraction("1e999999999")``, ``int(Decimal(...))``), and
  ``Decimal`` an ``int`` of more than about 4,000 digits (its conversion is far
  above linear).  The same checks hold for ``cls.__new__(cls, ...)`` (NEWOBJ).
  On the C unpickler ``Decimal`` is a stand-in that checks its arguments.

How, and what it costs.  CPython's C unpickler has no hook for BUILD, so a load
first runs on the C unpickler (``pickle.Unpickler``) whose ``find_class`` hands out
only what BUILD cannot act on:

* immutable types (``builtins``, ``datetime``, ``decimal``,
  ``collections.deque`` / ``defaultdict`` ...) whose metaclass is ``type``, whose
  instances have no ``__dict__`` and that are not numpy's.  BUILD on such a class
  fails (its ``__dict__`` is read-only, ``setattr`` is refused), and their
  instances can neither change class nor take a dunder attribute;
* for ``numpy.dtype``, ``_frombuffer`` and ``scalar`` (what contiguous arrays and
  numpy scalars pickle as), stateless stand-ins calling the validating
  constructors; ``numpy.dtype`` returns a spec whose ``__setstate__`` validates
  the BUILD.  A spec or stand-in that is referenced from the result (a dtype, or
  the class, as a value) cannot be swapped there for the real object: reference
  counts, read once the C unpickler is gone, tell, and the payload is decoded
  again as below.

The first global outside that set (a Python class such as ``Fraction``,
``Counter`` or ``UUID``; ``OrderedDict``; ``range``, ``bytes``, ``bytearray`` and
``int`` as globals; a function; ``numpy.ndarray`` /
``_reconstruct``, which non-contiguous arrays pickle as) abandons the C load, and
the payload is decoded again from the start by a subclass of the pure-Python
``pickle._Unpickler`` that checks every BUILD, call and container update.

Measured per decode with ``timeit`` (before -> after, microseconds; one process,
2-core machine shared with other jobs, so +-30%): the benchmark's tiny int 1.2 ->
1.4, small dict 2.7 -> 2.8, 1k ints 34 -> 37, 10k dicts 4,500 -> 4,200, 1 MB str
600 -> 600 and 10 MB bytes 700 -> 730 stay on the C path (unchanged); a
contiguous float64 array, 1k or 80 MB, 9.5 -> 24-30 (C path with stand-ins: a
fixed cost, not per byte); on the guarded path a strided array 15 -> 112, 100
``Fraction`` s 118 -> 600, a small ``OrderedDict`` 3 -> 27.  A scan of every
opcode (``pickletools.genops``) would have cost the 10k-dict list ~40 ms.

What it does not bound: constructors an allowlist adds beyond
``SAFE_DATA_GLOBALS``; CPython's memo table, which the C unpickler sizes by an
index read from the payload (``LONG_BINPUT``); and the time to hash (or compare,
or ``str``) a value whose parts the memo shares: a tuple ``(t, t)`` nested 40
deep is 250 bytes and 2**40 steps to hash as a set item or dict key (24 levels
took 0.2 s, each level doubles it).  So restricted pickle is not
``SAFE_FOR_UNTRUSTED``, and the facade treats it as "restricted" (see
``PickleData``).
"""

from __future__ import annotations

import functools
import importlib
import io
import math
import pickle
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from freight.serialize import DeserializationError

__all__ = ["SAFE_DATA_GLOBALS", "GlobalsAllowlist", "restricted_loads"]

_IMMUTABLETYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE (CPython 3.10+)


class GlobalsAllowlist:
    """The modules and names a restricted unpickler may load (``find_class``).

    Every class or function a pickle reaches -- to construct an object or to call
    it -- is looked up by ``find_class``, so refusing names there is what keeps a
    payload from calling ``os.system``.  ``{module: "*"}`` admits every plain
    (undotted) name of ``module``; a dotted name must be listed.  It restricts
    *what can run*, not *how much memory* a payload may ask a permitted
    constructor for.
    """

    def __init__(self, allowed: Mapping[str, Iterable[str] | str]) -> None:
        self._modules: dict[str, frozenset[str] | None] = {}
        for module, names in allowed.items():
            if names == "*":
                self._modules[module] = None
            elif isinstance(names, str):
                raise TypeError(
                    f"allowed names for {module!r} must be a collection of names or"
                    f' "*", got the string {names!r}'
                )
            else:
                self._modules[module] = frozenset(names)
        # (module, name) -> whether the C unpickler may hand it out (see _inert).
        self._inert: dict[tuple[str, str], bool] = {}

    def allows(self, module: str, name: str) -> bool:
        """Whether ``module.name`` may be loaded."""
        if module not in self._modules:
            return False
        names = self._modules[module]
        if names is None:
            return "." not in name
        return name in names

    def __repr__(self) -> str:
        return f"GlobalsAllowlist({sorted(self._modules)})"


#: Plain data types and the functions numpy's pickles need to rebuild arrays: a
#: starting point for ``PickleData(allowed_globals=...)``.  Nothing here runs code
#: beyond constructing these types; numpy's names are replaced by validating
#: constructors (see the module docstring).
SAFE_DATA_GLOBALS: dict[str, Iterable[str] | str] = {
    "builtins": {
        "set",
        "frozenset",
        "complex",
        "bytearray",
        "bytes",
        "slice",
        "range",
        "list",
        "dict",
        "tuple",
        "int",
        "float",
        "str",
        "bool",
    },
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID"},
    "collections": {"OrderedDict", "deque", "defaultdict", "Counter"},
    "numpy": {"dtype", "ndarray"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
}


def restricted_loads(
    data: bytes | bytearray | memoryview,
    allowed: GlobalsAllowlist,
    buffers: Iterable[Any] = (),
) -> Any:
    """The object the pickle ``data`` holds, loading only ``allowed`` globals.

    Raises ``DeserializationError`` for a refused global, BUILD or numpy
    descriptor; other malformed input raises what the unpickler raises (the
    facade wraps it).
    """
    if type(buffers) is not list and type(buffers) is not tuple:
        buffers = list(buffers)
    unpickler = _FastUnpickler(io.BytesIO(data), allowed, buffers)
    try:
        result = unpickler.load()
    except _NeedsGuard:
        pass
    else:
        if unpickler.numpy is None:
            return result
        seen = unpickler.numpy
        _created.specs = None
        del unpickler  # its memo and stack hold references too
        if _numpy_stayed_inside(seen):
            return result
        del result
    budget = max(len(data), _MIN_BUDGET)
    return _GuardedUnpickler(io.BytesIO(data), allowed, buffers, budget).load()


class _NeedsGuard(Exception):
    """The C unpickler met a global it cannot hand out safely: decode again with
    the guarded unpickler."""


def _refuse_global(module: str, name: str, allowed: GlobalsAllowlist) -> None:
    raise DeserializationError(
        f"PickleData: {module}.{name} is not in the unpickler's allowed"
        f" globals ({allowed!r}); the payload was not decoded"
    )


class _FastUnpickler(pickle.Unpickler):
    """The C unpickler, handing out only globals on which BUILD cannot act."""

    def __init__(
        self, file: io.BytesIO, allowed: GlobalsAllowlist, buffers: Iterable[Any]
    ) -> None:
        super().__init__(file, buffers=buffers)
        self._allowed = allowed
        #: What the load handed out for numpy names, if any (see below).
        self.numpy: _NumpySeen | None = None

    def find_class(self, module: str, name: str) -> Any:
        allowed = self._allowed
        if not allowed.allows(module, name):
            _refuse_global(module, name, allowed)
        obj = super().find_class(module, name)
        key = (module, name)
        inert = allowed._inert.get(key)
        if inert is None:
            inert = allowed._inert[key] = _inert(obj)
        if inert:
            return obj
        if module.startswith("numpy") or module in ("decimal", "_decimal"):
            stand_ins = (
                _c_numpy_stand_ins()
                if module.startswith("numpy")
                else _c_decimal_stand_ins()
            )
            stand_in = stand_ins.get(id(obj))
            if stand_in is not None:
                seen = self.numpy
                if seen is None:
                    seen = self.numpy = _NumpySeen()
                    # The dtype stand-in records the specs it makes here.
                    _created.specs = seen.specs
                seen.stand_ins.setdefault(stand_in, sys.getrefcount(stand_in))
                return stand_in
        raise _NeedsGuard


# -- numpy on the C unpickler ----------------------------------------------------
#
# Contiguous arrays pickle as _frombuffer(buffer, dtype(code) + BUILD, shape,
# order) and scalars as scalar(dtype(...) + BUILD, bytes).  The C unpickler gets
# stand-ins for those three names: ``numpy.dtype`` makes a ``_DtypeSpec`` whose
# ``__setstate__`` validates the BUILD, and the other two accept only a BUILT
# spec.  A spec or stand-in that ends up *in the result* (a dtype or the class
# itself as a value) cannot be swapped for the real object there: the payload is
# then decoded again by the guarded unpickler, which swaps it on BUILD.  Whether
# one did is read from reference counts once the C unpickler is gone.


class _NumpySeen:
    __slots__ = ("specs", "stand_ins")

    def __init__(self) -> None:
        # stand-in -> its reference count before this load handed it out
        self.stand_ins: dict[Any, int] = {}
        self.specs: list[_DtypeSpec] = []


_created = threading.local()


def _numpy_stayed_inside(seen: _NumpySeen) -> bool:
    """Whether no stand-in or dtype spec of a finished C load is referenced from
    its result (``DeserializationError`` if a dtype spec was never BUILT)."""
    specs = seen.specs
    for i in range(len(specs)):
        if specs[i].built is None:
            raise DeserializationError(
                "PickleData: a numpy dtype was made without its state (no BUILD);"
                " the payload was not decoded"
            )
        if sys.getrefcount(specs[i]) > 2:  # the list and the call's argument
            return False
    for stand_in, before in seen.stand_ins.items():
        # ``before`` counted find_class's local and the call's argument; now
        # the dict's key, this loop's variable and the argument.
        if sys.getrefcount(stand_in) > before + 1:
            return False
    return True


class _CDtype:
    """``numpy.dtype`` for the C unpickler."""

    __slots__ = ()

    def __call__(self, code: Any, align: Any = False, copy: Any = False) -> Any:
        spec = _safe_dtype(code, align, copy)
        _created.specs.append(spec)  # set when this stand-in was handed out
        return spec


class _CFrombuffer:
    """numpy's ``_frombuffer`` for the C unpickler."""

    __slots__ = ()

    def __call__(self, buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
        return _safe_frombuffer(buf, dtype, shape, order)


class _CScalar:
    """numpy's ``scalar`` for the C unpickler."""

    __slots__ = ()

    def __call__(self, dtype: Any, data: Any = None) -> Any:
        return _safe_scalar(dtype, data)


class _CDecimal:
    """``decimal.Decimal`` for the C unpickler: refuses a huge ``int`` (its
    conversion takes time far more than linear in its size)."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Any:
        import decimal

        _check_amplification(decimal.Decimal, args, None, _MIN_BUDGET)
        return decimal.Decimal(*args)


@functools.cache
def _c_decimal_stand_ins() -> dict[int, Any]:
    import decimal

    return {id(decimal.Decimal): _CDecimal()}


@functools.cache
def _c_numpy_stand_ins() -> dict[int, Any]:
    import numpy as np

    multiarray, numeric = _numpy_core("multiarray"), _numpy_core("numeric")
    return {
        id(np.dtype): _CDtype(),
        id(numeric._frombuffer): _CFrombuffer(),
        id(multiarray.scalar): _CScalar(),
    }


def _inert(obj: Any) -> bool:
    """Whether BUILD, APPEND, SETITEM and ADDITEMS on ``obj`` (a class) and any
    state set on its instances leave the process unchanged, set no dunder
    attribute and leave numpy untouched: an immutable type with the plain
    metaclass, whose instances have no ``__dict__``, not numpy's."""
    return (
        type(obj) is type
        and obj not in _AMPLIFIERS
        and not _is_decimal(obj)
        and bool(obj.__flags__ & _IMMUTABLETYPE)
        and obj.__dictoffset__ == 0
        and not (obj.__module__ or "").startswith("numpy")
        and _only_c_setstate(obj)
    )


def _only_c_setstate(cls: type) -> bool:
    """Whether every ``__setstate__`` in ``cls``'s MRO is a C method descriptor,
    which checks its ``self`` (so BUILD on the class itself fails)."""
    for klass in cls.__mro__:
        setstate = vars(klass).get("__setstate__")
        if setstate is not None and not isinstance(setstate, _METHOD_DESCRIPTORS):
            return False
    return True


_METHOD_DESCRIPTORS = (types.MethodDescriptorType, types.WrapperDescriptorType)

# What BUILD / APPEND / SETITEM may never act on.
_NOT_INSTANCES = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    functools.partial,
)

_DUNDER = re.compile(r"__.*__\Z", re.S)


# The pure-Python unpickler; typeshed does not describe its internals.
_PyUnpickler: Any = pickle._Unpickler


class _GuardedUnpickler(_PyUnpickler):  # type: ignore[misc]
    """The pure-Python unpickler with every BUILD, call and container update
    checked, and numpy's constructors replaced by validating ones."""

    dispatch: ClassVar[dict[int, Callable[..., None]]] = dict(_PyUnpickler.dispatch)

    def __init__(
        self,
        file: io.BytesIO,
        allowed: GlobalsAllowlist,
        buffers: Iterable[Any],
        budget: int = 0,
    ) -> None:
        super().__init__(file, buffers=buffers)
        self._allowed = allowed
        self._budget = budget or _MIN_BUDGET
        # Types the payload named (find_class): BUILD may set their instances'
        # state.
        self._named: set[type] = set()
        self._numpy: dict[int, Callable[..., Any]] | None = None
        self._pending = 0  # numpy placeholders not yet BUILT

    def load(self) -> Any:
        result = super().load()
        if self._pending:
            raise DeserializationError(
                "PickleData: a numpy dtype or array was made without its state"
                " (no BUILD); the payload was not decoded"
            )
        return result

    def find_class(self, module: str, name: str) -> Any:
        allowed = self._allowed
        if not allowed.allows(module, name):
            _refuse_global(module, name, allowed)
        obj = super().find_class(module, name)
        if isinstance(obj, type):
            self._named.add(obj)
        if self._numpy is None and module.split(".", 1)[0] == "numpy":
            self._numpy = _numpy_guards()
        return obj

    # -- calls -------------------------------------------------------------------

    def _guarded_call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        guards = self._numpy
        if guards is not None:
            guard = guards.get(id(func))
            if guard is None and _is_numpy_type(func):
                guard = _refuse_numpy_type(func)
            if guard is not None:
                if kwargs:
                    raise DeserializationError(
                        f"PickleData: {_name(func)} takes no keyword arguments here"
                    )
                made = guard(*args)
                if type(made) in _PLACEHOLDERS:
                    self._pending += 1
                return made
        _check_amplification(func, args, kwargs, self._budget)
        return func(*args, **kwargs) if kwargs else func(*args)

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        stack[-1] = self._guarded_call(stack[-1], args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_new(cls)
        _check_amplification(cls, args, None, self._budget)
        self.append(cls.__new__(cls, *args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_new(cls)
        # ``cls.__new__`` of a builtin does what calling ``cls`` does
        # (``tuple.__new__(tuple, range(10**10))``): the same limits apply.
        _check_amplification(cls, args, kwargs, self._budget)
        self.append(cls.__new__(cls, *args, **kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: Any) -> None:
        # INST and OBJ (protocols 0 and 1).
        self._check_new(klass)
        self.append(self._guarded_call(klass, tuple(args)))

    def _check_new(self, cls: Any) -> None:
        if self._numpy is not None and (id(cls) in self._numpy or _is_numpy_type(cls)):
            raise DeserializationError(
                f"PickleData: {_name(cls)} may not be constructed directly; numpy"
                " arrays decode only through numpy's own pickle constructors"
            )

    # -- state and container updates -----------------------------------------------

    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        kind = type(inst)
        if kind in _PLACEHOLDERS:
            stack[-1] = inst.build(state)
            self._pending -= 1
            return
        if isinstance(inst, _NOT_INSTANCES) or kind not in self._named:
            raise DeserializationError(
                f"PickleData: BUILD may set the state of an instance of a type the"
                f" payload named, not of {_describe(inst)}; the payload was not"
                " decoded"
            )
        if self._numpy is not None and kind.__module__.startswith("numpy"):
            raise DeserializationError(
                f"PickleData: BUILD on a numpy {kind.__name__} is refused (numpy"
                " state is rebuilt only through its pickle constructors)"
            )
        if isinstance(state, tuple) and len(state) == 2:
            _check_keys(state[0])
            _check_keys(state[1])
        else:
            _check_keys(state)
        stack.append(state)
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def load_append(self) -> None:
        _check_target(self.stack[-2])
        super().load_append()

    dispatch[pickle.APPEND[0]] = load_append

    def load_setitem(self) -> None:
        _check_target(self.stack[-3])
        super().load_setitem()

    dispatch[pickle.SETITEM[0]] = load_setitem

    # APPENDS, SETITEMS, ADDITEMS: the items since the last MARK are self.stack,
    # and their target is the top of the stack the MARK saved.
    def load_appends(self) -> None:
        _check_target(self.metastack[-1][-1])
        super().load_appends()

    dispatch[pickle.APPENDS[0]] = load_appends

    def load_setitems(self) -> None:
        _check_target(self.metastack[-1][-1])
        super().load_setitems()

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self) -> None:
        _check_target(self.metastack[-1][-1])
        super().load_additems()

    dispatch[pickle.ADDITEMS[0]] = load_additems

    # -- memo reads: a BUILT placeholder is the object it became -------------------

    def load_get(self) -> None:
        super().load_get()
        self._unwrap()

    def load_binget(self) -> None:
        super().load_binget()
        self._unwrap()

    def load_long_binget(self) -> None:
        super().load_long_binget()
        self._unwrap()

    def _unwrap(self) -> None:
        top = self.stack[-1]
        if type(top) in _PLACEHOLDERS and top.built is not None:
            self.stack[-1] = top.built

    dispatch[pickle.GET[0]] = load_get
    dispatch[pickle.BINGET[0]] = load_binget
    dispatch[pickle.LONG_BINGET[0]] = load_long_binget


# -- what an allowed constructor may be asked for ---------------------------------

#: Builtins whose arguments can ask for far more memory or time than the payload
#: holds (``bytearray(10**12)``, ``list(range(10**10))``,
#: ``int(Decimal("1e999999999"))``): the C unpickler never hands them out, so
#: their calls are checked below.
_AMPLIFIERS = frozenset({range, bytes, bytearray, int})
#: ``Decimal(n)`` takes time far above linear in the size of ``n`` (100 KB: 1.7 s);
#: honest pickles pass a ``str``.  Larger ints are refused (about 4,000 digits,
#: near CPython's ``int`` <-> ``str`` limit).
_DECIMAL_INT_BITS = 13_300
#: Payloads smaller than this may still ask for this many items or bytes.
_MIN_BUDGET = 1 << 16


def _check_amplification(func: Any, args: Any, kwargs: Any, budget: int) -> None:
    """Refuse a call that would build something far larger than the payload:
    a ``range`` of more than ``budget`` items passed to anything, an int size
    of more than ``budget`` to ``bytes`` / ``bytearray``, and exponents that
    expand (a ``str`` with one, or a ``Decimal``) to ``int`` or ``Fraction``."""
    values = list(args) + (list(kwargs.values()) if kwargs else [])
    for value in values:
        kind = type(value)
        if kind is range:
            try:
                too_big = len(value) > budget
            except OverflowError:
                too_big = True
            if too_big and func is not range:
                _refuse_amplification(func, f"a range of more than {budget} items")
        elif kind is int and func in (bytes, bytearray) and value > budget:
            _refuse_amplification(func, f"{value} bytes")
        elif (
            kind is int and value.bit_length() > _DECIMAL_INT_BITS and _is_decimal(func)
        ):
            _refuse_amplification(
                func, f"an int of {value.bit_length()} bits (more than 4,000 digits)"
            )
        elif func is int or _is_fraction(func):
            if kind.__name__ == "Decimal" or (
                kind is str and ("e" in value or "E" in value)
            ):
                _refuse_amplification(func, f"{value!r:.40} (an exponent to expand)")


def _is_decimal(func: Any) -> bool:
    decimal = sys.modules.get("decimal")
    return decimal is not None and func is getattr(decimal, "Decimal", None)


def _is_fraction(func: Any) -> bool:
    fractions = sys.modules.get("fractions")
    return fractions is not None and func is getattr(fractions, "Fraction", None)


def _refuse_amplification(func: Any, what: str) -> None:
    raise DeserializationError(
        f"PickleData: {_name(func)} may not be asked for {what} by a payload; the"
        " payload was not decoded"
    )


def _check_target(target: Any) -> None:
    if isinstance(target, _NOT_INSTANCES):
        raise DeserializationError(
            f"PickleData: the payload tried to add items to {_describe(target)};"
            " the payload was not decoded"
        )


def _check_keys(state: Any) -> None:
    """A state dict may name only plain attributes: ``str`` keys, no dunders."""
    if isinstance(state, dict):
        for key in state:
            if type(key) is not str or _DUNDER.match(key):
                raise DeserializationError(
                    f"PickleData: BUILD may not set the attribute {key!r}; the"
                    " payload was not decoded"
                )


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {_name(obj)}"
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"the function {_name(obj)}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


# -- numpy ---------------------------------------------------------------------------

_PLAIN_KINDS = frozenset("biufcSU")
_DTYPE_CODE = re.compile(r"[<>|=]?[biufcSU][0-9]{0,5}\Z")
_BYTEORDERS = frozenset("<>|=")
_NATIVE = "<" if sys.byteorder == "little" else ">"


def _np() -> Any:
    return sys.modules["numpy"]


def _is_numpy_type(obj: Any) -> bool:
    np = _np()
    return isinstance(obj, type) and issubclass(obj, np.ndarray | np.dtype)


def _refuse_numpy_type(cls: type) -> Callable[..., Any]:
    def refuse(*args: Any) -> Any:
        raise DeserializationError(
            f"PickleData: {_name(cls)} may not be called directly; numpy arrays"
            " decode only through numpy's own pickle constructors"
        )

    return refuse


def _plain_dtype(dtype: Any, what: str) -> Any:
    """``dtype`` if it is a real, plain numpy dtype; ``DeserializationError``
    otherwise."""
    np = _np()
    if (type(dtype) is _DtypeSpec and dtype.built is not None) or isinstance(
        dtype, np.dtype
    ):
        real: Any = dtype.built if type(dtype) is _DtypeSpec else dtype
        if (
            real.kind in _PLAIN_KINDS
            and real.fields is None
            and real.subdtype is None
            and not real.hasobject
        ):
            return real
    raise DeserializationError(
        f"PickleData: {what} needs a plain numpy dtype (kind b, i, u, f, c, S or"
        f" U, no fields), got {_describe(dtype)}; the payload was not decoded"
    )


def _shape(shape: Any, what: str) -> tuple[int, ...]:
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise DeserializationError(
            f"PickleData: {what} needs a shape of non-negative ints, got {shape!r:.100}"
        )
    return shape


def _check_size(nbytes: int, shape: tuple[int, ...], dtype: Any, what: str) -> None:
    want = math.prod(shape) * dtype.itemsize
    if nbytes != want:
        raise DeserializationError(
            f"PickleData: {what} of shape {shape} and dtype {dtype.str} needs"
            f" {want} bytes of data, got {nbytes}"
        )


class _DtypeSpec:
    """What ``numpy.dtype(code, align, copy)`` returns here: a validated plain
    dtype waiting for its BUILD, which must restate what numpy itself gives the
    code (byte order aside)."""

    __slots__ = ("base", "built")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, base: Any) -> None:
        self.base = base
        self.built: Any = None

    def build(self, state: Any) -> Any:
        base = self.base
        ok = (
            self.built is None
            and type(state) is tuple
            and len(state) in (8, 9)
            and state[0] in (3, 4)
            and type(state[1]) is str
            and state[1] in _BYTEORDERS
            and state[2] is None
            and state[3] is None
            and state[4] is None
            and type(state[5]) is int
            and state[5] in (-1, base.itemsize)
            and type(state[6]) is int
            and state[6] in (-1, base.alignment)
            and type(state[7]) is int
            and state[7] == base.flags
            and (len(state) == 8 or state[8] is None or state[8] == {})
        )
        if not ok:
            raise DeserializationError(
                f"PickleData: numpy dtype state {state!r:.200} for {base.str} is"
                " refused: only a plain descriptor's own state (byte order aside)"
                " is accepted; the payload was not decoded"
            )
        order = _NATIVE if state[1] == "=" else state[1]
        if order == "|" or base.byteorder == "|":
            dtype = base
        elif order == _NATIVE and base.isnative:
            dtype = base  # numpy's canonical instance
        else:
            dtype = base.newbyteorder(order)
        self.built = dtype
        return dtype

    def __setstate__(self, state: Any) -> None:
        # BUILD on the C unpickler (the guarded one calls build() itself).
        self.build(state)


class _PendingArray:
    """What ``_reconstruct(ndarray, ...)`` returns here: an array waiting for its
    BUILD, whose state is validated before numpy sees it."""

    __slots__ = ("built",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.built: Any = None

    def build(self, state: Any) -> Any:
        if self.built is not None or type(state) is not tuple or len(state) != 5:
            raise DeserializationError(
                f"PickleData: numpy array state {state!r:.200} is refused: expected"
                " (1, shape, dtype, is_fortran, data)"
            )
        version, shape, dtype, fortran, data = state
        if version != 1 or type(version) is not int or type(fortran) is not bool:
            raise DeserializationError(
                f"PickleData: numpy array state version {version!r} /"
                f" is_fortran {fortran!r} is refused"
            )
        shape = _shape(shape, "a numpy array")
        dtype = _plain_dtype(dtype, "a numpy array")
        if type(data) not in (bytes, bytearray):
            raise DeserializationError(
                "PickleData: a numpy array's data must be bytes, got"
                f" {type(data).__name__}"
            )
        _check_size(len(data), shape, dtype, "a numpy array")
        np = _np()
        array = np.ndarray.__new__(np.ndarray, (0,), np.uint8)
        array.__setstate__((1, shape, dtype, fortran, data))
        self.built = array
        return array


_PLACEHOLDERS = (_DtypeSpec, _PendingArray)


def _safe_dtype(code: Any, align: Any = False, copy: Any = False) -> _DtypeSpec:
    if (
        type(code) is not str
        or not _DTYPE_CODE.match(code)
        or type(align) is not bool
        or type(copy) is not bool
    ):
        raise DeserializationError(
            f"PickleData: numpy dtype {code!r:.100} is refused: only plain"
            " descriptors (kind b, i, u, f, c, S or U) decode; the payload was not"
            " decoded"
        )
    return _DtypeSpec(_plain_dtype(_np().dtype(code), "numpy.dtype"))


def _safe_reconstruct(subtype: Any, shape: Any, typecode: Any) -> _PendingArray:
    if subtype is not _np().ndarray:
        raise DeserializationError(
            f"PickleData: _reconstruct of {_describe(subtype)} is refused; only"
            " numpy.ndarray itself decodes"
        )
    return _PendingArray()


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
    dtype = _plain_dtype(dtype, "_frombuffer")
    shape = _shape(shape, "_frombuffer")
    if order not in ("C", "F"):
        raise DeserializationError(f"PickleData: _frombuffer order {order!r:.20}")
    try:
        nbytes = memoryview(buf).nbytes
    except TypeError:
        raise DeserializationError(
            f"PickleData: _frombuffer needs a buffer, got {type(buf).__name__}"
        ) from None
    _check_size(nbytes, shape, dtype, "_frombuffer")
    np = _np()
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _plain_dtype(dtype, "numpy scalar")
    if type(data) is not bytes:
        raise DeserializationError(
            f"PickleData: a numpy scalar's data must be bytes, got"
            f" {type(data).__name__}"
        )
    _check_size(len(data), (), dtype, "a numpy scalar")
    return _numpy_scalar()(dtype, data)


def _numpy_core(name: str) -> Any:
    """numpy's ``_core.<name>`` module (``core.<name>`` before numpy 2)."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:  # numpy 1.x
        return importlib.import_module(f"numpy.core.{name}")


@functools.cache
def _numpy_scalar() -> Callable[..., Any]:
    return _numpy_core("multiarray").scalar  # type: ignore[no-any-return]


@functools.cache
def _numpy_guards() -> dict[int, Callable[..., Any]]:
    """The validating constructors that replace numpy's pickle names, by the id
    of the numpy object they replace (kept alive by numpy's modules)."""
    import numpy as np

    multiarray, numeric = _numpy_core("multiarray"), _numpy_core("numeric")
    return {
        id(np.dtype): _safe_dtype,
        id(multiarray._reconstruct): _safe_reconstruct,
        id(numeric._frombuffer): _safe_frombuffer,
        id(multiarray.scalar): _safe_scalar,
    }
