"""A tiny pickle assembler for hostile payloads written opcode by opcode.

The restricted-unpickler tests build their attacks with these helpers rather than
with a pickler, so that a payload says exactly what an attacker would send.
"""

from __future__ import annotations

import pickle
import struct


def proto() -> bytes:
    return pickle.PROTO + b"\x05"


def stop() -> bytes:
    return pickle.STOP


def glob(module: str, name: str) -> bytes:
    """Push ``module.name`` (STACK_GLOBAL)."""
    return string(module) + string(name) + pickle.STACK_GLOBAL


def string(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def raw_bytes(value: bytes) -> bytes:
    return pickle.BINBYTES + struct.pack("<I", len(value)) + value


def integer(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def none() -> bytes:
    return pickle.NONE


def false() -> bytes:
    return pickle.NEWFALSE


def tuple_(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def dict_(*pairs: tuple[bytes, bytes]) -> bytes:
    return (
        pickle.EMPTY_DICT
        + pickle.MARK
        + b"".join(k + v for k, v in pairs)
        + pickle.SETITEMS
    )


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` (REDUCE)."""
    return func + tuple_(*args) + pickle.REDUCE


def build(state: bytes) -> bytes:
    """BUILD the object on the stack with ``state``."""
    return state + pickle.BUILD


def dtype(code: str, state: bytes) -> bytes:
    """``numpy.dtype(code, False, True)`` then BUILD with ``state``."""
    made = call(glob("numpy", "dtype"), string(code), false(), pickle.NEWTRUE)
    return made + build(state)


def dtype_state(
    byteorder: str,
    names: bytes,
    fields: bytes,
    elsize: int,
    alignment: int,
    flags: int,
) -> bytes:
    """numpy's version-3 dtype state tuple."""
    return tuple_(
        integer(3),
        string(byteorder),
        none(),
        names,
        fields,
        integer(elsize),
        integer(alignment),
        integer(flags),
    )


def ndarray(descr: bytes, shape: int, data: bytes, module: str = "") -> bytes:
    """``_reconstruct(ndarray, (0,), b"b")`` then BUILD with a version-1 array
    state ``(1, (shape,), descr, False, data)``."""
    module = module or multiarray()
    made = call(
        glob(module, "_reconstruct"),
        glob("numpy", "ndarray"),
        tuple_(integer(0)),
        raw_bytes(b"b"),
    )
    state = tuple_(integer(1), tuple_(integer(shape)), descr, false(), raw_bytes(data))
    return made + build(state)


def payload(*parts: bytes) -> bytes:
    return proto() + b"".join(parts) + stop()


def _numpy_core() -> str:
    import numpy as np

    major = int(np.__version__.split(".")[0])
    return "numpy._core" if major >= 2 else "numpy.core"


def multiarray() -> str:
    """The module numpy's pickles name for ``_reconstruct`` and ``scalar``."""
    return _numpy_core() + ".multiarray"


def numeric() -> str:
    """The module numpy's pickles name for ``_frombuffer``."""
    return _numpy_core() + ".numeric"
