"""The binary envelope: versioned frames with zero-copy out-of-band buffers.

A *message* is a list of frames: a header frame, the strategy's body, then the
strategy's out-of-band buffers (pickle protocol 5 ``PickleBuffer`` s, large
``bytes``, array memory ...), each its own frame so it is never copied or base64-ed
on the way out.  The single-blob form is the frames concatenated; the header holds
every length, so a blob splits back into views of itself.  A *bundle* carries
several messages (a function, its args, its kwargs) behind a small bundle header.
``BINARY_FORMAT.md`` at the repository root documents the layout byte by byte.

Framing never looks inside a body, and checks every length against what remains
before slicing; malformed input raises ``DeserializationError`` saying what and
where.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from pickle import PickleBuffer
from typing import NamedTuple, TypeAlias, TypeGuard

from freight.serialize.accel import ACCEL
from freight.serialize.errors import DeserializationError
from freight.serialize.limits import DEFAULT_LIMITS, Limits

#: Anything the envelope accepts as a frame: an object with the buffer protocol.
BufferLike: TypeAlias = bytes | bytearray | memoryview | PickleBuffer

MESSAGE_MAGIC = b"\x93FRT"
BUNDLE_MAGIC = b"\x93FRB"
#: The binary format version this module writes and the only one it reads.
FORMAT_VERSION = 1

FLAG_TEXT_BODY = 0x01
#: The flags a message may carry and still be read by a serializer's learned fast
#: path (``fastpath``), which reads frames exactly as this module lays them out.
#: A flag that changes how frames are read (a codec, say) must stay out of it, so
#: that its messages always take the general path.
LEARNABLE_FLAGS = FLAG_TEXT_BODY
#: Offset and size of the prefix (magic to identifier) in a message header.
PREFIX_SIZE = 12

# magic, version, flags, python major, python minor, identifier, (pad)
_PREFIX = struct.Struct("<4sBBBB3sx")
# buffer count N, body length B, metadata length M, (pad)
_COUNTS = struct.Struct("<IQI4x")
_LENGTH = struct.Struct("<Q")
# magic, version, (pad), message count K, (pad)
_BUNDLE = struct.Struct("<4sB3xI4x")

#: Frame codecs: a codec table follows the buffer length table (BINARY_FORMAT.md
#: 3.4); such messages are parsed by ``freight.serialize.codecs``, never learned.
FLAG_CODECS = 0x02
#: Bytes per frame of the codec table that ``FLAG_CODECS`` announces
#: (``freight.serialize.codecs``; BINARY_FORMAT.md section 3.4).
CODEC_ENTRY_SIZE = 16
_KNOWN_FLAGS = FLAG_TEXT_BODY | FLAG_CODECS

MESSAGE_HEADER_SIZE = _PREFIX.size + _COUNTS.size  # 32
BUNDLE_HEADER_SIZE = _BUNDLE.size  # 16
#: Bodies of at most this many bytes reach a strategy's ``from_frames`` as ``bytes``
#: (copying so few bytes costs less than making a view of them); larger bodies as
#: a ``memoryview`` of the received memory, unless the received body frame already
#: is a ``bytes`` object, which is handed over as it is.
SMALL_BODY = 4096
#: freight pads a message's metadata so that, in the blob form, its first
#: out-of-band buffer starts at a multiple of this many bytes from the message's
#: first byte: what any numpy dtype or C scalar needs, and what CPython's
#: ASCII decoder needs for its fast path.  (Later buffers start wherever the one
#: before ends.)
BUFFER_ALIGNMENT = 16

_PYTHON = (sys.version_info.major, sys.version_info.minor)


class Header(NamedTuple):
    """What a message's fixed 32-byte header says.

    A plain record (a ``NamedTuple``: immutable, and built in well under a
    microsecond, where a frozen dataclass took several).
    """

    #: The first 12 bytes (magic to identifier): equal prefixes mean the same
    #: format version, flags, producer Python and strategy.
    prefix: bytes
    identifier: str
    python: tuple[int, int]
    text_body: bool
    buffer_count: int
    body_length: int
    metadata_length: int
    #: Offset just past the fixed 32 bytes.
    end: int


class Message(NamedTuple):
    """A parsed message: its header, and views of its metadata and frames.

    The metadata is not parsed here: it is read (as JSON) only when something
    needs it, such as the message for a payload from another Python.
    """

    header: Header
    metadata: memoryview
    #: ``bytes`` or a ``memoryview``, by the rule ``SMALL_BODY`` states.
    body: bytes | memoryview
    buffers: list[memoryview]

    @property
    def prefix(self) -> bytes:
        return self.header.prefix

    @property
    def identifier(self) -> str:
        return self.header.identifier

    @property
    def python(self) -> tuple[int, int]:
        return self.header.python

    @property
    def text_body(self) -> bool:
        return self.header.text_body


def message_prefix(identifier: str, *, text_body: bool) -> bytes:
    """The first 12 header bytes for a strategy in this process (cacheable)."""
    flags = FLAG_TEXT_BODY if text_body else 0
    return _PREFIX.pack(
        MESSAGE_MAGIC, FORMAT_VERSION, flags, *_PYTHON, identifier.encode("ascii")
    )


def message_header(
    prefix: bytes,
    body: BufferLike,
    buffers: Sequence[BufferLike],
    metadata: bytes = b"",
) -> bytes:
    """The header frame for ``body``, ``buffers`` and ``metadata`` after ``prefix``.

    With buffers, ``metadata`` is padded with spaces (JSON's whitespace) so that
    in the blob form the first buffer starts ``BUFFER_ALIGNMENT``-aligned from the
    message's first byte.
    """
    body_length = nbytes(body)
    if not buffers:
        return buffer_free_header(prefix, body_length, metadata)
    lengths = b"".join([_LENGTH.pack(nbytes(b)) for b in buffers])
    pad = -(MESSAGE_HEADER_SIZE + len(lengths) + len(metadata) + body_length)
    metadata += b" " * (pad % BUFFER_ALIGNMENT)
    counts = _COUNTS.pack(len(buffers), body_length, len(metadata))
    return prefix + counts + lengths + metadata


def buffer_free_header(prefix: bytes, body_length: int, metadata: bytes = b"") -> bytes:
    """The header frame of a message with no buffers and a ``body_length``-byte
    body (``message_header`` without the buffers, for callers that cache it)."""
    return prefix + _COUNTS.pack(0, body_length, len(metadata)) + metadata


def py_utf8_buffer(text: str) -> BufferLike:
    """``text``'s UTF-8 encoding (lone surrogates pass through) as a buffer.

    ``utf8_buffer`` is this function, or its C twin when the accelerator is built
    (``freight.serialize.accel``), which returns an ASCII str's own memory as a
    read-only ``memoryview`` instead of encoding it into a copy.  For a strategy
    that hands a large str to the envelope as a buffer.
    """
    if not isinstance(text, str):
        raise TypeError(f"utf8_buffer() takes a str, got {type(text).__name__}")
    return text.encode("utf-8", "surrogatepass")


utf8_buffer: Callable[[str], BufferLike] = (
    py_utf8_buffer if ACCEL is None else ACCEL.utf8_buffer
)


def nbytes(buffer: BufferLike) -> int:
    """The size in bytes of any buffer-protocol object."""
    if type(buffer) is bytes:
        return len(buffer)
    with memoryview(buffer) as view:
        return view.nbytes


def parse_message(
    frames: Sequence[BufferLike], limits: Limits = DEFAULT_LIMITS
) -> Message:
    """Parse one message given as frames: ``[header, body, *buffers]``.

    Every frame's length must match the header exactly.
    """
    if len(frames) < 2:
        raise DeserializationError(
            f"a message needs at least 2 frames (header, body), got {len(frames)}"
        )
    limits.check_frames(len(frames) - 2, "out-of-band buffers in the message")
    header_view = checked_view(frames[0], "header frame")
    header = _parse_header(header_view, 0)
    n = header.buffer_count
    if len(frames) != n + 2:
        raise DeserializationError(
            f"the header declares {n} out-of-band buffers, so {n + 2} frames, but"
            f" {len(frames)} frames were given"
        )
    if header.prefix[5] & FLAG_CODECS:  # frame codecs: the general path
        from freight.serialize import codecs

        return codecs.parse_frames(frames, header_view, header, limits)
    meta_start = header.end + 8 * n
    if len(header_view) != meta_start + header.metadata_length:
        raise DeserializationError(
            f"header frame is {len(header_view)} bytes; its fields say"
            f" {meta_start + header.metadata_length}"
        )
    lengths = buffer_lengths(header_view, header)
    body = _body(frames[1])
    if len(body) != header.body_length:
        raise DeserializationError(
            f"body frame is {len(body)} bytes; the header says {header.body_length}"
        )
    limits.check_size(
        len(header_view) + header.body_length + sum(lengths), "the message"
    )
    buffers = []
    for i, (frame, length) in enumerate(zip(frames[2:], lengths, strict=True)):
        view = checked_view(frame, f"buffer frame {i}")
        if len(view) != length:
            raise DeserializationError(
                f"buffer frame {i} is {len(view)} bytes; the header says {length}"
            )
        buffers.append(view)
    metadata = header_view[meta_start:]
    return Message(header, metadata, body, buffers)


def parse_blob(data: BufferLike, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse one message given as a single blob; frames come back as views of it."""
    view = checked_view(data, "payload")
    limits.check_size(len(view), "the binary payload")
    message, end = _parse_blob_at(view, 0, limits)
    if end != len(view):
        raise DeserializationError(
            f"{len(view) - end} unexpected bytes after the message at offset {end}"
        )
    return message


def _parse_blob_at(view: memoryview, start: int, limits: Limits) -> tuple[Message, int]:
    header = _parse_header(view, start)
    n = header.buffer_count
    limits.check_frames(n, f"out-of-band buffers in the message at offset {start}")
    if header.prefix[5] & FLAG_CODECS:  # frame codecs: the general path
        from freight.serialize import codecs

        return codecs.parse_blob_at(view, start, header, limits)
    meta_start = header.end + 8 * n
    if meta_start > len(view):
        raise DeserializationError(
            f"truncated header at offset {start}: {n} buffer lengths need"
            f" {8 * n} bytes, {len(view) - header.end} remain"
        )
    lengths = buffer_lengths(view, header)
    check_remaining(view, meta_start, header, lengths, start)
    pos = meta_start + header.metadata_length
    metadata = view[meta_start:pos]
    body_view = view[pos : pos + header.body_length]
    body = body_view.tobytes() if header.body_length <= SMALL_BODY else body_view
    pos += header.body_length
    buffers = []
    for length in lengths:
        buffers.append(view[pos : pos + length])
        pos += length
    return Message(header, metadata, body, buffers), pos


def buffer_lengths(view: memoryview, header: Header) -> list[int]:
    """The buffer length table that follows ``header`` in ``view`` (the caller
    has checked that all ``header.buffer_count`` entries are present)."""
    return [
        _LENGTH.unpack_from(view, header.end + 8 * i)[0]
        for i in range(header.buffer_count)
    ]


def _parse_header(view: memoryview, start: int) -> Header:
    """Validate the fixed 32-byte header at ``start``."""
    remaining = len(view) - start
    if remaining < MESSAGE_HEADER_SIZE:
        head = bytes(view[start : start + 4])
        if remaining > 0 and head == MESSAGE_MAGIC[: len(head)]:
            raise DeserializationError(
                f"truncated header at offset {start}: {remaining} bytes, a message"
                f" header is {MESSAGE_HEADER_SIZE}"
            )
        raise DeserializationError(_not_a_message(view, start))
    magic, version, flags, major, minor, ident = _PREFIX.unpack_from(view, start)
    if magic != MESSAGE_MAGIC:
        raise DeserializationError(_not_a_message(view, start))
    if version != FORMAT_VERSION:
        raise DeserializationError(
            f"unsupported binary format version {version} at offset {start}; this"
            f" freight reads version {FORMAT_VERSION}"
        )
    if flags & ~_KNOWN_FLAGS:
        raise DeserializationError(
            f"unknown flags {flags:#04x} in the header at offset {start}"
        )
    if ident[2:] != b"\n" or b"\n" in ident[:2] or not ident.isascii():
        raise DeserializationError(
            f"malformed identifier {ident!r} in the header at offset {start}:"
            " expected two ASCII characters and a newline"
        )
    if view[start + 11] or any(view[start + 28 : start + 32]):
        raise DeserializationError(
            f"non-zero reserved bytes in the header at offset {start}"
        )
    n, body_len, meta_len = _COUNTS.unpack_from(view, start + _PREFIX.size)
    return Header(
        prefix=bytes(view[start : start + _PREFIX.size]),
        identifier=ident.decode("ascii"),
        python=(major, minor),
        text_body=bool(flags & FLAG_TEXT_BODY),
        buffer_count=n,
        body_length=body_len,
        metadata_length=meta_len,
        end=start + MESSAGE_HEADER_SIZE,
    )


def _not_a_message(view: memoryview, start: int) -> str:
    head = bytes(view[start : start + 4])
    if head == BUNDLE_MAGIC:
        return f"expected a message at offset {start}, found a bundle header"
    if bytes(view[start + 2 : start + 3]) == b"\n":
        return (
            f"not a binary message (no {MESSAGE_MAGIC!r} magic at offset {start});"
            " it looks like a text payload: use deserialize()"
        )
    return f"not a binary message: no {MESSAGE_MAGIC!r} magic at offset {start}"


def _body(frame: object) -> bytes | memoryview:
    """A received body frame as ``from_frames`` gets it (see ``SMALL_BODY``)."""
    if type(frame) is bytes:
        return frame
    view = checked_view(frame, "body frame")
    return view.tobytes() if len(view) <= SMALL_BODY else view


def byte_view(obj: object) -> memoryview | None:
    """``obj``'s memory as a flat ``memoryview`` of bytes (format ``"B"``), or
    ``None`` if ``obj`` has no buffer protocol or its memory is not C-contiguous.

    What the fast paths read any received buffer through (``bytes``,
    ``bytearray``, ``memoryview``, a zmq ``Frame``, a shared-memory slice, an
    array); ``_view`` is the same with errors for the general path.
    """
    try:
        view = memoryview(obj)  # type: ignore[arg-type]
        if not view.c_contiguous:
            return None
        if view.ndim != 1 or view.itemsize != 1 or view.format != "B":
            return view.cast("B")
    except Exception:  # no buffer, or one memoryview cannot present as bytes
        return None
    return view


def check_remaining(
    view: memoryview, meta_start: int, header: Header, lengths: list[int], start: int
) -> None:
    """Raise ``DeserializationError`` unless the metadata, body and buffers the
    header at ``start`` declares fit in what remains of ``view`` from
    ``meta_start``."""
    needed = header.metadata_length + header.body_length + sum(lengths)
    if needed > len(view) - meta_start:
        raise DeserializationError(
            f"truncated message at offset {start}: the header declares {needed}"
            f" bytes of metadata, body and buffers, but {len(view) - meta_start}"
            " remain"
        )


def checked_view(frame: object, what: str) -> memoryview:
    """``frame`` as a flat, contiguous memoryview of bytes; ``DeserializationError``
    naming ``what`` if it has no buffer or its memory is not contiguous."""
    try:
        view = memoryview(frame)  # type: ignore[arg-type]
    except TypeError:
        raise DeserializationError(
            f"{what} must support the buffer protocol (bytes, bytearray,"
            f" memoryview ...), got {type(frame).__name__}"
        ) from None
    if not view.c_contiguous:
        raise DeserializationError(f"{what} must be a contiguous buffer of bytes")
    if view.ndim != 1 or view.itemsize != 1 or view.format != "B":
        try:
            view = view.cast("B")
        except TypeError:
            raise DeserializationError(
                f"{what} must be a contiguous buffer of bytes"
            ) from None
    return view


# -- bundles -------------------------------------------------------------------------


def pack_frames(messages: Iterable[Sequence[BufferLike]]) -> list[BufferLike]:
    """One frame list carrying several messages, without copying any of them."""
    messages = list(messages)
    frames: list[BufferLike] = [
        _BUNDLE.pack(BUNDLE_MAGIC, FORMAT_VERSION, len(messages))
    ]
    for message in messages:
        frames.extend(message)
    return frames


def unpack_frames(
    frames: Sequence[BufferLike] | BufferLike, limits: Limits = DEFAULT_LIMITS
) -> list[Message]:
    """Parse a bundle given as ``pack_frames`` output or as its blob (the frames
    concatenated)."""
    if not is_frame_sequence(frames):
        view = checked_view(frames, "bundle")
        limits.check_size(len(view), "the bundle")
        return _unpack_bundle_blob(view, limits)
    if not frames:
        raise DeserializationError("a bundle needs a bundle header frame, got none")
    limits.check_frames(len(frames), "frames in the bundle")
    count = _parse_bundle_header(
        checked_view(frames[0], "bundle header frame"), exact=True
    )
    limits.check_frames(count, "messages in the bundle")
    messages, pos = [], 1
    for i in range(count):
        if pos >= len(frames):
            raise DeserializationError(
                f"truncated bundle: it declares {count} messages, found {i}"
            )
        n = _parse_header(
            checked_view(frames[pos], f"message {i} header"), 0
        ).buffer_count
        if pos + n + 2 > len(frames):
            raise DeserializationError(
                f"truncated bundle: message {i} needs {n + 2} frames,"
                f" {len(frames) - pos} remain"
            )
        messages.append(parse_message(frames[pos : pos + n + 2], limits))
        pos += n + 2
    if pos != len(frames):
        raise DeserializationError(
            f"{len(frames) - pos} unexpected frames after the bundle's {count} messages"
        )
    return messages


def _unpack_bundle_blob(view: memoryview, limits: Limits) -> list[Message]:
    count = _parse_bundle_header(view, exact=False)
    limits.check_frames(count, "messages in the bundle")
    messages, pos = [], BUNDLE_HEADER_SIZE
    for i in range(count):
        if pos >= len(view):
            raise DeserializationError(
                f"truncated bundle: it declares {count} messages, found {i}"
            )
        message, pos = _parse_blob_at(view, pos, limits)
        messages.append(message)
    if pos != len(view):
        raise DeserializationError(
            f"{len(view) - pos} unexpected bytes after the bundle's {count} messages"
        )
    return messages


def is_frame_sequence(frames: object) -> TypeGuard[Sequence[BufferLike]]:
    """A list of frames (any ``Sequence`` but the bytes-likes and ``str``), as
    opposed to one buffer (``bytes``, a numpy array, a ``PickleBuffer`` ...)."""
    return isinstance(frames, Sequence) and not isinstance(
        frames, bytes | bytearray | memoryview | str
    )


def _parse_bundle_header(view: memoryview, *, exact: bool) -> int:
    if len(view) < BUNDLE_HEADER_SIZE or bytes(view[:4]) != BUNDLE_MAGIC:
        if bytes(view[:4]) == MESSAGE_MAGIC:
            raise DeserializationError(
                "expected a bundle, found a single message: use loads()"
            )
        raise DeserializationError(
            f"not a bundle: expected a {BUNDLE_HEADER_SIZE}-byte header starting"
            f" with {BUNDLE_MAGIC!r}"
        )
    if exact and len(view) != BUNDLE_HEADER_SIZE:
        raise DeserializationError(
            f"bundle header frame is {len(view)} bytes, expected {BUNDLE_HEADER_SIZE}"
        )
    _magic, version, count = _BUNDLE.unpack_from(view, 0)
    if version != FORMAT_VERSION:
        raise DeserializationError(
            f"unsupported bundle format version {version}; this freight reads"
            f" version {FORMAT_VERSION}"
        )
    if any(view[5:8]) or any(view[12:16]):
        raise DeserializationError("non-zero reserved bytes in the bundle header")
    return int(count)


# -- header fields for readers that have only the first bytes (serialize/stream.py) --


def read_message_header(data: BufferLike, start: int = 0) -> Header:
    """Validate the fixed 32-byte message header at ``start`` of ``data`` and
    return it (``header.prefix[5]`` is its flags byte).

    Needs only those 32 bytes; raises ``DeserializationError`` (truncated, bad
    magic, version, flags ...) as ``parse_blob`` would.
    """
    return _parse_header(checked_view(data, "message header"), start)


def read_bundle_header(data: BufferLike) -> int:
    """Validate the 16-byte bundle header at the start of ``data``; its message
    count K."""
    return _parse_bundle_header(checked_view(data, "bundle header"), exact=False)
