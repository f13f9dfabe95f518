"""Strategies that carry several member payloads: ``10``, ``12`` and ``13``.

``AllCodeStrategies`` (``12``) and ``AllDataStrategies`` (``13``) use the generic
``ComboSerializationStrategy`` body (``pack_buffers`` of member payloads).
``CombinedCode`` (``10``, deprecated) has the reference's older layout: member
headers and bodies joined by ``":"``.
"""

from __future__ import annotations

from typing import Any

from freight.plugins.dill_strategies import (
    DillCode,
    DillCodeSource,
    DillCodeTextInspect,
    DillDataBase64,
)
from freight.plugins.json_strategies import JSONData
from freight.plugins.source_strategies import PureSourceDill, PureSourceTextInspect
from freight.serialize import (
    ComboSerializationStrategy,
    DeserializationError,
    MemberFailed,
    Property,
    SerializationError,
    SerializationStrategy,
    hookimpl,
)


def _json_exact(obj: Any) -> bool:
    """Whether JSON gives ``obj`` back unchanged (no tuple->list, no key->str)."""
    kind = type(obj)
    if obj is None or kind in (bool, int, str, float):
        return True
    if kind is list:
        return all(_json_exact(x) for x in obj)
    if kind is dict:
        return all(type(k) is str and _json_exact(v) for k, v in obj.items())
    return False


class _ExactJSONData(JSONData):
    """``JSONData`` ("11") that refuses values JSON would change, so the combo falls
    through to dill for them.  Same identifier and body: the wire is unchanged."""

    def encode_text(self, obj: Any) -> str:
        if not _json_exact(obj):
            raise TypeError(f"JSON would not give back this {type(obj).__name__}")
        return super().encode_text(obj)


class AllCodeStrategies(ComboSerializationStrategy):
    """A function as source (``inspect``), source (``dill``) and ``DillCode``;
    decodes with the first that works on the receiving side."""

    identifier = "12\n"
    for_code = True
    name = "all-code"
    properties = Property.PORTABLE
    strategies = [PureSourceTextInspect, PureSourceDill, DillCode]  # noqa: RUF012


class AllDataStrategies(ComboSerializationStrategy):
    """Data as JSON (when JSON gives it back unchanged) and as dill; decodes with the
    first that works."""

    identifier = "13\n"
    for_code = False
    name = "all-data"
    strategies = [_ExactJSONData, DillDataBase64]  # noqa: RUF012


class CombinedCode(SerializationStrategy):
    """Deprecated: a function through every older code strategy, joined by ``":"``.

    Use ``AllCodeStrategies``.  The layout is ``id:body:id:body...`` after the
    header.  Source bodies may themselves contain ``":"``, which the reference's
    parser mis-splits; freight ends a member's body at the next token that is the
    header of a later member, so every part the reference could read, freight reads
    too, and the source parts as well.
    """

    identifier = "10\n"
    for_code = True
    name = "combined-code"
    deprecated = True
    properties = Property.PORTABLE

    _SEPARATOR = ":"
    _MEMBERS: tuple[type[SerializationStrategy], ...] = (
        DillCodeSource,
        DillCode,
        DillCodeTextInspect,
        PureSourceDill,
        PureSourceTextInspect,
    )

    def __init__(self) -> None:
        self._members = {cls.identifier: cls() for cls in self._MEMBERS}
        self._order = list(self._members)

    def serialize(self, data: Any) -> str:
        chunks: list[str] = []
        failures: list[MemberFailed] = []
        for ident, member in self._members.items():
            try:
                payload = member.serialize(data)
            except Exception as e:
                failures.append(MemberFailed.wrapping(member, e))
                continue
            chunks += [ident, payload[len(ident) :]]
        if not chunks:
            # The reference's phrase first, for callers that match on it.
            raise SerializationError(
                "No serialization methods were successful: no CombinedCode member"
                " could serialize the object:\n* " + "\n* ".join(map(str, failures))
            ) from ExceptionGroup("CombinedCode members", failures)
        return self.identifier + self._SEPARATOR.join(chunks)

    def get_multiple_payloads(self, payload: str) -> tuple[tuple[str, str], ...]:
        """The ``(identifier, body)`` pairs in ``payload``, in order."""
        tokens = self.chomp(payload).split(self._SEPARATOR)
        pairs: list[tuple[str, str]] = []
        i = 0
        while i < len(tokens):
            ident = tokens[i]
            if ident not in self._members:
                raise DeserializationError(
                    f"CombinedCode: invalid member identifier {ident[:8]!r} in part"
                    f" {len(pairs) + 1}"
                )
            if i + 1 >= len(tokens):
                raise DeserializationError(
                    f"CombinedCode: member {ident!r} has no body (truncated payload)"
                )
            later = set(self._order[self._order.index(ident) + 1 :])
            j = i + 2
            while j < len(tokens) and tokens[j] not in later:
                j += 1
            pairs.append((ident, self._SEPARATOR.join(tokens[i + 1 : j])))
            i = j
        return tuple(pairs)

    def deserialize(self, payload: str, variation: int = 0) -> Any:
        """Decode with the first member that works, or only with the
        ``variation``-th part (1-based) if one is given."""
        failures: list[MemberFailed] = []
        pairs = self.get_multiple_payloads(payload)
        for count, (ident, body) in enumerate(pairs, start=1):
            if variation and count != variation:
                continue
            member = self._members[ident]
            try:
                return member.deserialize(ident + body)
            except Exception as e:
                if variation:
                    raise DeserializationError(
                        f"Failed to deserialize using variation #{count}"
                    ) from e
                failures.append(MemberFailed.wrapping(member, e))
        error = DeserializationError(
            f"CombinedCode: deserialization failed after {len(pairs)} tries"
            + "".join(f"\n* {failure}" for failure in failures)
        )
        if failures:
            raise error from ExceptionGroup("CombinedCode members", failures)
        raise error


@hookimpl
def freight_strategies() -> list[type[SerializationStrategy]]:
    return [CombinedCode, AllCodeStrategies, AllDataStrategies]
