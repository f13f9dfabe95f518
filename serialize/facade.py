"""``ComputeSerializer``: pick strategies, enforce the decode allowlist, pack payloads.

The reference SDK's facade, call for call: ``serialize`` picks the code or the data
strategy by ``callable()``, ``deserialize`` dispatches on the identifier header after
checking it against the allowlist (so a disallowed decoder never sees a byte of the
body), and ``pack_buffers`` / ``unpack_and_deserialize`` / ``check_strategies`` carry
a function with its arguments.
"""

from __future__ import annotations

import logging
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any

from freight.serialize import binary, text
from freight.serialize.binary import BufferLike
from freight.serialize.cache import FunctionCache
from freight.serialize.errors import (
    DeserializationError,
    SerdeError,
    SerializationError,
)
from freight.serialize.registry import (
    RegisteredStrategy,
    Strategylike,
    StrategyRegistry,
    default_registry,
)
from freight.serialize.strategy import SerializationStrategy

logger = logging.getLogger(__name__)

#: The strategies used when none is given, named through the registry.
DEFAULT_CODE_STRATEGY = "DillCode"
DEFAULT_DATA_STRATEGY = "DillDataBase64"


class AllowlistWildcard(StrEnum):
    """Allowlist entries that allow every selectable strategy of one kind."""

    #: Every registered *code* strategy that can be selected.
    CODE = "freight.*Code"
    #: Every registered *data* strategy that can be selected.
    DATA = "freight.*Data"


DeserializerAllowlist = Iterable[Strategylike | AllowlistWildcard]


def validate_strategylike(
    value: Strategylike,
    *,
    for_code: bool | None = None,
    registry: StrategyRegistry | None = None,
) -> RegisteredStrategy:
    """Resolve ``value`` to a selectable registered strategy of the wanted kind.

    Raises ``SerdeError`` if it is unknown, of the other kind (code vs data), or
    decode-only.  Warns with ``DeprecationWarning`` if it is deprecated.
    """
    rec = (registry or default_registry()).resolve(value)
    if for_code is not None and rec.for_code != for_code:
        want, got = ("code", "data") if for_code else ("data", "code")
        raise SerdeError(
            f"{rec.cls.__name__} is a {got} serialization strategy, expected a"
            f" {want} strategy"
        )
    if rec.strategy.decode_only:
        raise SerdeError(
            f"{rec.cls.__name__} is decode-only: it reads old payloads but cannot"
            " be selected to make new ones"
        )
    if rec.strategy.deprecated:
        warnings.warn(
            f"{rec.cls.__name__} is deprecated", DeprecationWarning, stacklevel=3
        )
    return rec


def parse_allowlist(
    unvalidated: DeserializerAllowlist | None,
    registry: StrategyRegistry | None = None,
) -> set[type[SerializationStrategy]]:
    """The strategy classes an allowlist admits; empty means "allow everything".

    Raises ``SerdeError`` if an entry is unknown, a wildcard is mixed with specific
    entries of its kind, or the list lacks a code or a data entry.
    """
    if not unvalidated:
        return set()
    registry = registry or default_registry()
    entries = list(unvalidated)
    validated: set[type[SerializationStrategy]] = set()
    wildcards: set[AllowlistWildcard] = set()
    for value in entries:
        if isinstance(value, str) and value in _WILDCARD_VALUES:
            wildcards.add(AllowlistWildcard(value))
        else:
            validated.add(validate_strategylike(value, registry=registry).cls)
    for wildcard in wildcards:
        for_code = wildcard is AllowlistWildcard.CODE
        if any(cls.for_code == for_code for cls in validated):
            raise SerdeError(
                f"cannot mix {wildcard.value!r} with specific deserializers of the"
                f" same kind (got {entries})"
            )
        validated.update(
            rec.cls
            for rec in registry
            if rec.for_code == for_code and not rec.strategy.decode_only
        )
    if len({cls.for_code for cls in validated}) != 2:
        raise SerdeError(
            "deserialization allowlists must contain at least one code and one data"
            f" deserializer or wildcard (got {entries})"
        )
    return validated


_WILDCARD_VALUES = frozenset(w.value for w in AllowlistWildcard)


class ComputeSerializer:
    """Serializes functions and data with chosen strategies; decodes any allowed one."""

    def __init__(
        self,
        strategy_code: Strategylike | None = None,
        strategy_data: Strategylike | None = None,
        *,
        allowed_deserializer_types: DeserializerAllowlist | None = None,
        registry: StrategyRegistry | None = None,
        cache_code: bool = True,
    ) -> None:
        """Strategies may be given as instance, class, identifier, registered name
        or import path; ``None`` means freight's default.  An allowlist, if given,
        must name at least one code and one data strategy (or wildcard); only those
        may decode.  ``registry`` defaults to the process-wide one.  With
        ``cache_code`` (the default) a function serialized again is a cache hit;
        ``freight.serialize.cache`` says when an entry is reused.

        Raises ``SerdeError`` for an unknown, decode-only or wrong-kind strategy.
        """
        self.registry = registry or default_registry()
        self._cache = FunctionCache() if cache_code else None
        # Validated 12-byte binary header prefixes -> the strategy that decodes them.
        self._decoders: dict[bytes, SerializationStrategy] = {}
        self._prefixes: dict[int, bytes] = {}
        self.code_serializer: SerializationStrategy = self._select(
            strategy_code, DEFAULT_CODE_STRATEGY, for_code=True
        )
        self.data_serializer: SerializationStrategy = self._select(
            strategy_data, DEFAULT_DATA_STRATEGY, for_code=False
        )
        self.allowed_deserializer_types = parse_allowlist(
            allowed_deserializer_types, self.registry
        )

    def _select(
        self, value: Strategylike | None, default: str, *, for_code: bool
    ) -> SerializationStrategy:
        if value is None:
            return validate_strategylike(
                default, for_code=for_code, registry=self.registry
            ).strategy
        rec = validate_strategylike(value, for_code=for_code, registry=self.registry)
        # A configured instance the caller passed is used as given.
        return value if isinstance(value, SerializationStrategy) else rec.strategy

    # -- one payload ---------------------------------------------------------------

    def serialize(self, data: Any) -> str:
        """Return the text payload for ``data``: the code strategy's if it is
        callable, the data strategy's otherwise.

        Raises ``SerializationError`` (with the strategy's error as cause).
        """
        if not callable(data):
            strategy = self.data_serializer
            try:
                return strategy.serialize(data)
            except Exception as e:
                raise _encode_failure(strategy, e) from e
        strategy = self.code_serializer
        cache = self._cache
        if cache is not None:
            cached: str | None = cache.get(data, strategy.identifier, "text")
            if cached is not None:
                return cached
        try:
            payload = strategy.serialize(data)
        except Exception as e:
            raise _encode_failure(strategy, e) from e
        if cache is not None:
            cache.put(data, strategy.identifier, "text", payload)
        return payload

    def clear_cache(self) -> None:
        """Forget every cached function payload (see ``freight.serialize.cache``)."""
        if self._cache is not None:
            self._cache.clear()

    def deserialize(self, payload: str) -> Any:
        """Return the object a text payload represents.

        The header is checked against the allowlist before the body is touched.
        Raises ``DeserializationError`` saying what was wrong: not a str, a
        malformed or unknown header, a disallowed strategy, or the strategy's own
        failure (its name in the message, its exception chained).
        """
        if not isinstance(payload, str):
            hint = " (binary payloads go to loads())" if _is_bytes(payload) else ""
            raise DeserializationError(
                f"expected a str payload, got {type(payload).__name__}{hint}"
            )
        rec = self.registry.by_identifier(payload[: text.IDENTIFIER_LENGTH])
        if rec is None:
            raise DeserializationError(text.describe_bad_header(payload))
        strategy = rec.strategy
        if self.allowed_deserializer_types:
            self.assert_deserializer_allowed(strategy)
        try:
            return strategy.deserialize(payload)
        except Exception as e:
            raise _decode_failure(strategy, e) from e

    @staticmethod
    def serialize_from_list(data: Any, strategies: Iterable[Strategylike]) -> str:
        """Serialize with the first of ``strategies`` that accepts ``data``.

        Falls back to the defaults if ``strategies`` is empty.  Raises
        ``SerializationError`` chaining an ``ExceptionGroup`` of every failure.
        """
        candidates = list(strategies or ()) or [
            DEFAULT_DATA_STRATEGY,
            DEFAULT_CODE_STRATEGY,
        ]
        exceptions: list[Exception] = []
        for candidate in candidates:
            try:
                rec = validate_strategylike(candidate, for_code=callable(data))
                strategy = (
                    candidate
                    if isinstance(candidate, SerializationStrategy)
                    else rec.strategy
                )
                return strategy.serialize(data)
            except Exception as e:
                exceptions.append(e)
        group = ExceptionGroup("strategy failures", exceptions)
        raise SerializationError(
            "all strategies failed: "
            + "; ".join(f"{type(e).__name__}: {e}" for e in exceptions)
        ) from group

    # -- the binary envelope ----------------------------------------------------------

    def dumps(self, obj: Any) -> bytes:
        """The binary message for ``obj`` as one blob (its frames concatenated).

        Out-of-band buffers are copied once, into the blob; ``dumps_frames``
        avoids even that.  Raises ``SerializationError``.
        """
        return b"".join(self.dumps_frames(obj))

    def dumps_frames(self, obj: Any) -> list[BufferLike]:
        """The binary message for ``obj`` as frames: ``[header, body, *buffers]``.

        Nothing is copied: buffers are the objects' own memory, for transports
        that send a list of buffers (``socket.sendmsg``, ``writev``, multipart
        messages).  Keep ``obj`` unchanged until the frames are sent.
        """
        if not callable(obj):
            strategy = self.data_serializer
            try:
                body, buffers = strategy.to_frames(obj)
            except Exception as e:
                raise _encode_failure(strategy, e) from e
            return [self._header(strategy, body, buffers), body, *buffers]
        strategy = self.code_serializer
        cache = self._cache
        if cache is not None:
            cached: list[BufferLike] | None = cache.get(
                obj, strategy.identifier, "frames"
            )
            if cached is not None:
                return list(cached)
        try:
            body, buffers = strategy.to_frames(obj)
        except Exception as e:
            raise _encode_failure(strategy, e) from e
        frames = [self._header(strategy, body, buffers), body, *buffers]
        if cache is not None:
            cache.put(obj, strategy.identifier, "frames", tuple(frames))
        return frames

    def _header(
        self,
        strategy: SerializationStrategy,
        body: BufferLike,
        buffers: list[BufferLike],
    ) -> bytes:
        prefix = self._prefixes.get(id(strategy))
        if prefix is None:
            prefix = binary.message_prefix(
                strategy.identifier, text_body=strategy.text_body
            )
            self._prefixes[id(strategy)] = prefix
        return binary.message_header(prefix, body, buffers)

    def loads(self, data: BufferLike) -> Any:
        """The object a ``dumps`` blob represents.

        Accepts ``bytes``, ``bytearray`` or ``memoryview``; out-of-band buffers come
        back as views of ``data`` where the type allows (numpy arrays, memoryviews),
        read-only unless ``data`` is writable.  The header is checked against the
        allowlist before any of the body is decoded.  Raises
        ``DeserializationError``.
        """
        return self._decode(binary.parse_blob(data))

    def loads_frames(self, frames: Sequence[BufferLike]) -> Any:
        """The object a ``dumps_frames`` frame list represents (see ``loads``)."""
        if isinstance(frames, bytes | bytearray | memoryview | str):
            raise DeserializationError(
                f"loads_frames() takes a sequence of frames, got"
                f" {type(frames).__name__}; a single blob goes to loads()"
            )
        return self._decode(binary.parse_message(frames))

    def _decode(self, message: binary.Message) -> Any:
        strategy = self._decoders.get(message.prefix)
        if strategy is None:
            strategy = self._decoder_for(message)
        try:
            return strategy.from_frames(message.body, message.buffers)
        except Exception as e:
            raise _decode_failure(strategy, e) from e

    def _decoder_for(self, message: binary.Message) -> SerializationStrategy:
        rec = self.registry.by_identifier(message.identifier)
        if rec is None:
            raise DeserializationError(
                f"unknown strategy identifier {message.identifier!r} in the binary"
                " header"
            )
        if self.allowed_deserializer_types:
            self.assert_deserializer_allowed(rec.strategy)
        self._decoders[message.prefix] = rec.strategy
        return rec.strategy

    @staticmethod
    def pack_frames(messages: Iterable[Sequence[BufferLike]]) -> list[BufferLike]:
        """Bundle several ``dumps_frames`` messages into one frame list, uncopied.

        ``b"".join()`` of the result is the bundle's single-blob form.
        """
        return binary.pack_frames(messages)

    def unpack_frames_and_deserialize(
        self, frames: Sequence[BufferLike] | BufferLike
    ) -> list[Any]:
        """Decode a bundle of exactly three messages (function, args, kwargs), given
        as frames or as one blob; the binary twin of ``unpack_and_deserialize``.

        The whole bundle's framing is checked before anything is decoded.
        """
        messages = binary.unpack_frames(frames)
        if len(messages) != 3:
            raise DeserializationError(
                "unpack_frames_and_deserialize expects 3 messages (function, args,"
                f" kwargs), got {len(messages)}"
            )
        return [self._decode(m) for m in messages]

    # -- several payloads ------------------------------------------------------------

    @staticmethod
    def pack_buffers(buffers: list[str]) -> str:
        """Join payloads as ``f"{len(b)}\\n{b}"``, the reference's format."""
        return text.pack_buffers(buffers)

    @staticmethod
    def unpack_buffers(packed_buffer: str) -> list[str]:
        """Split ``pack_buffers`` output; ``DeserializationError`` if malformed."""
        return text.unpack_buffers(packed_buffer)

    def unpack_and_deserialize(self, packed_buffer: str) -> list[Any]:
        """Unpack exactly three payloads (function, args, kwargs) and decode them.

        The framing and the count are checked before anything is decoded.
        """
        buffers = text.unpack_buffers(packed_buffer)
        if len(buffers) != 3:
            raise DeserializationError(
                f"unpack_and_deserialize expects 3 packed buffers (function, args,"
                f" kwargs), got {len(buffers)}"
            )
        return [self.deserialize(b) for b in buffers]

    def check_strategies(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> list[Any]:
        """Round-trip ``function``, ``args`` and ``kwargs`` through this serializer.

        Returns ``[function, args, kwargs]`` as the receiving side would see them.
        Raises ``SerializationError`` or ``DeserializationError`` (cause chained).
        """
        try:
            packed = self.pack_buffers(
                [self.serialize(function), self.serialize(args), self.serialize(kwargs)]
            )
        except Exception as e:
            raise SerializationError(
                f"check_strategies failed to serialize: {e}"
            ) from e
        try:
            return self.unpack_and_deserialize(packed)
        except Exception as e:
            raise DeserializationError(
                f"check_strategies failed to deserialize: {e}"
            ) from e

    # -- policy --------------------------------------------------------------------

    def assert_deserializer_allowed(self, strategy: SerializationStrategy) -> None:
        """Raise ``DeserializationError`` if an allowlist is set and excludes
        ``strategy``'s class."""
        allowed = self.allowed_deserializer_types
        if not allowed or type(strategy) in allowed:
            return
        kind = "Code" if strategy.for_code else "Data"
        payload_kind = "function" if strategy.for_code else "arguments"
        names = ", ".join(sorted(cls.__name__ for cls in allowed))
        msg = (
            f"\n{kind} serializer {type(strategy).__name__} disabled by current"
            f" configuration.\nThe current configuration requires the *{payload_kind}*"
            f" to be serialized with one of the allowed {kind} classes:\n\n"
            f"    Allowed serializers: {names}"
        )
        raise DeserializationError(textwrap.indent(msg, " "))


def _encode_failure(
    strategy: SerializationStrategy, error: Exception
) -> SerializationError:
    kind = "Code" if strategy.for_code else "Data"
    return SerializationError(
        f"{kind} serialization strategy {type(strategy).__name__} failed:"
        f" {type(error).__name__}: {error}"
    )


def _decode_failure(
    strategy: SerializationStrategy, error: Exception
) -> DeserializationError:
    """A ``DeserializationError`` for ``strategy``'s failure, naming the strategy
    unless ``error`` already is one that does."""
    name = type(strategy).__name__
    if isinstance(error, DeserializationError) and name in error.reason:
        return error
    return DeserializationError(
        f"{name} ({strategy.identifier!r}) failed to deserialize the payload:"
        f" {type(error).__name__}: {error}"
    )


def _is_bytes(value: object) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)
