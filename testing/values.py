"""Hypothesis strategies for the values a data strategy promises to carry.

Each domain is what one family of formats gives back *unchanged*, type for type:

* ``json_values`` -- ``None``, bools, ints, finite floats, str, lists, str-keyed dicts.
* ``msgpack_values`` -- the same plus bytes, 64-bit ints, NaN and infinities.
* ``picklable_values`` -- what pickle protocol 5 carries: tuples, sets, frozensets,
  bytes, bytearray, complex, ``Decimal``, ``Fraction``, dates and times (naive and
  aware), UUIDs, enums, namedtuples and dataclasses (importable ones, defined here),
  non-str dict keys, NaNs, nested.
* ``large_buffers`` -- bytes, bytearray, memoryview and numpy arrays (when numpy is
  importable) of up to a few MB, the payloads zero-copy framing exists for.

Compare results with ``freight.testing.assert_same_value``: plain ``==`` would let
``1.0`` come back as ``1`` and would call two NaNs different.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import importlib.util
import random
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

MiB = 1 << 20

#: The kinds ``large_buffers`` makes; ``"numpy"`` only when numpy is importable.
BUFFER_KINDS = ("bytes", "bytearray", "memoryview", "numpy")


class Color(enum.Enum):
    """An importable enum, so pickle can carry its members by reference."""

    RED = 1
    GREEN = 2
    BLUE = 3


#: An importable namedtuple type.
Point = collections.namedtuple("Point", ["x", "y"])


@dataclasses.dataclass(frozen=True)
class Interval:
    """An importable dataclass with value equality."""

    low: int
    high: int


_finite_floats = st.floats(allow_nan=False, allow_infinity=False)
_timezones = st.sampled_from(
    [None, dt.UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30), "odd")]
)


def json_values(*, max_leaves: int = 20) -> SearchStrategy[Any]:
    """Values ``json.loads(json.dumps(v))`` gives back unchanged."""
    scalars = st.none() | st.booleans() | st.integers() | _finite_floats | st.text()
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def msgpack_values(*, max_leaves: int = 20, nan: bool = True) -> SearchStrategy[Any]:
    """Values msgpack (``use_bin_type=True``, ``raw=False``) gives back unchanged.

    Integers are limited to what msgpack encodes (``-2**63`` .. ``2**64 - 1``); map
    keys are str or bytes (msgpack's default ``strict_map_key``).  ``nan=False``
    leaves out NaN and the infinities.
    """
    floats = st.floats() if nan else _finite_floats
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | floats
        | st.text()
        | st.binary()
    )
    keys = st.text(max_size=10) | st.binary(max_size=10)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def _hashable_scalars() -> SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers()
        | _finite_floats
        | st.text(max_size=10)
        | st.binary(max_size=10)
        | st.complex_numbers(allow_nan=False, allow_infinity=False)
        | st.decimals(allow_nan=False)
        | st.fractions()
        | st.dates()
        | st.datetimes(timezones=_timezones)
        | st.times(timezones=_timezones)
        | st.timedeltas()
        | st.uuids()
        | st.sampled_from(Color)
    )


def picklable_values(*, max_leaves: int = 20) -> SearchStrategy[Any]:
    """Values ``pickle.loads(pickle.dumps(v, protocol=5))`` gives back unchanged.

    Set members and dict keys are hashable values without NaN (a NaN key cannot be
    looked up, so no serializer can be checked on it); NaN floats, NaN decimals and
    bytearrays appear everywhere else.
    """
    hashables = st.recursive(
        _hashable_scalars(),
        lambda children: (
            st.tuples(children, children)
            | st.frozensets(children, max_size=3)
            | st.builds(Point, children, children)
        ),
        max_leaves=6,
    )
    leaves = (
        _hashable_scalars()
        | st.floats()
        | st.decimals()
        | st.binary(max_size=32).map(bytearray)
        | st.builds(Interval, st.integers(), st.integers())
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.builds(Point, children, children)
            | st.dictionaries(hashables, children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4).map(
                collections.OrderedDict
            )
            | st.sets(hashables, max_size=4)
            | st.frozensets(hashables, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def numpy_available() -> bool:
    """Whether numpy can be imported (checked without importing it)."""
    return importlib.util.find_spec("numpy") is not None


def large_buffers(
    *,
    min_size: int = 0,
    max_size: int = 4 * MiB,
    kinds: Iterable[str] | None = None,
) -> SearchStrategy[Any]:
    """Contiguous buffers of ``min_size`` to ``max_size`` bytes.

    ``kinds`` picks from ``BUFFER_KINDS`` (default: all, with ``"numpy"`` only if
    numpy is importable; asking for ``"numpy"`` without it raises ``ImportError``).
    Contents are random, zeros or a repeating pattern, so compressing strategies see
    both incompressible and highly compressible data.  Numpy arrays come in several
    dtypes, 1-D and 2-D, C and Fortran order.
    """
    if kinds is None:
        chosen = [k for k in BUFFER_KINDS if k != "numpy" or numpy_available()]
    else:
        chosen = list(kinds)
        unknown = sorted(set(chosen) - set(BUFFER_KINDS))
        if unknown or not chosen:
            raise ValueError(
                f"kinds must be a non-empty selection of {BUFFER_KINDS}, got {chosen}"
            )
        if "numpy" in chosen and not numpy_available():
            raise ImportError("large_buffers(kinds=[... 'numpy']) needs numpy")
    if not 0 <= min_size <= max_size:
        raise ValueError(f"need 0 <= min_size <= max_size, got {min_size}, {max_size}")
    small = min(max_size, max(min_size, 1024))
    sizes = st.one_of(
        st.integers(min_size, small),
        st.integers(small, max_size),
        st.just(max_size),
    )
    return st.builds(
        _make_buffer,
        kind=st.sampled_from(chosen),
        size=sizes,
        fill=st.sampled_from(["random", "zeros", "pattern"]),
        seed=st.integers(0, 2**32 - 1),
        layout=st.integers(0, 2**16 - 1),
    )


def _fill(size: int, fill: str, seed: int) -> bytes:
    if fill == "zeros":
        return bytes(size)
    if fill == "pattern":
        unit = random.Random(seed).randbytes(61)
        return (unit * (size // len(unit) + 1))[:size]
    return random.Random(seed).randbytes(size)


def _make_buffer(kind: str, size: int, fill: str, seed: int, layout: int) -> Any:
    data = _fill(size, fill, seed)
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        # Half read-only (a view of bytes), half writable (a view of a bytearray).
        return memoryview(data if layout % 2 else bytearray(data))
    return _make_array(data, layout)


def _make_array(data: bytes, layout: int) -> Any:
    import numpy as np

    dtypes = ["float64", "int32", "uint8", "complex128", "bool", "float32"]
    dtype = np.dtype(dtypes[layout % len(dtypes)])
    if dtype == np.bool_:
        array = np.frombuffer(data, dtype=np.uint8).astype(bool)
    else:
        usable = len(data) - len(data) % dtype.itemsize
        array = np.frombuffer(data[:usable], dtype=dtype).copy()
    if (layout // len(dtypes)) % 2 and array.size % 4 == 0 and array.size:
        array = array.reshape(4, -1)
        if (layout // (2 * len(dtypes))) % 2:
            array = np.asfortranarray(array)
    return array
