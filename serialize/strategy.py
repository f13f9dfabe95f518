"""The strategy contract: what a serialization strategy is and promises.

A strategy turns one kind of object (callables when ``for_code``, anything else
otherwise) into a text payload that starts with its ``identifier`` header, and back.
That is the reference SDK's contract, kept name for name.  Two helper bases let a
strategy say what its body natively is, so framing can carry it without the strategy
caring which envelope is in use:

* ``BytesStrategy`` -- the body is bytes (pickle, dill, msgpack); the text envelope
  carries it base64-encoded.
* ``TextStrategy`` -- the body is text (JSON, source code); it travels as is.

Strategies are stateless: one instance per registry serves every caller and thread.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from freight.serialize.errors import DeserializationError, SerializationError
from freight.serialize.text import (
    IDENTIFIER_LENGTH,
    decode_base64,
    encode_base64,
    pack_buffers,
    unpack_buffers,
)

logger = logging.getLogger(__name__)


def validate_identifier(identifier: object, owner: str = "strategy") -> str:
    """Return ``identifier`` if it is two characters and a newline, else raise.

    Raises ``TypeError`` or ``ValueError`` (this is a programming error in the
    strategy's definition, found when its class is defined).
    """
    if not isinstance(identifier, str):
        raise TypeError(
            f"{owner}.identifier must be a str, got {type(identifier).__name__}"
        )
    if len(identifier) != IDENTIFIER_LENGTH:
        raise ValueError(
            f"{owner}.identifier must be {IDENTIFIER_LENGTH} characters long"
            f" (two characters and a newline), got {identifier!r}"
        )
    if identifier[-1] != "\n" or "\n" in identifier[:-1]:
        raise ValueError(
            f"{owner}.identifier must be two characters followed by a newline,"
            f" got {identifier!r}"
        )
    return identifier


class SerializationStrategy(ABC):
    """Converts callables (``for_code``) or data to a text payload and back.

    Subclasses set ``identifier`` and ``for_code`` and implement ``serialize`` and
    ``deserialize``.  A strategy becomes usable by being registered through the
    ``freight.strategies`` entry-point group (see ``freight.serialize.hookspecs``);
    defining the class does not register it.
    """

    #: Two characters and ``"\n"``; the header of every payload this strategy makes
    #: and the only key used to pick a decoder.  Checked when the class is defined.
    identifier: ClassVar[str]
    #: ``True`` if this strategy serializes callables, ``False`` for everything else.
    for_code: ClassVar[bool]
    #: A short registered name, e.g. ``"dill-code"``; defaults to the class name.
    name: ClassVar[str]
    #: Still decodes and may be selected, but new code should use something else.
    deprecated: ClassVar[bool] = False
    #: Decodes old payloads but never produces new ones; cannot be selected.
    decode_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "identifier" in cls.__dict__:
            validate_identifier(cls.__dict__["identifier"], cls.__name__)
        if "for_code" in cls.__dict__ and not isinstance(cls.for_code, bool):
            raise TypeError(f"{cls.__name__}.for_code must be a bool")
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    @abstractmethod
    def serialize(self, data: Any) -> str:
        """Return ``identifier + body`` for ``data``; raise if it cannot."""

    @abstractmethod
    def deserialize(self, payload: str) -> Any:
        """Return the object a payload made by ``serialize`` represents."""

    def chomp(self, payload: str) -> str:
        """Return ``payload`` without this strategy's header.

        Raises ``DeserializationError`` if ``payload`` is not a str that starts
        with ``identifier``.
        """
        if not isinstance(payload, str):
            raise DeserializationError(
                f"{self.name} expects a str payload, got {type(payload).__name__}"
            )
        if not payload.startswith(self.identifier):
            raise DeserializationError(
                f"payload does not start with identifier {self.identifier!r}"
                f" ({self.name}); it starts with {payload[:IDENTIFIER_LENGTH]!r}"
            )
        return payload[IDENTIFIER_LENGTH:]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier!r}>"


class BytesStrategy(SerializationStrategy):
    """A strategy whose body is natively bytes; text payloads carry it as base64."""

    @abstractmethod
    def encode(self, obj: Any) -> bytes:
        """Return the body bytes for ``obj``."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """Return the object that ``encode`` turned into ``data``."""

    def serialize(self, data: Any) -> str:
        return self.identifier + encode_base64(self.encode(data))

    def deserialize(self, payload: str) -> Any:
        return self.decode(decode_base64(self.chomp(payload)))


class TextStrategy(SerializationStrategy):
    """A strategy whose body is natively text; text payloads carry it unchanged."""

    @abstractmethod
    def encode_text(self, obj: Any) -> str:
        """Return the body text for ``obj``."""

    @abstractmethod
    def decode_text(self, text: str) -> Any:
        """Return the object that ``encode_text`` turned into ``text``."""

    def serialize(self, data: Any) -> str:
        return self.identifier + self.encode_text(data)

    def deserialize(self, payload: str) -> Any:
        return self.decode_text(self.chomp(payload))


class ComboSerializationStrategy(SerializationStrategy):
    """Carries one payload per member strategy that succeeds; decodes the first that
    works.

    The body is ``pack_buffers`` of the members' payloads, in ``strategies`` order.
    Only the declared members may decode a part: a combo payload cannot smuggle in a
    payload for any other strategy.
    """

    #: The member strategy classes, tried in this order both ways.
    strategies: ClassVar[list[type[SerializationStrategy]]]

    def __init__(self) -> None:
        self._members = {cls.identifier: cls() for cls in self.strategies}

    def serialize(self, data: Any) -> str:
        buffers, errors = [], []
        for member in self._members.values():
            try:
                buffers.append(member.serialize(data))
            except Exception as e:
                errors.append(f"{member.name}: {type(e).__name__}: {e}")
                logger.debug("%s could not serialize: %s", member.name, e)
        if not buffers:
            raise SerializationError(
                f"no member of {self.name} could serialize the object:\n* "
                + "\n* ".join(errors)
            )
        return self.identifier + pack_buffers(buffers)

    def deserialize(self, payload: str) -> Any:
        errors = []
        for part in unpack_buffers(self.chomp(payload)):
            header = part[:IDENTIFIER_LENGTH]
            member = self._members.get(header)
            if member is None:
                errors.append(f"{header!r} is not a member of {self.name}")
                continue
            try:
                return member.deserialize(part)
            except Exception as e:
                errors.append(f"{member.name}: {type(e).__name__}: {e}")
                logger.debug("%s could not deserialize: %s", member.name, e)
        raise DeserializationError(
            f"no part of the {self.name} payload could be deserialized:\n* "
            + ("\n* ".join(errors) if errors else "the payload holds no parts")
        )
