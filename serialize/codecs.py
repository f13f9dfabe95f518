"""Frame codecs: per-frame compression in the binary envelope, as plugins.

A *frame codec* compresses one frame of a binary message (the body, or one
out-of-band buffer) and decompresses it, with a hard cap, on the way in.  Codecs are
a layer of their own, below the strategies: any strategy's body and buffers can be
compressed, and no strategy knows.  ``BINARY_FORMAT.md`` (section 3.4) specifies the
wire form: header flag ``0x02`` says a *codec table* follows the buffer length
table, one 16-byte entry per frame (body first) holding the codec id and the
frame's decoded length.

Codecs are plugins, found exactly as strategies are: pluggy hook implementations
(``freight_codecs``, below) reached through an entry-point group, here
``freight.codecs``.  freight's own zstd (id 1) and lz4 (id 2) live in
``freight.plugins.codecs`` and register through that group like any third party;
their libraries are the optional extra ``freight[compress]``.  A codec whose library
is missing is reported (``CodecRegistry.plugin_statuses()``, the reason in any
decode error naming its id) and skipped.  Loading obeys the same ``FREIGHT_*``
variables as strategies (``freight.serialize.registry.PluginSettings``).

Encoding is chosen per frame (``FrameCodecs``): frames under ``min_size`` are sent
as they are, and a large frame whose evenly spaced sample does not compress below
``min_ratio`` is not compressed at all (as ``distributed.protocol.compression.
maybe_compress`` does), nor is one whose whole compressed form is not small enough.
A message none of whose frames is compressed is byte for byte the message without
codecs, and stays on the fast decode path.

Decoding is bounded: each declared decoded length, and their sum with the header,
is checked against ``Limits.max_size`` before anything is allocated, and a codec
must never produce more than the declared length (the built-ins decompress in one
shot into a buffer of exactly that size).  A codec id that is not installed, or not
allowed by ``FrameCodecs.decode``, is refused naming the codec.  Decompression
runs only after the message's strategy has passed the allowlist and the policy.
``Policy.untrusted_input()`` does not refuse codecs: decoding a frame is bounded by
these caps and runs no code named by the payload.
"""

from __future__ import annotations

import inspect
import logging
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from freight.serialize import binary
from freight.serialize.binary import BufferLike, Header, Message
from freight.serialize.errors import (
    DeserializationError,
    SerdeError,
    SerializationError,
)
from freight.serialize.hookspecs import hookspec
from freight.serialize.limits import Limits
from freight.serialize.plugin_loading import PluginError, PluginRegistry, PluginStatus

if TYPE_CHECKING:
    from freight.serialize.plugin_loading import PluginInfo, PluginSettings

__all__ = [
    "CODEC_NONE",
    "ENTRY_POINT_GROUP",
    "CodecRegistry",
    "CodedMessage",
    "Compressionlike",
    "FrameCodec",
    "FrameCodecs",
    "codec_registry",
]

logger = logging.getLogger(__name__)

#: The entry-point group codecs are registered through.
ENTRY_POINT_GROUP = "freight.codecs"
#: The codec id of a frame sent as it is (part of the format, not a plugin).
CODEC_NONE = 0
#: Codec ids freight's own codecs use; third parties use ``THIRD_PARTY_IDS``.
BUILTIN_IDS = range(1, 64)
THIRD_PARTY_IDS = range(64, 255)

# One codec table entry: codec id, (7 reserved bytes), decoded length.
_ENTRY = struct.Struct("<B7xQ")
ENTRY_SIZE = _ENTRY.size
if ENTRY_SIZE != binary.CODEC_ENTRY_SIZE:  # pragma: no cover - one layout, two names
    raise ImportError("the codec table entry size disagrees with binary.py")
# The fixed header's counts after the 12-byte prefix, as in binary.py.
_COUNTS = struct.Struct("<IQI4x")
_LENGTH = struct.Struct("<Q")
_FLAGS_OFFSET = 5


class FrameCodec(ABC):
    """A compressor for one frame; subclass it and register it through the
    ``freight.codecs`` entry-point group (``freight_codecs`` hook).

    ``codec_id`` is the byte that names the codec on the wire: 1-63 are freight's,
    64-254 third parties' (pick a free one; a collision is refused at load, naming
    both plugins).  ``name`` is how users select it (``compression="zstd"``).
    ``__init__`` (no arguments) should import the codec's library: an
    ``ImportError`` there marks the codec unavailable (reported, skipped).
    """

    codec_id: ClassVar[int]
    name: ClassVar[str]
    #: Distributions the codec needs (shown when it is unavailable).
    libraries: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def compress(self, data: memoryview, level: int | None = None) -> BufferLike:
        """``data`` (a contiguous byte view) compressed; ``level`` is the codec's
        own scale, ``None`` its default.  Must be thread-safe."""

    @abstractmethod
    def decompress(self, data: memoryview, size: int) -> BufferLike:
        """``data`` decompressed: exactly ``size`` bytes, or raise.

        ``data`` is untrusted.  The codec must never produce (nor allocate in
        proportion to) more than ``size`` bytes, whatever ``data`` declares:
        decompress into a buffer of ``size`` bytes, or stream with a cap.  The
        framework checks ``size`` against the limits before the call and the
        result's length after it.  Any exception becomes a
        ``DeserializationError`` naming the codec and the frame.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} (codec id {self.codec_id})>"


class _Hookspecs:
    """The codec hook (added to a registry's own plugin manager)."""

    @staticmethod
    @hookspec
    def freight_codecs() -> Iterable[type[FrameCodec]]:  # type: ignore[empty-body]
        """Return the ``FrameCodec`` subclasses this plugin provides.

        Each is instantiated once per registry with no arguments; an
        ``ImportError`` from its constructor marks it unavailable (a missing
        optional library) instead of failing the plugin.
        """


Compressionlike: TypeAlias = "str | int | FrameCodec | FrameCodecs | None"


@dataclass(frozen=True)
class FrameCodecs:
    """How a ``ComputeSerializer`` compresses frames and which codecs it decodes.

    ``codec``: the codec to compress with (name, id or instance); ``None`` sends
    every frame as it is.  A frame is compressed only if it has at least
    ``min_size`` bytes, if (when it is larger than ``nsamples * sample_size``)
    ``nsamples`` evenly spaced ``sample_size``-byte slices compress to at most
    ``min_ratio`` of their size, and if the whole frame then does too.  ``level``
    is passed to the codec.  ``decode``: the codec names allowed to decode
    (``None``: every installed codec).  ``registry``: where codecs are looked
    up (default: ``codec_registry()``).
    """

    codec: str | int | FrameCodec | None = None
    min_size: int = 16 * 1024
    min_ratio: float = 0.9
    sample_size: int = 10_000
    nsamples: int = 5
    level: int | None = None
    decode: frozenset[str] | None = None
    registry: CodecRegistry | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.sample_size < 1 or self.nsamples < 1:
            raise SerdeError(
                "FrameCodecs: min_size must be >= 0, sample_size and nsamples >= 1"
            )
        if not self.min_ratio > 0:
            raise SerdeError("FrameCodecs: min_ratio must be > 0")
        if isinstance(self.decode, str):
            raise TypeError(
                f"FrameCodecs(decode=...) takes a collection of codec names, not a"
                f" str: write decode={{{self.decode!r}}}"
            )
        if self.decode is not None and not isinstance(self.decode, frozenset):
            object.__setattr__(self, "decode", frozenset(self.decode))

    @classmethod
    def of(cls, value: Compressionlike) -> FrameCodecs:
        """``value`` as settings: a ``FrameCodecs`` as it is, anything else as its
        ``codec``."""
        return value if isinstance(value, FrameCodecs) else cls(codec=value)

    def resolved(self) -> FrameCodec | None:
        """The codec to compress with; ``SerdeError`` if it is unknown, not
        installed or not allowed by ``decode``."""
        if self.codec is None:
            return None
        codec = (self.registry or codec_registry()).resolve(self.codec)
        if self.decode is not None and codec.name not in self.decode:
            raise SerdeError(
                f"compression codec {codec.name!r} is not in this serializer's"
                f" decode list {sorted(self.decode)}"
            )
        return codec


# -- the registry ---------------------------------------------------------------------


class CodecRegistry(PluginRegistry[FrameCodec]):
    """The frame codecs known to a process, by id and by name.

    Loading is ``StrategyRegistry``'s own code (``PluginRegistry``): the
    ``entry_point_group`` read once, lazily, built-ins first, under the same
    ``PluginSettings`` (``FREIGHT_*`` variables, same precedence), with the same
    statuses, warnings (logger ``freight.serialize.registry``), strict mode and
    report of names in ``FREIGHT_PLUGINS`` that are not installed.
    ``entry_point_group=None`` makes a registry holding only what
    ``register_plugin`` adds, which returns the *available* codecs it added.
    """

    kind = "codec plugin"
    hook_name = "freight_codecs"
    provides = "FrameCodec classes"

    def __init__(
        self,
        *,
        entry_point_group: str | None = ENTRY_POINT_GROUP,
        settings: PluginSettings | None = None,
    ) -> None:
        super().__init__(entry_point_group=entry_point_group, settings=settings)
        self._by_id: dict[int, FrameCodec] = {}
        self._by_name: dict[str, FrameCodec] = {}
        self._origin: dict[int, PluginInfo] = {}
        #: Codecs whose library is missing: id -> (name, reason, plugin name).
        self._unavailable: dict[int, tuple[str, str, str]] = {}

    def _hookspecs(self) -> ModuleType | type:
        return _Hookspecs

    def _accept(
        self, provided: list[object], info: PluginInfo, builtin: bool | None
    ) -> tuple[list[FrameCodec], PluginStatus]:
        """Check and instantiate ``provided``; a codec whose constructor raises
        ``ImportError`` is recorded as unavailable.  A plugin all of whose codecs
        are unavailable is ``skipped``."""
        codecs: list[FrameCodec] = []
        missing: dict[int, tuple[str, str]] = {}
        for cls in provided:
            cls = self._check_class(cls, info, builtin, codecs)
            try:
                codecs.append(cls())
            except ImportError as e:
                wanted = ", ".join(cls.libraries) or "its library"
                missing[cls.codec_id] = (
                    cls.name,
                    f"{wanted} is not installed ({e}); pip install"
                    " 'freight[compress]' or the codec's own distribution",
                )
            except Exception as e:
                raise PluginError(f"{info}: {cls.__name__}() failed: {e}") from e
        for codec in codecs:
            self._by_id[codec.codec_id] = codec
            self._by_name[codec.name] = codec
            self._origin[codec.codec_id] = info
        for cid, (cname, reason) in missing.items():
            self._unavailable[cid] = (cname, reason, info.name)
            logger.debug("freight codec %r is unavailable: %s", cname, reason)
        reason = ""
        if missing and not codecs:
            reason = "; ".join(f"{n}: {r}" for n, r in missing.values())
        status = PluginStatus(
            info.name,
            info.distribution,
            "skipped" if reason else "loaded",
            reason,
            identifiers=tuple(c.name for c in codecs),
        )
        return codecs, status

    def _forget(self, name: str, records: list[FrameCodec]) -> None:
        for codec in records:
            self._by_id.pop(codec.codec_id, None)
            self._by_name.pop(codec.name, None)
            self._origin.pop(codec.codec_id, None)
        for cid, (_, _, plugin) in list(self._unavailable.items()):
            if plugin == name:
                del self._unavailable[cid]

    def _check_class(
        self,
        cls: object,
        info: PluginInfo,
        builtin: bool | None,
        pending: list[FrameCodec],
    ) -> type[FrameCodec]:
        """``cls``, if it is a concrete ``FrameCodec`` with a valid id and name in
        the range ``builtin`` allows and clashing with no codec registered or
        ``pending``; ``PluginError`` naming both sides otherwise."""
        if not (inspect.isclass(cls) and issubclass(cls, FrameCodec)):
            raise PluginError(
                f"{info} returned {cls!r}, which is not a FrameCodec subclass"
            )
        if inspect.isabstract(cls):
            raise PluginError(f"{info}: {cls.__name__} is abstract")
        cid, name = getattr(cls, "codec_id", None), getattr(cls, "name", None)
        if not isinstance(cid, int) or not 1 <= cid <= 254:
            raise PluginError(
                f"{info}: {cls.__name__}.codec_id must be an int from 1 to 254,"
                f" got {cid!r}"
            )
        if not isinstance(name, str) or not name:
            raise PluginError(f"{info}: {cls.__name__}.name must be a non-empty str")
        if builtin is not None and (cid in BUILTIN_IDS) != builtin:
            owned = "freight's built-in codecs (1-63)" if builtin is False else ""
            raise PluginError(
                f"{info}: {cls.__name__} claims codec id {cid}, reserved for "
                + (owned or "third-party codecs (64-254)")
            )
        for other in pending + list(self._by_id.values()):
            if other.codec_id == cid or other.name == name:
                what = (
                    f"codec id {cid}"
                    if other.codec_id == cid
                    else f"codec name {name!r}"
                )
                origin = self._origin.get(other.codec_id, info)
                raise PluginError(
                    f"{what} is claimed twice: by {type(other).__name__} from"
                    f" {origin} and by {cls.__name__} from {info}"
                )
        return cls

    # -- lookup -------------------------------------------------------------------

    def by_id(self, codec_id: int) -> FrameCodec | None:
        """The available codec with this id, or ``None``."""
        if not self._loaded:
            self.load()
        return self._by_id.get(codec_id)

    def unavailable_reason(self, codec_id: int) -> str | None:
        """Why a codec known by id is not available here (its library is
        missing), or ``None`` if no plugin declared it."""
        self.load()
        found = self._unavailable.get(codec_id)
        return None if found is None else f"{found[0]!r}: {found[1]}"

    def resolve(self, value: str | int | FrameCodec) -> FrameCodec:
        """The codec ``value`` names (name, id, instance or class); ``SerdeError``
        if none, naming why (unknown, or its library missing).  An instance must
        be of the registered codec's class for its id: messages are decoded by
        the codec registered under the id they carry."""
        self.load()
        if isinstance(value, FrameCodec):
            registered = self._by_id.get(value.codec_id)
            if type(registered) is not type(value):
                held = f"that is {registered!r}" if registered else "there is none"
                raise SerdeError(
                    f"{value!r} is not the registered frame codec of id"
                    f" {value.codec_id} ({held}), which decodes the messages"
                    " carrying that id; register it through the"
                    f" {ENTRY_POINT_GROUP!r} entry-point group"
                )
            return value
        if inspect.isclass(value) and issubclass(value, FrameCodec):
            value = value.codec_id
        codec = (
            self._by_id.get(value)
            if isinstance(value, int)
            else self._by_name.get(value)
        )
        if codec is not None:
            return codec
        for cid, (name, reason, _) in self._unavailable.items():
            if value in (cid, name):
                raise SerdeError(f"frame codec {name!r} is not available: {reason}")
        known = ", ".join(sorted(self._by_name)) or "none"
        raise SerdeError(f"no frame codec is named {value!r}; available: {known}")

    def __iter__(self) -> Iterator[FrameCodec]:
        """The available codecs, by id."""
        self.load()
        return iter(sorted(self._by_id.values(), key=lambda c: c.codec_id))


_default: CodecRegistry | None = None
_default_lock = threading.Lock()


def codec_registry() -> CodecRegistry:
    """The process-wide codec registry (the ``freight.codecs`` group)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = CodecRegistry()
    return _default


# -- encoding -----------------------------------------------------------------------


class MessageCompressor:
    """Compresses the messages a serializer's fast path makes.

    ``dumps_frames`` / ``dumps`` are the serializer's, with each frame chosen by
    ``FrameCodecs``; a message with no compressed frame is returned unchanged, and
    one smaller than ``min_size`` in all costs one length check.
    """

    __slots__ = ("_codec", "_dumps", "_frames", "_min_size", "_settings")

    def __init__(
        self,
        settings: FrameCodecs,
        codec: FrameCodec,
        make_frames: Callable[[Any], Sequence[BufferLike]],
        make_blob: Callable[[Any], bytes],
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._frames = make_frames
        self._dumps = make_blob
        self._min_size = settings.min_size

    def dumps_frames(self, obj: Any) -> list[BufferLike]:
        """``[header, body, *buffers]`` for ``obj``, frames compressed by choice."""
        frames = self._frames(obj)
        if len(frames) == 2:
            body = frames[1]
            size = len(body) if type(body) is bytes else binary.nbytes(body)
            if size < self._min_size:
                return frames if type(frames) is list else list(frames)
        return compress_message(list(frames), self._codec, self._settings)

    def dumps(self, obj: Any) -> bytes:
        """The blob form of ``dumps_frames(obj)``: made as one, and split into
        views of itself only if it is large enough for a frame to qualify."""
        blob = self._dumps(obj)
        if len(blob) < self._min_size:
            return blob
        split = _split(blob)
        frames = compress_message(split, self._codec, self._settings)
        return blob if frames is split else b"".join(frames)


def _split(blob: bytes) -> list[BufferLike]:
    """A blob this process made, as views of its frames."""
    view = memoryview(blob)
    n, body_length, meta_length = _COUNTS.unpack_from(blob, 12)
    pos = binary.MESSAGE_HEADER_SIZE + 8 * n + meta_length
    frames: list[BufferLike] = [view[:pos], view[pos : pos + body_length]]
    pos += body_length
    for i in range(n):
        (length,) = _LENGTH.unpack_from(blob, binary.MESSAGE_HEADER_SIZE + 8 * i)
        frames.append(view[pos : pos + length])
        pos += length
    return frames


def compress_message(
    frames: list[BufferLike], codec: FrameCodec, settings: FrameCodecs
) -> list[BufferLike]:
    """``frames`` (a message this process made, without codecs) with each frame
    compressed by ``codec`` where ``settings`` choose to; unchanged if none is."""
    min_size = settings.min_size
    payload = frames[1:]
    sizes = [len(f) if type(f) is bytes else binary.nbytes(f) for f in payload]
    if max(sizes) < min_size:
        return frames
    header = memoryview(frames[0]).cast("B")
    if header[_FLAGS_OFFSET] & binary.FLAG_CODECS:
        return frames  # already carries codecs
    out: list[BufferLike] = []
    entries: list[tuple[int, int]] = []
    for frame, size in zip(payload, sizes, strict=True):
        packed = None
        if size >= min_size:
            packed = _maybe_compress(frame, size, codec, settings)
        if packed is None:
            out.append(frame)
            entries.append((CODEC_NONE, size))
        else:
            out.append(packed)
            entries.append((codec.codec_id, size))
    if all(cid == CODEC_NONE for cid, _ in entries):
        return frames
    n = len(payload) - 1
    meta = bytes(header[binary.MESSAGE_HEADER_SIZE + 8 * n :]).rstrip(b" ")
    wire = [binary.nbytes(f) for f in out]
    table = b"".join([_ENTRY.pack(cid, size) for cid, size in entries])
    lengths = b"".join([_LENGTH.pack(w) for w in wire[1:]])
    if n:  # the writer's courtesy: the first buffer 16-aligned (BINARY_FORMAT 9)
        used = binary.MESSAGE_HEADER_SIZE + len(lengths) + len(table) + len(meta)
        meta += b" " * (-(used + wire[0]) % binary.BUFFER_ALIGNMENT)
    prefix = bytearray(header[:12])
    prefix[_FLAGS_OFFSET] |= binary.FLAG_CODECS
    head = bytes(prefix) + _COUNTS.pack(n, wire[0], len(meta)) + lengths + table + meta
    return [head, *out]


def _maybe_compress(
    frame: BufferLike, size: int, codec: FrameCodec, settings: FrameCodecs
) -> BufferLike | None:
    """``frame`` compressed, or ``None`` if a sample or the whole of it does not
    compress to at most ``min_ratio`` of its size (Dask's ``maybe_compress``), or
    it is not a C-contiguous buffer.  ``SerializationError`` if the codec fails."""
    view = memoryview(frame)
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError:  # not C-contiguous: sent as it is
            return None
    try:
        return _try_compress(view, size, codec, settings)
    except Exception as e:
        raise SerializationError(
            f"frame codec {codec.name!r} failed to compress a {size}-byte frame:"
            f" {type(e).__name__}: {e}"
        ) from e


def _try_compress(
    view: memoryview, size: int, codec: FrameCodec, settings: FrameCodecs
) -> BufferLike | None:
    ratio, level = settings.min_ratio, settings.level
    sample_size, nsamples = settings.sample_size, settings.nsamples
    if size > sample_size * nsamples > 0:
        # Evenly spaced slices, not random ones: a message stays deterministic.
        step = (size - sample_size) // max(nsamples - 1, 1)
        sample = b"".join(
            view[i * step : i * step + sample_size] for i in range(nsamples)
        )
        packed_sample = codec.compress(memoryview(sample), level)
        if binary.nbytes(packed_sample) > ratio * len(sample):
            return None
    packed = codec.compress(view, level)
    if binary.nbytes(packed) > ratio * size:
        return None
    return packed


# -- decoding -----------------------------------------------------------------------


class CodedMessage(Message):
    """A parsed message whose header carries a codec table: ``body`` and
    ``buffers`` are the frames as received (compressed or not), ``entries`` the
    table's ``(codec id, decoded length)`` per frame, body first.

    A ``Message`` with one more attribute, kept in the instance's ``__dict__`` so
    that this works whatever kind of record ``Message`` is (``coded_message``
    makes one).
    """

    @property
    def entries(self) -> tuple[tuple[int, int], ...]:
        entries: tuple[tuple[int, int], ...] = self.__dict__["entries"]
        return entries

    @property
    def decoded_size(self) -> int:
        """The bytes the frames decode to."""
        return sum(size for _, size in self.entries)


def coded_message(
    header: Header,
    metadata: memoryview,
    body: bytes | memoryview,
    buffers: list[memoryview],
    entries: tuple[tuple[int, int], ...],
) -> CodedMessage:
    """A ``CodedMessage`` of these parts."""
    message = CodedMessage(header, metadata, body, buffers)
    message.__dict__["entries"] = entries
    return message


def parse_frames(
    frames: Sequence[BufferLike], view: memoryview, header: Header, limits: Limits
) -> CodedMessage:
    """``binary.parse_message`` for a header frame ``view`` with the codec flag
    (the frame count is already checked)."""
    n = header.buffer_count
    table_start = header.end + 8 * n
    meta_start = table_start + ENTRY_SIZE * (n + 1)
    if len(view) != meta_start + header.metadata_length:
        raise DeserializationError(
            f"header frame is {len(view)} bytes; its fields (codec table included)"
            f" say {meta_start + header.metadata_length}"
        )
    lengths = binary.buffer_lengths(view, header)
    entries = _entries(view, table_start, n, 0)
    body = frames[1]
    received = [binary.checked_view(body, "body frame")]
    for i, frame in enumerate(frames[2:]):
        received.append(binary.checked_view(frame, f"buffer frame {i}"))
    for i, (frame, length) in enumerate(
        zip(received, [header.body_length, *lengths], strict=True)
    ):
        if len(frame) != length:
            what = "body frame" if i == 0 else f"buffer frame {i - 1}"
            raise DeserializationError(
                f"{what} is {len(frame)} bytes; the header says {length}"
            )
    limits.check_size(len(view) + sum(len(f) for f in received), "the message")
    _check_entries(entries, [header.body_length, *lengths], len(view), limits, 0)
    return coded_message(header, view[meta_start:], received[0], received[1:], entries)


def parse_blob_at(
    view: memoryview, start: int, header: Header, limits: Limits
) -> tuple[CodedMessage, int]:
    """``binary._parse_blob_at`` for a header with the codec flag at ``start``
    (the buffer count is already checked against ``max_frames``)."""
    n = header.buffer_count
    table_start = header.end + 8 * n
    meta_start = table_start + ENTRY_SIZE * (n + 1)
    if meta_start > len(view):
        raise DeserializationError(
            f"truncated header at offset {start}: {n} buffer lengths and {n + 1}"
            f" codec entries need {meta_start - header.end} bytes,"
            f" {len(view) - header.end} remain"
        )
    lengths = binary.buffer_lengths(view, header)
    entries = _entries(view, table_start, n, start)
    binary.check_remaining(view, meta_start, header, lengths, start)
    head_size = meta_start + header.metadata_length - start
    _check_entries(entries, [header.body_length, *lengths], head_size, limits, start)
    pos = meta_start + header.metadata_length
    metadata = view[meta_start:pos]
    frames = []
    for length in [header.body_length, *lengths]:
        frames.append(view[pos : pos + length])
        pos += length
    message = coded_message(header, metadata, frames[0], frames[1:], entries)
    return message, pos


def _entries(
    view: memoryview, table_start: int, n: int, start: int
) -> tuple[tuple[int, int], ...]:
    entries = []
    for i in range(n + 1):
        at = table_start + ENTRY_SIZE * i
        if any(view[at + 1 : at + 8]):
            raise DeserializationError(
                f"non-zero reserved bytes in codec table entry {i} of the header at"
                f" offset {start}"
            )
        entries.append(_ENTRY.unpack_from(view, at))
    return tuple(entries)


def _check_entries(
    entries: Sequence[tuple[int, int]],
    wire: Sequence[int],
    head_size: int,
    limits: Limits,
    start: int,
) -> None:
    """Every declared decoded length, and their sum with the header, within
    ``limits.max_size``; a codec-0 frame's decoded length is its length."""
    total = head_size
    for i, ((cid, size), length) in enumerate(zip(entries, wire, strict=True)):
        what = "the body" if i == 0 else f"buffer {i - 1}"
        if cid == CODEC_NONE and size != length:
            raise DeserializationError(
                f"{what} of the message at offset {start} has no codec but declares"
                f" {size} decoded bytes for its {length} bytes"
            )
        limits.check_size(size, f"{what} of the message at offset {start}, decoded,")
        total += size
    limits.check_size(total, f"the message at offset {start}, decoded,")


def check_bundle(messages: Sequence[Message], limits: Limits) -> None:
    """Refuse a bundle whose messages decode to more than ``max_size`` in all."""
    total = 0
    for m in messages:
        if isinstance(m, CodedMessage):
            total += m.decoded_size
        else:
            total += len(m.body) + sum(len(b) for b in m.buffers)
    limits.check_size(total, "the bundle, decoded,")


def decode_message(
    message: CodedMessage, settings: FrameCodecs, limits: Limits
) -> Message:
    """``message`` with its frames decompressed (each exactly its declared length):
    a plain ``Message`` for the strategy.  Raises ``DeserializationError`` for a
    codec not installed or not allowed, or a frame that does not decode to exactly
    its declared length."""
    registry = settings.registry or codec_registry()
    frames: list[Any] = []
    received = [message.body, *message.buffers]
    for i, ((cid, size), frame) in enumerate(
        zip(message.entries, received, strict=True)
    ):
        if cid == CODEC_NONE:
            frames.append(frame)
            continue
        what = "the body" if i == 0 else f"buffer {i - 1}"
        codec = registry.by_id(cid)
        if codec is None:
            reason = registry.unavailable_reason(cid)
            raise DeserializationError(
                f"{what} is compressed with frame codec id {cid}, which is "
                + (f"not available here: {reason}" if reason else "not installed here")
            )
        if settings.decode is not None and codec.name not in settings.decode:
            raise DeserializationError(
                f"{what} is compressed with frame codec {codec.name!r}, which this"
                f" serializer does not decode (allowed: {sorted(settings.decode)})"
            )
        view = frame if isinstance(frame, memoryview) else memoryview(frame)
        try:
            out = codec.decompress(view, size)
            got = binary.nbytes(out)
        except Exception as e:
            raise DeserializationError(
                f"{what} does not decompress with frame codec {codec.name!r} to"
                f" exactly the {size} bytes its header declares (decompression"
                f" is capped there, within the decode limit max_size="
                f"{limits.max_size}): {type(e).__name__}: {e}"
            ) from e
        if got != size:
            raise DeserializationError(
                f"{what} decompressed with frame codec {codec.name!r} to {got}"
                f" bytes; its header declares {size} (the decode limit"
                f" max_size={limits.max_size} caps the declared length)"
            )
        frames.append(out)
    body = frames[0]
    if type(body) is not bytes and binary.nbytes(body) <= binary.SMALL_BODY:
        body = bytes(body)
    elif type(body) is not bytes and not isinstance(body, memoryview):
        body = memoryview(body)
    buffers = [f if isinstance(f, memoryview) else memoryview(f) for f in frames[1:]]
    return Message(message.header, message.metadata, body, buffers)
