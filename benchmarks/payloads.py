"""The payload classes: what is serialized, how big it is, how to check a copy.

Each payload's *size* is the memory its data occupies in this process, measured one
way for all of them (``deep_sizeof``): ``sys.getsizeof`` summed over the object graph,
each object counted once.  For ``bytes``/``str`` that is the data plus a small object
header, for a numpy array that owns its data it is ``nbytes`` plus the array header,
for a function it is the function object, its code object (bytecode, constants,
names) and its closure cells.  Throughput (MB/s) is this size over the time taken, with
MB = 10**6 bytes.  Payloads are built lazily, so ``--only tiny`` never allocates the
80 MB array.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

import bench_functions


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


S = TypeVar("S", bound=_Keyed)

#: Payloads smaller than this are the "tiny" ones for the pickle-5 figure.
TINY_LIMIT = 1000


@dataclass(frozen=True)
class PayloadSpec:
    """A payload class before its object exists."""

    key: str
    title: str
    build: Callable[[], Any]
    #: Arguments to call a decoded function with; ``None`` for data payloads.
    call_args: tuple[Any, ...] | None = None
    #: Contender keys that cannot serialize this payload, with the reason.
    out_of_domain: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Payload:
    """A built payload: the object, its size, and how to check a decoded copy."""

    spec: PayloadSpec
    obj: Any
    size: int

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def is_function(self) -> bool:
        return self.spec.call_args is not None

    @property
    def is_tiny(self) -> bool:
        return self.size < TINY_LIMIT

    def matches(self, copy: Any) -> bool:
        """Whether ``copy`` is a faithful decoding of this payload."""
        if self.spec.call_args is not None:
            args = self.spec.call_args
            return bool(callable(copy) and copy(*args) == self.obj(*args))
        if isinstance(self.obj, np.ndarray):
            return (
                isinstance(copy, np.ndarray)
                and copy.dtype == self.obj.dtype
                and bool(np.array_equal(copy, self.obj))
            )
        return type(copy) is type(self.obj) and bool(copy == self.obj)


def deep_sizeof(obj: Any) -> int:
    """``sys.getsizeof`` summed over ``obj``'s graph, each object counted once."""
    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, types.FunctionType):
            stack.append(item.__code__)
            stack.extend(item.__closure__ or ())
            stack.extend(item.__defaults__ or ())
        elif isinstance(item, types.CodeType):
            stack.extend([item.co_code, *item.co_consts, *item.co_names])
        elif isinstance(item, types.CellType):
            stack.append(item.cell_contents)
    return total


def _small_dict() -> dict[str, Any]:
    return {
        "id": 4242,
        "name": "alice",
        "score": 3.25,
        "tags": ["a", "b"],
        "active": True,
    }


def _dicts_10k() -> list[dict[str, Any]]:
    return [{"id": i, "name": f"item-{i}", "value": i * 0.5} for i in range(10_000)]


def _str_1mb() -> str:
    words = "freight carries python functions and data across processes "
    return (words * (1_000_000 // len(words) + 1))[:1_000_000]


def _bytes_10mb() -> bytes:
    # Random, so nothing along the way can get lucky with compression.
    return np.random.default_rng(10).bytes(10_000_000)


def _array_80mb() -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng(80).random(10_000_000)


_NO_MSGPACK_FUNCTIONS = "functions are outside msgpack's domain"

SPECS: tuple[PayloadSpec, ...] = (
    PayloadSpec("tiny", "tiny scalar (int)", lambda: 123_456_789),
    PayloadSpec("small_dict", "small dict (5 keys)", _small_dict),
    PayloadSpec("ints_1k", "list of 1k ints", lambda: list(range(1_000, 2_000))),
    PayloadSpec("dicts_10k", "list of 10k small dicts", _dicts_10k),
    PayloadSpec("str_1mb", "1 MB str (ASCII)", _str_1mb),
    PayloadSpec("bytes_10mb", "10 MB bytes", _bytes_10mb),
    PayloadSpec(
        "array_80mb",
        "80 MB float64 numpy array",
        _array_80mb,
        out_of_domain={
            "msgpack": "numpy arrays are outside msgpack's domain (no extension)"
        },
    ),
    PayloadSpec(
        "function",
        "module-level function",
        lambda: bench_functions.weighted_mean,
        call_args=([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]),
        out_of_domain={"msgpack": _NO_MSGPACK_FUNCTIONS},
    ),
    PayloadSpec(
        "closure",
        "closure",
        lambda: bench_functions.make_closure(2.5, offset=1.0),
        call_args=([1.0, 2.0, 3.0],),
        out_of_domain={
            "msgpack": _NO_MSGPACK_FUNCTIONS,
            "pickle5": "pickle cannot serialize a closure (a local object)",
            "pickle5_oob": "pickle cannot serialize a closure (a local object)",
        },
    ),
)

PAYLOAD_KEYS: tuple[str, ...] = tuple(spec.key for spec in SPECS)


def select_keyed(specs: Sequence[S], only: list[str] | None, what: str) -> list[S]:
    """The ``specs`` whose ``key`` is in ``only`` (all of them if empty), in their
    order.  Raises ``ValueError`` naming the valid keys for an unknown one (``what``
    names the kind of key)."""
    if not only:
        return list(specs)
    keys = [spec.key for spec in specs]
    unknown = [key for key in only if key not in keys]
    if unknown:
        raise ValueError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(keys)}"
        )
    return [spec for spec in specs if spec.key in only]


def select(only: list[str] | None) -> list[PayloadSpec]:
    """The specs named in ``only`` (all of them if ``None``), in suite order.

    Raises ``ValueError`` naming the valid keys for an unknown one.
    """
    return select_keyed(SPECS, only, "payload")


def build(spec: PayloadSpec) -> Payload:
    """Create the payload's object and measure its size."""
    obj = spec.build()
    return Payload(spec=spec, obj=obj, size=deep_sizeof(obj))
