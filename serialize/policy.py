"""Strategy policies: choose and refuse strategies by the properties they declare.

A ``Policy`` works alongside the reference-compatible allowlist: a decoder must pass
both before any of a payload's body is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from freight.serialize.strategy import NO_PROPERTIES, Property, SerializationStrategy


@dataclass(frozen=True)
class Policy:
    """Properties the strategies a serializer uses must have.

    ``decode``: every strategy that decodes a payload must have all of these, or the
    payload is refused before its body is read.  ``encode``: the code and data
    strategies the serializer encodes with must have all of these; when none is
    given explicitly, the default is used if it qualifies, else the first
    registered strategy of that kind that does.
    """

    decode: Property = NO_PROPERTIES
    encode: Property = NO_PROPERTIES

    @classmethod
    def untrusted_input(cls) -> Policy:
        """Only decoders that are safe on input from a hostile peer (no pickle,
        no source execution)."""
        return cls(decode=Property.SAFE_FOR_UNTRUSTED)

    @classmethod
    def portable(cls) -> Policy:
        """Encode only with strategies whose payloads decode on other Python
        versions."""
        return cls(encode=Property.PORTABLE)

    def refusal(self, strategy: SerializationStrategy, *, decoding: bool) -> str | None:
        """Why this policy refuses ``strategy`` (for decoding or encoding), or
        ``None``."""
        required = self.decode if decoding else self.encode
        missing = required & ~strategy.properties
        if not missing:
            return None
        names = ", ".join(sorted(p.name or "" for p in missing))
        use = "decode" if decoding else "encode"
        return (
            f"{type(strategy).__name__} ({strategy.identifier!r}) may not {use}"
            f" under this policy: it lacks {names}"
        )
