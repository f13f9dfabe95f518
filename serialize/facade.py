"""``ComputeSerializer``: pick strategies, enforce the decode allowlist, pack payloads.

The reference SDK's facade, call for call: ``serialize`` picks the code or the data
strategy by ``callable()``, ``deserialize`` dispatches on the identifier header after
checking it against the allowlist (so a disallowed decoder never sees a byte of the
body), and ``pack_buffers`` / ``unpack_and_deserialize`` / ``check_strategies`` carry
a function with its arguments.

What concerns one strategy (encoding and decoding it under the limits, wrapping its
failures, its message headers, the decoders the fast path learns, frame-codec
decoding) is that strategy's ``StrategyCodec`` (``freight.serialize.envelope``;
``data_codec`` / ``code_codec``); this facade adds what concerns several: choosing
by ``callable()``, the allowlist, the function cache, and the fast path around the
data strategy (``fastpath``), whose warm text steps are the codec's, inlined.
"""

from __future__ import annotations

import inspect
import logging
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from freight.serialize import binary, codecs, envelope, fastpath, stream, text
from freight.serialize.binary import BufferLike
from freight.serialize.cache import CacheTable, FunctionCache
from freight.serialize.envelope import StrategyCodec
from freight.serialize.envelope import (
    VersionMismatchWarning as VersionMismatchWarning,
)
from freight.serialize.envelope import decode_failure as _decode_failure
from freight.serialize.envelope import encode_failure as _encode_failure
from freight.serialize.envelope import is_buffer as _is_buffer
from freight.serialize.envelope import limits_or_default as _limits_or_default
from freight.serialize.envelope import split_coalesced as _split_coalesced
from freight.serialize.errors import (
    DeserializationError,
    SerdeError,
    SerializationError,
    StrategyNotAllowed,
    raise_from,
)
from freight.serialize.limits import DEFAULT_LIMITS, Limits
from freight.serialize.policy import Policy
from freight.serialize.registry import (
    ENTRY_POINT_GROUP,
    PluginInfo,
    RegisteredStrategy,
    Strategylike,
    StrategyRegistry,
    default_registry,
)
from freight.serialize.strategy import Property, SerializationStrategy

if TYPE_CHECKING:
    from freight.serialize.explain import ExplainReport
    from freight.serialize.isolation import IsolatedCheck

logger = logging.getLogger(__name__)

#: The strategies used when none is given, named through the registry.
DEFAULT_CODE_STRATEGY = "CloudPickleCode"
DEFAULT_DATA_STRATEGY = "PickleData"


class AllowlistWildcard(StrEnum):
    """Allowlist entries that allow every selectable strategy of one kind.

    As plain strings, each wildcard is also accepted in the reference SDK's
    spelling, so configuration files written for it work unchanged:
    ``"globus_compute_sdk.*Code"`` means ``CODE`` and ``"globus_compute_sdk.*Data"``
    means ``DATA`` (``WILDCARD_SPELLINGS``).
    """

    #: Every registered *code* strategy that can be selected.
    CODE = "freight.*Code"
    #: Every registered *data* strategy that can be selected.
    DATA = "freight.*Data"


#: Every string accepted as an allowlist wildcard: freight's spelling (the enum's
#: values) and the reference SDK's.
WILDCARD_SPELLINGS: dict[str, AllowlistWildcard] = {
    AllowlistWildcard.CODE.value: AllowlistWildcard.CODE,
    AllowlistWildcard.DATA.value: AllowlistWildcard.DATA,
    "globus_compute_sdk.*Code": AllowlistWildcard.CODE,
    "globus_compute_sdk.*Data": AllowlistWildcard.DATA,
}


DeserializerAllowlist = Iterable[Strategylike | AllowlistWildcard]


def selectable_strategies(
    for_code: bool | None = None, registry: StrategyRegistry | None = None
) -> list[type[SerializationStrategy]]:
    """The strategy classes that may be chosen to encode (every registered one but
    the decode-only), of one kind if ``for_code`` is given, in identifier order.

    Deprecated strategies are included (choosing one warns), as the reference's
    ``SELECTABLE_STRATEGIES`` includes its deprecated ``CombinedCode``.  This is
    what the allowlist wildcards expand to, and what ``freight.serialize``'s
    ``SELECTABLE_STRATEGIES``, ``SELECTABLE_CODE_STRATEGIES`` and
    ``SELECTABLE_DATA_STRATEGIES`` return (from the default registry, when read).
    """
    return [
        rec.cls
        for rec in (registry or default_registry())
        if not rec.strategy.decode_only
        and (for_code is None or rec.for_code == for_code)
    ]


@dataclass(frozen=True)
class ValidatedStrategylike:
    """A strategy-like value resolved to a registered strategy (the reference's
    record, field for field).

    Equal when ``type_``, ``instance`` and ``import_path`` are.  The attributes
    of ``RegisteredStrategy`` (``cls``, ``strategy``, ``for_code``, ``name``,
    ``identifier``, ``plugin``) are available too.
    """

    #: The strategy class.
    type_: type[SerializationStrategy]
    #: The registry's instance of it (not a configured instance the caller gave).
    instance: SerializationStrategy
    #: ``"module.ClassName"`` of the class.
    import_path: str
    #: The registry's record (which plugin provided the strategy); ``None`` when
    #: built by hand, as the reference's three-argument form does.
    record: RegisteredStrategy | None = field(default=None, compare=False, repr=False)

    @property
    def cls(self) -> type[SerializationStrategy]:
        return self.type_

    @property
    def strategy(self) -> SerializationStrategy:
        return self.instance

    @property
    def for_code(self) -> bool:
        return self.type_.for_code

    @property
    def identifier(self) -> str:
        return self.instance.identifier

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def plugin(self) -> PluginInfo | None:
        return None if self.record is None else self.record.plugin


def validate_strategylike(
    value: Strategylike,
    *,
    for_code: bool | None = None,
    registry: StrategyRegistry | None = None,
) -> ValidatedStrategylike:
    """Resolve ``value`` to a selectable registered strategy of the wanted kind.

    ``value`` is an instance, a class, or a string: an identifier, a registered
    name, a class name or an import path.  Raises ``SerdeError`` if it is none of
    those ("Invalid strategy-like ..."), names no registered strategy ("... is not
    a known serialization strategy"), is of the other kind (code vs data), or is
    decode-only.  Warns with ``DeprecationWarning`` if it is deprecated.
    """
    registry = registry or default_registry()
    if not isinstance(value, str):
        cls = value if inspect.isclass(value) else type(value)
        if not issubclass(cls, SerializationStrategy):
            raise SerdeError(_invalid_strategylike(value))
        _check_kind(cls, for_code)
    try:
        rec = registry.resolve(value)
    except SerdeError as e:
        if isinstance(value, str):
            raise SerdeError(_invalid_strategylike(value, str(e))) from e
        # "is not a known serialization strategy" is the reference's phrase.
        raise SerdeError(
            f"{cls.__name__} is not a known serialization strategy: it is not"
            " a registered one (defining a class does not register it); register"
            " it through the"
            f" {ENTRY_POINT_GROUP!r} entry-point group or"
            " default_registry().register_plugin()"
        ) from e
    _check_kind(rec.cls, for_code)
    if rec.strategy.decode_only:
        raise SerdeError(
            f"{rec.cls.__name__} is decode-only: it reads old payloads but cannot"
            " be selected to make new ones"
        )
    if rec.strategy.deprecated:
        warnings.warn(
            f"{rec.cls.__name__} is deprecated", DeprecationWarning, stacklevel=3
        )
    return ValidatedStrategylike(
        rec.cls, rec.strategy, f"{rec.cls.__module__}.{rec.cls.__name__}", rec
    )


def _invalid_strategylike(value: object, detail: str = "") -> str:
    # "Invalid strategy-like", "a subclass of" and "an import path" are the
    # reference's phrases, kept for callers that match on them (at the end, where
    # a shortened repr of the error still shows them).
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return (
        f"Invalid strategy-like {shown}{': ' + detail if detail else ''}; expected a"
        " SerializationStrategy instance, a subclass of SerializationStrategy, or a"
        " string: an identifier, a name, a class name or an import path"
    )


def _check_kind(cls: type[SerializationStrategy], for_code: bool | None) -> None:
    if for_code is not None and getattr(cls, "for_code", for_code) != for_code:
        want, got = ("code", "data") if for_code else ("data", "code")
        raise SerdeError(
            f"{cls.__name__} is a {got} serialization strategy, expected a"
            f" {want} strategy"
        )


def parse_allowlist(
    unvalidated: DeserializerAllowlist | None,
    registry: StrategyRegistry | None = None,
) -> set[type[SerializationStrategy]]:
    """The strategy classes an allowlist admits; empty means "allow everything".

    Entries are strategy-likes (``validate_strategylike``) or wildcards: an
    ``AllowlistWildcard`` or any string in ``WILDCARD_SPELLINGS`` (freight's
    ``"freight.*Code"`` or the reference's ``"globus_compute_sdk.*Code"``, and the
    ``Data`` twins), which admit every selectable strategy of their kind.
    Raises ``SerdeError`` if an entry is unknown, a wildcard is mixed with specific
    entries of its kind, or the list lacks a code or a data entry.
    """
    if not unvalidated:
        return set()
    registry = registry or default_registry()
    entries = list(unvalidated)
    validated: set[type[SerializationStrategy]] = set()
    wildcards: dict[AllowlistWildcard, str] = {}
    for value in entries:
        wildcard = WILDCARD_SPELLINGS.get(value) if isinstance(value, str) else None
        if wildcard is not None:
            wildcards.setdefault(wildcard, str(value))
        else:
            validated.add(validate_strategylike(value, registry=registry).cls)
    for wildcard, spelling in wildcards.items():
        for_code = wildcard is AllowlistWildcard.CODE
        if any(cls.for_code == for_code for cls in validated):
            kind = "code" if for_code else "data"
            raise SerdeError(
                f"Cannot mix '{spelling}' with specific deserializers of the same"
                f" kind ({kind}): the wildcard already admits every {kind}"
                f" strategy (got {entries})"
            )
        validated.update(selectable_strategies(for_code, registry))
    if len({cls.for_code for cls in validated}) != 2:
        raise SerdeError(
            "deserialization allowlists must contain at least one code and one data"
            f" deserializer or wildcard (got {entries})"
        )
    return validated


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
        policy: Policy | None = None,
        limits: Limits | None = None,
        writable: bool = False,
        coalesce_below: int = 0,
        compression: codecs.Compressionlike = None,
    ) -> None:
        """Strategies may be given as instance, class, identifier, registered name
        or import path; ``None`` means freight's default.  An allowlist, if given,
        must name at least one code and one data strategy (or wildcard); only those
        may decode.  ``registry`` defaults to the process-wide one.  With
        ``cache_code`` (the default) a function serialized again is a cache hit;
        ``freight.serialize.cache`` says when an entry is reused.  ``policy``
        chooses and refuses strategies by their properties (``Policy``); ``limits``
        bound what is decoded (``Limits``; sensible defaults).  ``compression``
        compresses binary frames: a codec name (``"zstd"``, ``"lz4"``), a
        ``FrameCodec`` or ``FrameCodecs`` settings (``freight.serialize.codecs``);
        ``None`` compresses nothing and still decodes every installed codec.
        ``writable`` and ``coalesce_below`` are for transports (see their
        properties).

        The instances chosen to encode also decode their own identifier, so a
        configured instance (say, a pickle strategy with a restricted unpickler)
        is the one that reads payloads it could have made.

        A *restricted* strategy instance (one whose ``restricts_decoding``
        attribute is true, such as ``PickleData(allowed_globals=...)``) given
        without an allowlist makes the safe choice the default: the serializer
        then decodes only that instance's identifier and the strategies that
        declare ``Property.SAFE_FOR_UNTRUSTED``; any other payload (``cp``,
        ``00``, ``01``, ``13`` ...) is refused with ``DeserializationError``
        before its body is read.  Give an explicit allowlist to decode others.

        Raises ``SerdeError`` for an unknown, decode-only or wrong-kind strategy,
        or one the policy refuses.
        """
        self.registry = registry or default_registry()
        self._policy = policy or Policy()
        self._limits = _limits_or_default(limits)
        self._cache = FunctionCache() if cache_code else None
        # Each strategy's codec (its per-strategy steps: envelope.StrategyCodec)
        # under the settings below, rebuilt when one changes (see
        # _settings_changed).
        self._single: dict[SerializationStrategy, StrategyCodec] = {}
        # Decoders that passed the allowlist and the policy, by identifier (their
        # codecs), and what decodes a binary message, by its 12-byte header
        # prefix (see _learn): verdicts under the settings below, forgotten when
        # one changes.
        self._admitted: dict[str, StrategyCodec] = {}
        self._known: dict[bytes, envelope.Known] = {}
        self._code_serializer = self._select(
            strategy_code, DEFAULT_CODE_STRATEGY, for_code=True
        )
        self._data_serializer = self._select(
            strategy_data, DEFAULT_DATA_STRATEGY, for_code=False
        )
        self._allowlist = frozenset(
            parse_allowlist(allowed_deserializer_types, self.registry)
        )
        self._writable = _checked_flag(writable, "writable")
        self._coalesce_below = _checked_size(coalesce_below, "coalesce_below")
        self._set_compression(compression)
        self._settings_changed()

    # -- settings: each may be replaced; decisions made under the old value go ------

    @property
    def data_serializer(self) -> SerializationStrategy:
        """The strategy that encodes everything not callable; assigning takes any
        ``Strategylike``, checked as the constructor checks ``strategy_data``."""
        return self._data_serializer

    @data_serializer.setter
    def data_serializer(self, value: Strategylike) -> None:
        self._data_serializer = self._select(
            value, DEFAULT_DATA_STRATEGY, for_code=False
        )
        self._settings_changed()

    @property
    def code_serializer(self) -> SerializationStrategy:
        """The strategy that encodes callables (see ``data_serializer``)."""
        return self._code_serializer

    @code_serializer.setter
    def code_serializer(self, value: Strategylike) -> None:
        self._code_serializer = self._select(
            value, DEFAULT_CODE_STRATEGY, for_code=True
        )
        self._settings_changed()

    @property
    def allowed_deserializer_types(self) -> frozenset[type[SerializationStrategy]]:
        """The strategy classes that may decode; empty: every one.  Assigning
        takes an allowlist as the constructor does; the set itself is frozen,
        since verdicts made under it are kept (mutated in place, a narrowed
        allowlist would not take effect)."""
        return self._allowlist

    @allowed_deserializer_types.setter
    def allowed_deserializer_types(self, value: DeserializerAllowlist | None) -> None:
        self._allowlist = frozenset(parse_allowlist(value, self.registry))
        self._settings_changed()

    @property
    def policy(self) -> Policy:
        """What strategies may encode and decode here.  Assigning a policy that
        refuses one of the encoding strategies raises ``SerdeError``."""
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        for strategy in (self._code_serializer, self._data_serializer):
            refusal = policy.refusal(strategy, decoding=False)
            if refusal:
                raise SerdeError(refusal)
        self._policy = policy
        self._settings_changed()

    @property
    def limits(self) -> Limits:
        """The bounds on what is decoded (``Limits``)."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits | None) -> None:
        self._limits = _limits_or_default(limits)
        self._settings_changed()

    @property
    def writable(self) -> bool:
        """Whether decoded out-of-band buffers are made writable: each one whose
        received memory is read-only (a ``bytes`` blob, a zmq frame) is copied
        into a ``bytearray`` before the strategy sees it, so arrays come back
        writable as pickle's in-band ones are; writable memory (a ``bytearray``,
        a ``FrameReader`` message, shared memory) is never copied.  A compressed
        frame decompresses into read-only ``bytes``, so it is copied too.  Off by
        default: arrays are then zero-copy, read-only views."""
        return self._writable

    @writable.setter
    def writable(self, value: bool) -> None:
        self._writable = _checked_flag(value, "writable")
        self._settings_changed()

    @property
    def coalesce_below(self) -> int:
        """``dumps_frames`` joins neighbouring frames smaller than this many bytes
        into one (0, the default: never); see ``dumps_frames``."""
        return self._coalesce_below

    @coalesce_below.setter
    def coalesce_below(self, value: int) -> None:
        self._coalesce_below = _checked_size(value, "coalesce_below")
        self._settings_changed()

    @property
    def compression(self) -> codecs.FrameCodecs:
        """How binary frames are compressed and which codecs decode
        (``FrameCodecs``); assigning takes what the constructor's
        ``compression`` does."""
        return self._codecs

    @compression.setter
    def compression(self, value: codecs.Compressionlike) -> None:
        self._set_compression(value)
        self._settings_changed()

    def _set_compression(self, value: codecs.Compressionlike) -> None:
        settings = codecs.FrameCodecs.of(value)
        self._codec = settings.resolved()  # SerdeError if unknown or missing
        self._codecs = settings

    def _settings_changed(self) -> None:
        """Forget the verdicts made under the old settings and rebuild the fast
        path around the data strategy."""
        self._admitted.clear()
        self._known.clear()
        # Only the encoding strategies' codecs are carried over (keeping the
        # headers they made); a replaced strategy's is dropped, and a decoder's
        # is made again when it is next admitted.
        old = self._single
        self._single = {
            strategy: old[strategy].replace(
                limits=self._limits, policy=self._policy, compression=self._codecs
            )
            for strategy in (self._data_serializer, self._code_serializer)
            if strategy in old
        }
        self._data_codec = self._codec_of(self._data_serializer)
        self._code_codec = self._codec_of(self._code_serializer)
        # A restricted strategy instance without an explicit allowlist: decode
        # only it and SAFE_FOR_UNTRUSTED strategies (see __init__).
        self._restricted: SerializationStrategy | None = next(
            (
                s
                for s in (self._data_serializer, self._code_serializer)
                if getattr(s, "restricts_decoding", False)
            ),
            None,
        )
        # The code strategy's cached payloads, one table per envelope.
        self._text_cache: CacheTable | None = None
        self._frames_cache: CacheTable | None = None
        if self._cache is not None:
            code_id = self._code_serializer.identifier
            self._text_cache = self._cache.table(code_id, "text")
            self._frames_cache = self._cache.table(code_id, "frames")
        strategy = self._data_serializer
        heads = self._data_codec.headers
        self._fast: fastpath.FastPathLike = fastpath.FastPath(
            strategy=strategy,
            encoders=envelope.encoders_of(strategy),  # callables: code strategy
            prefix=heads.prefix,
            meta=heads.meta,
            code_frames=self._code_frames,
            encode_failed=_encode_failure,
            known=self._known,
            loads_slow=self._loads_slow,
            loads_frames_slow=self._loads_frames_slow,
            decode_failed=_decode_failure,
        )
        # This serializer's own strategies are decided now, once, not on the
        # first message: a fresh serializer's first message is as fast as any.
        for own in (self._data_serializer, self._code_serializer):
            self._learn_own(own)
        # What encodes a message: the fast path's, or, with a frame codec
        # (serialize/codecs.py), a compressor around it.  Codec-bearing messages
        # are never learned, so their decode always takes the slow path (_decode).
        self._encode_blob: Callable[[Any], bytes] = self._fast.dumps
        self._encode_frames: Callable[[Any], list[BufferLike]] = self._fast.dumps_frames
        if self._codec is not None:
            compressor = codecs.MessageCompressor(
                self._codecs, self._codec, self._fast.dumps_frames, self._fast.dumps
            )
            self._encode_blob = compressor.dumps
            self._encode_frames = compressor.dumps_frames
        # The four per-message methods only forward; bound on the instance, a
        # call skips that Python frame (15-20% of a small message).  A subclass
        # that overrides one keeps its override.
        bound = {
            "dumps": self._encode_blob,
            "dumps_frames": self._encode_frames,
            "loads": self._fast.loads,
            "loads_frames": self._fast.loads_frames,
        }
        for name in _FAST_METHODS:
            if getattr(type(self), name) is getattr(ComputeSerializer, name):
                setattr(self, name, bound[name])
        # The transport settings (stream.py) are applied by the class's methods.
        for name in _EMBEDDING_METHODS[self._writable, bool(self._coalesce_below)]:
            self.__dict__.pop(name, None)

    @property
    def code_codec(self) -> StrategyCodec:
        """The code strategy's ``StrategyCodec`` under this serializer's limits,
        policy and frame codecs: the object that makes and reads its payloads in
        every envelope (``freight.serialize.envelope``)."""
        return self._code_codec

    @property
    def data_codec(self) -> StrategyCodec:
        """The data strategy's ``StrategyCodec`` (see ``code_codec``)."""
        return self._data_codec

    def _codec_of(self, strategy: SerializationStrategy) -> StrategyCodec:
        """``strategy``'s codec under this serializer's limits, policy and frame
        codecs (made once per settings)."""
        codec = self._single.get(strategy)
        if codec is None:
            codec = self._single[strategy] = StrategyCodec(
                strategy,
                limits=self._limits,
                policy=self._policy,
                compression=self._codecs,
            )
        return codec

    def _select(
        self, value: Strategylike | None, default: str, *, for_code: bool
    ) -> SerializationStrategy:
        if value is not None:
            validated = validate_strategylike(
                value, for_code=for_code, registry=self.registry
            )
            # A configured instance the caller passed is used as given.
            chosen = (
                value
                if isinstance(value, SerializationStrategy)
                else validated.instance
            )
            refusal = self.policy.refusal(chosen, decoding=False)
            if refusal:
                raise SerdeError(refusal)
            return chosen
        strategy = validate_strategylike(
            default, for_code=for_code, registry=self.registry
        ).strategy
        if not self.policy.refusal(strategy, decoding=False):
            return strategy
        for rec in self.registry:
            s = rec.strategy
            if (
                s.for_code == for_code
                and not (s.decode_only or s.deprecated)
                and not self.policy.refusal(s, decoding=False)
            ):
                return s
        kind = "code" if for_code else "data"
        raise SerdeError(
            f"no registered {kind} strategy satisfies the policy {self.policy}"
        )

    # -- one payload ---------------------------------------------------------------

    def serialize(self, data: Any) -> str:
        """Return the text payload for ``data``: the code strategy's if it is
        callable, the data strategy's otherwise.

        Raises ``SerializationError`` (with the strategy's error as cause).
        """
        if not callable(data):
            # The data codec's ``serialize`` (StrategyCodec), inlined: this is the
            # warm text path, and a call frame costs 3% of a small message.
            strategy = self._data_serializer
            try:
                return strategy.serialize(data)
            except Exception as e:
                raise _encode_failure(strategy, e) from e
        # A function's payload is made once (freight.serialize.cache).
        table = self._text_cache
        if table is not None:
            payload: str | None = table.get(data)
            if payload is not None:
                return payload
        payload = self._code_codec.serialize(data)
        if table is not None:
            table.put(data, payload)
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
            hint = " (binary payloads go to loads())" if _is_buffer(payload) else ""
            raise DeserializationError(
                f"expected a str payload, got {type(payload).__name__}{hint}"
            )
        header = payload[: text.IDENTIFIER_LENGTH]
        codec = self._admitted.get(header) or self._admit(header, payload)
        if self._limits is not DEFAULT_LIMITS or len(payload) > _DEFAULT_MAX_SIZE:
            return codec.decode_text(payload)
        # ``codec.decode_text`` under the default limits, inlined (the warm text
        # path, as in ``serialize``).
        strategy = codec.strategy
        try:
            return strategy.deserialize(payload)
        except Exception as e:
            raise_from(_decode_failure(strategy, e), e)

    def _admit(self, identifier: str, payload: str = "") -> StrategyCodec:
        """The codec of the strategy that decodes ``identifier``, once the
        allowlist and the policy have let it; raises ``DeserializationError``
        otherwise."""
        strategy: SerializationStrategy
        if identifier == self._data_serializer.identifier:
            strategy = self._data_serializer
        elif identifier == self.code_serializer.identifier:
            strategy = self.code_serializer
        else:
            rec = self.registry.by_identifier(identifier)
            if rec is None:
                raise text.bad_header_error(payload or identifier)
            strategy = rec.strategy
        if self.allowed_deserializer_types:
            self.assert_deserializer_allowed(strategy)
        elif self._restricted is not None:
            _assert_safe_beside(self._restricted, strategy)
        codec = self._codec_of(strategy)
        codec.check_policy()
        self._admitted[identifier] = codec
        return codec

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
        return self._encode_blob(obj)

    def _code_frames(self, fn: Any) -> tuple[Any, ...]:
        """The frames of a callable's message, made once per function (see
        ``serialize``)."""
        table = self._frames_cache
        if table is not None:
            frames: tuple[Any, ...] | None = table.get(fn)
            if frames is not None:
                return frames
        frames = self._code_codec.frames(fn)
        if table is not None:
            table.put(fn, frames)
        return frames

    def dumps_frames(self, obj: Any) -> list[BufferLike]:
        """The binary message for ``obj`` as frames: ``[header, body, *buffers]``.

        Nothing is copied: buffers are the objects' own memory, for transports
        that send a list of buffers (``socket.sendmsg``, ``writev``, multipart
        messages).  Keep ``obj`` unchanged until the frames are sent.

        With the serializer's ``coalesce_below=N``, each run of neighbouring
        frames smaller than ``N`` bytes is joined into one
        (``stream.coalesce_frames``), so a small message is one frame: one zmq
        part or one socket write.
        """
        if self._coalesce_below:
            # Each frame compressed first (with a frame codec), then the small
            # ones joined.
            frames = self._encode_frames(obj)
            return stream.coalesce_frames(frames, self._coalesce_below)
        return self._encode_frames(obj)

    def dumps_into(self, obj: Any, buffer: BufferLike) -> int:
        """Write the binary message for ``obj`` (the ``dumps`` blob) at the front
        of ``buffer``, a writable buffer (a ``bytearray``, a shared-memory
        segment's ``buf``, an mmap); the number of bytes written.

        Raises ``stream.BufferTooSmallError`` (a ``SerializationError`` whose
        ``needed`` says how many bytes the message takes) before writing
        anything if it does not fit, ``TypeError`` for a read-only buffer.
        """
        return stream.write_into(self._encode_frames(obj), buffer)

    def loads_prefix(self, buffer: BufferLike) -> tuple[Any, int]:
        """Decode the message at the front of ``buffer``, which may hold more
        bytes after it (a ring buffer, a shared-memory segment); the object and
        the number of bytes the message took.

        Out-of-band buffers come back as views of ``buffer`` (see ``loads``):
        a serializer made with ``writable=True`` copies read-only ones.  Raises
        ``DeserializationError`` (truncated message, limits, a bundle: decode
        that with ``unpack_frames_and_deserialize`` of
        ``buffer[:stream.prefix_length(buffer)]``).
        """
        if not _is_buffer(buffer):
            raise DeserializationError(
                "loads_prefix() takes a buffer (bytes, bytearray, memoryview,"
                f" shared memory ...), got {type(buffer).__name__}"
            )
        view = binary.checked_view(buffer, "loads_prefix()'s buffer")
        if stream.is_bundle(view):
            raise DeserializationError(
                "loads_prefix() decodes a message; the buffer starts with a bundle"
            )
        length = stream.prefix_length(view, self.limits)
        return self.loads(view[:length]), length

    def loads(self, data: BufferLike) -> Any:
        """The object a ``dumps`` blob represents.

        Accepts ``bytes``, ``bytearray`` or ``memoryview``; out-of-band buffers come
        back as views of ``data`` where the type allows (numpy arrays, memoryviews),
        read-only unless ``data`` is writable, or the serializer was made with
        ``writable=True`` (see ``writable``).  The header is checked against the
        allowlist before any of the body is decoded.  Raises
        ``DeserializationError``.
        """
        if self._writable:
            return self._decode_writable(self._parse_blob(data))
        # A message whose header prefix is one this serializer parsed, checked
        # and admitted before decodes once its lengths add up: same verdict
        # (see _learn).
        return self._fast.loads(data)

    def _loads_slow(self, data: BufferLike) -> Any:
        """``loads`` for a message whose header is not a learned one."""
        return self._decode(self._parse_blob(data), learn=True)

    def _parse_blob(self, data: BufferLike) -> binary.Message:
        return envelope.parse_blob(data, self._limits)

    def loads_frames(self, frames: Sequence[BufferLike]) -> Any:
        """The object a ``dumps_frames`` frame list represents (see ``loads``).

        A one-frame list is the blob form, and a list whose neighbouring frames
        were joined (``coalesce_below``, ``FrameReader``) is read too.
        """
        if self._writable:
            return self._decode_writable(self._parse_frames(frames))
        # As in loads().
        return self._fast.loads_frames(frames)

    def _loads_frames_slow(self, frames: Sequence[BufferLike]) -> Any:
        """``loads_frames`` for frames whose header is not a learned one."""
        if binary.is_frame_sequence(frames) and len(frames) == 1:
            return self.loads(frames[0])  # the blob form
        return self._decode(self._parse_frames(frames), learn=True)

    def _parse_frames(self, frames: Sequence[BufferLike]) -> binary.Message:
        return envelope.parse_frames(frames, self._limits)

    def _decode_writable(self, message: binary.Message) -> Any:
        """``_decode`` with the read-only out-of-band buffers copied first."""
        codec = self._decoder_for(message)
        return self._decode(self._writable_message(message, codec), codec)

    def _writable_message(
        self, message: binary.Message, codec: StrategyCodec
    ) -> binary.Message:
        """``message`` (admitted: ``codec`` decodes it) with its frames
        decompressed, then its read-only out-of-band buffers copied (a frame
        decompresses to read-only memory as often as not)."""
        if isinstance(message, codecs.CodedMessage):
            message = codecs.decode_message(message, self._codecs, self._limits)
        if message.buffers:
            message.buffers[:] = stream.writable_buffers(message.buffers)
        return message

    def _learn(self, message: binary.Message, codec: StrategyCodec) -> None:
        """Remember what decodes messages with ``message``'s 12-byte header prefix,
        for the fast paths of ``loads`` / ``loads_frames`` (``fastpath``).

        Called only for a message whose header passed every check of the general
        path, so the same prefix again (magic, format version, flags, producer
        Python, identifier) stands for those checks and for the allowlist and
        policy verdict on its identifier; the fast path checks the rest of each
        header (the lengths) itself.  Not learned: messages from another Python
        (they may need a warning) and flags outside ``binary.LEARNABLE_FLAGS``
        (they change how frames are read).  The metadata is never read here.
        At most ``_MAX_KNOWN_HEADERS`` prefixes are kept; a full table starts
        afresh.
        """
        prefix = message.header.prefix
        if message.python != _PYTHON or prefix[5] & ~binary.LEARNABLE_FLAGS:
            return
        self._learn_prefix(prefix, codec)

    def _learn_own(self, strategy: SerializationStrategy) -> None:
        """Learn the prefix of ``strategy``'s messages made by this process, if
        the allowlist and the policy admit its identifier (as the first such
        message would, on the general path)."""
        try:
            admitted = self._admitted.get(strategy.identifier) or self._admit(
                strategy.identifier
            )
        except DeserializationError:
            return  # refused: its messages take the general path, which says so
        heads = admitted.headers
        if heads.prefix[5] & ~binary.LEARNABLE_FLAGS == 0:
            self._learn_prefix(heads.prefix, admitted)

    def _learn_prefix(self, prefix: bytes, codec: StrategyCodec) -> None:
        known = self._known
        if len(known) >= _MAX_KNOWN_HEADERS:
            known.clear()
        known[prefix] = codec.known()

    def _decode(
        self,
        message: binary.Message,
        codec: StrategyCodec | None = None,
        *,
        learn: bool = False,
    ) -> Any:
        """Decode a parsed message; with ``learn``, remember its header prefix
        for the fast paths (``_learn``)."""
        if codec is None:
            codec = self._decoder_for(message)
        if isinstance(message, codecs.CodedMessage):
            learn = False  # frame codecs: decompressed by the codec; not learned
        try:
            result = codec.decode_message(message)
        except DeserializationError as error:
            mismatch = self._version_mismatch(codec, message)
            if mismatch:
                raise DeserializationError(f"{error.reason}; {mismatch}") from (
                    error.__cause__ or error
                )
            raise
        if learn:
            self._learn(message, codec)
        return result

    def _decoder_for(self, message: binary.Message) -> StrategyCodec:
        """The admitted decoder of ``message``'s identifier; warns (every time) if
        it is code from another Python minor version that may not decode here."""
        codec = self._admitted.get(message.identifier) or self._admit(
            message.identifier
        )
        if message.python != _PYTHON:
            mismatch = self._version_mismatch(codec, message)
            if mismatch:
                warnings.warn(mismatch, VersionMismatchWarning, stacklevel=4)
        return codec

    def _version_mismatch(
        self, codec: StrategyCodec, message: binary.Message
    ) -> str | None:
        """Why ``message`` may not decode here, if it is code from another Python
        minor version and its strategy is not portable (with the portable ones
        this registry offers); ``None`` otherwise."""
        if message.python == _PYTHON or not codec.strategy.for_code:
            return None
        portable = [
            f"{rec.cls.__name__} ({rec.name!r})"
            for rec in self.registry
            if rec.for_code
            and Property.PORTABLE in rec.strategy.properties
            and not (rec.strategy.decode_only or rec.strategy.deprecated)
        ]
        advice = (
            f" Between different Pythons send functions with a portable strategy:"
            f" {', '.join(portable)}."
            if portable
            else ""
        )
        return codec.version_mismatch(message, advice)

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
        try:
            messages = binary.unpack_frames(frames, self.limits)
        except DeserializationError:
            # Perhaps neighbouring frames were joined (FrameReader, coalescing).
            exact = _split_coalesced(frames, self.limits)
            if exact is None:
                raise
            messages = binary.unpack_frames(exact, self.limits)
        if len(messages) != 3:
            raise DeserializationError(
                "unpack_frames_and_deserialize expects 3 messages (function, args,"
                f" kwargs), got {len(messages)}"
            )
        # Every header passes the allowlist and policy before any body is decoded.
        decoders = [self._decoder_for(m) for m in messages]
        codecs.check_bundle(messages, self.limits)
        if self._writable:
            messages = [
                self._writable_message(m, d)
                for m, d in zip(messages, decoders, strict=True)
            ]
        return [self._decode(m, d) for m, d in zip(messages, decoders, strict=True)]

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
        if isinstance(packed_buffer, str):
            self.limits.check_size(len(packed_buffer), "the packed buffers")
        buffers = text.unpack_buffers(packed_buffer)
        self.limits.check_frames(len(buffers), "the packed buffers")
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

    def check_isolated(
        self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> IsolatedCheck:
        """Like ``check_strategies``, but decode and call ``function`` in a fresh
        ``python -I`` subprocess, so code that only works in this process (defined
        in ``__main__``, importing a module only this process can see) is caught
        before it is sent.  See ``freight.serialize.isolation.check_isolated``."""
        from freight.serialize import isolation

        return isolation.check_isolated(self, function, *args, **kwargs)

    def explain(
        self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> ExplainReport:
        """Per strategy: did ``function`` round-trip, payload size, time, and why
        not.  See ``freight.serialize.explain.explain``."""
        from freight.serialize import explain

        return explain.explain(self, function, *args, **kwargs)

    # -- policy --------------------------------------------------------------------

    def assert_deserializer_allowed(self, strategy: SerializationStrategy) -> None:
        """Raise ``StrategyNotAllowed`` (a ``DeserializationError``) if an allowlist
        is set and excludes ``strategy``'s class."""
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
        raise StrategyNotAllowed(
            textwrap.indent(msg, " "),
            identifier=strategy.identifier,
            strategy=strategy.name,
        )


_PYTHON = sys.version_info[:2]
_DEFAULT_MAX_SIZE = DEFAULT_LIMITS.max_size
#: How many header prefixes the decode fast paths remember (see ``_learn``).
_MAX_KNOWN_HEADERS = 4096


#: ComputeSerializer methods that are the fast path's, bound per instance.
_FAST_METHODS = ("dumps", "loads", "dumps_frames", "loads_frames")
#: The fast methods that ``writable`` / ``coalesce_below`` take off the instance.
_EMBEDDING_METHODS = {
    (False, False): (),
    (True, False): ("loads", "loads_frames"),
    (False, True): ("dumps_frames",),
    (True, True): ("loads", "loads_frames", "dumps_frames"),
}


def _assert_safe_beside(
    restricted: SerializationStrategy, strategy: SerializationStrategy
) -> None:
    """Refuse ``strategy`` as a decoder next to the restricted instance
    ``restricted`` unless it is that instance or declares SAFE_FOR_UNTRUSTED."""
    if strategy is restricted or Property.SAFE_FOR_UNTRUSTED in strategy.properties:
        return
    raise DeserializationError(
        f"{type(strategy).__name__} ({strategy.identifier!r}) may not decode here:"
        f" this serializer was given the restricted {type(restricted).__name__}"
        " and no allowlist, so it decodes only that strategy's payloads and"
        " strategies safe for untrusted input; pass allowed_deserializer_types"
        f" to decode {type(strategy).__name__} payloads from trusted peers"
    )


def _checked_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _checked_size(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"{name} must be an int >= 0 (bytes), got {value!r}")
    return value
