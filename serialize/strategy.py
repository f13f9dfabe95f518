"""The strategy contract: what a serialization strategy is and promises.

A strategy turns one kind of object (callables when ``for_code``, anything else
otherwise) into a text payload that starts with its ``identifier`` header, and back.
That is the reference SDK's contract, kept name for name.  Two helper bases let a
strategy say what its body natively is, so framing can carry it without the strategy
caring which envelope is in use:

* ``BytesStrategy`` -- the body is bytes (pickle, dill, msgpack); the text envelope
  carries it base64-encoded.
* ``TextStrategy`` -- the body is text (JSON, source code); it travels as is.

Every strategy works in both envelopes.  ``serialize`` / ``deserialize`` make and
read text payloads; ``to_frames`` / ``from_frames`` make and read the body and
out-of-band buffers of a binary message (``freight.serialize.binary``).  The defaults
derive each pair from the other, so a strategy implements whichever is natural and a
buffer-aware one overrides ``to_frames`` / ``from_frames`` to hand large buffers to the
envelope uncopied.

Strategies are stateless: one instance per registry serves every caller and thread.
"""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import Flag, auto
from typing import Any, ClassVar, NamedTuple

from freight.serialize.b64 import (
    Base64Reader,
    BinaryReader,
    decode_base64,
    encode_base64_parts,
)
from freight.serialize.binary import BufferLike
from freight.serialize.errors import (
    DeserializationError,
    MemberFailed,
    SerializationError,
)
from freight.serialize.text import IDENTIFIER_LENGTH, pack_buffers, unpack_buffers

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
            f"{owner}.identifier must end with a newline character: two characters"
            f" followed by a newline, got {identifier!r}"
        )
    if not identifier.isascii():
        raise ValueError(
            f"{owner}.identifier must be ASCII (the binary header holds it in 3"
            f" bytes), got {identifier!r}"
        )
    return identifier


class Property(Flag):
    """What a strategy promises; callers and policies select strategies by these.

    Combine with ``|``; test with ``in`` (``Property.PORTABLE in s.properties``).
    """

    #: Decoding a payload from a hostile peer cannot execute code or exhaust memory
    #: beyond the configured limits (JSON, msgpack: yes; pickle, dill, source: no).
    SAFE_FOR_UNTRUSTED = auto()
    #: A payload made on one Python version decodes on another (3.x to 3.y).
    PORTABLE = auto()
    #: Large buffers travel as out-of-band frames, uncopied on encode and returned
    #: as views of the received memory on decode.
    ZERO_COPY = auto()
    #: Serializing the same value again, in any process, gives a byte-identical
    #: payload (same Python and library versions): nothing depends on hash seeds,
    #: memory addresses or time, so payloads can be hashed, cached and compared.
    DETERMINISTIC = auto()
    #: Payloads are a documented format other languages read and write.
    CROSS_LANGUAGE = auto()


NO_PROPERTIES = Property(0)


class BodyEncoder(NamedTuple):
    """A strategy's direct encoder for some exact types (``body_encoder``)."""

    #: The types it covers, exactly (not their subclasses).
    types: frozenset[type]
    #: Called as ``function(obj, *args)``; returns the body as ``bytes``.
    function: Callable[..., bytes]
    args: tuple[Any, ...] = ()


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
    #: The body is UTF-8 text in the binary envelope (recorded in its header flags).
    text_body: ClassVar[bool] = True
    #: What this strategy promises (see ``Property``); nothing unless declared.
    properties: ClassVar[Property] = NO_PROPERTIES
    #: Distributions whose versions shape this strategy's payloads; binary headers
    #: record them so a failure to decode can say what made the payload.
    libraries: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "identifier" in cls.__dict__:
            validate_identifier(cls.__dict__["identifier"], cls.__name__)
        if "for_code" in cls.__dict__ and not isinstance(cls.for_code, bool):
            raise TypeError(f"{cls.__name__}.for_code must be a bool")
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if not isinstance(cls.properties, Property):
            raise TypeError(f"{cls.__name__}.properties must be a Property flag")

    @abstractmethod
    def serialize(self, data: Any) -> str:
        """Return ``identifier + body`` for ``data``; raise if it cannot."""

    @abstractmethod
    def deserialize(self, payload: str) -> Any:
        """Return the object a payload made by ``serialize`` represents."""

    # -- the reference's lookups, answered by the default registry -----------------

    @classmethod
    def get_cached_by_id(cls, identifier: str) -> SerializationStrategy | None:
        """The registered strategy instance whose header is ``identifier``
        (``"01\\n"``, newline included), or ``None``.

        The reference SDK's name.  freight answers from the default registry
        (``freight.serialize.default_registry()``): a strategy is known once a
        plugin registers it, not when its class is defined.
        """
        if not isinstance(identifier, str):
            return None
        from freight.serialize.registry import default_registry

        rec = default_registry().by_identifier(identifier)
        return None if rec is None else rec.strategy

    @classmethod
    def get_cached_by_class(
        cls, type_: type[SerializationStrategy]
    ) -> SerializationStrategy:
        """The registered instance of the strategy class ``type_`` (the one the
        registry and every ``ComputeSerializer`` use).

        The reference SDK's name.  Raises ``SerdeError`` if ``type_`` is not a
        registered strategy class (the reference raises ``KeyError``).
        """
        from freight.serialize.registry import default_registry

        return default_registry().resolve(type_).strategy

    def chomp(self, payload: str) -> str:
        """Return ``payload`` without this strategy's header.

        Raises ``DeserializationError`` if ``payload`` is not a str that starts
        with ``identifier``.
        """
        if not isinstance(payload, str):
            raise DeserializationError(
                f"{type(self).__name__} expects a str payload, got"
                f" {type(payload).__name__}"
            )
        if not payload.startswith(self.identifier):
            raise DeserializationError(
                f"payload does not start with identifier {self.identifier!r}"
                f" ({type(self).__name__}); it starts with"
                f" {payload[:IDENTIFIER_LENGTH]!r}"
            )
        return payload[IDENTIFIER_LENGTH:]

    def library_versions(self) -> dict[str, str]:
        """``{distribution: version}`` for each of ``libraries``."""
        return {name: _distribution_version(name) for name in self.libraries}

    def to_frames(self, obj: Any) -> tuple[BufferLike, list[BufferLike]]:
        """The binary envelope's body and out-of-band buffers for ``obj``.

        Default: the text payload's body as UTF-8, and no buffers.
        """
        payload = self.serialize(obj)
        if not payload.startswith(self.identifier):
            raise SerializationError(
                f"{type(self).__name__}.serialize() returned a payload without its"
                f" identifier {self.identifier!r}"
            )
        return payload[IDENTIFIER_LENGTH:].encode("utf-8", "surrogatepass"), []

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        """The object that ``to_frames`` turned into ``body`` and ``buffers``.

        ``body`` is a read-only bytes-like object: ``bytes`` when it is small
        (``binary.SMALL_BODY``) or was received as a ``bytes`` frame, otherwise a
        ``memoryview`` of the received memory.  Use only what both types offer
        (``len``, slicing, ``bytes(body)``, ``memoryview(body)``, ``str(body,
        encoding)``, any function taking a buffer).  ``buffers`` are views that may
        refer to the received frames; a decoder that keeps them (zero-copy) hands
        the caller objects backed by that memory.
        """
        _no_buffers(self, buffers)
        return self.deserialize(self.identifier + _utf8(body))

    def body_decoder(self) -> Callable[[bytes | memoryview], Any]:
        """A function that decodes the body of a message with no out-of-band
        buffers, exactly as ``from_frames(body, [])`` would (the default).

        The facade asks when it learns a header (once per message length it has
        seen), then calls the function for each later ``bytes`` blob or list of
        two ``bytes`` frames with that header; a strategy whose decoding is one C
        call (say, ``pickle.loads``) returns that function and saves two Python
        calls per message.
        """

        def decode(body: bytes | memoryview) -> Any:
            return self.from_frames(body, [])

        return decode

    def body_encoder(self) -> BodyEncoder | None:
        """How to encode some objects to a buffer-free body with no Python call of
        the strategy's own, or ``None`` (the default: everything goes through
        ``to_frames``).

        A serializer asks its *data* strategy once per setting and, in the binary
        envelope, calls ``function(obj, *args)`` for every object whose type is
        exactly one of ``types`` (say, ``int``: one call of ``pickle.dumps``);
        types whose instances are callable are left out, as those go to the code
        strategy.  The result must be the ``bytes`` body ``to_frames``
        would give, with no buffers; an exception or any other result sends the
        object through ``to_frames`` instead.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier!r}>"


@functools.cache
def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _utf8(body: bytes | memoryview) -> str:
    try:
        return str(body, "utf-8", "surrogatepass")
    except UnicodeDecodeError as e:
        raise DeserializationError(f"the text body is not UTF-8: {e}") from e


def _no_buffers(strategy: SerializationStrategy, buffers: list[memoryview]) -> None:
    if buffers:
        raise DeserializationError(
            f"{type(strategy).__name__} takes no out-of-band buffers, got"
            f" {len(buffers)}"
        )


#: Text payloads of ``BytesStrategy`` s that read files (``decode_from``) are
#: decoded as a stream from this many characters on: the decoded body then never
#: exists whole, and a large buffer in it is decoded once, into its object.
STREAM_TEXT = 64 << 10


class BytesStrategy(SerializationStrategy):
    """A strategy whose body is natively bytes; text payloads carry it as base64."""

    text_body = False

    @abstractmethod
    def encode(self, obj: Any) -> bytes:
        """Return the body bytes for ``obj``."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """Return the object that ``encode`` turned into ``data``."""

    def encode_parts(self, obj: Any) -> Sequence[Any]:
        """The body for ``obj`` as bytes-like parts (or ``pickle.PickleBuffer`` s)
        whose concatenation is ``encode(obj)``.

        The text envelope base64-encodes the parts where they lie, so a strategy
        that can hand over large buffers uncopied (a pickler writing to a file
        passes them to ``write`` as they are) overrides this.  Default:
        ``[encode(obj)]``.
        """
        return [self.encode(obj)]

    def decode_from(self, file: BinaryReader) -> Any:
        """``decode`` of the body that ``file`` reads (``read``, ``readinto``,
        ``readline``), for bodies of at least ``STREAM_TEXT`` base64 characters.

        A strategy whose decoder reads files (``pickle.Unpickler``) overrides this
        so large payloads are decoded straight into the objects that keep them.
        Default: ``decode(file.read())``.
        """
        return self.decode(file.read())

    def serialize(self, data: Any) -> str:
        return encode_base64_parts(self.identifier, self.encode_parts(data))

    def deserialize(self, payload: str) -> Any:
        if type(payload) is not str or not payload.startswith(self.identifier):
            self.chomp(payload)  # raises, saying why (or passes a str subclass)
        if len(payload) < STREAM_TEXT or type(self).decode_from is _DECODE_FROM:
            return self.decode(decode_base64(payload[IDENTIFIER_LENGTH:]))
        file = Base64Reader(payload, IDENTIFIER_LENGTH)
        obj = self.decode_from(file)
        file.finish()
        return obj

    def to_frames(self, obj: Any) -> tuple[BufferLike, list[BufferLike]]:
        return self.encode(obj), []

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        _no_buffers(self, buffers)
        return self.decode(bytes(body))


_DECODE_FROM = BytesStrategy.decode_from


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

    def to_frames(self, obj: Any) -> tuple[BufferLike, list[BufferLike]]:
        return self.encode_text(obj).encode("utf-8", "surrogatepass"), []

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        _no_buffers(self, buffers)
        return self.decode_text(_utf8(body))


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
        """The members' payloads; if none succeeds, raises ``SerializationError``
        from an ``ExceptionGroup`` of ``MemberFailed``, one per member, each from
        that member's error."""
        buffers: list[str] = []
        failures: list[MemberFailed] = []
        for member in self._members.values():
            try:
                buffers.append(member.serialize(data))
            except Exception as e:
                failures.append(MemberFailed.wrapping(member, e))
                logger.debug("%s could not serialize: %s", member.name, e)
        if not buffers:
            # "Serialization failed" is the reference's phrase, kept for callers
            # that match on it.
            raise SerializationError(
                f"Serialization failed: no member of {type(self).__name__} could"
                " serialize the object:\n* " + "\n* ".join(map(str, failures))
            ) from ExceptionGroup(f"{type(self).__name__} members", failures)
        return self.identifier + pack_buffers(buffers)

    def deserialize(self, payload: str) -> Any:
        """The first member part that decodes; if none does, raises
        ``DeserializationError`` (from an ``ExceptionGroup`` of ``MemberFailed``
        when members were tried)."""
        errors: list[str] = []
        failures: list[MemberFailed] = []
        for part in unpack_buffers(self.chomp(payload)):
            header = part[:IDENTIFIER_LENGTH]
            member = self._members.get(header)
            if member is None:
                # The reference's phrases for these two cases, with freight's detail.
                if "\n" not in part:
                    errors.append(
                        "Malformed data (no newline separator): part"
                        f" {_excerpt(part)} has no identifier header, so it is not"
                        f" a member of {type(self).__name__}"
                    )
                else:
                    ident = _excerpt(part.partition("\n")[0], 16)
                    errors.append(
                        f"Invalid strategy identifier {ident}: header {header!r} is"
                        f" not a member of {type(self).__name__}"
                    )
                continue
            try:
                return member.deserialize(part)
            except Exception as e:
                failures.append(MemberFailed.wrapping(member, e))
                errors.append(str(failures[-1]))
                logger.debug("%s could not deserialize: %s", member.name, e)
        error = DeserializationError(
            f"Deserialization failed: no part of the {type(self).__name__} payload"
            " could be deserialized:\n* "
            + ("\n* ".join(errors) if errors else "the payload holds no parts")
        )
        if failures:
            raise error from ExceptionGroup(f"{type(self).__name__} members", failures)
        raise error


def _excerpt(text: str, limit: int = 50) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
