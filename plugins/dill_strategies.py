"""The reference SDK's dill family: identifiers ``00``, ``01``, ``02``, ``03``, ``04``.

Wire-compatible with ``globus_compute_sdk.serialize`` 4.19: each body is a dill (or,
for ``02``, pickle) byte string, base64-encoded in the text envelope.  freight writes
base64 on one line where the reference breaks it every 76 columns; both decoders
accept both.
"""

from __future__ import annotations

import inspect
import pickle
import textwrap
from typing import Any

import dill
import dill.source
from freight.plugins.source_strategies import exec_source
from freight.serialize import BytesStrategy, SerializationError, hookimpl


class DillDataBase64(BytesStrategy):
    """Python data via ``dill.dumps``, base64 in text payloads."""

    identifier = "00\n"
    for_code = False
    name = "dill-data"

    def encode(self, obj: Any) -> bytes:
        return bytes(dill.dumps(obj))

    def decode(self, data: bytes) -> Any:
        return dill.loads(data)


class DillCode(BytesStrategy):
    """A callable via ``dill.dumps``: by value for ``__main__`` and notebook code,
    by reference for importable functions.  Decorated functions work; the receiving
    Python must match the sender's minor version."""

    identifier = "01\n"
    for_code = True
    name = "dill-code"

    def encode(self, obj: Any) -> bytes:
        return bytes(dill.dumps(obj))

    def decode(self, data: bytes) -> Any:
        return dill.loads(data)


class PickleCode(BytesStrategy):
    """Decode-only: reads very old payloads made with ``pickle.dumps``."""

    identifier = "02\n"
    for_code = True
    name = "pickle-code"
    deprecated = True
    decode_only = True

    def encode(self, obj: Any) -> bytes:
        raise SerializationError(
            "PickleCode is decode-only; pickle serialization of code is no longer"
            " supported"
        )

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)


class DillCodeTextInspect(BytesStrategy):
    """Deprecated: the function's ``inspect.getsource`` text, dill-pickled with its
    name.  Use ``PureSourceTextInspect``."""

    identifier = "03\n"
    for_code = True
    name = "dill-code-text-inspect"
    deprecated = True

    def encode(self, obj: Any) -> bytes:
        source = textwrap.dedent(inspect.getsource(obj))
        return bytes(dill.dumps((obj.__name__, source)))

    def decode(self, data: bytes) -> Any:
        return exec_source(*dill.loads(data))


class DillCodeSource(BytesStrategy):
    """Deprecated: the function's ``dill.source.getsource`` text, dill-pickled with
    its name.  Use ``PureSourceDill``."""

    identifier = "04\n"
    for_code = True
    name = "dill-code-source"
    deprecated = True

    def encode(self, obj: Any) -> bytes:
        source = dill.source.getsource(obj, lstrip=True)
        return bytes(dill.dumps((obj.__name__, source)))

    def decode(self, data: bytes) -> Any:
        return exec_source(*dill.loads(data))


@hookimpl
def freight_strategies() -> list[type[BytesStrategy]]:
    return [DillDataBase64, DillCode, PickleCode, DillCodeTextInspect, DillCodeSource]
