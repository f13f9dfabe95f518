"""Exceptions as structured data, so a remote failure crosses the wire without pickle.

``exception_to_dict`` turns an exception, with its cause and context chain, notes,
exception-group members and traceback text, into a JSON-able dict.
``exception_from_dict`` turns such a dict back into an exception: the original type
when it may be rebuilt safely, otherwise a ``RemoteExecutionError`` that carries
every field.  Nothing here unpickles, evaluates text or calls a constructor chosen
by the payload outside an allowlist.

The schema, ``"freight.exception/1"``
-------------------------------------

A payload is one *exception object*; the top-level one also has ``"format"``.
Values are only strings, integers, booleans, null, arrays and objects (no floats),
so any JSON library reads and writes them::

    {
      "format": "freight.exception/1",   # top level only; the schema version
      "type": "KeyError",                # type(exc).__name__
      "module": "builtins",              # type(exc).__module__
      "qualname": "KeyError",            # type(exc).__qualname__
      "message": "'k'",                  # str(exc)
      "args": ["k"],                     # constructor arguments, or null (below)
      "args_repr": "('k',)",             # repr(exc.args), for people
      "traceback": "Traceback (most recent call last):\\n  File ...",  # or null
      "cause": {...} | null,             # __cause__, an exception object
      "context": {...} | null,           # __context__, an exception object
      "context_is_cause": false,         # true: __context__ is __cause__ (then
                                         #   "context" is null and not repeated)
      "suppress_context": false,         # __suppress_context__
      "notes": ["..."],                  # __notes__ (add_note)
      "exceptions": [{...}, ...] | null, # an exception group's members, else null
      "fields": {"name": "k"},           # the failure as data (below), or absent
      "truncated": false                 # true if this object lost anything to a limit
    }

* ``type``, ``module``, ``qualname`` and ``message`` are required; every other key
  may be left out and then means null, ``false`` or ``[]``.  Decoders ignore keys
  they do not know, so later producers may add optional keys under the same version;
  a change old decoders cannot ignore gets a new ``format``.
* ``args`` is ``exc.args`` when every element is a string, a 64-bit integer, a
  boolean or null, else null.  Two exceptions: an ``OSError`` with a ``filename``
  lists ``[errno, strerror, filename]`` (and ``None, filename2``), the arguments its
  constructor takes, because its ``args`` leave the file names out; an exception
  group lists only its message (the members are in ``exceptions``).
* ``fields`` holds the attributes that describe the failure as data, so a reader
  acts on them instead of parsing ``message``: those a ``SerdeError`` subclass
  names in ``error_fields`` (``freight.serialize.errors``), and ``name`` (and
  ``path``) of ``NameError``, ``ImportError`` and ``AttributeError``.  Each value
  is a scalar as in ``args``, or an array of strings; at most ``max_args`` of them.
* ``context_is_cause`` stands for the common ``raise new from err`` inside
  ``except ... as err``, where both links are one exception: it is written once, so
  a long chain of these stays linear in size instead of doubling at every link.
* ``traceback`` is the exception's own frames and its exception line(s), as
  ``traceback.format_tb`` + ``format_exception_only`` write them (no chain and no
  group members: those are their own objects), or null if it was never raised.
* ``message``, ``args_repr`` and ``notes`` carry the output of user code; if
  ``str()`` or ``repr()`` raised, a ``<unprintable ...>`` placeholder takes its
  place.

Reading
-------

``read_exception_record`` is the one reader of the format: it validates a payload
and returns an ``ExceptionRecord``, the typed, immutable view of it.
``exception_from_dict`` builds exceptions from that record; other readers
(``freight.serialize.isolation``) use the record itself.

Limits (``ExceptionLimits``)
----------------------------

The encoder keeps payloads bounded and the decoder refuses payloads beyond the same
bounds with a ``DeserializationError`` naming the limit.  Defaults: a chain or group
at most ``max_depth=32`` objects deep and ``max_exceptions=200`` objects in all
(cycles in ``__cause__``/``__context__`` are cut where they close); ``max_args=16``;
names up to 512 characters, messages (and each string argument, and ``args_repr``)
16 KiB, notes 32 of 4 KiB each, tracebacks 64 KiB; and about 1 MiB of text per
payload in all (names are never cut to meet that one).  Longer text is cut, keeping
the start (of a traceback: the start and the end, where the failing line is), with
a ``...[N characters, truncated]...`` marker (N is the original length), and
the object gets ``"truncated": true``; so does an object whose cause, context or
members were dropped.

Rebuilding
----------

A type is rebuilt only if its ``module`` is in ``allowed_modules`` (exact names; the
default is ``DEFAULT_ALLOWED_MODULES``), ``qualname`` names a class in that module by
plain dictionary lookups (no ``getattr``, nothing outside the module), the class is
defined there (no aliases) and is a subclass of ``Exception``.  ``BaseException``
subclasses that are not ``Exception`` s (``SystemExit``, ``KeyboardInterrupt``,
``GeneratorExit``, ``asyncio.CancelledError``) are never rebuilt: raising one that a
peer sent would exit or cancel the receiver.  The class is called with ``args``
(scalars only) or else with ``message`` alone, and the result is kept only if it is
of exactly that class and its ``str()`` equals ``message``.  It then gets
``__cause__``, ``__context__``, ``__suppress_context__``, ``__notes__``, the
``name`` (and ``path``) fields of a ``NameError``, ``ImportError`` or
``AttributeError`` (string or null only) and, if the payload has a traceback, a
``remote_traceback`` attribute holding it (read it with ``getattr(exc,
"remote_traceback", None)``).  Any failure along the way gives a
``RemoteExecutionError`` instead, whose ``rebuild_error`` says why.  Either way the
exception gets, by default, a last note with the remote frames (``Remote traceback
(most recent call last): ...``), so an uncaught one shows where it failed remotely.
"""

from __future__ import annotations

import importlib
import traceback as _traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Generic, TypeAlias, TypeVar

from freight.serialize.errors import DeserializationError

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "DEFAULT_EXCEPTION_LIMITS",
    "FORMAT",
    "REMOTE_TRACEBACK_NOTE",
    "ExceptionLimits",
    "ExceptionRecord",
    "RemoteExecutionError",
    "exception_from_dict",
    "exception_to_dict",
    "read_exception_record",
]

#: The schema version this module writes and reads (the payload's ``"format"``).
FORMAT: Final = "freight.exception/1"

#: Modules whose exception classes ``exception_from_dict`` rebuilds by default.
#:
#: Each is part of the standard library, and its exception classes are plain data:
#: their constructors store their arguments and nothing else (no files, sockets,
#: imports or callbacks), so calling one with scalar arguments from a peer is safe.
#: They are the ones user code commonly lets escape.  Left out on purpose:
#: ``json.decoder`` (``JSONDecodeError`` needs the document and position, which its
#: ``args`` do not carry, so it could never be rebuilt), ``urllib.error`` and
#: ``http.client`` (constructors that wrap file objects or responses), and anything
#: outside the standard library.  Names are ``type(exc).__module__`` values, which is
#: why some are private (``_queue`` holds ``queue.Empty``).
DEFAULT_ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "builtins",  # ValueError, KeyError, OSError and its subclasses, ...
        "asyncio.exceptions",  # InvalidStateError, ... (CancelledError: not rebuilt)
        "binascii",  # binascii.Error, Incomplete
        "concurrent.futures._base",  # concurrent.futures.InvalidStateError, ...
        "decimal",  # InvalidOperation, DivisionByZero, ...
        "queue",  # queue.Full
        "_queue",  # queue.Empty
        "re",  # re.error
        "shutil",  # shutil.Error, SameFileError, ...
        "socket",  # socket.gaierror, herror
        "struct",  # struct.error
        "subprocess",  # CalledProcessError, SubprocessError, TimeoutExpired
        "zipfile",  # BadZipFile, LargeZipFile
        "zlib",  # zlib.error
    }
)

#: The note ``exception_from_dict`` adds to carry the remote traceback starts so.
REMOTE_TRACEBACK_NOTE: Final = "Remote traceback"

#: What ``args`` may hold: JSON scalars without floats.
Scalar: TypeAlias = str | int | bool | None
#: What a ``fields`` value may be: a scalar, or strings.
FieldValue: TypeAlias = Scalar | tuple[str, ...]

#: Attributes recorded as ``fields`` for exception types that are not ours.
_STANDARD_FIELDS: tuple[tuple[type[BaseException], tuple[str, ...]], ...] = (
    (ImportError, ("name", "path")),
    (NameError, ("name",)),
    (AttributeError, ("name",)),
)

_INT_BOUND = 2**63  # args integers fit a signed 64-bit integer (cross-language)
_MIN_TEXT_LIMIT = 64  # room for the truncation marker


@dataclass(frozen=True)
class ExceptionLimits:
    """Bounds on one exception payload; the encoder stays within them (cutting text
    and dropping chain links), the decoder refuses payloads beyond them."""

    #: Levels of ``cause``/``context``/``exceptions`` nesting below the top object.
    max_depth: int = 32
    #: Exception objects in one payload, the top one included.
    max_exceptions: int = 200
    #: Characters of ``type``, ``module`` and ``qualname``.
    max_name_chars: int = 512
    #: Characters of ``message``, ``args_repr`` and each string in ``args``.
    max_message_chars: int = 16_384
    #: Elements of ``args``.
    max_args: int = 16
    #: Number of ``notes`` and characters of each.
    max_notes: int = 32
    max_note_chars: int = 4_096
    #: Characters of ``traceback``.
    max_traceback_chars: int = 65_536
    #: Characters of text in all fields of a payload together (encoder only: a
    #: payload that goes over it is bounded by the limits above anyway).
    max_total_chars: int = 1_048_576

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise ValueError(f"ExceptionLimits.{f.name} must be an int >= 0")
        for name in ("max_name_chars", "max_message_chars", "max_note_chars"):
            if getattr(self, name) < _MIN_TEXT_LIMIT:
                raise ValueError(f"ExceptionLimits.{name} must be >= {_MIN_TEXT_LIMIT}")
        if self.max_traceback_chars < _MIN_TEXT_LIMIT:
            raise ValueError(
                f"ExceptionLimits.max_traceback_chars must be >= {_MIN_TEXT_LIMIT}"
            )


DEFAULT_EXCEPTION_LIMITS = ExceptionLimits()

_Link = TypeVar("_Link")


@dataclass(frozen=True, eq=True)
class ExceptionRecord(Generic[_Link]):
    """One exception of a ``freight.exception/1`` payload, as typed data.

    ``read_exception_record`` returns an ``ExceptionRecord`` whose ``cause``,
    ``context`` and ``exceptions`` are records too (``context is cause`` when the
    payload says ``context_is_cause``).  The encoder gathers an exception's fields
    into the same record with the linked exceptions themselves as links, before
    the limits cut them.
    """

    type_name: str
    module: str
    qualname: str
    message: str
    args: tuple[Scalar, ...] | None = None
    args_repr: str | None = None
    traceback: str | None = None
    cause: _Link | None = None
    context: _Link | None = None
    suppress_context: bool = False
    notes: tuple[str, ...] = ()
    exceptions: tuple[_Link, ...] | None = None
    fields: Mapping[str, FieldValue] = field(default_factory=dict, hash=False)
    truncated: bool = False

    @property
    def full_name(self) -> str:
        """``module.qualname``, or just ``qualname`` for a built-in."""
        if self.module in ("builtins", ""):
            return self.qualname
        return f"{self.module}.{self.qualname}"

    def is_a(self, cls: type[BaseException]) -> bool:
        """Whether this record's type is ``cls`` itself, by module and qualname.
        (The record knows its type's name, not its bases.)"""
        return self.module == cls.__module__ and self.qualname == cls.__qualname__

    def chain(self) -> Iterator[ExceptionRecord[Any]]:
        """This record and the ones it was raised from or during, outermost first:
        ``cause``, else ``context`` unless suppressed (for records whose links are
        records, as ``read_exception_record`` makes them)."""
        record: Any = self
        seen = 0
        while record is not None and seen <= _MAX_CHAIN_WALK:
            yield record
            seen += 1
            record = record.cause or (
                None if record.suppress_context else record.context
            )


_MAX_CHAIN_WALK = 1024


class RemoteExecutionError(Exception):
    """An exception raised remotely whose type was not rebuilt here.

    It carries every field of the payload: ``type_name``, ``module``, ``qualname``,
    ``message`` (the remote ``str(exc)``), ``remote_args`` (the scalar ``args``, or
    ``None``), ``args_repr``, ``traceback`` (the remote traceback text, also
    ``remote_traceback``), ``cause`` and ``context`` (rebuilt exceptions or
    ``RemoteExecutionError`` s, also set as ``__cause__``/``__context__``),
    ``suppress_context``, ``notes`` and, for an exception group, ``exceptions``
    (``None`` otherwise), and ``fields`` (the failure as data; see the schema).
    ``truncated`` says the payload lost something to a limit;
    ``rebuild_error`` says why the original type was not rebuilt.

    ``cause`` and ``context`` keep the remote chain even if raising this exception
    here sets a new ``__context__``.
    """

    def __init__(
        self,
        type_name: str,
        message: str = "",
        *,
        module: str = "",
        qualname: str = "",
        remote_args: Iterable[Scalar] | None = None,
        args_repr: str | None = None,
        traceback: str | None = None,
        cause: BaseException | None = None,
        context: BaseException | None = None,
        suppress_context: bool = False,
        notes: Iterable[str] = (),
        exceptions: Iterable[BaseException] | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        truncated: bool = False,
        rebuild_error: str | None = None,
    ) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message
        self.module = module
        self.qualname = qualname or type_name
        self.remote_args = None if remote_args is None else tuple(remote_args)
        self.args_repr = args_repr
        self.traceback = traceback
        self.cause = cause
        self.context = context
        self.suppress_context = suppress_context
        self.notes = tuple(notes)
        self.exceptions = None if exceptions is None else tuple(exceptions)
        self.fields: Mapping[str, FieldValue] = dict(fields or {})
        self.truncated = truncated
        self.rebuild_error = rebuild_error
        self.__cause__ = cause
        self.__context__ = context
        self.__suppress_context__ = suppress_context
        if self.notes:
            self.__notes__ = list(self.notes)

    @property
    def remote_traceback(self) -> str | None:
        """The remote traceback text (the same as ``traceback``)."""
        return self.traceback

    @property
    def remote_type(self) -> str:
        """The remote exception's type as ``module.qualname`` (just the name for a
        built-in)."""
        if self.module in ("builtins", ""):
            return self.qualname
        return f"{self.module}.{self.qualname}"

    def __str__(self) -> str:
        text = (
            f"{self.remote_type}: {self.message}" if self.message else self.remote_type
        )
        if self.traceback:
            return f"{text} (raised remotely; remote traceback in .traceback)"
        return f"{text} (raised remotely; no remote traceback)"

    def __repr__(self) -> str:
        return f"RemoteExecutionError({self.type_name!r}, {self.message!r})"


# -- encoding ------------------------------------------------------------------------


def exception_to_dict(
    exc: BaseException, *, limits: ExceptionLimits = DEFAULT_EXCEPTION_LIMITS
) -> dict[str, Any]:
    """The ``"freight.exception/1"`` dict for ``exc`` (see the module docstring).

    Never runs into trouble on a hostile exception: ``str()``, ``repr()``, notes or
    traceback formatting that raise become placeholders, and chains are cut at the
    limits and where they loop.  A ``RemoteExecutionError`` is written as the remote
    exception it stands for, and a rebuilt exception with its remote traceback, so
    forwarding a remote failure keeps it intact.  Raises ``TypeError`` if ``exc`` is
    not an exception instance.
    """
    if not isinstance(exc, BaseException):
        raise TypeError(
            f"exception_to_dict() takes an exception instance, got {type(exc).__name__}"
        )
    body = _Encoder(limits).node(exc, depth=0, path=())
    return {"format": FORMAT, **body}


class _Encoder:
    def __init__(self, limits: ExceptionLimits) -> None:
        self.limits = limits
        self.count = 0
        self.chars_left = limits.max_total_chars
        self.truncated = False  # set by text(); read and reset per object

    def text(
        self, value: str, limit: int, *, keep_end: bool = False, budget: bool = True
    ) -> str:
        """``value`` cut to ``limit`` and, with ``budget``, to what is left of
        ``max_total_chars``; flags the object as truncated if it was cut."""
        if budget:
            limit = min(limit, max(self.chars_left, 0))
        clipped = _clip(value, limit, keep_end=keep_end)
        if clipped is not value:
            self.truncated = True
        self.chars_left -= len(clipped)
        return clipped

    def node(
        self, exc: BaseException, depth: int, path: tuple[int, ...]
    ) -> dict[str, Any]:
        self.count += 1
        lim = self.limits
        if isinstance(exc, RemoteExecutionError):
            f = _remote_fields(exc, lim)
        else:
            f = _local_fields(exc, lim)
        self.truncated = bool(f.truncated)
        args = f.args
        args_chars = sum(len(a) for a in args or () if isinstance(a, str))
        if args_chars > max(self.chars_left, 0):
            args = None
            self.truncated = True
        elif args is not None:
            self.chars_left -= args_chars
        # Names stay whole when the budget runs out: they are short (bounded by
        # max_name_chars) and say what failed, even deep in a chain.
        out: dict[str, Any] = {
            "type": self.text(f.type_name, lim.max_name_chars, budget=False),
            "module": self.text(f.module, lim.max_name_chars, budget=False),
            "qualname": self.text(f.qualname, lim.max_name_chars, budget=False),
            "message": self.text(f.message, lim.max_message_chars),
            "args": None if args is None else list(args),
            "args_repr": (
                None
                if f.args_repr is None
                else self.text(f.args_repr, lim.max_message_chars)
            ),
            "traceback": (
                None
                if f.traceback is None
                else self.text(f.traceback, lim.max_traceback_chars, keep_end=True)
            ),
            "suppress_context": f.suppress_context,
        }
        notes = f.notes
        if len(notes) > lim.max_notes:
            notes = notes[: lim.max_notes]
            self.truncated = True
        out["notes"] = [self.text(n, lim.max_note_chars) for n in notes]
        if f.fields:
            # Field text counts against max_total_chars like every other text;
            # fields that do not fit are left out whole (and the object flagged).
            chars = sum(
                len(text)
                for v in f.fields.values()
                for text in (v if isinstance(v, tuple) else (v,))
                if isinstance(text, str)
            )
            if chars > max(self.chars_left, 0):
                self.truncated = True
            else:
                self.chars_left -= chars
                out["fields"] = {
                    k: list(v) if isinstance(v, tuple) else v
                    for k, v in f.fields.items()
                }
        truncated = self.truncated

        inner = (*path, id(exc))

        def child(sub: object) -> dict[str, Any] | None:
            nonlocal truncated
            if sub is None:
                return None
            if (
                not isinstance(sub, BaseException)
                or id(sub) in inner
                or depth >= lim.max_depth
                or self.count >= lim.max_exceptions
            ):
                truncated = True  # not an exception, a cycle, or over a limit
                return None
            return self.node(sub, depth + 1, inner)

        out["cause"] = child(f.cause)
        shared = f.context is f.cause and out["cause"] is not None
        out["context"] = None if shared else child(f.context)
        out["context_is_cause"] = shared
        if f.exceptions is None:
            out["exceptions"] = None
        else:
            members = [child(m) for m in f.exceptions]
            out["exceptions"] = [m for m in members if m is not None]
        out["truncated"] = truncated
        return out


def _remote_fields(
    exc: RemoteExecutionError, limits: ExceptionLimits
) -> ExceptionRecord[object]:
    return ExceptionRecord(
        type_name=_plain(exc.type_name),
        module=_plain(exc.module),
        qualname=_plain(exc.qualname),
        message=_plain(exc.message),
        args=_scalar_args(exc.remote_args, limits),
        args_repr=None if exc.args_repr is None else _plain(exc.args_repr),
        traceback=None if exc.traceback is None else _plain(exc.traceback),
        cause=exc.cause,
        context=exc.context,
        suppress_context=bool(exc.suppress_context),
        notes=tuple(_forwarded_notes(exc, exc.traceback)),
        exceptions=exc.exceptions,
        fields=_valid_fields(exc.fields, limits),
        truncated=bool(exc.truncated),
    )


def _local_fields(
    exc: BaseException, limits: ExceptionLimits
) -> ExceptionRecord[object]:
    cls = type(exc)
    type_name = _plain(cls.__name__)
    try:
        raw_args: object = exc.args
    except Exception as e:
        raw_args = None
        args_repr = f"<unprintable args: reading them raised {type(e).__name__}>"
    else:
        args_repr = _safe_repr(raw_args, "args")
    members: tuple[object, ...] | None = None
    if isinstance(exc, BaseExceptionGroup):
        members = tuple(exc.exceptions)
        args = _scalar_args((_safe_getattr(exc, "message"),), limits)
    else:
        if isinstance(exc, OSError) and isinstance(raw_args, tuple):
            raw_args = _oserror_args(exc, raw_args)
        args = _scalar_args(raw_args, limits)
    remote_tb = _safe_getattr(exc, "remote_traceback")
    remote_tb = _plain(remote_tb) if isinstance(remote_tb, str) else None
    notes = _forwarded_notes(exc, remote_tb)
    return ExceptionRecord(
        type_name=type_name,
        module=_name_text(getattr(cls, "__module__", None)),
        qualname=_name_text(getattr(cls, "__qualname__", type_name)),
        message=_safe_str(exc),
        args=args,
        args_repr=args_repr,
        traceback=remote_tb if remote_tb is not None else _format_traceback(exc),
        cause=exc.__cause__,
        context=exc.__context__,
        suppress_context=bool(exc.__suppress_context__),
        notes=tuple(notes),
        exceptions=members,
        fields=_error_fields(exc, limits),
    )


def _error_fields(exc: BaseException, limits: ExceptionLimits) -> dict[str, FieldValue]:
    """The attributes that describe ``exc`` as data (see ``fields`` in the schema)."""
    names: tuple[str, ...] = ()
    declared = _safe_getattr(type(exc), "error_fields")
    if isinstance(declared, tuple):
        names = tuple(n for n in declared if isinstance(n, str))
    for cls, standard in _STANDARD_FIELDS:
        if isinstance(exc, cls):
            names += standard
    found: dict[str, object] = {}
    for name in names:
        value = _safe_getattr(exc, name)
        if isinstance(value, list):
            value = tuple(value)
        found[name] = value
    return _valid_fields(found, limits)


def _valid_fields(
    found: Mapping[str, object], limits: ExceptionLimits
) -> dict[str, FieldValue]:
    """The entries of ``found`` that the schema can carry, within the limits."""
    out: dict[str, FieldValue] = {}
    for name, value in found.items():
        if len(out) >= limits.max_args or len(name) > limits.max_name_chars:
            break
        if isinstance(value, tuple):
            # The first ``max_args`` (a closure's names): dropping them all would
            # leave a reader nothing to act on.
            strings = _scalar_args(value[: limits.max_args], limits)
            if strings is not None and all(type(v) is str for v in strings):
                out[name] = tuple(str(v) for v in strings)
            continue
        scalar = _scalar_args((value,), limits)
        if scalar is not None:
            out[name] = scalar[0]
    return out


def _oserror_args(exc: OSError, args: tuple[object, ...]) -> tuple[object, ...]:
    """``OSError``'s constructor arguments: its ``args`` omit the file names."""
    if len(args) != 2 or args != (exc.errno, exc.strerror):
        return args
    if exc.filename2 is not None:
        return (*args, exc.filename, None, exc.filename2)
    if exc.filename is not None:
        return (*args, exc.filename)
    return args


def _scalar_args(args: object, limits: ExceptionLimits) -> tuple[Scalar, ...] | None:
    """``args`` as a tuple of JSON scalars within the limits, or ``None``."""
    if not isinstance(args, tuple) or len(args) > limits.max_args:
        return None
    out: list[Scalar] = []
    for a in args:
        if a is None or type(a) is bool:
            out.append(a)
        elif type(a) is int and -_INT_BOUND <= a < _INT_BOUND:
            out.append(a)
        elif type(a) is str and len(a) <= limits.max_message_chars:
            out.append(a)
        else:
            return None
    return tuple(out)


def _forwarded_notes(exc: BaseException, remote_tb: str | None) -> list[str]:
    """``exc``'s notes as they are now (a forwarder may have added some), without
    the remote-traceback note ``exception_from_dict`` added: the traceback field
    carries that."""
    notes = _notes(exc)
    if remote_tb is not None:
        added = _traceback_note(_plain(remote_tb))
        if added in notes:
            notes.remove(added)
    return notes


def _notes(exc: BaseException) -> list[str]:
    try:
        raw = getattr(exc, "__notes__", None)
    except Exception as e:
        return [f"<unprintable __notes__: reading them raised {type(e).__name__}>"]
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        return [_safe_repr(raw, "__notes__")]
    return [_plain(n) if isinstance(n, str) else _safe_repr(n, "note") for n in raw]


def _format_traceback(exc: BaseException) -> str | None:
    tb = exc.__traceback__
    if tb is None:
        return None
    try:
        frames = "".join(_traceback.format_tb(tb))
        last = "".join(_traceback.format_exception_only(type(exc), exc))
    except Exception as e:
        return f"<traceback could not be formatted: {type(e).__name__}>"
    return _TRACEBACK_HEADER + frames + last


def _safe_str(exc: BaseException) -> str:
    try:
        return _plain(str(exc))
    except Exception as e:
        return f"<unprintable {type(exc).__name__}: str() raised {type(e).__name__}>"


def _safe_repr(value: object, what: str) -> str:
    try:
        return _plain(repr(value))
    except Exception as e:
        return f"<unprintable {what}: repr() raised {type(e).__name__}>"


def _safe_getattr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _name_text(value: object) -> str:
    return _plain(value) if isinstance(value, str) else _safe_repr(value, "name")


def _plain(text: str) -> str:
    """``text`` as an exact ``str`` (a subclass could misbehave when serialized)."""
    return text if type(text) is str else str.__str__(text)


def _clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` if it has at most ``limit`` characters, else a part of it with a
    marker saying how long it was.  Returns ``text`` itself when it fits."""
    if len(text) <= limit:
        return text
    marker = f"...[{len(text)} characters, truncated]..."
    keep = max(limit - len(marker), 0)
    if not keep_end:
        return text[:keep] + marker
    head = keep // 4
    return text[:head] + marker + text[len(text) - (keep - head) :]


def _traceback_note(traceback_text: str) -> str:
    """The note that shows a remote traceback under the rebuilt exception: its frames
    (the exception line and notes above it are the rebuilt exception's own)."""
    lines = traceback_text.splitlines(keepends=True)
    if lines and lines[0] == _TRACEBACK_HEADER:
        frames = []
        for line in lines[1:]:
            if not line.startswith(" "):
                break
            frames.append(line)
        return REMOTE_TRACEBACK_NOTE + " (most recent call last):\n" + "".join(frames)
    return REMOTE_TRACEBACK_NOTE + ":\n" + traceback_text


_TRACEBACK_HEADER = "Traceback (most recent call last):\n"


# -- decoding ------------------------------------------------------------------------


def exception_from_dict(
    d: object,
    *,
    rebuild: bool = True,
    allowed_modules: Iterable[str] = DEFAULT_ALLOWED_MODULES,
    traceback_note: bool = True,
    limits: ExceptionLimits = DEFAULT_EXCEPTION_LIMITS,
) -> Exception:
    """The exception a ``"freight.exception/1"`` dict describes.

    The whole structure is validated first: anything malformed, of another format
    version or over ``limits`` raises ``DeserializationError`` saying what and where.
    Then each exception in the chain is rebuilt as its original type if ``rebuild``
    and its module is in ``allowed_modules`` (see the module docstring for the
    rules), else made a ``RemoteExecutionError``.  With ``traceback_note`` a rebuilt
    exception also gets the remote traceback as its last note.
    """
    if isinstance(allowed_modules, str):
        raise TypeError(
            "allowed_modules must be a collection of module names, not a str"
        )
    node = read_exception_record(d, limits=limits)
    builder = _Builder(
        allowed=frozenset(allowed_modules),
        rebuild=rebuild,
        traceback_note=traceback_note,
    )
    return builder.build(node)


def read_exception_record(
    d: object, *, limits: ExceptionLimits = DEFAULT_EXCEPTION_LIMITS
) -> ExceptionRecord[Any]:
    """Validate a ``"freight.exception/1"`` payload and return it as an
    ``ExceptionRecord`` (whose links are records).

    Raises ``DeserializationError`` saying what and where if it is malformed, of
    another format version, or over ``limits``.
    """
    return _Validator(limits).top(d)


def _fail(reason: str) -> DeserializationError:
    return DeserializationError(f"malformed exception payload: {reason}")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a Python {type(value).__name__}"


class _Validator:
    def __init__(self, limits: ExceptionLimits) -> None:
        self.limits = limits
        self.count = 0

    def top(self, d: object) -> ExceptionRecord[Any]:
        if not isinstance(d, dict):
            raise _fail(f"expected a JSON object, got {_json_kind(d)}")
        fmt = dict.get(d, "format")
        if fmt is None:
            raise _fail(f"no 'format' key (expected {FORMAT!r})")
        if fmt != FORMAT:
            if isinstance(fmt, str) and fmt.startswith("freight.exception/"):
                raise DeserializationError(
                    f"unsupported exception payload format {_short(fmt)}; this"
                    f" version of freight reads {FORMAT!r}"
                )
            raise _fail(f"'format' is {_short(fmt)}, expected {FORMAT!r}")
        return self.node(d, "", 0)

    def node(self, d: object, path: str, depth: int) -> ExceptionRecord[Any]:
        where = path or "the top-level exception"
        if not isinstance(d, dict):
            raise _fail(f"{where} must be an object, got {_json_kind(d)}")
        lim = self.limits
        if depth > lim.max_depth:
            raise DeserializationError(
                f"exception payload nests deeper than the limit max_depth="
                f"{lim.max_depth} (at {where})"
            )
        self.count += 1
        if self.count > lim.max_exceptions:
            raise DeserializationError(
                "exception payload holds more exceptions than the limit"
                f" max_exceptions={lim.max_exceptions} (at {where})"
            )
        prefix = f"{path}." if path else ""

        def text(key: str, limit: int, limit_name: str, *, required: bool) -> Any:
            value = dict.get(d, key)
            if value is None:
                if required:
                    present = "is null" if key in d else "is missing"
                    raise _fail(f"{prefix}{key} {present}; it must be a string")
                return None
            if type(value) is not str:
                raise _fail(f"{prefix}{key} must be a string, got {_json_kind(value)}")
            if len(value) > limit:
                raise DeserializationError(
                    f"exception payload: {prefix}{key} has {len(value)} characters,"
                    f" over the limit {limit_name}={limit}"
                )
            return value

        def flag(key: str) -> bool:
            value = dict.get(d, key, False)
            if value is None:
                return False
            if type(value) is not bool:
                raise _fail(f"{prefix}{key} must be a boolean, got {_json_kind(value)}")
            return value

        type_name = text("type", lim.max_name_chars, "max_name_chars", required=True)
        module = text("module", lim.max_name_chars, "max_name_chars", required=True)
        qualname = text("qualname", lim.max_name_chars, "max_name_chars", required=True)
        message = text(
            "message", lim.max_message_chars, "max_message_chars", required=True
        )
        args_repr = text(
            "args_repr", lim.max_message_chars, "max_message_chars", required=False
        )
        traceback = text(
            "traceback", lim.max_traceback_chars, "max_traceback_chars", required=False
        )
        args = self.args(dict.get(d, "args"), f"{prefix}args")
        notes = self.notes(dict.get(d, "notes"), f"{prefix}notes")
        suppress_context = flag("suppress_context")
        truncated = flag("truncated")
        error_fields = self.fields(dict.get(d, "fields"), f"{prefix}fields")

        def sub(key: str) -> ExceptionRecord[Any] | None:
            value = dict.get(d, key)
            return None if value is None else self.node(value, prefix + key, depth + 1)

        cause = sub("cause")
        context = sub("context")
        if flag("context_is_cause"):
            if cause is None or context is not None:
                raise _fail(
                    f"{prefix}context_is_cause is true, so {prefix}cause must be an"
                    f" object and {prefix}context null"
                )
            context = cause
        members = dict.get(d, "exceptions")
        exceptions: tuple[ExceptionRecord[Any], ...] | None = None
        if members is not None:
            if not isinstance(members, list):
                raise _fail(
                    f"{prefix}exceptions must be an array or null, got"
                    f" {_json_kind(members)}"
                )
            exceptions = tuple(
                self.node(m, f"{prefix}exceptions[{i}]", depth + 1)
                for i, m in enumerate(members)
            )
        return ExceptionRecord(
            type_name=type_name,
            module=module,
            qualname=qualname,
            message=message,
            args=args,
            args_repr=args_repr,
            traceback=traceback,
            cause=cause,
            context=context,
            suppress_context=suppress_context,
            notes=notes,
            exceptions=exceptions,
            fields=error_fields,
            truncated=truncated,
        )

    def at_most_args(self, count: int, where: str, what: str) -> None:
        """Refuse ``count`` ``what`` in ``where`` if they are over ``max_args``."""
        if count > self.limits.max_args:
            raise DeserializationError(
                f"exception payload: {where} has {count} {what}, over the limit"
                f" max_args={self.limits.max_args}"
            )

    def fields(self, value: object, where: str) -> dict[str, FieldValue]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _fail(f"{where} must be an object or null, got {_json_kind(value)}")
        lim = self.limits
        self.at_most_args(len(value), where, "entries")
        out: dict[str, FieldValue] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _fail(f"a key of {where} must be a string, got {_json_kind(key)}")
            if len(key) > lim.max_name_chars:
                raise DeserializationError(
                    f"exception payload: a key of {where} has {len(key)} characters,"
                    f" over the limit max_name_chars={lim.max_name_chars}"
                )
            if isinstance(item, list):
                strings = self.args(item, f"{where}.{key}")
                if strings is None or not all(type(v) is str for v in strings):
                    raise _fail(
                        f"{where}.{key} must be a scalar or an array of strings"
                    )
                out[key] = tuple(str(v) for v in strings)
            else:
                (out[key],) = self.args([item], f"{where}.{key}") or (None,)
        return out

    def args(self, value: object, where: str) -> tuple[Scalar, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise _fail(f"{where} must be an array or null, got {_json_kind(value)}")
        lim = self.limits
        self.at_most_args(len(value), where, "elements")
        out: list[Scalar] = []
        for i, a in enumerate(value):
            if a is None or type(a) is bool:
                out.append(a)
            elif type(a) is int:
                if not -_INT_BOUND <= a < _INT_BOUND:
                    raise _fail(f"{where}[{i}] is an integer outside the 64-bit range")
                out.append(a)
            elif type(a) is str:
                if len(a) > lim.max_message_chars:
                    raise DeserializationError(
                        f"exception payload: {where}[{i}] has {len(a)} characters,"
                        f" over the limit max_message_chars={lim.max_message_chars}"
                    )
                out.append(a)
            else:
                raise _fail(
                    f"{where}[{i}] must be a string, an integer, a boolean or null,"
                    f" got {_json_kind(a)}"
                )
        return tuple(out)

    def notes(self, value: object, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise _fail(f"{where} must be an array of strings, got {_json_kind(value)}")
        lim = self.limits
        if len(value) > lim.max_notes:
            raise DeserializationError(
                f"exception payload: {where} has {len(value)} notes, over the limit"
                f" max_notes={lim.max_notes}"
            )
        for i, note in enumerate(value):
            if type(note) is not str:
                raise _fail(f"{where}[{i}] must be a string, got {_json_kind(note)}")
            if len(note) > lim.max_note_chars:
                raise DeserializationError(
                    f"exception payload: {where}[{i}] has {len(note)} characters,"
                    f" over the limit max_note_chars={lim.max_note_chars}"
                )
        return tuple(value)


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else _json_kind(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Builder:
    def __init__(
        self, *, allowed: frozenset[str], rebuild: bool, traceback_note: bool
    ) -> None:
        self.allowed = allowed
        self.rebuild = rebuild
        self.traceback_note = traceback_note

    def build(self, node: ExceptionRecord[Any]) -> Exception:
        cause = None if node.cause is None else self.build(node.cause)
        if node.context is node.cause:  # context_is_cause: one exception, both links
            context = cause
        else:
            context = None if node.context is None else self.build(node.context)
        members = (
            None
            if node.exceptions is None
            else tuple(self.build(m) for m in node.exceptions)
        )
        if not self.rebuild:
            reason = "rebuilding was turned off (rebuild=False)"
        else:
            rebuilt = self.rebuilt(node, cause, context, members)
            if isinstance(rebuilt, Exception):
                self.add_traceback_note(rebuilt, node)
                return rebuilt
            reason = rebuilt
        remote = RemoteExecutionError(
            node.type_name,
            node.message,
            module=node.module,
            qualname=node.qualname,
            remote_args=node.args,
            args_repr=node.args_repr,
            traceback=node.traceback,
            cause=cause,
            context=context,
            suppress_context=node.suppress_context,
            notes=node.notes,
            exceptions=members,
            fields=node.fields,
            truncated=node.truncated,
            rebuild_error=reason,
        )
        self.add_traceback_note(remote, node)
        return remote

    def add_traceback_note(self, exc: Exception, node: ExceptionRecord[Any]) -> None:
        if self.traceback_note and node.traceback:
            try:
                exc.add_note(_traceback_note(node.traceback))
            except Exception:  # an allowed class that refuses notes keeps none
                pass

    def rebuilt(
        self,
        node: ExceptionRecord[Any],
        cause: Exception | None,
        context: Exception | None,
        members: tuple[Exception, ...] | None,
    ) -> Exception | str:
        """The exception of the original type, or why it cannot be had."""
        cls = _resolve(node.module, node.qualname, self.allowed)
        if isinstance(cls, str):
            return cls
        name = f"{node.module}.{node.qualname}"
        if not issubclass(cls, Exception):
            return (
                f"{name} is not an Exception subclass; SystemExit, KeyboardInterrupt"
                " and other BaseException-only types are never rebuilt"
            )
        if cls.__name__ != node.type_name:
            return f"{name} is named {cls.__name__!r}, not {node.type_name!r}"
        is_group = issubclass(cls, BaseExceptionGroup)
        if is_group and members is None:
            return f"{name} is an exception group but the payload has no members"
        if not is_group and members is not None:
            return f"{name} is not an exception group but the payload has members"
        try:
            if members is not None:
                if node.args is None or len(node.args) != 1:
                    return "an exception group's args must be [message]"
                exc = cls(node.args[0], list(members))
            elif node.args is not None:
                exc = cls(*node.args)
            else:
                exc = cls(node.message) if node.message else cls()
        except Exception as e:
            return f"calling {name} with the payload's arguments raised {_label(e)}"
        if type(exc) is not cls:
            return f"calling {name} returned a {type(exc).__name__}"
        try:
            text = str(exc)
        except Exception as e:
            return f"str() of the rebuilt {name} raised {_label(e)}"
        if text != node.message:
            return f"the rebuilt {name} reads {_clip(text, 200)!r}, not the message"
        try:
            exc.__cause__ = cause
            exc.__context__ = context
            exc.__suppress_context__ = node.suppress_context
            if node.notes:
                exc.__notes__ = list(node.notes)
            if node.traceback is not None:
                exc.remote_traceback = node.traceback  # type: ignore[attr-defined]
            for kind, names in _STANDARD_FIELDS:  # what its constructor left out
                if isinstance(exc, kind):
                    for n in names:
                        value = node.fields.get(n)
                        if value is None or type(value) is str:
                            setattr(exc, n, value)
        except Exception as e:
            return f"attaching the chain to the rebuilt {name} raised {_label(e)}"
        return exc


def _label(error: BaseException) -> str:
    return f"{type(error).__name__}: {_clip(_safe_str(error), 200)}"


def _resolve(
    module_name: str, qualname: str, allowed: frozenset[str]
) -> type[BaseException] | str:
    """The class ``module_name.qualname``, found by dictionary lookups only, or why
    it cannot be used."""
    if module_name not in allowed:
        return f"module {module_name!r} is not in allowed_modules"
    parts = qualname.split(".")
    if not all(p.isidentifier() for p in parts):
        return f"qualname {qualname!r} does not name a module-level class"
    if not all(p.isidentifier() for p in module_name.split(".")):
        return f"module name {module_name!r} is not importable"
    try:
        owner: object = importlib.import_module(module_name)
    except Exception as e:
        return f"module {module_name!r} could not be imported ({_label(e)})"
    cls: type | None = None
    for part in parts:
        try:
            namespace = vars(owner)
        except TypeError:
            return f"{module_name}.{qualname} does not name a class"
        # A dictionary lookup runs no code (no __getattr__, no descriptors), and
        # requiring a class at every step keeps the walk inside the module.
        found = namespace.get(part)
        if not isinstance(found, type):
            return f"{module_name}.{qualname} does not name a class"
        owner = cls = found
    if cls is None:  # pragma: no cover - split() gives at least one part
        return f"{module_name}.{qualname} does not name a class"
    if cls.__module__ != module_name or cls.__qualname__ != qualname:
        return (
            f"{module_name}.{qualname} is an alias of"
            f" {cls.__module__}.{cls.__qualname__}"
        )
    if not issubclass(cls, BaseException):
        return f"{module_name}.{qualname} is not an exception class"
    return cls
