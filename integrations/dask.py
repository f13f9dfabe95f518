"""freight as a ``dask.distributed`` serialization family.

``register()`` adds the family ``"freight"`` to ``distributed.protocol``; name it
in a client's (and workers') serializer lists to use it, before the families it
should take precedence over::

    from freight.integrations import dask as freight_dask

    freight_dask.register()
    client = Client(serializers=["freight", "dask", "pickle"],
                    deserializers=["freight", "dask", "pickle", "error"])

Workers and the scheduler need the family to decode what the client sends:
start them with this module as a preload (``dask worker --preload
freight.integrations.dask``, or ``preload=["freight.integrations.dask"]``), whose
``dask_setup`` registers it.

A family tells Dask "not me, try the next one" by raising
``NotImplementedError``.  The family does so whenever freight cannot or may not
encode an object (a ``SerializationError``: no strategy takes it, or the policy
refuses the strategies that would), so Dask goes on to its next family instead
of failing.  A message is sent as freight's frame list (``dumps_frames``), so
large buffers travel uncopied.  The default serializer is made with
``writable=True``: arrays come back writable, as from Dask's own families, and
are copied only when Dask hands over read-only memory.
"""

from __future__ import annotations

from typing import Any

from freight.serialize import ComputeSerializer, SerializationError

__all__ = ["FAMILY", "dask_setup", "deserialize", "register", "serialize"]

#: The family's name in ``distributed.protocol``'s serializer lists.
FAMILY = "freight"
#: The header key that marks a message of this family, with the format version.
_HEADER_KEY = "freight"

_serializer: ComputeSerializer | None = None


def _current() -> ComputeSerializer:
    global _serializer
    if _serializer is None:
        _serializer = ComputeSerializer(writable=True)
    return _serializer


def serialize(obj: Any) -> tuple[dict[str, Any], list[Any]]:
    """The family's ``dumps``: ``(header, frames)`` for ``obj``.

    Raises ``NotImplementedError`` where freight refuses ``obj`` (Dask then
    tries its next family).
    """
    try:
        frames = _current().dumps_frames(obj)
    except SerializationError as e:
        raise NotImplementedError(f"freight does not encode this object: {e}") from e
    return {_HEADER_KEY: 1}, list(frames)


def deserialize(header: dict[str, Any], frames: list[Any]) -> Any:
    """The family's ``loads``: the object ``frames`` carry.  Raises
    ``DeserializationError`` for malformed or disallowed input."""
    return _current().loads_frames(frames)


def register(serializer: ComputeSerializer | None = None, name: str = FAMILY) -> None:
    """Register the family under ``name``, encoding and decoding with
    ``serializer``; with ``None``, the serializer registered before, or a default
    ``ComputeSerializer(writable=True)`` if there is none.  The last one given
    serves every name."""
    from distributed.protocol.serialize import register_serialization_family

    global _serializer
    if serializer is not None:
        _serializer = serializer
    register_serialization_family(name, serialize, deserialize)  # type: ignore[no-untyped-call]


def dask_setup(server: Any = None) -> None:
    """The preload hook: Dask calls it in each worker (scheduler, client) that
    names this module in ``--preload``."""
    register()
