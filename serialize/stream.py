"""The binary envelope on streams and in shared buffers.

Transports that carry freight messages need to know how many bytes a message
takes before they have all of it, and must not let a peer decide how much they
allocate.  This module reads the envelope's headers (``BINARY_FORMAT.md``) for
them, checking ``Limits`` at every step, *before* anything is allocated for a body:

* ``read_layout(first_bytes)``: a message's remaining header size, its frame
  lengths and its total, from its first 32 bytes (plus its buffer length table);
* ``FrameReader``: an incremental reader, ``feed(chunk)`` (or the
  ``get_buffer`` / ``buffer_updated`` pair of an ``asyncio.BufferedProtocol``),
  returning each complete message or bundle as a frame list;
* ``read_frames(stream_reader)``: the same for an ``asyncio.StreamReader``;
* ``prefix_length(buffer)``: the length of the message or bundle at the front of
  a larger buffer (a ring buffer, a shared-memory segment), for
  ``ComputeSerializer.loads_prefix``;
* ``write_into(frames, buffer)``: a message's frames copied into a caller's
  writable buffer, for ``ComputeSerializer.dumps_into``;
* ``coalesce_frames`` / ``split_frames``: a frame list with its small frames
  joined (``dumps_frames(obj, coalesce_below=N)``), and back.

**Coalesced frame lists.**  A frame list may join neighbouring frames into one
buffer, as long as every frame of the format (header, body, each buffer, and for
a bundle its header) lies whole inside one buffer of the list: the list is then
the blob form cut at some frame boundaries.  ``[blob]`` is the extreme case, the
exact ``[header, body, *buffers]`` list the other.  ``split_frames`` turns any
such list back into the exact one, as views (nothing is copied).

Decisions: a message is handed out as ``[blob]`` (one buffer: the one-frame list,
which ``loads_frames`` takes as the blob form), a bundle as ``[bundle header,
message blob, ...]``; both are coalesced frame lists that ``loads_frames`` and
``unpack_frames_and_deserialize`` read.  The reader keeps nothing for a message
before its header and total have passed ``Limits``, and then grows its buffer
with the bytes received, never ahead of them.  A message with out-of-band buffers
comes as a ``bytearray``, so arrays decoded from it are writable -- except from a
frame a codec decompressed: the built-in codecs return ``bytes``, so those arrays
are read-only unless the serializer has ``writable=True``.  A small message
without buffers (64 KiB at most) comes as ``bytes``, the quickest to decode.

``coalesce_below`` and ``writable`` are ``ComputeSerializer`` settings rather than
per-call keywords: the per-message methods are bound straight to the fast path
(C), which takes no keywords; a setting unbinds only the methods it changes, so a
serializer without them pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

from freight.serialize import binary
from freight.serialize.binary import (
    BUNDLE_HEADER_SIZE,
    BUNDLE_MAGIC,
    CODEC_ENTRY_SIZE,
    MESSAGE_HEADER_SIZE,
    MESSAGE_MAGIC,
    BufferLike,
    nbytes,
)
from freight.serialize.errors import DeserializationError, SerializationError
from freight.serialize.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # asyncio is imported where it is used: it is slow to import
    import asyncio

__all__ = [
    "BUNDLE_HEADER_SIZE",
    "MESSAGE_HEADER_SIZE",
    "BufferTooSmallError",
    "FrameReader",
    "Layout",
    "coalesce_frames",
    "is_bundle",
    "prefix_length",
    "read_frames",
    "read_layout",
    "split_frames",
    "writable_buffers",
    "write_into",
]

#: The bytes a reader needs before it can tell a message (``MESSAGE_MAGIC``) from
#: a bundle (``BUNDLE_MAGIC``).
MAGIC_SIZE: Final = 4
#: ``FrameReader.get_buffer`` hands out its own scratch area of at least this size
#: (the transport's size hint if larger); ``buffer_updated`` then copies what was
#: received into the message's buffer, which grows only with bytes received.  Also
#: the largest message without out-of-band buffers that is handed out as ``bytes``.
SCRATCH_SIZE: Final = 64 * 1024


class BufferTooSmallError(SerializationError, ValueError):
    """``dumps_into`` was given a buffer smaller than the message: ``needed``
    bytes, ``available`` in the buffer.  Nothing was written."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"the message needs {needed} bytes, the buffer has {available}"
            f" ({needed - available} too few)"
        )
        self.needed = needed
        self.available = available


class Layout(NamedTuple):
    """What a message's first bytes say about its size.

    ``header_size``: bytes of the whole header frame (32 + 8N + M, and 16(N + 1)
    more with frame codecs).
    ``table_end``: bytes needed to know every length (32 + 8N).
    ``frame_lengths``: ``(header_size, B, L0, ..., L(N-1))``, ``None`` until the
    first ``table_end`` bytes were given.  ``total``: bytes of the whole message
    (the sum of ``frame_lengths``), ``None`` likewise.
    """

    header_size: int
    table_end: int
    frame_lengths: tuple[int, ...] | None
    total: int | None

    @property
    def remaining_header(self) -> int:
        """Header bytes after the fixed 32: the length table and the metadata."""
        return self.header_size - MESSAGE_HEADER_SIZE


def read_layout(
    data: BufferLike, limits: Limits = DEFAULT_LIMITS, *, start: int = 0
) -> Layout:
    """The ``Layout`` of the message starting at ``start`` of ``data``, of which
    at least the first 32 bytes are given.

    Checks the fixed header, ``max_frames`` against N and ``max_size`` against
    what the header declares so far, then (when the length table is present) the
    total against ``max_size``: a hostile length is refused before the caller
    reads or allocates anything for it.  Raises ``DeserializationError``.
    """
    view = binary.checked_view(data, "message header")
    header = binary.read_message_header(view, start)
    n, body = header.buffer_count, header.body_length
    if n > limits.max_frames:
        limits.check_frames(n, "out-of-band buffers in the message")
    table_end = MESSAGE_HEADER_SIZE + 8 * n
    if header.prefix[5] & binary.FLAG_CODECS:
        # The codec table (16 bytes per frame, body first) follows the lengths;
        # the lengths are the frames' sizes on the wire.
        table_end += CODEC_ENTRY_SIZE * (n + 1)
    header_size = table_end + header.metadata_length
    total = header_size + body
    if total > limits.max_size:
        limits.check_size(total, "the message (header and body)")
    if not n:
        return Layout(header_size, table_end, (header_size, body), total)
    if len(view) - start < table_end:
        return Layout(header_size, table_end, None, None)
    lengths = binary.buffer_lengths(view, header)
    total += sum(lengths)
    limits.check_size(total, "the message")
    return Layout(header_size, table_end, (header_size, body, *lengths), total)


def is_bundle(frames: Sequence[BufferLike] | BufferLike) -> bool:
    """Whether a frame list (or blob) starts with a bundle header."""
    first = frames[0] if binary.is_frame_sequence(frames) and frames else frames
    with memoryview(first) as view:  # type: ignore[arg-type]
        return bytes(view.cast("B")[:MAGIC_SIZE]) == BUNDLE_MAGIC


def prefix_length(data: BufferLike, limits: Limits = DEFAULT_LIMITS) -> int:
    """The length of the message or bundle at the front of ``data``, which may
    hold more bytes after it (a ring buffer, a shared-memory segment).

    Raises ``DeserializationError`` if ``data`` does not start with one, if it is
    truncated, or if it breaks ``limits``.
    """
    view = binary.checked_view(data, "buffer")
    if bytes(view[:MAGIC_SIZE]) != BUNDLE_MAGIC:
        return _message_length_at(view, 0, limits)
    count = binary.read_bundle_header(view)
    limits.check_frames(count, "messages in the bundle")
    pos = BUNDLE_HEADER_SIZE
    for _ in range(count):
        pos += _message_length_at(view, pos, limits, bundle_start=0)
    return pos


def _message_length_at(
    view: memoryview, start: int, limits: Limits, *, bundle_start: int | None = None
) -> int:
    layout = read_layout(view, limits, start=start)
    if layout.total is None:
        raise DeserializationError(
            f"truncated header at offset {start}: its buffer length table needs"
            f" {layout.table_end} bytes, {len(view) - start} remain"
        )
    if bundle_start is not None:
        limits.check_size(start - bundle_start + layout.total, "the bundle")
    if layout.total > len(view) - start:
        raise DeserializationError(
            f"truncated message at offset {start}: it is {layout.total} bytes,"
            f" {len(view) - start} remain"
        )
    return layout.total


# -- writing -----------------------------------------------------------------------


def write_into(frames: Sequence[BufferLike], buffer: BufferLike) -> int:
    """Copy ``frames`` one after the other to the front of ``buffer`` (writable,
    contiguous); the number of bytes written.

    Raises ``BufferTooSmallError`` (saying how many bytes are needed) before
    writing anything if they do not fit, ``TypeError`` if ``buffer`` is read-only.
    """
    target = binary.checked_view(buffer, "buffer")
    if target.readonly:
        raise TypeError(
            "dumps_into needs a writable buffer, got a read-only"
            f" {type(buffer).__name__}"
        )
    sizes = [nbytes(frame) for frame in frames]
    needed = sum(sizes)
    if needed > len(target):
        raise BufferTooSmallError(needed, len(target))
    pos = 0
    for frame, size in zip(frames, sizes, strict=True):
        target[pos : pos + size] = binary.checked_view(frame, "frame")
        pos += size
    return pos


def coalesce_frames(frames: Sequence[BufferLike], below: int) -> list[BufferLike]:
    """``frames`` with each run of neighbouring frames smaller than ``below``
    bytes joined into one ``bytes`` (frames of ``below`` bytes or more are left
    as they are, uncopied), so a small message becomes one frame.

    The result is a coalesced frame list (see the module docstring): every
    reader of frame lists in freight takes it.
    """
    out: list[BufferLike] = []
    run: list[BufferLike] = []
    for frame in frames:
        if nbytes(frame) < below:
            run.append(frame)
            continue
        if run:
            out.append(run[0] if len(run) == 1 else b"".join(run))
            run = []
        out.append(frame)
    if run:
        out.append(run[0] if len(run) == 1 else b"".join(run))
    return out


# -- reading coalesced frame lists --------------------------------------------------


class _Cursor:
    """Walks the format's frames through a list of buffers cut at frame
    boundaries."""

    __slots__ = ("_frames", "_index", "_offset", "_taken", "_views", "size")

    def __init__(self, frames: Sequence[BufferLike]) -> None:
        self._frames = frames
        self._views = [
            binary.checked_view(f, f"frame {i}") for i, f in enumerate(frames)
        ]
        self._index = 0
        self._offset = 0
        # Whether a frame was taken from the current buffer: only then is an
        # empty one used up (a leading empty buffer is an empty header frame).
        self._taken = False
        self.size = sum(len(view) for view in self._views)

    def _settle(self) -> memoryview:
        """The buffer the next frame starts in: the current one, or the next if
        the current one is used up (a buffer holds one frame or more, so an
        empty buffer is an empty frame, and is never skipped)."""
        views = self._views
        if (
            self._taken
            and self._offset == len(views[self._index])
            and self._index + 1 < len(views)
        ):
            self._index += 1
            self._offset = 0
            self._taken = False
        return views[self._index]

    def here(self) -> tuple[memoryview, int]:
        """The buffer the next frame starts in, and its offset there."""
        return self._settle(), self._offset

    def take(self, length: int, what: str) -> memoryview:
        view = self._settle()
        end = self._offset + length
        if end > len(view):
            raise DeserializationError(
                f"{what} ({length} bytes) does not lie whole in buffer"
                f" {self._index} of the frame list ({len(view) - self._offset}"
                " bytes remain there): frames may be joined, never split"
            )
        piece = view[self._offset : end]
        self._offset = end
        self._taken = True
        return piece

    def finished(self) -> bool:
        """Whether every buffer has been used up."""
        return self._index == len(self._views) - 1 and self._offset == len(
            self._views[self._index]
        )

    def take_message(self, limits: Limits, what: str) -> list[memoryview]:
        view, offset = self.here()
        layout = read_layout(view, limits, start=offset)
        if layout.frame_lengths is None:
            raise DeserializationError(
                f"{what}: its header frame ({layout.table_end} bytes at least) does"
                f" not lie whole in buffer {self._index} of the frame list"
            )
        count = len(layout.frame_lengths) - 2
        names = ["header frame", "body", *(f"buffer {i}" for i in range(count))]
        return [
            self.take(length, f"{what}'s {name}")
            for name, length in zip(names, layout.frame_lengths, strict=True)
        ]


def split_frames(
    frames: Sequence[BufferLike], limits: Limits = DEFAULT_LIMITS
) -> list[memoryview]:
    """The exact frame list (``[header, body, *buffers]``, or a bundle's
    ``[bundle header, *message frames]``) that a coalesced frame list stands
    for, as views of its buffers.  Raises ``DeserializationError`` if a frame
    straddles two buffers, or buffers remain after the message or bundle.
    """
    if not frames:
        raise DeserializationError("a frame list needs at least one frame, got none")
    cursor = _Cursor(frames)
    limits.check_size(cursor.size, "the frame list")
    view, offset = cursor.here()
    if bytes(view[offset : offset + MAGIC_SIZE]) == BUNDLE_MAGIC:
        head = cursor.take(BUNDLE_HEADER_SIZE, "the bundle header")
        count = binary.read_bundle_header(head)
        limits.check_frames(count, "messages in the bundle")
        out = [head]
        for i in range(count):
            if cursor.finished():
                raise DeserializationError(
                    f"truncated bundle: it declares {count} messages, found {i}"
                )
            out.extend(cursor.take_message(limits, f"message {i}"))
    else:
        out = cursor.take_message(limits, "the message")
    if not cursor.finished():
        raise DeserializationError(
            "unexpected bytes in the frame list after the message or bundle"
        )
    return out


def writable_buffers(buffers: list[memoryview]) -> list[memoryview]:
    """``buffers``, each read-only one replaced by a writable copy (a
    ``bytearray``); writable ones are kept as they are (no copy)."""
    return [memoryview(bytearray(b)) if b.readonly else b for b in buffers]


# -- the incremental reader ---------------------------------------------------------


class FrameReader:
    """Reads messages and bundles from a byte stream, in chunks of any size.

    ``feed(chunk)`` returns the units (messages and bundles) that ``chunk``
    completed, each a frame list: ``[blob]`` for a message (decode it with
    ``loads_frames``), ``[bundle header, message blob, ...]`` for a bundle
    (``unpack_frames_and_deserialize``; ``is_bundle`` tells them apart).  In an
    ``asyncio.BufferedProtocol``, return ``get_buffer(hint)`` from
    ``get_buffer`` and call ``buffer_updated(n)`` from ``buffer_updated``.

    Each header is checked, and ``limits`` applied, before anything is kept for
    the body; a message's buffer then grows with the bytes actually received,
    never ahead of them, so a peer that announces a large message and sends
    little costs little.  A bad header raises ``DeserializationError`` and leaves
    the reader failed (a stream has no way to find the next message: close it).
    ``eof()`` raises if the stream ended inside a unit.
    """

    __slots__ = (
        "_buffer",
        "_bundle_left",
        "_bundle_size",
        "_error",
        "_frames",
        "_limits",
        "_scratch",
        "_stage",
        "_want",
    )

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._scratch: bytearray | None = None
        self._error: DeserializationError | None = None
        self._frames: list[BufferLike] = []
        self._start_unit()

    # The stages of a unit, each reading until ``_buffer`` holds ``_want`` bytes:
    # "magic" (4 bytes), "bundle" (the 16-byte bundle header), "fixed" (a
    # message's 32-byte header), "table" (32 + 8N), "body" (the whole message).

    def _start_unit(self) -> None:
        self._frames = []
        self._bundle_left = -1
        self._bundle_size = 0
        self._begin("magic", MAGIC_SIZE, bytearray())

    def _begin(self, stage: str, want: int, buffer: bytearray) -> None:
        self._buffer = buffer
        self._want = want
        self._stage = stage

    @property
    def needed(self) -> int:
        """Bytes to read before the reader can take its next step (at least 1):
        what a reader that asks for exact sizes (``readexactly``) asks for."""
        return self._want - len(self._buffer)

    def feed(self, data: BufferLike) -> list[list[BufferLike]]:
        """Take the next bytes of the stream; the units they completed."""
        if self._error is not None:
            raise self._error
        view = binary.checked_view(data, "data")
        done: list[list[BufferLike]] = []
        pos, end = 0, len(view)
        while True:
            while len(self._buffer) == self._want:
                unit = self._advance()
                if unit is not None:
                    done.append(unit)
            if pos == end:
                return done
            if not self._buffer and self._stage == "magic":
                # Between units, a message wholly in the chunk is cut out at once.
                message = self._whole_message(view, pos)
                if message is not None:
                    done.append([message])
                    pos += len(message)
                    continue
            n = min(end - pos, self._want - len(self._buffer))
            self._buffer += view[pos : pos + n]
            pos += n

    def _whole_message(self, view: memoryview, pos: int) -> bytes | bytearray | None:
        """The message starting at ``pos`` if ``view`` holds all of it."""
        if (
            len(view) - pos < MESSAGE_HEADER_SIZE
            or view[pos : pos + 4] != MESSAGE_MAGIC
        ):
            return None
        try:
            layout = read_layout(view, self._limits, start=pos)
        except DeserializationError as error:
            raise self._fail(error) from None
        if layout.total is None or layout.total > len(view) - pos:
            return None
        assert layout.frame_lengths is not None
        return _message_copy(
            view[pos : pos + layout.total], plain=len(layout.frame_lengths) == 2
        )

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A buffer for the transport to receive into (``BufferedProtocol``):
        always the reader's own scratch area (see ``SCRATCH_SIZE``), never a
        view of a message's buffer, so every byte is copied once more."""
        if self._error is not None:
            raise self._error
        if self._scratch is None:
            self._scratch = bytearray(max(sizehint, SCRATCH_SIZE))
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> list[list[BufferLike]]:
        """``nbytes`` were received into the last ``get_buffer``; the units they
        completed."""
        assert self._scratch is not None, "buffer_updated() before get_buffer()"
        return self.feed(memoryview(self._scratch)[:nbytes])

    def eof(self) -> None:
        """The stream ended: raise ``DeserializationError`` if inside a unit."""
        if self._error is not None:
            raise self._error
        if self._buffer or self._frames:
            what = "bundle" if self._bundle_left >= 0 else "message"
            raise self._fail(
                DeserializationError(
                    f"truncated stream: it ended inside a {what}, {len(self._buffer)}"
                    f" bytes into a part of {self._want} bytes ({self._stage})"
                )
            )

    def _fail(self, error: DeserializationError) -> DeserializationError:
        self._error = error
        return error

    def _advance(self) -> list[BufferLike] | None:
        """The current stage's bytes are all there: check them and move on;
        the unit this completed, if any."""
        try:
            return self._step()
        except DeserializationError as error:
            raise self._fail(error) from None

    def _step(self) -> list[BufferLike] | None:
        buffer, stage, limits = self._buffer, self._stage, self._limits
        if stage == "magic":
            magic = bytes(buffer)
            if magic == BUNDLE_MAGIC:
                self._begin("bundle", BUNDLE_HEADER_SIZE, buffer)
                return None
            if magic != MESSAGE_MAGIC:  # let the header check name what it is
                binary.read_message_header(magic + bytes(MESSAGE_HEADER_SIZE))
            self._begin("fixed", MESSAGE_HEADER_SIZE, buffer)
            return None
        if stage == "bundle":
            count = binary.read_bundle_header(buffer)
            limits.check_frames(count, "messages in the bundle")
            self._frames = [memoryview(buffer)]
            self._bundle_left = count
            self._bundle_size = BUNDLE_HEADER_SIZE
            return self._next_in_bundle()
        if stage != "body":  # "fixed" or "table"
            layout = read_layout(buffer, limits)
            in_bundle = self._bundle_left >= 0
            if in_bundle:
                limits.check_size(self._bundle_size + layout.header_size, "the bundle")
            if layout.total is None:
                self._begin("table", layout.table_end, buffer)
            else:
                if in_bundle:
                    limits.check_size(self._bundle_size + layout.total, "the bundle")
                self._begin("body", layout.total, buffer)
            return None
        if self._bundle_left < 0:
            self._start_unit()
            plain = binary.read_message_header(buffer).buffer_count == 0
            return [_message_copy(buffer, plain=plain) if plain else buffer]
        message = memoryview(buffer)
        self._frames.append(message)
        self._bundle_size += len(message)
        self._bundle_left -= 1
        return self._next_in_bundle()

    def _next_in_bundle(self) -> list[BufferLike] | None:
        if self._bundle_left == 0:
            unit = self._frames
            self._start_unit()
            return unit
        self._begin("fixed", MESSAGE_HEADER_SIZE, bytearray())
        return None


async def read_frames(
    reader: asyncio.StreamReader, limits: Limits = DEFAULT_LIMITS
) -> list[BufferLike] | None:
    """The next message or bundle from an ``asyncio.StreamReader``, as a frame
    list (see ``FrameReader``); ``None`` at a clean end of stream.

    Reads each header, checks it against ``limits``, and only then reads (and
    allocates for) what it declares.  Raises ``DeserializationError`` for a bad
    header or a stream that ends inside a unit.
    """
    from asyncio import IncompleteReadError

    frames = FrameReader(limits)
    first = True
    while True:
        try:
            chunk = await reader.readexactly(frames.needed)
        except IncompleteReadError as error:
            if first and not error.partial:
                return None
            frames.feed(error.partial)
            frames.eof()
            raise AssertionError("unreachable: eof() raises inside a unit") from None
        first = False
        units = frames.feed(chunk)
        if units:
            return units[0]


def _message_copy(data: memoryview | bytearray, *, plain: bool) -> bytes | bytearray:
    """A received message as its unit's frame: ``bytes`` for a small message
    without out-of-band buffers (the fastest to decode; nothing in it can be
    a view), otherwise a ``bytearray`` (writable, so arrays decoded from it are
    writable) -- ``data`` itself when it already is one."""
    if plain and len(data) <= SCRATCH_SIZE:
        return bytes(data)
    return data if isinstance(data, bytearray) else bytearray(data)
