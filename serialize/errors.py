"""The serialization error hierarchy.

``SerdeError`` is the base of everything this package raises on purpose;
``SerializationError`` means an object could not be turned into a payload, and
``DeserializationError`` means a payload could not be turned back into an object
(malformed, truncated, not allowed, or the strategy's decoder failed).  The
underlying cause, when there is one, is chained as ``__cause__``.
"""

from __future__ import annotations

from typing import NoReturn


class SerdeError(Exception):
    """Base class for serialization and deserialization failures.

    ``reason`` holds the human-readable explanation (the reference SDK's attribute).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class SerializationError(SerdeError):
    """An object could not be serialized."""

    def __repr__(self) -> str:
        return f"SerializationError({self.reason!r})"


class DeserializationError(SerdeError):
    """A payload could not be deserialized; the message says what was wrong."""

    def __repr__(self) -> str:
        return f"DeserializationError({self.reason!r})"


def raise_from(error: BaseException, cause: BaseException) -> NoReturn:
    """``raise error from cause``, for use inside ``except ... as cause``; if
    ``error`` is ``cause`` itself (a failure that already says enough), it
    propagates unchanged rather than as its own cause."""
    if error is cause:
        raise cause
    raise error from cause
