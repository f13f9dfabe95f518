"""The serialization error hierarchy.

``SerdeError`` is the base of everything this package raises on purpose;
``SerializationError`` means an object could not be turned into a payload, and
``DeserializationError`` means a payload could not be turned back into an object
(malformed, truncated, not allowed, or the strategy's decoder failed).  The
underlying cause, when there is one, is chained as ``__cause__``.

Failures a caller (or a peer, through a ``freight.exception/1`` record) may want to
act on have a type of their own with fields (``TypedFailure``, ``error_fields``):
code that reacts to a failure reads its type and fields, never the words of its
message.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn


class TypedFailure(Exception):
    """A failure described by fields as well as a message.

    A subclass names its fields in ``error_fields`` and takes them as keywords
    after the message.  ``exception_to_dict`` records them (``"fields"``), so they
    cross the wire with the exception, and pickling keeps them.
    """

    #: The attributes that describe this failure as data.
    error_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        for name in self.error_fields:
            setattr(self, name, fields.pop(name))
        if fields:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(fields)}")

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        # The default (``type(self)(*self.args)``) would leave the fields out, and
        # a subclass's own ``__init__`` may not take the message: the copy is made
        # without calling it, and gets the fields with the rest of ``__dict__``.
        return (_rebuild, (type(self), self.reason), self.__dict__)


def _rebuild(cls: type[TypedFailure], reason: str) -> TypedFailure:
    return cls.__new__(cls, reason)


class SerdeError(TypedFailure):
    """Base class for serialization and deserialization failures.

    ``reason`` holds the human-readable explanation (the reference SDK's attribute).
    """


class SerializationError(SerdeError):
    """An object could not be serialized."""

    def __repr__(self) -> str:
        return f"SerializationError({self.reason!r})"


class DeserializationError(SerdeError):
    """A payload could not be deserialized; the message says what was wrong."""

    def __repr__(self) -> str:
        return f"DeserializationError({self.reason!r})"


# -- typed failures ------------------------------------------------------------------
#
# Raised by the facade (a ``DeserializationError``), or by strategies, whose own
# errors the facade chains under its ``SerializationError``/``DeserializationError``
# (these keep the built-in base a caller of the strategy alone would catch).


class UnknownStrategy(DeserializationError):
    """A payload names a strategy identifier this process has not registered."""

    error_fields = ("identifier",)
    identifier: str


class StrategyNotAllowed(DeserializationError):
    """A payload's strategy is registered, but the deserializer allowlist does not
    let it decode here; ``strategy`` is its registered name."""

    error_fields = ("identifier", "strategy")
    identifier: str
    strategy: str


class ClosureNotCarried(TypedFailure, ValueError):
    """A function closes over variables (``names``), which a source strategy
    cannot carry."""

    error_fields = ("function", "names")
    function: str
    names: tuple[str, ...]


class SourceUnavailable(TypedFailure, OSError, TypeError):
    """A function's Python source cannot be found: it was typed interactively or
    made by ``exec()``, or it is not Python at all (``builtin``).  It is both of
    the errors ``inspect.getsource`` raises for those (``OSError``, ``TypeError``),
    so code that caught them still does."""

    error_fields = ("function", "builtin")
    function: str
    builtin: bool


class SourceDoesNotDefine(TypedFailure, ValueError):
    """Decoded source ran, but did not bind the function's ``name``."""

    error_fields = ("name",)
    name: str


class MissingGlobal(TypedFailure, LookupError):
    """A payload refers to ``module.name`` by reference, and that name cannot be
    found in the receiving process: the module imports but does not define it.  (A
    module that is missing raises ``ModuleNotFoundError``, whose ``name`` says
    which.)"""

    error_fields = ("module", "name")
    module: str
    name: str


class MemberFailed(TypedFailure):
    """One member (``member``, its registered name) of a combined strategy failed;
    its error is the cause.  A combined strategy whose members all failed raises
    its error from an ``ExceptionGroup`` of these."""

    error_fields = ("member",)
    member: str

    @classmethod
    def wrapping(cls, member: Any, error: Exception) -> MemberFailed:
        """``error`` of the member strategy ``member``, as a ``MemberFailed``
        caused by it (its message names the member's class and the error)."""
        failed = cls(
            f"{type(member).__name__}: {type(error).__name__}: {error}",
            member=str(member.name),
        )
        failed.__cause__ = error
        return failed


def raise_from(error: BaseException, cause: BaseException) -> NoReturn:
    """``raise error from cause``, for use inside ``except ... as cause``; if
    ``error`` is ``cause`` itself (a failure that already says enough), it
    propagates unchanged rather than as its own cause."""
    if error is cause:
        raise cause
    raise error from cause
