"""``MsgpackData`` (identifier ``mp``): data as MessagePack, safe from any peer.

The msgpack domain only: ``None``, ``bool``, ``int`` in the 64-bit range
(``-2**63 .. 2**64-1``), ``float``, ``str``, ``bytes``, ``list`` and ``tuple`` (both
decode as ``list``) and ``dict`` with ``str`` or ``int`` keys (other hashable scalar
keys round-trip too; a ``tuple`` key decodes as a ``tuple``).  Anything else is
refused when serializing.  Decoding never executes code or imports anything, so a
payload from an untrusted peer is safe to read, and other languages read and write
the format.

Binary blobs are not copied in the binary envelope.  They travel as frames of their
own and the msgpack body refers to each with an extension value, **ext type 70**
(``BLOB_EXT``, ASCII ``"F"``), whose 5 data bytes are a kind letter and the frame's
index as a big-endian ``uint32``:

* ``b"m"`` -- decodes as a ``memoryview`` of the received frame (zero-copy);
* ``b"b"`` -- decodes as ``bytes`` (the received frame itself when it is a ``bytes``
  object of exactly that size, otherwise one copy);
* ``b"a"`` -- decodes as a ``bytearray`` (one copy).

What goes out of band: a top-level ``bytearray`` or ``memoryview`` (any size), a
top-level ``bytes`` of at least ``RAW_BYTES_THRESHOLD`` bytes, and, anywhere in the
value, every ``pickle.PickleBuffer`` and other buffer-protocol object that exports
plain contiguous bytes (``mmap``, ``array.array("B")``, a 1-D ``uint8`` numpy array)
-- those decode as ``memoryview`` s.  Other typed or multi-dimensional exporters (a
float64 numpy array) are refused rather than silently flattened: wrap one in
``pickle.PickleBuffer(x)`` to send its raw bytes, or use the ``pickle`` strategy to
keep its type.  A ``memoryview`` itself travels as its raw bytes whatever its
format and shape (msgpack packs one without asking).  Nested ``bytes``,
``bytearray`` and ``memoryview`` are msgpack
``bin`` values, packed in-band and decoded as ``bytes``.  In the text envelope every
blob is in-band ``bin`` (base64 as a whole).  Freight reserves ext type 70; other ext
types pass through as ``msgpack.ExtType`` (type -1 as ``msgpack.Timestamp``).

Decoding holds the decode ``Limits`` against a hostile peer: the bytes copied for
blob references count against ``max_size`` (a ``bytes`` copy of a frame is made
once and shared by its references), ``max_depth`` covers map keys and is enforced
exactly (msgpack itself stops at ``MSGPACK_MAX_DEPTH``), and no map's keys can make
building its dict quadratic (``_checked_map``: maps keyed by ``str``/``bytes`` only
are decoded at C speed, others are checked first).
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from operator import itemgetter
from pickle import PickleBuffer
from typing import Any

import msgpack

from freight.serialize import (
    BodyEncoder,
    BytesStrategy,
    DeserializationError,
    Property,
    SerializationError,
    hookimpl,
)
from freight.serialize.limits import (
    SizeBudget,
    active_limits,
    check_depth,
    depth_exceeded,
)

#: The msgpack extension type that stands for an out-of-band blob.
BLOB_EXT = 70
#: Top-level ``bytes`` of at least this many bytes travel as a frame of their own.
#: Below it packing them as ``bin`` is faster: a message with a buffer cannot take
#: the learned-header fast path of ``loads`` (as ``pickle_strategies``).
RAW_BYTES_THRESHOLD = 128 << 10

_BLOB = struct.Struct(">cI")  # kind letter, frame index
_BLOB_VIEW, _BLOB_BYTES, _BLOB_BYTEARRAY = b"m", b"b", b"a"
_TOP_LEVEL = {
    kind: msgpack.packb(msgpack.ExtType(BLOB_EXT, _BLOB.pack(kind, 0)))
    for kind in (_BLOB_VIEW, _BLOB_BYTES, _BLOB_BYTEARRAY)
}
_SCALARS: frozenset[type] = frozenset({int, float, bool, type(None), str})
#: msgpack's C unpacker decodes at most this many nested containers (its stack).
MSGPACK_MAX_DEPTH = 1024
#: A decoded map in which more than this many array (tuple) or timestamp keys
#: share one hash is refused (see ``_checked_map``).
MAX_KEYS_PER_HASH = 8
#: A decoded map with more keys than this, not all ``str``/``bytes``, is checked
#: against a model of CPython's dict before it is built (see ``_checked_map``) ...
CHECKED_MAP_KEYS = 1024
#: ... and refused if building it would probe more slots than this per key.
PROBES_PER_KEY = 128
_MAX_PROBES_ONE_KEY = 4096
#: First bytes of a msgpack map or array: fixmap, fixarray, array 16/32, map 16/32.
_CONTAINER_HEADS = frozenset([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
_NOT_CONTAINER_HEADS = bytes(b for b in range(256) if b not in _CONTAINER_HEADS)
#: One-element arrays that ``_unpack_within_limits`` wraps a body in.
_NESTING = b"\x91" * MSGPACK_MAX_DEPTH
#: Map key types whose hashes are randomized (SipHash of their bytes).
_RANDOMIZED_KEYS = frozenset({str, bytes, memoryview, msgpack.ExtType})
#: Map key types that need no conversion and whose hashes are few per value.
_SCALAR_KEYS = _RANDOMIZED_KEYS | {int, float, bool, type(None)}
_first, _second = itemgetter(0), itemgetter(1)
_DOMAIN = (
    "the msgpack domain is None, bool, int (64-bit), float, str, bytes, list, tuple"
    " and dict; use the pickle strategy for other Python objects"
)


class MsgpackData(BytesStrategy):
    """Python data in the msgpack domain as MessagePack; out-of-band blobs as
    ``BLOB_EXT`` extension values in the binary envelope (see the module doc)."""

    identifier = "mp\n"
    for_code = False
    name = "msgpack"
    text_body = False
    libraries = ("msgpack",)
    properties = (
        Property.SAFE_FOR_UNTRUSTED
        | Property.PORTABLE
        | Property.ZERO_COPY
        | Property.DETERMINISTIC
        | Property.CROSS_LANGUAGE
    )

    def encode(self, obj: Any) -> bytes:
        return _pack(obj, _blob_view)  # blobs as memoryviews: msgpack packs bin

    def decode(self, data: bytes) -> Any:
        return _unpack_within_limits(data, [])

    def to_frames(self, obj: Any) -> tuple[bytes, list[Any]]:
        kind = type(obj)
        if kind is bytes:
            if len(obj) >= RAW_BYTES_THRESHOLD:
                return _TOP_LEVEL[_BLOB_BYTES], [obj]
        elif kind is bytearray:
            return _TOP_LEVEL[_BLOB_BYTEARRAY], [obj]
        elif kind is memoryview:
            return _TOP_LEVEL[_BLOB_VIEW], [_flat(obj)]
        buffers: list[memoryview] = []

        def out_of_band(value: Any) -> msgpack.ExtType:
            buffers.append(_blob_view(value))
            return msgpack.ExtType(BLOB_EXT, _BLOB.pack(_BLOB_VIEW, len(buffers) - 1))

        return _pack(obj, out_of_band), buffers

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        return _unpack_within_limits(body, buffers)

    def body_encoder(self) -> BodyEncoder:
        # As to_frames: msgpack packs these natively, so ``default`` (blobs, the
        # refusals) is never asked; an int beyond 64 bits raises OverflowError and
        # goes through to_frames, which reports it.
        return BodyEncoder(_SCALARS, msgpack.packb)


def _pack(obj: Any, default: Any) -> bytes:
    # ``default`` sees exactly what msgpack cannot pack natively: blobs (handled)
    # and everything outside the domain, including ints beyond 64 bits (refused).
    return msgpack.packb(obj, default=default)  # type: ignore[no-any-return]


def _blob_view(value: Any) -> memoryview:
    """``value``'s bytes as a flat view, if it is a blob msgpack can carry."""
    if isinstance(value, PickleBuffer):
        try:
            return value.raw()
        except BufferError as e:
            raise SerializationError(
                f"MsgpackData: a PickleBuffer over non-contiguous memory ({e}); pass"
                " a contiguous copy"
            ) from e
    if isinstance(value, int):
        raise SerializationError(
            f"MsgpackData cannot serialize the int {value}: it is outside the 64-bit"
            f" range -2**63 .. 2**64-1; {_DOMAIN}"
        )
    try:
        view = memoryview(value)
    except TypeError:
        raise SerializationError(
            f"MsgpackData cannot serialize a value of type"
            f" {type(value).__qualname__!r}: {_DOMAIN}"
        ) from None
    if view.ndim == 1 and view.itemsize == 1 and view.format in ("B", "b", "c"):
        if view.c_contiguous:
            return view.cast("B") if view.format != "B" else view
        raise SerializationError(
            f"MsgpackData: a {type(value).__qualname__!r} over non-contiguous memory;"
            " pass a contiguous copy"
        )
    raise SerializationError(
        f"MsgpackData cannot serialize a {type(value).__qualname__!r} of format"
        f" {view.format!r} and shape {view.shape}: msgpack carries bytes, not typed"
        " arrays. Wrap it in pickle.PickleBuffer(x) to send its raw bytes (it"
        " arrives as a flat memoryview), or use the pickle strategy to keep its type"
    )


def _flat(view: memoryview) -> memoryview:
    """A 1-D unsigned-byte view of ``view``'s memory (a copy only if strided)."""
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    if view.ndim == 1 and view.format == "B":
        return view
    return view.cast("B")


def _unpack_within_limits(body: Any, buffers: list[memoryview]) -> Any:
    """``_unpack`` under the active decode limits' ``max_depth``, map keys included.

    msgpack's own stack (``MSGPACK_MAX_DEPTH`` levels) is made to enforce the limit:
    a body that could nest deeper than it is decoded inside ``MSGPACK_MAX_DEPTH -
    max_depth`` one-element arrays, which are then taken off.  That costs a copy
    of the body, so it is done only when the body is longer than the limit (each
    level takes a byte) and starts with a container; a body much shorter than
    the wrapping is walked after decoding instead.
    """
    limit = active_limits().max_depth
    size = len(body)
    if size <= limit or limit >= MSGPACK_MAX_DEPTH or body[0] not in _CONTAINER_HEADS:
        return _unpack_or_refuse(body, buffers, 0, limit)
    wrap = MSGPACK_MAX_DEPTH - max(limit, 0)
    if size <= 4 * wrap or _few_containers(body):
        value = _unpack_or_refuse(body, buffers, 0, limit)
        check_depth(value, "the msgpack document")
        return value
    value = _unpack_or_refuse(_NESTING[:wrap] + body, buffers, wrap, limit)
    for _ in range(wrap):
        value = value[0]
    return value


def _few_containers(body: Any) -> bool:
    """Whether ``body`` looks like few containers around long strings or blobs (a
    walk of the decoded value then costs less than copying the body): fewer than
    4 container heads in its first 4 KiB."""
    return len(bytes(body[:4096]).translate(None, _NOT_CONTAINER_HEADS)) < 4


def _unpack_or_refuse(
    body: Any, buffers: list[memoryview], wrap: int, limit: int
) -> Any:
    try:
        return _unpack(body, buffers)
    except msgpack.StackError as e:
        if wrap:
            raise DeserializationError(
                f"the msgpack document nests deeper than the decode limit"
                f" max_depth={limit}"
            ) from e
        raise depth_exceeded(e, "the msgpack document") from e


#: First bytes of array 16/32 and map 16/32, whose element counts msgpack's C
#: unpacker allocates for (8 bytes an element) before it reads the elements.
_BIG_HEADS = re.compile(b"[\xdc-\xdf]")
#: A body with more big heads than this (and long enough for them to matter) is
#: checked to be complete before it is decoded (``_check_complete``).
_UNCHECKED_BIG_HEADS = 8


def _check_complete(body: Any) -> None:
    """Refuse a body that is not one complete msgpack value, before decoding it.

    msgpack's C unpacker allocates a list of ``n`` slots when it reads an array
    (or, with a pairs hook, a map) header declaring ``n`` elements, ``n`` at most
    the body's length, before reading them.  Nested, such headers make a body
    that holds none of their elements allocate ``8 * length`` bytes each, up to
    1,024 times: a 5 KB body made 40 MB.  In a complete body every element is
    there, so what is allocated is bounded by its length.  ``Unpacker.skip``
    walks the body at C speed without building anything (2-25% of a decode); it
    is run only when the body has more than ``_UNCHECKED_BIG_HEADS`` such header
    bytes (false positives from data cost only that walk): with fewer, they
    allocate at most ``64 * length`` bytes.  (Below 256 bytes, a body's headers
    cannot ask for more than about 170 KiB.)
    """
    if len(body) < 256:
        return
    heads = _BIG_HEADS.finditer(body)
    if next(islice(heads, _UNCHECKED_BIG_HEADS, None), None) is None:
        return
    unpacker = msgpack.Unpacker(max_buffer_size=len(body))
    unpacker.feed(body)
    try:
        unpacker.skip()
    except msgpack.OutOfData:
        raise DeserializationError(
            "MsgpackData: the body is truncated (a container declares more"
            " elements than it holds)"
        ) from None


def _unpack(body: Any, buffers: list[memoryview]) -> Any:
    _check_complete(body)
    # First at C speed, accepting only str and bytes map keys: their hashes are
    # randomized (SipHash), so no payload can make them collide.
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            ext_hook=_BlobReferences(buffers) if buffers else _NO_BUFFERS,
        )
    except ValueError as e:
        if "not allowed for map key" not in str(e):
            raise
    if type(body) is bytes and not _may_need_checking(body):
        # Maps of at most 15 keys and no timestamps: no key can flood a dict, so
        # any hashable key is taken at C speed too.
        try:
            return msgpack.unpackb(
                body,
                raw=False,
                strict_map_key=False,
                ext_hook=_BlobReferences(buffers) if buffers else _NO_BUFFERS,
            )
        except TypeError as e:  # an array as a key: unhashable
            if "unhashable" not in str(e):
                raise
    # Other keys (int, float, an array as a tuple key, a timestamp ...) in a map
    # that may be large: every map goes through ``_checked_map``.  (Each attempt
    # starts afresh: what an earlier one copied is gone.)
    return msgpack.unpackb(
        body,
        raw=False,
        strict_map_key=False,
        ext_hook=_BlobReferences(buffers) if buffers else _NO_BUFFERS,
        object_pairs_hook=_checked_map,
    )


class _BlobReferences:
    """The ``ext_hook`` of one decode: blob references (ext ``BLOB_EXT``) to the
    received frames, other ext types as ``msgpack.ExtType``.

    What it materialises is bounded by the bytes received in buffers, and by
    ``Limits.max_size`` (``SizeBudget``), however many references a payload
    holds: a ``bytes`` copy of a frame is made once and shared by every reference
    to it (``bytes`` are immutable, so sharing is invisible but for ``is``), and
    each ``bytearray`` copy (mutable, so never shared) is counted.
    ``memoryview`` references copy nothing.  A reference seen before is
    answered from ``known``, by its 5 data bytes.
    """

    __slots__ = ("budget", "buffers", "known")

    def __init__(self, buffers: list[memoryview]) -> None:
        self.buffers = buffers
        self.budget: SizeBudget | None = None
        self.known: dict[bytes, bytes | memoryview] = {}

    def __call__(self, code: int, data: bytes) -> Any:
        if code != BLOB_EXT:
            return msgpack.ExtType(code, data)
        known = self.known.get(data)
        if known is not None:
            return known
        if len(data) != _BLOB.size:
            raise DeserializationError(
                f"MsgpackData: a blob reference (ext {BLOB_EXT}) must have"
                f" {_BLOB.size} data bytes, got {len(data)}"
            )
        kind, index = _BLOB.unpack(data)
        buffers = self.buffers
        if index >= len(buffers):
            raise DeserializationError(
                f"MsgpackData: the payload refers to out-of-band buffer {index}, but"
                f" {len(buffers)} were received"
            )
        frame = buffers[index]
        if kind == _BLOB_VIEW:
            self.known[data] = frame
            return frame
        if kind == _BLOB_BYTES:
            owner = frame.obj
            # The received frame is itself a bytes object: return it, uncopied.
            if type(owner) is bytes and len(owner) == frame.nbytes:
                copy = owner
            else:
                self._spend(frame.nbytes)
                copy = frame.tobytes()
            self.known[data] = copy
            return copy
        if kind == _BLOB_BYTEARRAY:
            self._spend(frame.nbytes)
            return bytearray(frame)
        raise DeserializationError(
            f"MsgpackData: unknown blob kind {kind!r} in a blob reference"
        )

    def _spend(self, size: int) -> None:
        if self.budget is None:
            # Each frame is referenced once by what freight sends: the copies of
            # an honest payload never exceed what was received.
            self.budget = SizeBudget(within=sum(b.nbytes for b in self.buffers))
        self.budget.spend(size, "MsgpackData: a blob reference (ext 70)")


def _may_need_checking(body: bytes) -> bool:
    """Whether ``body`` may hold a map of more than 15 entries (map 16 and map 32
    begin with ``0xde``, ``0xdf``) or a timestamp (ext type -1: a ``0xff`` byte).
    Three ``memchr`` s; a false positive costs only speed."""
    return b"\xde" in body or b"\xdf" in body or b"\xff" in body


#: The ``ext_hook`` of a body without buffers (it copies nothing: no budget).
_NO_BUFFERS = _BlobReferences([])


def _checked_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A decoded map's dict, array keys as tuples, built only if that takes time
    linear in its keys.

    A dict costs quadratic time in keys whose hashes a peer chose to collide
    (tuples and timestamps: any hash is easy to hit) or to steer (``int``,
    ``float`` and tuple hashes are not randomized, so a peer can pick distinct
    keys whose probe sequences all run through the same occupied slots: 298 KiB
    of ints took 2.9 s to decode).  ``str`` and ``bytes`` hashes are randomized:
    those maps are built at once.  Otherwise a map in which more than
    ``MAX_KEYS_PER_HASH`` tuple or timestamp keys share one hash is refused, and
    one with more than ``CHECKED_MAP_KEYS`` keys is built only after a model of
    CPython's dict (``_dict_probes``) says it takes at most ``PROBES_PER_KEY``
    probes per key.  (Within the msgpack range at most 9 ints share a hash, so
    equal ``int`` hashes alone cannot flood a dict.)
    """
    keys = list(map(_first, pairs))
    kinds = set(map(type, keys))
    try:
        if kinds <= _RANDOMIZED_KEYS:
            return dict(pairs)
        if not kinds <= _SCALAR_KEYS:  # arrays (as tuples), timestamps ...
            keys = [_hashable(k) for k in keys]
            _refuse_equal_hashes(keys)
        if len(keys) > CHECKED_MAP_KEYS:
            _refuse_steered_hashes(keys)
        return dict(zip(keys, map(_second, pairs), strict=True))
    except (TypeError, ValueError) as e:  # unhashable: a map or bytearray in a key
        raise DeserializationError(
            f"MsgpackData: a map key cannot be a dict key: {e}"
        ) from e


def _refuse_equal_hashes(keys: list[Any]) -> None:
    sharing = Counter([hash(k) for k in keys if type(k) not in _SCALAR_KEYS])
    most = max(sharing.values(), default=0)
    if most > MAX_KEYS_PER_HASH:
        raise DeserializationError(
            f"MsgpackData: a map has {most} array or timestamp keys with the same"
            f" hash (colliding or repeated keys), more than {MAX_KEYS_PER_HASH}:"
            " refused, as building it would take time quadratic in their number"
        )


def _refuse_steered_hashes(keys: list[Any]) -> None:
    budget = PROBES_PER_KEY * len(keys)
    probes = _dict_probes([hash(k) for k in keys], budget)
    if probes > budget:
        raise DeserializationError(
            f"MsgpackData: a map's {len(keys)} keys would take more than"
            f" {PROBES_PER_KEY} probes per key to build a dict of (hashes chosen to"
            " collide, or repeated keys): refused, as building it would take time"
            " quadratic in their number"
        )


def _dict_probes(hashes: list[int], budget: int) -> int:
    """How many slots CPython's dict probes to insert keys with these hashes, one
    by one, into an empty dict (stopping once over ``budget``).

    The model of CPython 3.11-3.13 (``Objects/dictobject.c``): tables of 8, 16,
    32 ... slots, of which two thirds are usable; a full table is rebuilt at the
    smallest power of two of at least three times the keys it holds, each key
    reinserted in order; a key goes to the first empty slot of ``i = hash & mask``,
    then ``perturb >>= 5; i = (5 * i + perturb + 1) & mask`` with ``perturb``
    starting at the hash as an unsigned 64-bit number.  Every key counts as new
    (a repeated key counts its repeats).  Its own cost is bounded by ``budget``
    plus one key's probes; a key probing more than ``_MAX_PROBES_ONE_KEY`` slots
    (ints ``i << 32`` probe at most 836 in a 200,000-key map) ends it at once.
    """
    unsigned = [h & 0xFFFF_FFFF_FFFF_FFFF for h in hashes]
    total = len(unsigned)
    probes, size = 0, 8
    while True:
        # A table takes keys until two thirds of it are used; the next key makes
        # a new table, into which those keys go again, first.
        mask = size - 1
        table = bytearray(size)
        used = min(total, size * 2 // 3)
        for h in unsigned[:used]:
            i = h & mask
            if table[i]:
                perturb, before = h, probes
                while table[i]:
                    perturb >>= 5
                    i = (i * 5 + perturb + 1) & mask
                    probes += 1
                # The model must not be quadratic itself: stop at the budget, or
                # at one key probing a cluster no honest map makes.
                if probes > budget or probes - before > _MAX_PROBES_ONE_KEY:
                    return budget + 1
            table[i] = 1
        probes += used
        if used == total or probes > budget:
            return probes
        size = 1 << (3 * used - 1).bit_length()


def _hashable(key: Any) -> Any:
    """``key`` with every list in it a tuple (iteratively: keys nest up to
    ``max_depth``, which may be deeper than Python's recursion limit)."""
    if type(key) is not list:
        return key
    stack: list[tuple[Iterator[Any], list[Any]]] = [(iter(key), [])]
    while True:
        items, done = stack[-1]
        for item in items:
            if type(item) is list:
                stack.append((iter(item), []))
                break
            done.append(item)
        else:
            stack.pop()
            if not stack:
                return tuple(done)
            stack[-1][1].append(tuple(done))


@hookimpl
def freight_strategies() -> list[type[BytesStrategy]]:
    return [MsgpackData]
