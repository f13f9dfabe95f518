"""How a fuzz input is laid out, and the structure-aware mutator over that layout.

Every target takes one ``bytes`` input, read as a *case*: a mode byte, then a
list of frames::

    mode: u8 | count: u8 | count x length: u32 little-endian | the frames, in order

``read_case`` is lenient, so that any byte string is a case: a missing length is
0, a length past the end is cut to what remains, and bytes left after the last
frame are appended to it.  ``write_case(read_case(x)) == x`` for every ``x`` that
``write_case`` made, so libFuzzer's byte-level mutations and this module's
structural ones compose.

The mode picks the surface a target drives (a blob or a frame list, bytes or
memoryview, the text envelope ...); the frames are usually a binary message
(``[header, body, *buffers]``) or a bundle (``[bundle header, *messages]``).
``mutate`` knows that layout: it rewrites header fields, and after changing a
body, metadata or buffer it rewrites the header's lengths to match (``fix``), so
mutated messages pass the framing checks and reach the strategy's decoder.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

MESSAGE_MAGIC = b"\x93FRT"
BUNDLE_MAGIC = b"\x93FRB"
HEADER_SIZE = 32
MAX_FRAMES = 64
_LEN = struct.Struct("<I")

#: (offset, struct format) of each fixed header field (BINARY_FORMAT.md).
HEADER_FIELDS = [
    (4, "B"),  # version
    (5, "B"),  # flags
    (6, "B"),  # python major
    (7, "B"),  # python minor
    (8, "2s"),  # identifier characters
    (10, "B"),  # identifier newline
    (11, "B"),  # reserved
    (12, "I"),  # buffer count
    (16, "Q"),  # body length
    (24, "I"),  # metadata length
    (28, "I"),  # reserved
]
BUNDLE_FIELDS = [(4, "B"), (5, "B"), (8, "I"), (12, "I")]
INTERESTING = [0, 1, 2, 3, 7, 8, 15, 16, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 2**31 - 1]
INTERESTING += [2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1]
#: Byte strings worth splicing into bodies: JSON, msgpack and pickle tokens that
#: open containers, name large sizes, or refer to out-of-band frames.
TOKENS = [
    b"[",
    b"{",
    b'{"a":',
    b"]",
    b"}",
    b'"\\ud800"',
    b"1e999",
    b"NaN",
    b"-0",
    b"123456789012345678901234567890",
    b'"format":"freight.exception/1"',
    b'"cause":',
    b'"exceptions":[',
    b"\x91",  # msgpack fixarray of 1
    b"\x81",  # msgpack fixmap of 1
    b"\x81\x91",  # a map whose key is an array
    b"\xdc\xff\xff",  # array16 of 65535
    b"\xdd\xff\xff\xff\xff",  # array32
    b"\xde\xff\xff",  # map16
    b"\xc6\xff\xff\xff\xff",  # bin32
    b"\xc7\x05F",  # ext8, 5 bytes, type 70 (freight's out-of-band blob)
    b"\xd7F",  # fixext8, type 70
    b"\xc7\x05Fb\x00\x00\x00\x00",  # a complete blob reference, kind b, frame 0
    b"\xc7\x05Fa\x00\x00\x00\x00",
    b"\xc7\x05Fm\x00\x00\x00\x01",
    b"\xc7\x05Fb\xff\xff\xff\xff",
    b"\x80\x05",  # pickle PROTO 5
    b"\x95",  # pickle FRAME
    b"(",  # pickle MARK
    b"R",  # REDUCE
    b"b",  # BUILD
    b"\x93",  # STACK_GLOBAL
    b"\x97",  # NEXT_BUFFER
    b"\x98",  # READONLY_BUFFER
    b"\x8c\x05numpy\x94\x8c\x05dtype\x94\x93",
    b"\x8c\x08builtins\x94\x8c\x05slice\x94\x93",
    b"r\xff\xff\xff\x7f",  # LONG_BINPUT with a huge index
    b"j\xff\xff\xff\x7f",  # LONG_BINGET
    b".",  # STOP
]


def read_case(data: bytes) -> tuple[int, list[bytes]]:
    """The mode and frames ``data`` stands for (lenient: see the module doc)."""
    if not data:
        return 0, []
    mode = data[0]
    count = min(data[1], MAX_FRAMES) if len(data) > 1 else 0
    pos = 2
    lengths = []
    for _ in range(count):
        if pos + 4 <= len(data):
            lengths.append(_LEN.unpack_from(data, pos)[0])
            pos += 4
        else:
            lengths.append(0)
    frames = []
    for length in lengths:
        frames.append(data[pos : pos + length])
        pos = min(pos + length, len(data))
    if pos < len(data):
        if frames:
            frames[-1] += data[pos:]
        else:
            frames.append(data[pos:])
    return mode, frames


def write_case(mode: int, frames: list[bytes]) -> bytes:
    """The input that ``read_case`` reads as ``mode`` and ``frames``."""
    frames = frames[:MAX_FRAMES]
    lengths = b"".join(_LEN.pack(len(f)) for f in frames)
    return bytes([mode & 0xFF, len(frames)]) + lengths + b"".join(frames)


# -- the binary message layout ------------------------------------------------------


def is_message_header(frame: bytes) -> bool:
    return len(frame) >= HEADER_SIZE and frame[:4] == MESSAGE_MAGIC


def metadata_of(header: bytes) -> bytes:
    """A message header's metadata (what follows its buffer-length table)."""
    n = struct.unpack_from("<I", header, 12)[0] if len(header) >= 16 else 0
    start = HEADER_SIZE + 8 * min(n, len(header))
    return header[start:]


def fix_message(frames: list[bytes], metadata: bytes | None = None) -> list[bytes]:
    """``frames`` (``[header, body, *buffers]``) with the header's buffer count,
    body length, metadata length and buffer-length table rewritten to match."""
    if not frames or not is_message_header(frames[0]):
        return frames
    header = frames[0]
    meta = metadata_of(header) if metadata is None else metadata
    body = frames[1] if len(frames) > 1 else b""
    buffers = frames[2:]
    fixed = bytearray(header[:HEADER_SIZE])
    struct.pack_into("<IQI", fixed, 12, len(buffers), len(body), len(meta))
    table = b"".join(struct.pack("<Q", len(b)) for b in buffers)
    return [bytes(fixed) + table + meta, body, *buffers]


def split_bundle(frames: list[bytes]) -> list[list[bytes]] | None:
    """A bundle's frame list as its messages' frame lists (``None`` if it is not
    one that parses)."""
    if not frames or frames[0][:4] != BUNDLE_MAGIC:
        return None
    messages, pos = [], 1
    while pos < len(frames):
        if not is_message_header(frames[pos]):
            return None
        n = struct.unpack_from("<I", frames[pos], 12)[0]
        if pos + n + 2 > len(frames):
            return None
        messages.append(frames[pos : pos + n + 2])
        pos += n + 2
    return messages


def join_bundle(header: bytes, messages: list[list[bytes]]) -> list[bytes]:
    """Frames of a bundle whose message count is rewritten to ``len(messages)``."""
    fixed = bytearray(header[:16].ljust(16, b"\0"))
    struct.pack_into("<I", fixed, 8, len(messages))
    return [bytes(fixed)] + [f for m in messages for f in m]


# -- mutation ------------------------------------------------------------------------

ByteMutator = Callable[[bytes, int], bytes]


def byte_mutate(data: bytes, rng: random.Random, max_size: int) -> bytes:
    """A random byte-level edit (bit flip, interesting byte, insert, delete,
    duplicate, token splice), for runs without libFuzzer's own ``Mutate``."""
    buf = bytearray(data)
    choice = rng.randrange(7)
    if not buf:
        choice = 3
    if choice == 0:
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    elif choice == 1:
        buf[rng.randrange(len(buf))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x22])
    elif choice == 2:
        i = rng.randrange(len(buf))
        del buf[i : i + rng.randint(1, 8)]
    elif choice == 3:
        i = rng.randint(0, len(buf))
        buf[i:i] = rng.randbytes(rng.randint(1, 8))
    elif choice == 4:
        i = rng.randrange(len(buf))
        j = rng.randint(i, min(len(buf), i + 64))
        k = rng.randint(0, len(buf))
        buf[k:k] = buf[i:j] * rng.randint(1, 4)
    elif choice == 5:
        i = rng.randint(0, len(buf))
        buf[i:i] = rng.choice(TOKENS) * rng.choice([1, 1, 2, 8, 64])
    else:
        i = rng.randrange(len(buf))
        buf[i : i + 1] = rng.choice(TOKENS)
    return bytes(buf[:max_size])


def mutate(
    data: bytes,
    rng: random.Random,
    max_size: int,
    *,
    seeds: list[bytes] = (),  # type: ignore[assignment]
    bytes_mutator: ByteMutator | None = None,
) -> bytes:
    """One structure-aware mutation of the case ``data`` (see the module doc).

    ``bytes_mutator(data, max_size)`` is libFuzzer's own mutator under atheris;
    without it ``byte_mutate`` serves.  ``seeds`` are cases to splice from.
    """

    def bytewise(b: bytes, limit: int) -> bytes:
        if bytes_mutator is not None and rng.random() < 0.5:
            return bytes_mutator(b, max(limit, 1))
        return byte_mutate(b, rng, max(limit, 1))

    mode, frames = read_case(data)
    choice = rng.randrange(12)
    if choice == 0 or not frames:
        return bytewise(data, max_size)  # the case layout itself
    if choice == 1:
        mode = rng.randrange(256)
        return write_case(mode, frames)
    bundle = split_bundle(frames)
    if bundle is not None and bundle and choice < 6:
        # Mutate one message of the bundle, keep the bundle's own count right.
        i = rng.randrange(len(bundle))
        inner = write_case(mode, bundle[i])
        _, bundle[i] = read_case(mutate(inner, rng, max_size, seeds=seeds))
        if rng.random() < 0.2:
            bundle.insert(rng.randint(0, len(bundle)), list(bundle[i]))
        return write_case(mode, join_bundle(frames[0], bundle))
    if choice == 2 and frames[0][:4] in (MESSAGE_MAGIC, BUNDLE_MAGIC):
        # One header field to an interesting value, lengths left as they are.
        fields = HEADER_FIELDS if frames[0][:4] == MESSAGE_MAGIC else BUNDLE_FIELDS
        offset, fmt = rng.choice(fields)
        header = bytearray(frames[0])
        size = struct.calcsize("<" + fmt)
        if len(header) >= offset + size:
            if fmt == "2s":
                value: object = rng.choice([b"11", b"mp", b"ex", b"p5", b"cp", b"00"])
            else:
                value = rng.choice(INTERESTING) % (1 << (8 * size))
            struct.pack_into("<" + fmt, header, offset, value)
        frames[0] = bytes(header)
        return write_case(mode, frames)
    if choice == 3 and is_message_header(frames[0]):
        # The metadata (JSON the producer wrote), lengths fixed.
        meta = bytewise(metadata_of(frames[0]), max_size // 4)
        if rng.random() < 0.1:
            depth = rng.choice([64, 1000, 20000])
            meta = b"[" * depth + b"]" * depth
        return write_case(mode, fix_message(frames, meta))
    if choice in (4, 5, 6) and is_message_header(frames[0]) and len(frames) > 1:
        # The body, lengths fixed: what reaches the strategy's decoder.
        frames[1] = bytewise(frames[1], max_size - len(frames[0]))
        return write_case(mode, fix_message(frames))
    if choice == 7 and is_message_header(frames[0]):
        # Buffers: add, drop, duplicate or change one, lengths fixed.
        op = rng.randrange(4)
        if op == 0 or len(frames) <= 2:
            frames.append(rng.randbytes(rng.choice([0, 1, 8, 64, 4096])))
        elif op == 1:
            del frames[rng.randrange(2, len(frames))]
        elif op == 2:
            frames.append(frames[rng.randrange(2, len(frames))])
        else:
            i = rng.randrange(2, len(frames))
            frames[i] = bytewise(frames[i], max_size // 2)
        return write_case(mode, fix_message(frames))
    if choice == 8 and seeds:
        # Splice: another seed's body (or buffers) into this message.
        _, other = read_case(rng.choice(seeds))
        if len(other) > 1 and len(frames) > 1:
            frames[1] = other[1] if rng.random() < 0.7 else frames[1] + other[1]
            return write_case(mode, fix_message(frames))
    if choice == 9:
        # Frame list edits, no fix: drop, duplicate, swap, split one.
        op = rng.randrange(4)
        i = rng.randrange(len(frames))
        if op == 0:
            del frames[i]
        elif op == 1:
            frames.insert(i, frames[i])
        elif op == 2:
            j = rng.randrange(len(frames))
            frames[i], frames[j] = frames[j], frames[i]
        else:
            cut = rng.randint(0, len(frames[i]))
            frames[i : i + 1] = [frames[i][:cut], frames[i][cut:]]
        return write_case(mode, frames)
    # A byte-level edit of one frame, no fix.
    i = rng.randrange(len(frames))
    frames[i] = bytewise(frames[i], max_size)
    return write_case(mode, frames)[:max_size]
