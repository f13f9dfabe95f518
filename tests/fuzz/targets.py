"""Fuzz targets: one per decoding surface of ``freight.serialize``.

Each target is a function of one ``bytes`` input (a *case*, ``cases.py``) that
decodes it through a public surface and checks **the property**:

* the decode returns, or raises a ``freight.serialize.SerdeError`` subclass --
  nothing else escapes (``IndexError``, ``RecursionError``, ``MemoryError``,
  ``UnicodeDecodeError``, ``SystemError`` ...; a segfault or a hang ends the run);
* a ``SerdeError`` does not hide a ``SystemError`` or ``MemoryError`` in its
  cause chain, and one caused by ``RecursionError`` names ``max_depth``;
* target-specific invariants (a blob that parses re-joins to itself, the C fast
  path and its Python twin agree, ``pack_buffers(unpack_buffers(s)) == s``).

A violation raises ``Finding`` (or lets the stray exception propagate), which
atheris reports as a crash with the input saved.  Peak memory is checked by the
runners (``check_memory``): traced allocations of one decode may not exceed
``AMPLIFICATION`` times the input's size plus ``MEMORY_SLACK``.

Nothing here executes code from an input: every serializer is built either under
``Policy.untrusted_input()`` or with an allowlist of safe decoders and
``InertCode`` (a code strategy that looks a name up in a fixed table);
``self_check`` verifies at start-up that the pickle-family and source decoders
are refused.

Targets (``TARGETS``):

``binary``    ``binary.parse_blob`` / ``parse_message`` / ``unpack_frames`` (blob and
              frame forms) under default and tight ``Limits``.
``fastpath``  ``ComputeSerializer.loads`` / ``loads_frames`` with the C
              ``_accel.FastPath`` and with ``PyFastPath`` side by side, their
              learned-header tables warmed on the seeds: same outcome required.
``text``      ``deserialize``, ``unpack_buffers`` / ``pack_buffers`` and
              ``unpack_and_deserialize`` on arbitrary text.
``json``, ``msgpack``, ``errors`` (``freight.exception/1``), ``pickle``
(``PickleData(allowed_globals=SAFE_DATA_GLOBALS)``)
              one strategy's messages through every envelope (blob, frames,
              bundles, text, packed text), decoded by a serializer with default
              limits and by one under ``Policy.untrusted_input()`` with ``TIGHT``
              limits (for ``pickle``: its allowlist, with ``TIGHT`` limits).
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import fractions
import functools
import math
import os
import types
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pickle import PickleBuffer
from typing import Any

import numpy as np

from freight.plugins import (
    error_strategies,
    json_strategies,
    msgpack_strategies,
    pickle_strategies,
)
from freight.plugins.pickle_strategies import SAFE_DATA_GLOBALS, PickleData
from freight.serialize import (
    ComputeSerializer,
    DeserializationError,
    Limits,
    Policy,
    Property,
    SerdeError,
    StrategyRegistry,
    TextStrategy,
    VersionMismatchWarning,
    binary,
    fastpath,
    hookimpl,
    pack_buffers,
    unpack_buffers,
)

from .cases import read_case, write_case

#: Tight limits for the untrusted serializers: what a service facing the
#: internet would set.
TIGHT = Limits(max_size=64 * 1024, max_frames=16, max_depth=32)
#: Peak traced memory of one decode may be this many times the input's size ...
#: (an empty msgpack map is 1 byte in, a 64-byte dict plus an 8-byte slot out).
AMPLIFICATION = 96
#: ... plus this much.
MEMORY_SLACK = 1 << 20


class Finding(AssertionError):
    """A violated property (the input is the reproducer)."""


# -- an inert code strategy and the registry ----------------------------------------


def _double(x: int) -> int:
    return 2 * x


class InertCode(TextStrategy):
    """A function by name from a fixed table: decoding executes nothing."""

    identifier = "Z1\n"
    for_code = True
    name = "fuzz-inert-code"
    # Not PORTABLE: a message stamped with another Python then takes the
    # facade's version-mismatch path, which reads the header's metadata.
    properties = Property.SAFE_FOR_UNTRUSTED
    TABLE = types.MappingProxyType({"_double": _double})

    def encode_text(self, obj: Any) -> str:
        return str(obj.__name__)

    def decode_text(self, text: str) -> Any:
        try:
            return self.TABLE[text]
        except KeyError:
            raise DeserializationError(f"no function {text[:40]!r}") from None


@hookimpl
def _fuzz_strategies() -> list[type[Any]]:
    return [InertCode]


def _registry() -> StrategyRegistry:
    registry = StrategyRegistry(entry_point_group=None)
    for module in (
        json_strategies,
        msgpack_strategies,
        error_strategies,
        pickle_strategies,
    ):
        registry.register_plugin(module, module.__name__)
    registry.register_plugin(
        types.SimpleNamespace(freight_strategies=_fuzz_strategies), "fuzz"
    )
    return registry


REGISTRY = _registry()

#: The data strategy of each strategy target, by registered name or instance.
DATA_STRATEGIES: dict[str, Any] = {
    "json": "json",
    "msgpack": "msgpack",
    "errors": "exception",
    "pickle": PickleData(allowed_globals=SAFE_DATA_GLOBALS),
}
#: Identifiers that execute code or unpickle without restriction: never decoded.
UNSAFE_IDENTIFIERS = ["00\n", "01\n", "02\n", "03\n", "04\n", "cp\n", "st\n", "sd\n"]
UNSAFE_IDENTIFIERS += ["10\n", "12\n", "13\n"]


def serializers(
    name: str, *, python_fast_path: bool = False
) -> list[ComputeSerializer]:
    """The serializers a strategy target decodes with: default limits behind an
    allowlist of the strategy and ``InertCode``; and ``TIGHT`` limits under
    ``Policy.untrusted_input()`` (for ``pickle``, which is not safe for untrusted
    input by declaration, its allowlist again)."""
    data = DATA_STRATEGIES[name]
    saved = fastpath.FastPath
    if python_fast_path:
        fastpath.FastPath = fastpath.PyFastPath
    try:
        allowed = ComputeSerializer(
            strategy_code=InertCode,
            strategy_data=data,
            registry=REGISTRY,
            allowed_deserializer_types=[InertCode, type(_strategy_of(data))],
        )
        if name == "pickle":
            tight = ComputeSerializer(
                strategy_code=InertCode,
                strategy_data=data,
                registry=REGISTRY,
                allowed_deserializer_types=[InertCode, PickleData],
                limits=TIGHT,
            )
        else:
            tight = ComputeSerializer(
                strategy_code=InertCode,
                strategy_data=data,
                registry=REGISTRY,
                policy=Policy.untrusted_input(),
                limits=TIGHT,
            )
    finally:
        fastpath.FastPath = saved
    return [allowed, tight]


def _strategy_of(data: Any) -> Any:
    return REGISTRY.resolve(data).strategy if isinstance(data, str) else data


def self_check(serdes: list[ComputeSerializer]) -> None:
    """Refuse to fuzz with a serializer that would run an unsafe decoder."""
    for serde in serdes:
        for ident in UNSAFE_IDENTIFIERS:
            try:
                serde._admit(ident)
            except DeserializationError:
                continue
            raise RuntimeError(f"{serde} admits {ident!r}: not safe to fuzz")


# -- seeds ---------------------------------------------------------------------------


def _small_dict() -> dict[str, Any]:
    # benchmarks/payloads.py's "small dict"
    return {"id": 4242, "name": "alice", "score": 3.25, "tags": ["a", "b"], "active": 1}


def json_values() -> list[Any]:
    return [
        None,
        True,
        0,
        -1,
        2**53 + 1,
        10**30,
        1.5,
        -0.0,
        "",
        "héllo ✓",
        [1, [2, [3, [4]]]],
        {"a": {"b": [1, 2.5, "x", None]}},
        _small_dict(),
        [{"id": i, "name": f"item-{i}", "value": i * 0.5} for i in range(20)],
        "freight " * 300,
    ]


def msgpack_values() -> list[Any]:
    return [
        *json_values(),
        2**64 - 1,
        -(2**63),
        b"",
        b"x" * 10,
        {"blob": b"\0" * 40, 7: [b"y"]},
        {(1, 2): "tuple key", 3: {"n": None}},
        bytearray(b"out of band"),
        memoryview(b"a memoryview"),
        [PickleBuffer(b"first"), PickleBuffer(bytearray(b"second"))],
        {"a": PickleBuffer(b"A" * 100), "b": [PickleBuffer(b"B" * 3)]},
        float("nan"),
    ]


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


class _LocalError(Exception):
    pass


def error_values() -> list[Any]:
    chained = ValueError("outer")
    chained.__cause__ = KeyError("inner")
    context = _raised(RuntimeError("with context"))
    context.__context__ = _raised(ZeroDivisionError("division by zero"))
    noted = TypeError("noted")
    noted.add_note("a note")
    return [
        ValueError("x"),
        KeyError("k"),
        OSError(2, "No such file", "/tmp/x"),
        chained,
        context,
        noted,
        _raised(IndexError("with a traceback")),
        ExceptionGroup("group", [ValueError(1), TypeError("t")]),
        _LocalError("not importable by the receiver"),
        StopIteration(42),
    ]


def pickle_values() -> list[Any]:
    return [
        *json_values(),
        {1, 2, 3},
        frozenset({"a"}),
        (1, "two", 3.0),
        complex(1, 2),
        range(3, 30, 3),
        slice(1, 5, 2),
        bytearray(b"ba"),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.timedelta(days=1, seconds=2),
        decimal.Decimal("3.14"),
        fractions.Fraction(3, 7),
        uuid.UUID(int=0x1234),
        collections.OrderedDict(a=1),
        collections.deque([1, 2]),
        collections.Counter("hello"),
        collections.defaultdict(int, {"k": 1}),
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(5, dtype=np.uint8),
        np.array([1.5], dtype=">f4"),
        np.float64(2.5),
        np.zeros((2, 2), dtype=[("a", "<i4"), ("b", "<f8")]),
        b"r" * (1 << 17),  # the raw-buffer route (a top-level large bytes)
    ]


SEED_VALUES: dict[str, Callable[[], list[Any]]] = {
    "json": json_values,
    "msgpack": msgpack_values,
    "errors": error_values,
    "pickle": pickle_values,
}


def message_seeds(name: str) -> list[bytes]:
    """Cases for a strategy target: each seed value's message in every mode."""
    serde = serializers(name)[0]
    seeds = []
    for i, value in enumerate(SEED_VALUES[name]()):
        try:
            frames = [bytes(memoryview(f).cast("B")) for f in serde.dumps_frames(value)]
        except SerdeError:
            continue
        seeds.append(write_case(i % len(MESSAGE_MODES), frames))
    # The inert code strategy's message, so bundles have a function to carry.
    code = [bytes(f) for f in serde.dumps_frames(_double)]
    seeds.append(write_case(MESSAGE_MODES.index("bundle_blob"), code))
    return seeds


def binary_seeds() -> list[bytes]:
    seeds = []
    for name in ("json", "msgpack", "errors"):
        serde = serializers(name)[0]
        for j, case in enumerate(message_seeds(name)[:6]):
            _, frames = read_case(case)
            seeds.append(write_case(j, frames))
        bundle = serde.pack_frames(
            [
                serde.dumps_frames(_double),
                serde.dumps_frames(SEED_VALUES[name]()[0]),
                serde.dumps_frames(SEED_VALUES[name]()[-1]),
            ]
        )
        seeds.append(write_case(2, [bytes(f) for f in bundle]))
        seeds.append(write_case(3, [bytes(f) for f in bundle]))
    return seeds


def text_seeds() -> list[bytes]:
    seeds = []
    for name in ("json", "msgpack", "errors"):
        serde = serializers(name)[0]
        values = SEED_VALUES[name]()[:8]
        payloads = []
        for value in values:
            try:
                payloads.append(serde.serialize(value))
            except SerdeError:
                continue
        for j, payload in enumerate(payloads):
            seeds.append(write_case(j % 2, [payload.encode("utf-8", "surrogatepass")]))
        packed = [serde.serialize(_double), *payloads[:2]]
        seeds.append(write_case(2, [p.encode() for p in packed]))
        seeds.append(write_case(3, [pack_buffers(packed).encode()]))
    return seeds


def seeds_for(target: str) -> list[bytes]:
    if target == "binary":
        return binary_seeds()
    if target == "text":
        return text_seeds()
    if target == "fastpath":
        return [s for n in ("json", "msgpack", "errors") for s in message_seeds(n)]
    return message_seeds(target)


# -- the property ----------------------------------------------------------------------


#: Defects found and reported but not fixed on this branch, by the error they
#: raise: skipped so a run goes on to find others, unless the environment sets
#: ``FREIGHT_FUZZ_STRICT=1``.  Each entry says what it is; remove it once fixed
#: (the reproducers are in ``regressions/``).
KNOWN_DEFECTS: dict[str, Callable[[SerdeError, BaseException], bool]] = {
    # The C unpickler allocates what a BYTEARRAY8 / BINBYTES8 length or a
    # LONG_BINPUT memo index says before reading the data, so a 40-byte
    # restricted pickle asks for up to 2**63 bytes (MemoryError) or any size
    # below the machine's memory (which it then gets).
    "pickle-length-allocation": lambda error, cause: (
        isinstance(cause, MemoryError) and "PickleData" in str(error)
    ),
}
STRICT = os.environ.get("FREIGHT_FUZZ_STRICT", "") not in ("", "0")
#: Where the first inputs that hit each known defect are saved
#: (``known-<defect>-<n>``), when set: how a run shows that it still finds them.
KNOWN_DIR = os.environ.get("FREIGHT_FUZZ_KNOWN_DIR", "")
#: How often each known defect was hit in this process.
KNOWN_HITS: collections.Counter[str] = collections.Counter()
#: The input being decoded (set by the runners), for ``KNOWN_DIR``.
CURRENT_INPUT = [b""]


def skip_known(defect: str) -> bool:
    """Whether to skip a hit of the known ``defect`` (not when strict); counts
    it, and saves the first three inputs under ``KNOWN_DIR``."""
    if STRICT:
        return False
    KNOWN_HITS[defect] += 1
    if KNOWN_DIR and KNOWN_HITS[defect] <= 3:
        path = os.path.join(KNOWN_DIR, f"known-{defect}-{KNOWN_HITS[defect]}")
        with open(path, "wb") as file:
            file.write(CURRENT_INPUT[0])
    return True


def check_error(error: SerdeError) -> None:
    """A ``SerdeError`` may wrap anything but a resource failure; a
    ``RecursionError`` under it must be reported as a depth limit."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, SystemError | MemoryError | RecursionError):
            for defect, known in KNOWN_DEFECTS.items():
                if known(error, cause) and skip_known(defect):
                    return
        if isinstance(cause, SystemError | MemoryError):
            raise Finding(f"{type(cause).__name__} under {error!r}") from error
        if isinstance(cause, RecursionError) and "max_depth" not in str(error):
            raise Finding(f"RecursionError not reported as max_depth: {error!r}")
        cause = cause.__cause__ or cause.__context__


#: Known defects that let an exception other than ``SerdeError`` escape,
#: recognised by the exception (skipped as ``KNOWN_DEFECTS`` are).  None today:
#: the last one (a RecursionError from ``_describe_producer``) is fixed.
KNOWN_ESCAPES: dict[str, Callable[[BaseException], bool]] = {}


def known_memory(target: str, data: bytes) -> bool:
    """An input over the memory bound through a known defect (skipped unless
    strict).  pickle: nothing bounds what
    the restricted unpickler allocates (``Limits`` says so): CPython allocates
    what a BINBYTES, BINBYTES8 or BYTEARRAY8 length or a LONG_BINPUT index says
    before reading (``pickle-binbytes-length-allocation``), and allowed
    constructors (``bytes``, ``list``, ``numpy.ndarray`` ...) take sizes."""
    if target == "pickle":
        return skip_known("pickle-length-allocation")
    return False


def known_unraisable(messages: list[str]) -> bool:
    """Unraisable exceptions that a known defect causes (skipped unless strict):
    CPython 3.11's file-reading unpickler, asked for a BYTEARRAY8 it cannot
    allocate, frees a bytearray with an exported buffer (the restricted
    unpickler reads from a file; ``pickle-length-allocation``)."""
    if all("has exported buffers" in m for m in messages):
        return skip_known("pickle-length-allocation")
    return False


def _raised_in(error: BaseException, function: str) -> bool:
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            return True
        tb = tb.tb_next
    return False


def decode(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", message)``; anything but a
    ``SerdeError`` propagates (but ``KNOWN_ESCAPES``, unless strict)."""
    try:
        with warnings.catch_warnings():
            # Messages stamped with another Python warn on every decode.
            warnings.simplefilter("ignore", VersionMismatchWarning)
            return "ok", call()
    except SerdeError as error:
        check_error(error)
        return "error", str(error)
    except Exception as error:
        for defect, known in KNOWN_ESCAPES.items():
            if known(error) and skip_known(defect):
                return "error", f"known: {type(error).__name__}"
        raise


def check_depth(value: Any, limit: int) -> None:
    """A decoded value, map keys included, nests at most ``limit`` deep."""
    stack: list[tuple[Any, int, bool]] = [(value, 1, False)]
    while stack:
        item, depth, in_key = stack.pop()
        if isinstance(item, dict):
            stack.extend((k, depth + 1, True) for k in item)
            stack.extend((v, depth + 1, in_key) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1, in_key) for child in item)
        else:
            continue
        if depth > limit:
            raise Finding(f"a decoded value nests deeper than max_depth={limit}")


def _class_state() -> dict[str, dict[str, int]]:
    """id() of every attribute of the classes the restricted unpickler may
    load: a payload must not change them (BUILD on a class)."""
    import importlib

    state = {}
    for module_name, names in SAFE_DATA_GLOBALS.items():
        if module_name.startswith("numpy.core"):
            continue  # deprecated aliases of numpy._core: the same objects
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            obj = getattr(module, name, None)
            if isinstance(obj, type):
                state[f"{module_name}.{name}"] = {
                    k: id(v) for k, v in vars(obj).items()
                }
    return state


def _as_buffer(frame: bytes, kind: int) -> Any:
    if kind == 1:
        return bytearray(frame)
    if kind == 2:
        return memoryview(frame)
    if kind == 3:
        return memoryview(bytearray(frame))[:]  # writable view
    return frame


# -- target: binary -----------------------------------------------------------------


def target_binary(data: bytes) -> None:
    mode, frames = read_case(data)
    limits = TIGHT if mode & 0x80 else binary.DEFAULT_LIMITS
    kind = (mode >> 4) & 3
    op = mode & 7
    blob = b"".join(frames)
    if op == 0:
        result = decode(lambda: binary.parse_blob(_as_buffer(blob, kind), limits))
        if result[0] == "ok":
            message = result[1]
            rejoined = b"".join(
                [
                    bytes(blob[: message.header.end]),
                    bytes(blob[message.header.end : len(blob) - _tail(message)]),
                    bytes(message.body),
                    *(bytes(b) for b in message.buffers),
                ]
            )
            if rejoined != blob:
                raise Finding("parse_blob's views do not re-join to the blob")
    elif op in (1, 2):
        as_frames = [_as_buffer(f, kind) for f in frames]
        if op == 2:
            as_frames = tuple(as_frames)  # type: ignore[assignment]
        result = decode(lambda: binary.parse_message(as_frames, limits))
        if result[0] == "ok":
            message = result[1]
            if (
                bytes(message.body) != frames[1]
                or [bytes(b) for b in message.buffers] != frames[2:]
            ):
                raise Finding("parse_message changed a frame")
    elif op in (3, 4):
        decode(
            lambda: binary.unpack_frames([_as_buffer(f, kind) for f in frames], limits)
        )
    elif op == 5:
        decode(lambda: binary.unpack_frames(_as_buffer(blob, kind), limits))
    elif op == 6:
        decode(lambda: binary.unpack_frames(blob, limits))
    else:
        decode(lambda: binary.parse_message([*frames[:1], blob], limits))


def _tail(message: binary.Message) -> int:
    return len(message.body) + sum(len(b) for b in message.buffers)


# -- targets: one strategy's messages, every envelope --------------------------------

MESSAGE_MODES = [
    "blob_bytes",
    "frames_list",
    "blob_bytearray",
    "blob_memoryview",
    "frames_views",
    "frames_tuple",
    "text",
    "bundle_blob",
    "bundle_frames",
    "packed_text",
]


_THREE_VALUES = ("bundle_blob", "bundle_frames", "packed_text")


def _text_of(frames: list[bytes]) -> str:
    """The text payload a message stands for: identifier + body (base64 unless
    the header says the body is text)."""
    header = frames[0] if frames else b""
    ident = header[8:11].decode("latin-1") if len(header) >= 11 else "11\n"
    body = frames[1] if len(frames) > 1 else b""
    if len(header) > 5 and header[5] & binary.FLAG_TEXT_BODY:
        return ident + body.decode("utf-8", "surrogateescape")
    return ident + base64.b64encode(body).decode("ascii")


def decode_message(serde: ComputeSerializer, mode: int, frames: list[bytes]) -> Any:
    """Decode ``frames`` through the envelope ``mode`` names (``MESSAGE_MODES``)."""
    how = MESSAGE_MODES[mode % len(MESSAGE_MODES)]
    if how == "blob_bytes":
        return decode(lambda: serde.loads(b"".join(frames)))
    if how == "blob_bytearray":
        return decode(lambda: serde.loads(bytearray(b"".join(frames))))
    if how == "blob_memoryview":
        return decode(lambda: serde.loads(memoryview(b"".join(frames))))
    if how == "frames_list":
        return decode(lambda: serde.loads_frames(list(frames)))
    if how == "frames_views":
        return decode(
            lambda: serde.loads_frames(
                [_as_buffer(f, i % 4) for i, f in enumerate(frames)]
            )
        )
    if how == "frames_tuple":
        return decode(lambda: serde.loads_frames(tuple(frames)))
    if how == "text":
        return decode(lambda: serde.deserialize(_text_of(frames)))
    code = [bytes(f) for f in serde.dumps_frames(_double)]
    if how in ("bundle_blob", "bundle_frames"):
        bundle = binary.pack_frames([code, frames, frames])
        if how == "bundle_blob":
            return decode(lambda: serde.unpack_frames_and_deserialize(b"".join(bundle)))
        return decode(lambda: serde.unpack_frames_and_deserialize(bundle))
    packed = pack_buffers(
        [serde.serialize(_double), _text_of(frames), _text_of(frames)]
    )
    return decode(lambda: serde.unpack_and_deserialize(packed))


@dataclass
class MessageTarget:
    """A strategy target: its serializers, built once."""

    name: str
    serdes: list[ComputeSerializer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.serdes = serializers(self.name)
        self_check(self.serdes)
        self.classes = _class_state() if self.name == "pickle" else {}

    def __call__(self, data: bytes) -> None:
        mode, frames = read_case(data)
        for serde in self.serdes:
            kind, value = decode_message(serde, mode, frames)
            if kind == "ok" and self.name in ("json", "msgpack"):
                how = MESSAGE_MODES[mode % len(MESSAGE_MODES)]
                # Bundles and packed text decode to a list of three values.
                values = value if how in _THREE_VALUES else [value]
                for item in values:
                    check_depth(item, serde.limits.max_depth)
        if self.classes and _class_state() != self.classes:
            changed = [k for k, v in _class_state().items() if self.classes.get(k) != v]
            raise Finding(f"a restricted pickle changed the classes {changed}")


# -- target: fastpath (C against Python) -------------------------------------------


class FastPathTarget:
    """The same inputs through serializers with the C fast path and with
    ``PyFastPath``, warmed on the seeds so their learned-header tables are full:
    outcomes must agree (same result, or the same error message)."""

    NAMES = ("json", "msgpack", "errors")

    def __init__(self) -> None:
        if fastpath.FastPath is fastpath.PyFastPath:
            raise RuntimeError("the C accelerator is not built: nothing to compare")
        self.pairs = [
            (c, p)
            for name in self.NAMES
            for c, p in zip(
                serializers(name), serializers(name, python_fast_path=True), strict=True
            )
        ]
        for c, p in self.pairs:
            self_check([c, p])
            assert type(c._fast) is not type(p._fast)
        for seed in seeds_for("fastpath"):
            _, frames = read_case(seed)
            for c, p in self.pairs:
                for serde in (c, p):
                    decode(functools.partial(serde.loads, b"".join(frames)))
                    decode(functools.partial(serde.loads_frames, list(frames)))

    def __call__(self, data: bytes) -> None:
        mode, frames = read_case(data)
        for c, p in self.pairs:
            if mode & 1:
                call = "loads_frames"
                arg: Any = list(frames) if mode & 2 else tuple(frames)
            else:
                call = "loads"
                arg = b"".join(frames) if mode & 2 else bytearray(b"".join(frames))
            got_c = decode(functools.partial(getattr(c, call), arg))
            got_p = decode(functools.partial(getattr(p, call), arg))
            if not same(got_c, got_p):
                raise Finding(f"{call}: C fast path gave {got_c!r}, Python {got_p!r}")


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and compares exceptions by type
    and args."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, BaseException) and isinstance(b, BaseException):
        return type(a) is type(b) and same(a.args, b.args)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, memoryview) and isinstance(b, memoryview):
        return a.tobytes() == b.tobytes()
    return type(a) is type(b) and bool(a == b)


# -- target: text ------------------------------------------------------------------


class TextTarget:
    """``deserialize`` / ``unpack_buffers`` / ``unpack_and_deserialize`` on text."""

    def __init__(self) -> None:
        self.serdes = [s for n in ("json", "msgpack", "errors") for s in serializers(n)]
        self_check(self.serdes)

    def __call__(self, data: bytes) -> None:
        mode, frames = read_case(data)
        encoding = "latin-1" if mode & 0x80 else "utf-8"
        texts = [f.decode(encoding, "surrogateescape") for f in frames]
        op = mode & 3
        if op == 0 or op == 1:
            text = "".join(texts)
            for serde in self.serdes:
                decode(lambda s=serde: s.deserialize(text))  # type: ignore[misc]
        elif op == 2:
            packed = pack_buffers(texts)
            got = decode(lambda: unpack_buffers(packed))
            if got != ("ok", texts):
                raise Finding(f"unpack_buffers(pack_buffers(x)) != x: {got!r}")
            for serde in self.serdes:
                decode(lambda s=serde: s.unpack_and_deserialize(packed))  # type: ignore[misc]
        else:
            text = "".join(texts)
            kind, value = decode(lambda: unpack_buffers(text))
            # Not pack(unpack(s)) == s: lengths may have leading zeros ("01\n-").
            if kind == "ok" and unpack_buffers(pack_buffers(value)) != value:
                raise Finding("unpack_buffers(pack_buffers(x)) != x")
            for serde in self.serdes:
                decode(lambda s=serde: s.unpack_and_deserialize(text))  # type: ignore[misc]


# -- the table -----------------------------------------------------------------------

TARGET_NAMES = ["binary", "fastpath", "text", "json", "msgpack", "errors", "pickle"]


def make_target(name: str) -> Callable[[bytes], None]:
    """The target called ``name`` (building it builds its serializers)."""
    if name == "binary":
        return target_binary
    if name == "fastpath":
        return FastPathTarget()
    if name == "text":
        return TextTarget()
    if name in DATA_STRATEGIES:
        return MessageTarget(name)
    raise KeyError(f"no fuzz target {name!r}; targets: {', '.join(TARGET_NAMES)}")


def memory_bound(data: bytes) -> int:
    """The most one decode of ``data`` may allocate at its peak."""
    return AMPLIFICATION * len(data) + MEMORY_SLACK
