"""One strategy, every envelope: ``StrategyCodec`` and the ``Envelope`` objects.

Names.  ``freight.serialize.codecs`` means *frame compression* codecs (zstd, lz4),
so the object here is a ``StrategyCodec``: the codec *of one serialization
strategy*.  An ``Envelope`` is one way a message travels:

* ``TEXT`` -- the reference's ``header + str body`` payload (``serialize`` /
  ``deserialize``);
* ``BLOB`` -- freight's binary message as one ``bytes`` (``dumps`` / ``loads``);
* ``FRAMES`` -- the binary message as ``[header, body, *buffers]``
  (``dumps_frames`` / ``loads_frames``).

``ENVELOPES`` is the tuple of the three.  Each envelope is a ``str`` subclass equal
to its name (``TEXT == "text"``), so code that names envelopes by string keeps
working; everything an envelope does is a method of its class, so a new envelope is
one subclass of ``Envelope`` and nothing else compares names.

``StrategyCodec(strategy, limits=..., policy=..., compression=...)`` encodes and
decodes messages of one strategy in any envelope, with the checks, limits and
error wrapping of ``ComputeSerializer`` -- which uses it: the facade's per-strategy
steps (encoding with failures wrapped, decoding under the limits with failures
wrapped, message headers, the decoders its fast path learns) are this object's
methods, so there is one implementation.  The facade keeps what is about *several*
strategies: choosing by ``callable()``, the allowlist, the function cache, and its
fast path around the data strategy.

A codec's allowlist is its one strategy: a payload whose header names another is
refused (``StrategyNotAllowed``) before its body is read, as is one the policy
refuses to decode.  A codec does not refuse a decode-only strategy: choosing
strategies is the facade's job; a codec speaks whatever its strategy can.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

from freight.serialize import binary, codecs, fastpath, stream, text
from freight.serialize.binary import BufferLike
from freight.serialize.errors import (
    DeserializationError,
    SerializationError,
    StrategyNotAllowed,
    raise_from,
)
from freight.serialize.limits import DEFAULT_LIMITS, Limits, run_within
from freight.serialize.policy import Policy
from freight.serialize.strategy import Property, SerializationStrategy

__all__ = [
    "BLOB",
    "ENVELOPES",
    "FRAMES",
    "TEXT",
    "BlobEnvelope",
    "Envelope",
    "FramesEnvelope",
    "Known",
    "StrategyCodec",
    "TextEnvelope",
    "VersionMismatchWarning",
    "envelope_named",
    "envelope_of",
]

_PYTHON = sys.version_info[:2]


class VersionMismatchWarning(UserWarning):
    """A code payload made by another Python minor version is being decoded with a
    strategy that is not portable across versions."""


# -- envelopes -------------------------------------------------------------------


class Envelope(str):
    """One way a message travels: how a payload is made, read, received and sized.

    An envelope is a ``str`` equal to its ``name`` (one instance per class, made by
    calling the class), so names and envelopes compare and hash alike.  Subclass it
    and define ``name``, ``dump`` and ``load`` for a new envelope; the other
    methods have defaults for a binary payload that is one bytes-like object.
    (``dump``/``load``, not ``encode``/``decode``: ``str.encode`` is taken.)
    """

    #: The envelope's name; the ``str`` value of its instance.
    name: ClassVar[str]
    #: Whether payloads are ``str`` (text) rather than binary.
    text: ClassVar[bool] = False
    #: Whether payloads are lists of frames rather than one object.
    framed: ClassVar[bool] = False

    def __new__(cls) -> Envelope:
        return super().__new__(cls, cls.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self)!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), ())

    def dump(self, codec: StrategyCodec, obj: Any) -> Any:
        """``obj``'s payload in this envelope, made by ``codec``."""
        raise NotImplementedError

    def load(self, codec: StrategyCodec, payload: Any) -> Any:
        """The object ``payload`` (in this envelope) represents, read by ``codec``."""
        raise NotImplementedError

    def wrap(self, frames: Sequence[BufferLike]) -> Any:
        """A payload of this envelope holding the binary message ``frames``
        (``[header, body, *buffers]``); text envelopes have none."""
        return b"".join(bytes(memoryview(f).cast("B")) for f in frames)

    def parse(self, payload: Any, limits: Limits = DEFAULT_LIMITS) -> binary.Message:
        """The binary message a payload holds (``DeserializationError`` if it is
        not one).  Text envelopes carry no binary message: ``TypeError``."""
        return binary.parse_blob(payload, limits)

    def received(self, payload: Any) -> Any:
        """``payload`` as a transport delivers it: ``bytes`` copies, so nothing
        decoded from it aliases the sender's objects."""
        return bytes(memoryview(payload).cast("B"))

    def canonical(self, payload: Any) -> str | bytes:
        """One ``str`` or ``bytes`` that compares payloads byte for byte."""
        return bytes(memoryview(payload).cast("B"))

    def size(self, payload: Any) -> int:
        """The payload's size: characters for text, bytes otherwise."""
        return memoryview(payload).nbytes

    def holds(self, payload: Any) -> bool:
        """Whether ``payload`` has this envelope's type (for a binary payload:
        any object with the buffer protocol, as ``loads`` takes)."""
        return not isinstance(payload, str) and is_buffer(payload)


class TextEnvelope(Envelope):
    """The reference's text payload: ``identifier + str body``."""

    name = "text"
    text = True

    def dump(self, codec: StrategyCodec, obj: Any) -> Any:
        return codec.serialize(obj)

    def load(self, codec: StrategyCodec, payload: Any) -> Any:
        return codec.deserialize(payload)

    def wrap(self, frames: Sequence[BufferLike]) -> Any:
        raise TypeError("the text envelope carries no binary message")

    def parse(self, payload: Any, limits: Limits = DEFAULT_LIMITS) -> binary.Message:
        raise TypeError("the text envelope carries no binary message")

    def received(self, payload: Any) -> Any:
        return payload

    def canonical(self, payload: Any) -> str | bytes:
        return str(payload)

    def size(self, payload: Any) -> int:
        return len(payload)

    def holds(self, payload: Any) -> bool:
        return isinstance(payload, str)


class BlobEnvelope(Envelope):
    """The binary message as one ``bytes`` (its frames concatenated)."""

    name = "blob"

    def dump(self, codec: StrategyCodec, obj: Any) -> Any:
        return codec.dumps(obj)

    def load(self, codec: StrategyCodec, payload: Any) -> Any:
        return codec.loads(payload)


class FramesEnvelope(Envelope):
    """The binary message as a frame list: ``[header, body, *buffers]``."""

    name = "frames"
    framed = True

    def dump(self, codec: StrategyCodec, obj: Any) -> Any:
        return codec.dumps_frames(obj)

    def load(self, codec: StrategyCodec, payload: Any) -> Any:
        return codec.loads_frames(payload)

    def wrap(self, frames: Sequence[BufferLike]) -> Any:
        return [bytes(memoryview(f).cast("B")) for f in frames]

    def parse(self, payload: Any, limits: Limits = DEFAULT_LIMITS) -> binary.Message:
        return binary.parse_message(list(payload), limits)

    def received(self, payload: Any) -> Any:
        return [bytes(memoryview(frame).cast("B")) for frame in payload]

    def canonical(self, payload: Any) -> str | bytes:
        return b"".join(bytes(memoryview(f).cast("B")) for f in payload)

    def size(self, payload: Any) -> int:
        return sum(memoryview(f).nbytes for f in payload)

    def holds(self, payload: Any) -> bool:
        return isinstance(payload, list | tuple)


TEXT = TextEnvelope()
BLOB = BlobEnvelope()
FRAMES = FramesEnvelope()
#: The built-in envelopes, in the order the kit goes through them.
ENVELOPES: tuple[Envelope, ...] = (TEXT, BLOB, FRAMES)
_BY_NAME = {str(e): e for e in ENVELOPES}


def envelope_named(envelope: str | Envelope) -> Envelope:
    """The envelope ``envelope`` names (an ``Envelope`` is returned as it is);
    ``ValueError`` for an unknown name."""
    if isinstance(envelope, Envelope):
        return envelope
    found = _BY_NAME.get(envelope) if isinstance(envelope, str) else None
    if found is None:
        names = tuple(map(str, ENVELOPES))
        raise ValueError(f"unknown envelope {envelope!r}; use one of {names}")
    return found


def envelope_of(payload: Any) -> Envelope:
    """The built-in envelope whose payloads have ``payload``'s type: a ``str`` is
    text, any other object with the buffer protocol a blob, a list or tuple
    frames; ``TypeError`` otherwise."""
    for envelope in ENVELOPES:
        if envelope.holds(payload):
            return envelope
    raise TypeError(
        "a payload is a str (text), bytes-like (a blob) or a list of frames, got"
        f" {type(payload).__name__}"
    )


# -- the single-strategy codec --------------------------------------------------------


class _Headers:
    """A strategy's message headers in this process: the constant prefix and
    metadata, and whole headers of buffer-free messages with small bodies, cached
    by body size (a small payload's header is then one dict lookup)."""

    __slots__ = ("meta", "prefix", "small")
    _SMALL = 1024

    def __init__(self, prefix: bytes, meta: bytes) -> None:
        self.prefix = prefix
        self.meta = meta
        #: Headers already made, by body size (sizes below ``_SMALL``).
        self.small: dict[int, bytes] = {}

    @classmethod
    def of(cls, strategy: SerializationStrategy) -> _Headers:
        return cls(
            binary.message_prefix(strategy.identifier, text_body=strategy.text_body),
            producer_metadata(strategy),
        )

    def header(self, size: int) -> bytes:
        """The header of a message with a ``size``-byte body and no buffers; made
        here when ``small`` does not hold it (callers look there first)."""
        header = binary.buffer_free_header(self.prefix, size, self.meta)
        if size < self._SMALL:
            self.small[size] = header
        return header


class Known(NamedTuple):
    """What decodes a message with a learned header prefix (``fastpath``)."""

    #: The strategy's ``body_decoder()`` under the codec's limits: for a
    #: message without out-of-band buffers.
    decode: Callable[[bytes | memoryview], Any]
    #: Its ``from_frames`` under the codec's limits: for one with buffers.
    decode_frames: Callable[[bytes | memoryview, list[memoryview]], Any]
    strategy: SerializationStrategy
    #: The codec's ``Limits.max_size`` and ``max_frames``, which the fast
    #: path checks against each message's lengths.
    max_size: int
    max_frames: int


class StrategyCodec:
    """Encodes and decodes messages of one strategy, in every envelope.

    ``limits`` bound what is decoded (``Limits``; the defaults if ``None``),
    ``policy`` may refuse the strategy for encoding (``SerializationError`` when
    encoding) or decoding (``DeserializationError`` when decoding, before any body
    is read), and ``compression`` compresses binary frames and says which frame
    codecs decode (``freight.serialize.codecs``; ``None``: compress nothing,
    decode every installed codec).

    Per envelope: ``serialize`` / ``deserialize`` (text), ``dumps`` / ``loads``
    (blob), ``dumps_frames`` / ``loads_frames`` (frames), or ``encode(obj,
    envelope)`` / ``decode(payload, envelope)`` with an ``Envelope`` or its name.
    Every failure is a ``SerdeError``: encoding raises ``SerializationError``,
    decoding ``DeserializationError``, naming the strategy, its cause chained.
    """

    def __init__(
        self,
        strategy: SerializationStrategy,
        *,
        limits: Limits | None = None,
        policy: Policy | None = None,
        compression: codecs.Compressionlike = None,
    ) -> None:
        if not isinstance(strategy, SerializationStrategy):
            raise TypeError(
                "StrategyCodec takes a SerializationStrategy instance,"
                f" got {strategy!r}"
            )
        self.strategy = strategy
        self.limits = limits_or_default(limits)
        self.policy = policy or Policy()
        settings = codecs.FrameCodecs.of(compression)
        self._compressor_codec = settings.resolved()  # SerdeError if unknown
        self.compression = settings
        policy = self.policy  # (a policy that requires nothing refuses nothing)
        self._encode_refusal = (
            policy.refusal(strategy, decoding=False) if policy.encode else None
        )
        self._decode_refusal = (
            policy.refusal(strategy, decoding=True) if policy.decode else None
        )
        self._heads: _Headers | None = None
        self._paths: tuple[Any, Any, Any, Any] | None = None

    def replace(
        self,
        *,
        limits: Limits | None = None,
        policy: Policy | None = None,
        compression: codecs.Compressionlike = None,
    ) -> StrategyCodec:
        """A codec of the same strategy under other settings (sharing the headers
        already made)."""
        other = StrategyCodec(
            self.strategy, limits=limits, policy=policy, compression=compression
        )
        other._heads = self._heads
        return other

    def __repr__(self) -> str:
        return f"StrategyCodec({self.strategy!r})"

    @property
    def identifier(self) -> str:
        return self.strategy.identifier

    @property
    def name(self) -> str:
        return self.strategy.name

    # -- in any envelope ----------------------------------------------------------

    def encode(self, obj: Any, envelope: str | Envelope = FRAMES) -> Any:
        """``obj``'s payload in ``envelope`` (an ``Envelope`` or its name)."""
        return envelope_named(envelope).dump(self, obj)

    def decode(self, payload: Any, envelope: str | Envelope | None = None) -> Any:
        """The object ``payload`` represents; the envelope is the one named, or
        the built-in one the payload's type says (``envelope_of``; a payload of
        none of their types is a ``DeserializationError``)."""
        if envelope is not None:
            return envelope_named(envelope).load(self, payload)
        try:
            chosen = envelope_of(payload)
        except TypeError as e:
            raise DeserializationError(str(e)) from None
        return chosen.load(self, payload)

    # -- text ---------------------------------------------------------------------

    def serialize(self, obj: Any) -> str:
        """The text payload for ``obj``; ``SerializationError`` naming the
        strategy (its error chained) if it fails or the policy refuses it."""
        if self._encode_refusal:
            raise SerializationError(self._encode_refusal)
        strategy = self.strategy
        try:
            return strategy.serialize(obj)
        except Exception as e:
            raise encode_failure(strategy, e) from e

    def deserialize(self, payload: str) -> Any:
        """The object a text payload represents.  The header is checked (this
        strategy's, and not refused by the policy) before the body is read."""
        if not isinstance(payload, str):
            hint = " (binary payloads go to loads())" if is_buffer(payload) else ""
            raise DeserializationError(
                f"expected a str payload, got {type(payload).__name__}{hint}"
            )
        self.check_identifier(payload[: text.IDENTIFIER_LENGTH], payload)
        return self.decode_text(payload)

    def decode_text(self, payload: str) -> Any:
        """Decode a text payload whose header was checked: its size against the
        limits, then the strategy's ``deserialize`` under them."""
        limits = self.limits
        if len(payload) > limits.max_size:
            limits.check_size(len(payload), "the text payload")
        strategy = self.strategy
        try:
            if limits is DEFAULT_LIMITS:
                return strategy.deserialize(payload)
            return run_within(limits, strategy.deserialize, payload)
        except Exception as e:
            raise_from(decode_failure(strategy, e), e)

    def check_identifier(self, identifier: str, payload: str = "") -> None:
        """Raise ``DeserializationError`` unless ``identifier`` is this strategy's
        and the policy lets it decode: malformed (``describe_bad_header``),
        another strategy's (``StrategyNotAllowed``), or refused."""
        strategy = self.strategy
        if identifier != strategy.identifier:
            if text.describe_bad_header(payload or identifier).startswith("unknown"):
                raise StrategyNotAllowed(
                    f"this StrategyCodec decodes only {type(strategy).__name__}"
                    f" ({strategy.identifier!r}) payloads, got one of"
                    f" {identifier!r}",
                    identifier=identifier,
                    strategy=strategy.name,
                )
            raise text.bad_header_error(payload or identifier)
        self.check_policy()

    def check_policy(self) -> None:
        """Raise ``DeserializationError`` if the policy refuses this strategy as
        a decoder."""
        if self._decode_refusal:
            raise DeserializationError(self._decode_refusal)

    # -- binary: encoding ---------------------------------------------------------

    @property
    def headers(self) -> _Headers:
        """The constant header prefix and metadata of this strategy's messages."""
        heads = self._heads
        if heads is None:
            heads = self._heads = _Headers.of(self.strategy)
        return heads

    def frames(self, obj: Any) -> tuple[Any, ...]:
        """``(header, body, *buffers)`` for ``obj`` from ``strategy.to_frames``,
        uncompressed; ``SerializationError`` naming the strategy."""
        if self._encode_refusal:
            raise SerializationError(self._encode_refusal)
        strategy = self.strategy
        try:
            body, buffers = strategy.to_frames(obj)
        except Exception as e:
            raise encode_failure(strategy, e) from e
        try:
            return self.assemble(body, buffers)
        except Exception as e:
            raise encode_failure(strategy, e) from e

    def assemble(self, body: BufferLike, buffers: list[BufferLike]) -> tuple[Any, ...]:
        """``(header, body, *buffers)`` for a message this strategy made."""
        heads = self._heads or self.headers
        if buffers:
            header = binary.message_header(heads.prefix, body, buffers, heads.meta)
            return (header, body, *buffers)
        size = len(body) if type(body) is bytes else binary.nbytes(body)
        return (heads.small.get(size) or heads.header(size), body)

    def dumps(self, obj: Any) -> bytes:
        """The binary message for ``obj`` as one blob (see ``dumps_frames``)."""
        return self._fast_paths()[0](obj)  # type: ignore[no-any-return]

    def dumps_frames(self, obj: Any) -> list[BufferLike]:
        """The binary message for ``obj`` as ``[header, body, *buffers]``, buffers
        uncopied; a type ``body_encoder()`` covers is encoded by it, as the facade
        does."""
        return self._fast_paths()[1](obj)  # type: ignore[no-any-return]

    # -- binary: decoding ---------------------------------------------------------

    def loads(self, data: BufferLike) -> Any:
        """The object a ``dumps`` blob represents (out-of-band buffers as views of
        ``data``).  The header is checked before the body is read."""
        return self._fast_paths()[2](data)

    def loads_frames(self, frames: Sequence[BufferLike]) -> Any:
        """The object a ``dumps_frames`` frame list represents; a one-frame list
        is the blob form, and coalesced frames are read too."""
        return self._fast_paths()[3](frames)

    def decode_message(self, message: binary.Message) -> Any:
        """Decode a parsed message of this strategy (its header checked): frames
        decompressed, then ``from_frames`` under the limits."""
        if isinstance(message, codecs.CodedMessage):
            message = codecs.decode_message(message, self.compression, self.limits)
        return self.run_frames(message.body, message.buffers)

    def run_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        """``strategy.from_frames`` under the limits; any failure becomes a
        ``DeserializationError`` naming the strategy."""
        strategy = self.strategy
        try:
            limits = self.limits
            if limits is DEFAULT_LIMITS:
                return strategy.from_frames(body, buffers)
            return run_within(limits, strategy.from_frames, body, buffers)
        except Exception as e:
            raise_from(decode_failure(strategy, e), e)

    def body_decoder(self) -> Callable[[bytes | memoryview], Any]:
        """``strategy.body_decoder()`` run under the limits (unwrapped errors)."""
        decode = self.strategy.body_decoder()
        limits = self.limits
        if limits is DEFAULT_LIMITS:
            return decode
        return functools.partial(run_within, limits, decode)

    def frames_decoder(
        self,
    ) -> Callable[[bytes | memoryview, list[memoryview]], Any]:
        """``strategy.from_frames`` run under the limits (unwrapped errors)."""
        limits = self.limits
        if limits is DEFAULT_LIMITS:
            return self.strategy.from_frames
        return functools.partial(run_within, limits, self.strategy.from_frames)

    def known(self) -> Known:
        """What decodes this strategy's messages once their header prefix is
        learned (an entry of a fast path's ``known`` table)."""
        limits = self.limits
        return Known(
            self.body_decoder(),
            self.frames_decoder(),
            self.strategy,
            limits.max_size,
            limits.max_frames,
        )

    def version_mismatch(self, message: binary.Message, advice: str = "") -> str | None:
        """Why ``message`` may not decode here: code from another Python minor
        version, and this strategy is not portable; ``None`` otherwise."""
        strategy = self.strategy
        if message.python == _PYTHON or not strategy.for_code:
            return None
        if Property.PORTABLE in strategy.properties:
            return None
        return (
            f"this code payload was made by {describe_producer(message)} and is"
            f" decoded by Python {_PYTHON[0]}.{_PYTHON[1]}; {type(strategy).__name__}"
            " is not portable across Python versions (bytecode differs)." + advice
        )

    # -- the binary paths ---------------------------------------------------------

    def _fast_paths(self) -> tuple[Any, Any, Any, Any]:
        """``(dumps, dumps_frames, loads, loads_frames)``: a ``fastpath`` around
        this strategy, built on first use, which knows the strategy's own header
        prefix if the policy admits it; compressed if ``compression`` says so."""
        paths = self._paths
        if paths is not None:
            return paths
        strategy = self.strategy
        heads = self.headers
        known: dict[bytes, Any] = {}
        fast = fastpath.FastPath(
            strategy=strategy,
            encoders=encoders_of(strategy, callables=True),
            prefix=heads.prefix,
            meta=heads.meta,
            code_frames=self.frames,
            encode_failed=encode_failure,
            known=known,
            loads_slow=self._loads_slow,
            loads_frames_slow=self._loads_frames_slow,
            decode_failed=decode_failure,
        )
        if not self._decode_refusal and not heads.prefix[5] & ~binary.LEARNABLE_FLAGS:
            known[heads.prefix] = self.known()
        dumps, dumps_frames = fast.dumps, fast.dumps_frames
        if self._encode_refusal:
            dumps = dumps_frames = self._refuse_encoding
        elif self._compressor_codec is not None:
            compressor = codecs.MessageCompressor(
                self.compression, self._compressor_codec, dumps_frames, dumps
            )
            dumps, dumps_frames = compressor.dumps, compressor.dumps_frames
        paths = self._paths = (dumps, dumps_frames, fast.loads, fast.loads_frames)
        return paths

    def _refuse_encoding(self, obj: Any) -> Any:
        raise SerializationError(self._encode_refusal or "")

    def _loads_slow(self, data: BufferLike) -> Any:
        return self._decode_parsed(parse_blob(data, self.limits))

    def _loads_frames_slow(self, frames: Sequence[BufferLike]) -> Any:
        return self._decode_parsed(parse_frames(frames, self.limits))

    def _decode_parsed(self, message: binary.Message) -> Any:
        self.check_identifier(message.identifier)
        mismatch = self.version_mismatch(message)
        if mismatch:
            warnings.warn(mismatch, VersionMismatchWarning, stacklevel=4)
        try:
            return self.decode_message(message)
        except DeserializationError as error:
            if mismatch:
                raise DeserializationError(f"{error.reason}; {mismatch}") from (
                    error.__cause__ or error
                )
            raise


# -- steps shared with the facade ---------------------------------------------------


def limits_or_default(limits: Limits | None) -> Limits:
    """``DEFAULT_LIMITS`` itself for ``None`` or equal limits: decoding under it
    skips setting the active limits (``run_within``)."""
    return DEFAULT_LIMITS if limits is None or limits == DEFAULT_LIMITS else limits


def encoders_of(
    strategy: SerializationStrategy, *, callables: bool = False
) -> dict[type, tuple[Any, ...]]:
    """The fast path's ``{type: (function, *args)}`` from ``strategy.body_encoder()``.

    Unless ``callables``, types whose instances are callable are left out (the
    facade sends those to its code strategy).
    """
    spec = strategy.body_encoder()
    if spec is None:
        return {}
    call = (spec.function, *spec.args)
    return {
        kind: call
        for kind in spec.types
        if callables or not any("__call__" in vars(k) for k in kind.__mro__)
    }


def producer_metadata(strategy: SerializationStrategy) -> bytes:
    """The binary header's metadata: the producer's full Python version and the
    versions of the libraries ``strategy`` depends on (``library_versions``)."""
    meta = {"python": ".".join(map(str, sys.version_info[:3]))}
    meta.update(strategy.library_versions())
    return json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()


def describe_producer(message: binary.Message) -> str:
    """``"Python 3.12.1 with cloudpickle 3.1.0"`` from a message's header."""
    python = f"{message.python[0]}.{message.python[1]}"
    made: dict[str, str] = {}
    try:
        recorded = json.loads(bytes(message.metadata) or b"{}")
        if isinstance(recorded, dict):
            made.update({str(k): str(v)[:80] for k, v in recorded.items()})
    except Exception:
        # Unreadable metadata (malformed, or nested deep enough for a
        # RecursionError) only costs detail in a message.
        made.clear()
    full = made.pop("python", "")
    if full.startswith(python + "."):  # the header's version is authoritative
        python = full
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(made.items()))
    return f"Python {python}" + (f" with {libraries}" if libraries else "")


def encode_failure(
    strategy: SerializationStrategy, error: Exception
) -> SerializationError:
    """A ``SerializationError`` naming ``strategy``.  A strategy may raise
    ``SerializationError`` itself: its reason is kept as it is, without a second
    type name, and not prefixed again if it already carries this prefix."""
    kind = "Code" if strategy.for_code else "Data"
    prefix = f"{kind} serialization strategy {type(strategy).__name__} failed:"
    if isinstance(error, SerializationError):
        if error.reason.startswith(prefix):
            return SerializationError(error.reason)
        return SerializationError(f"{prefix} {error.reason}")
    return SerializationError(f"{prefix} {type(error).__name__}: {error}")


def decode_failure(
    strategy: SerializationStrategy, error: Exception
) -> DeserializationError:
    """A ``DeserializationError`` for ``strategy``'s failure, naming the strategy;
    ``error`` itself if it already is one that does (``raise_from`` then lets it
    propagate as it is)."""
    name = type(strategy).__name__
    prefix = f"{name} ({strategy.identifier!r}) failed to deserialize the payload:"
    if isinstance(error, DeserializationError):
        if name in error.reason:
            return error
        return DeserializationError(f"{prefix} {error.reason}")
    return DeserializationError(f"{prefix} {type(error).__name__}: {error}")


def parse_blob(data: BufferLike, limits: Limits) -> binary.Message:
    """The message a ``dumps`` blob holds; ``DeserializationError`` for a str or
    a malformed blob."""
    if isinstance(data, str):
        raise DeserializationError(
            "loads() takes bytes, bytearray or memoryview, got str; text"
            " payloads go to deserialize()"
        )
    return binary.parse_blob(data, limits)


def parse_frames(frames: Sequence[BufferLike], limits: Limits) -> binary.Message:
    """The message a frame list holds: a one-frame list is the blob form, and
    neighbouring frames joined (``coalesce_below``, ``FrameReader``) are split."""
    if not binary.is_frame_sequence(frames):
        if isinstance(frames, str) or is_buffer(frames):
            raise DeserializationError(
                f"loads_frames() takes a sequence of frames, got"
                f" {type(frames).__name__}; a single blob goes to loads()"
            )
        raise DeserializationError(
            f"loads_frames() takes a sequence of frames, got {type(frames).__name__}"
        )
    if len(frames) == 1:
        return parse_blob(frames[0], limits)
    try:
        return binary.parse_message(frames, limits)
    except DeserializationError:
        # Perhaps neighbouring frames were joined (coalesce_below): read the
        # exact frames out of them, or report the error of the exact form.
        exact = split_coalesced(frames, limits)
        if exact is None:
            raise
    return binary.parse_message(exact, limits)


def split_coalesced(
    frames: Sequence[BufferLike] | BufferLike, limits: Limits
) -> list[memoryview] | None:
    """The exact frames of a coalesced frame list (``stream.split_frames``), or
    ``None`` if ``frames`` is not one (then the exact form's error stands)."""
    if not binary.is_frame_sequence(frames) or not frames:
        return None
    try:
        exact = stream.split_frames(frames, limits)
    except DeserializationError:
        return None
    return exact if len(exact) != len(frames) else None


def is_buffer(value: object) -> bool:
    """Whether ``value`` exposes the buffer protocol."""
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True
