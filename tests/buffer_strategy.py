"""A buffer-aware strategy for the binary-envelope tests: each item of a list travels
as its own out-of-band frame, the body describes them (JSON), decode returns views."""

from __future__ import annotations

import json
from pickle import PickleBuffer
from typing import Any

import numpy as np

from freight.serialize import BytesStrategy, SerializationError


class RawBuffers(BytesStrategy):
    """A list of buffers (bytes-likes and numpy arrays), each its own out-of-band
    frame; the body is a JSON list describing them.  Buffer-aware: encode hands the
    objects' own memory to the envelope, decode returns views of the frames."""

    identifier = "T0\n"
    for_code = False
    name = "test-raw-buffers"

    _DTYPES = frozenset(
        np.dtype(t).str for t in ("u1", "i4", "i8", "f4", "f8", "<f8", ">f8")
    )

    def to_frames(self, obj: Any) -> tuple[bytes, list[Any]]:
        descriptors: list[Any] = []
        buffers: list[Any] = []
        for item in obj:
            if isinstance(item, np.ndarray):
                descriptors.append({"dtype": item.dtype.str, "shape": item.shape})
                buffers.append(PickleBuffer(item).raw())  # the array's memory
            else:
                descriptors.append(None)
                buffers.append(memoryview(item))
        return json.dumps(descriptors).encode(), buffers

    def from_frames(self, body: bytes | memoryview, buffers: list[memoryview]) -> Any:
        descriptors = json.loads(str(body, "utf-8"))
        if not isinstance(descriptors, list) or len(descriptors) != len(buffers):
            raise ValueError("descriptors do not match the buffers")
        out: list[Any] = []
        for descriptor, buffer in zip(descriptors, buffers, strict=True):
            if descriptor is None:
                out.append(buffer)
                continue
            if descriptor["dtype"] not in self._DTYPES:
                raise ValueError(f"dtype {descriptor['dtype']!r} not allowed")
            array = np.frombuffer(buffer, dtype=descriptor["dtype"])
            out.append(array.reshape(descriptor["shape"]))
        return out

    def encode(self, obj: Any) -> bytes:
        raise SerializationError("test-raw-buffers travels in the binary envelope")

    def decode(self, data: bytes) -> Any:
        raise ValueError("test-raw-buffers travels in the binary envelope")
