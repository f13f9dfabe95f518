"""The safe decoders hold their limits against hostile payloads (issue 10, section 1).

* msgpack blob references (ext 70): what a decode copies is bounded by ``max_size``;
* msgpack map keys: colliding hashes are refused, not built in quadratic time;
* ``max_depth``: map keys count, and the default is enforced exactly (msgpack's
  stack allows 1024, ``json`` whatever the recursion limit allows).

No wall-clock assertions: memory is measured with ``tracemalloc``, time-complexity
defences by what the decoder refuses.
"""

from __future__ import annotations

import base64
import json
import random
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freight.plugins.msgpack_strategies import (
    BLOB_EXT,
    CHECKED_MAP_KEYS,
    MAX_KEYS_PER_HASH,
    MSGPACK_MAX_DEPTH,
    MsgpackData,
)
from freight.serialize import ComputeSerializer, DeserializationError, binary
from freight.serialize.limits import DEFAULT_MAX_DEPTH, Limits, run_within
from freight.serialize.policy import Policy

PREFIX = binary.message_prefix("mp\n", text_body=False)
PACKER = msgpack.Packer()


def blob(body: bytes, *buffers: bytes) -> bytes:
    """A binary ``mp`` message in the single-blob form (buffers are views of it)."""
    return b"".join(
        [binary.message_header(PREFIX, body, list(buffers)), body, *buffers]
    )


def ref(kind: bytes, index: int = 0) -> bytes:
    return PACKER.pack(msgpack.ExtType(BLOB_EXT, kind + index.to_bytes(4, "big")))


def array_of(items: list[bytes]) -> bytes:
    return PACKER.pack_array_header(len(items)) + b"".join(items)


def map_of(pairs: list[tuple[Any, Any]]) -> bytes:
    """A msgpack map with exactly these pairs (repeats kept), keys packed as given."""
    return PACKER.pack_map_header(len(pairs)) + b"".join(
        PACKER.pack(k) + PACKER.pack(v) for k, v in pairs
    )


def peak_bytes(function: Callable[[], Any]) -> int:
    """The peak of memory traced while ``function`` runs (its exception ignored)."""
    tracemalloc.start()
    try:
        function()
    except DeserializationError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def untrusted(**limits: int) -> ComputeSerializer:
    return ComputeSerializer(
        strategy_data="msgpack",
        policy=Policy.untrusted_input(),
        limits=Limits(**limits) if limits else None,
    )


# -- blob references: every copy counts against max_size -----------------------------

FRAME = 16 << 10
REFERENCES = 2000  # 2000 copies of 16 KiB: 32 MiB, against a 1 MiB max_size


def test_a_buffer_copied_as_bytearray_many_times_is_refused_naming_max_size() -> None:
    s = untrusted(max_size=1 << 20)
    message = blob(array_of([ref(b"a")] * REFERENCES), b"x" * FRAME)
    with pytest.raises(DeserializationError, match="max_size=1048576"):
        s.loads(message)
    assert peak_bytes(lambda: s.loads(message)) < 4 << 20


def test_a_buffer_referenced_as_bytes_many_times_is_copied_once() -> None:
    s = untrusted(max_size=1 << 20)
    message = blob(array_of([ref(b"b")] * REFERENCES), b"x" * FRAME)
    value = s.loads(message)
    assert len(value) == REFERENCES and value[0] == b"x" * FRAME
    assert all(item is value[0] for item in value)  # one copy, shared
    assert peak_bytes(lambda: s.loads(message)) < 1 << 20


def test_under_default_limits_copies_are_bounded_by_what_was_received() -> None:
    s = untrusted()  # max_size 4 GiB: the received buffers are the tighter bound
    message = blob(array_of([ref(b"a")] * REFERENCES), b"x" * FRAME)
    with pytest.raises(DeserializationError, match="what was received") as raised:
        s.loads(message)
    assert f"past {FRAME} bytes" in str(raised.value)
    assert peak_bytes(lambda: s.loads(message)) < 4 * len(message)


def test_each_frame_copied_once_decodes() -> None:
    s = untrusted(max_size=1 << 20)
    frames = [bytes([i]) * FRAME for i in range(4)]
    refs = [ref(b"a", 0), ref(b"a", 1), ref(b"b", 2), *[ref(b"m", 3)] * 100]
    value = s.loads(blob(array_of(refs), *frames))
    assert value[:3] == [bytearray(frames[0]), bytearray(frames[1]), frames[2]]
    assert all(bytes(v) == frames[3] for v in value[3:])


def test_a_frame_copied_twice_as_bytearray_is_refused() -> None:
    message = blob(array_of([ref(b"a"), ref(b"a")]), b"z" * FRAME)
    with pytest.raises(DeserializationError, match="copying"):
        untrusted().loads(message)


# -- map keys: hash flooding ----------------------------------------------------------

_M64 = (1 << 64) - 1
_P1, _P2, _P5 = 11400714785074694791, 14029467366897019727, 2870177450012600261


def colliding_int_pairs(count: int, target: int = 0x1234567) -> list[tuple[int, int]]:
    """``count`` distinct ``(a, b)`` whose tuple hashes are all ``target``: CPython's
    tuple hash (xxHash-style, over the items' hashes) inverted for ``a``."""

    def rotr(x: int) -> int:
        return ((x >> 31) | (x << 33)) & _M64

    inv1, inv2 = pow(_P1, -1, 1 << 64), pow(_P2, -1, 1 << 64)
    last = (target - (2 ^ _P5 ^ 3527539)) & _M64
    pairs, b = [], 0
    while len(pairs) < count:
        first = (rotr(last * inv1 & _M64) - b * _P2) & _M64
        lane = ((rotr(first * inv1 & _M64) - _P5) * inv2) & _M64
        a = lane - (1 << 64) if lane >= 1 << 63 else lane
        if -((1 << 61) - 1) < a < (1 << 61) - 1 and a != -1:  # hash(a) == lane
            pairs.append((a, b))
        b += 1
    return pairs


def test_the_collision_builder_really_collides() -> None:
    pairs = colliding_int_pairs(50)
    assert len(set(pairs)) == 50 and len({hash(p) for p in pairs}) == 1
    assert sys.hash_info.algorithm in {"siphash13", "siphash24"}  # str is randomized


@pytest.mark.parametrize("kind", ["array", "timestamp"])
def test_colliding_map_keys_are_refused(kind: str) -> None:
    pairs = colliding_int_pairs(3000)
    keys: list[Any] = (
        [list(p) for p in pairs]
        if kind == "array"
        else [msgpack.Timestamp(a, b) for a, b in pairs]
    )
    message = blob(map_of([(k, None) for k in keys]))
    with pytest.raises(DeserializationError, match="same hash") as raised:
        untrusted().loads(message)
    assert str(MAX_KEYS_PER_HASH) in str(raised.value)
    body = bytes(binary.parse_blob(message).body)
    with pytest.raises(DeserializationError, match="same hash"):  # text envelope
        untrusted().deserialize("mp\n" + base64.b64encode(body).decode())


def test_colliding_keys_nested_in_a_value_are_refused_too() -> None:
    keys = [list(p) for p in colliding_int_pairs(200)]
    inner = map_of([(k, 1) for k in keys])
    message = blob(PACKER.pack_map_header(1) + PACKER.pack("a") + inner)
    with pytest.raises(DeserializationError, match="same hash"):
        untrusted().loads(message)


def test_a_few_colliding_keys_and_ordinary_tuple_keys_still_decode() -> None:
    pairs = colliding_int_pairs(MAX_KEYS_PER_HASH)
    value = {p: i for i, p in enumerate(pairs)} | {(1, (2, 3)): "x", "s": 1, 5: 2}
    s = untrusted()
    assert s.loads(s.dumps(value)) == value
    ts = {msgpack.Timestamp(a, b): 0 for a, b in pairs}
    assert s.loads(s.dumps(ts)) == ts


def test_int_keys_with_equal_hashes_are_few_and_decode() -> None:
    # hash(n) == hash(n + (2**61 - 1)): within msgpack's 64-bit range at most nine
    # ints share a hash, so int keys cannot flood a dict that way.
    modulus = (1 << 61) - 1
    positive = [7 + j * modulus for j in range(10) if 7 + j * modulus < 1 << 64]
    negative = [-k for k in positive if k <= 1 << 63]
    for group in (positive, negative):
        assert len({hash(k) for k in group}) == 1 and len(group) <= 9
    value = {k: None for k in positive + negative}
    s = untrusted()
    assert s.loads(s.dumps(value)) == value


def steered_int_keys(log2_size: int, seed: int = 1) -> list[int]:
    """Distinct ints, with distinct hashes, that make building a dict quadratic.

    CPython's dict probes ``i = hash & mask``, then ``perturb >>= 5; i = 5 * i +
    perturb + 1``.  The first half of the keys (small ints, placed at their own
    value) fill a run of slots along ``i -> 5 * i + 1``; each key of the second
    half has every probe land in that run, 5 bits of it chosen per step, so once
    its perturbation is spent it walks the run (grown by the keys before it) to
    its end.  For a table of ``2**log2_size`` slots, the size the dict ends at.
    """
    size = 1 << log2_size
    mask, count = size - 1, size * 2 // 3 - 10
    run, slot = [], 12345 & mask
    for _ in range(count // 2):
        run.append(slot)
        slot = (5 * slot + 1) & mask
    occupied, rnd, steered = set(run), random.Random(seed), set()
    while len(steered) < count - len(run):
        h = slot = rnd.choice(run)
        for step, shift in enumerate(range(log2_size, 60, 5), start=1):
            for chunk in rnd.sample(range(32), 32):
                candidate = h | chunk << shift
                following = (5 * slot + (candidate >> 5 * step) + 1) & mask
                if following in occupied:
                    h, slot = candidate, following
                    break
            else:
                break
        else:
            if h >= size and all(i in occupied for i in _probes(h, mask)):
                steered.add(h)  # (h >= size: distinct from the run's keys)
    return run + sorted(steered, key=lambda _: rnd.random())


def _probes(h: int, mask: int) -> Iterator[int]:
    """The slots CPython's dict probes for hash ``h`` while ``perturb`` lasts."""
    i, perturb = h & mask, h
    while perturb:
        yield i
        perturb >>= 5
        i = (5 * i + perturb + 1) & mask


def test_int_keys_steering_the_dict_probes_are_refused() -> None:
    keys = steered_int_keys(11)  # 1355 keys: 1.2 s of decoding at 2**15
    assert len(set(keys)) == len({hash(k) for k in keys}) == len(keys)
    assert len(keys) > CHECKED_MAP_KEYS
    message = blob(map_of([(k, None) for k in keys]))
    with pytest.raises(DeserializationError, match="probes per key"):
        untrusted().loads(message)


@pytest.mark.parametrize(
    "kind", ["random", "range", "shifted", "float", "tuple", "mixed"]
)
def test_large_maps_of_ordinary_keys_still_decode(kind: str) -> None:
    rnd = random.Random(7)
    n = 3 * CHECKED_MAP_KEYS
    keys: list[Any] = {
        "random": lambda: [rnd.randrange(-(1 << 63), 1 << 64) for _ in range(n)],
        "range": lambda: list(range(n)),
        # Hashes with 32 equal low bits: CPython probes about 20 slots per key.
        "shifted": lambda: [i << 32 for i in range(n)],
        "float": lambda: [rnd.random() for _ in range(n)],
        "tuple": lambda: [(i, str(i)) for i in range(n)],
        "mixed": lambda: [*range(n // 2), *map(str, range(n // 2))],
    }[kind]()
    value = dict.fromkeys(keys, 0)
    s = untrusted()
    assert s.loads(s.dumps(value)) == value


def test_a_map_key_holding_a_map_is_a_clear_error() -> None:
    body = PACKER.pack_map_header(1) + PACKER.pack([{"a": 1}]) + b"\xc0"
    with pytest.raises(DeserializationError, match="map key"):
        untrusted().loads(blob(body))
    with pytest.raises(DeserializationError, match="map key"):
        MsgpackData().decode(body)


# -- max_depth: map keys, and the default enforced exactly ----------------------------


def nested_key(depth: int) -> bytes:
    """``{[[...[None]...]]: None}``: a key nested ``depth`` arrays deep."""
    return b"\x81" + b"\x91" * depth + b"\xc0" + b"\xc0"


@pytest.mark.parametrize("limit", [8, 100, DEFAULT_MAX_DEPTH])
def test_max_depth_covers_map_keys(limit: int) -> None:
    s = untrusted(max_depth=limit)
    with pytest.raises(DeserializationError, match=f"max_depth={limit}"):
        s.loads(blob(nested_key(limit)))  # the map is a level too
    with pytest.raises(DeserializationError, match="max_depth"):
        s.loads(blob(nested_key(301 if limit < 301 else 1023)))
    value = s.loads(blob(nested_key(limit - 1)))
    key = next(iter(value))
    for _ in range(limit - 2):
        key = key[0]
    assert key == (None,)


@pytest.mark.parametrize("depth", [DEFAULT_MAX_DEPTH + 1, 1010, MSGPACK_MAX_DEPTH])
def test_the_default_max_depth_is_enforced_for_msgpack(depth: int) -> None:
    s = ComputeSerializer(strategy_data="msgpack")
    deep = b"\x91" * depth + b"\xc0"
    with pytest.raises(DeserializationError, match="max_depth=1000"):
        s.loads(blob(deep))
    with pytest.raises(DeserializationError, match="max_depth=1000"):
        MsgpackData().decode(deep)
    assert s.loads(blob(b"\x91" * DEFAULT_MAX_DEPTH + b"\xc0")) is not None


def nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    """A raised recursion limit (dill and cloudpickle users do this), under which
    ``json`` itself would decode deeper than the default ``max_depth``."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@pytest.mark.usefixtures("deep_recursion")
@pytest.mark.parametrize("strategy", ["json", "exception"])
def test_the_default_max_depth_is_enforced_for_json(strategy: str) -> None:
    s = ComputeSerializer(strategy_data="json")
    identifier = {"json": "11\n", "exception": "ex\n"}[strategy]
    payload = identifier + json.dumps(nested_list(DEFAULT_MAX_DEPTH + 200))
    with pytest.raises(DeserializationError, match="max_depth=1000"):
        s.deserialize(payload)


@pytest.mark.usefixtures("deep_recursion")
def test_json_within_the_default_max_depth_decodes_under_a_raised_limit() -> None:
    s = ComputeSerializer(strategy_data="json")
    value = [nested_list(DEFAULT_MAX_DEPTH - 1), *range(2000)]
    assert s.deserialize(s.serialize(value)) == value


def depth_of(value: Any) -> int:
    """Container nesting of ``value``, keys included (iteratively)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[Any] = [*item, *item.values()]
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in children]
    return deepest


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(0, 1100),
    limit=st.integers(0, 1100),
    pad=st.sampled_from([0, 10, 5000]),
    in_key=st.booleans(),
)
def test_msgpack_decodes_exactly_what_max_depth_allows(
    depth: int, limit: int, pad: int, in_key: bool
) -> None:
    # Padding makes the body long enough for every way the limit is enforced
    # (nothing to do, a walk, the wrapping in msgpack's own stack).
    nested = b"\x91" * depth + PACKER.pack("leaf")
    if in_key:  # {"ppp": 0, [[...]]: 1}
        body = b"\x82" + PACKER.pack("p" * pad) + b"\x00" + nested + b"\x01"
        depth += 1
    elif pad:  # [[[...]], "ppp"]
        body = b"\x92" + nested + PACKER.pack("p" * pad)
        depth += 1
    else:
        body = nested
    decode = MsgpackData().decode
    if depth <= min(limit, MSGPACK_MAX_DEPTH):
        assert depth_of(run_within(Limits(max_depth=limit), decode, body)) == depth
    else:
        with pytest.raises(DeserializationError, match=f"max_depth={limit}"):
            run_within(Limits(max_depth=limit), decode, body)


def test_the_msgpack_depth_bound_is_msgpacks_own_stack() -> None:
    # The wrapping trick relies on msgpack's stack being exactly this deep.
    msgpack.unpackb(b"\x91" * MSGPACK_MAX_DEPTH + b"\xc0")
    with pytest.raises(msgpack.StackError):
        msgpack.unpackb(b"\x91" * (MSGPACK_MAX_DEPTH + 1) + b"\xc0")


@pytest.mark.parametrize("kind", ["array", "timestamp"])
def test_colliding_keys_in_a_small_map_are_refused_too(kind: str) -> None:
    # 9 keys: a fixmap, which the decoder takes at C speed unless a key needs
    # checking (an array, or a timestamp, whose ext type byte is 0xff).
    pairs = colliding_int_pairs(MAX_KEYS_PER_HASH + 1)
    keys: list[Any] = (
        [list(p) for p in pairs]
        if kind == "array"
        else [msgpack.Timestamp(a, b) for a, b in pairs]
    )
    with pytest.raises(DeserializationError, match="same hash"):
        untrusted().loads(blob(map_of([(k, None) for k in keys])))
    small = {1: "a", -2: 2.5, 3.5: None, b"k": 1, "s": [1]}
    assert untrusted().loads(untrusted().dumps(small)) == small


# -- container headers: msgpack allocates what they declare before reading ---------


def declared_but_missing(depth: int) -> bytes:
    """``depth`` nested array 32 headers, each declaring as many elements as the
    body has bytes, and no element: msgpack's C unpacker allocates 8 bytes per
    declared element of each before it finds the body truncated."""
    length = 5 * depth + 1
    return b"".join([b"\xdd" + length.to_bytes(4, "big")] * depth) + b"\xc0"


@pytest.mark.parametrize("depth", [100, 1000])
def test_declared_container_lengths_cannot_allocate_far_beyond_the_body(
    depth: int,
) -> None:
    body = declared_but_missing(depth)  # 1000: 5 KB that made 40 MB
    s = untrusted()
    with pytest.raises(DeserializationError, match=r"truncated|incomplete"):
        s.loads(blob(body))
    assert peak_bytes(lambda: s.loads(blob(body))) < 96 * len(body) + (1 << 20)
    assert peak_bytes(lambda: MsgpackData().decode(body)) < 96 * len(body) + (1 << 20)


def test_complete_bodies_with_many_large_containers_still_decode() -> None:
    value = [[i] * 100 for i in range(50)] + [{str(i): i for i in range(20)}]
    s = untrusted()
    assert s.loads(s.dumps(value)) == value
