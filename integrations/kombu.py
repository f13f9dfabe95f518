"""freight as a kombu serializer (kombu, and Celery through it).

``register()`` adds two codecs to kombu's serialization registry:

=================  =============================  ================  ===================
name               content type                   content encoding  wire
=================  =============================  ================  ===================
``freight``        ``application/x-freight``      ``binary``        ``dumps`` blob
``freight-text``   ``application/x-freight-text`` ``utf-8``         ``serialize`` text
=================  =============================  ================  ===================

Publish with ``producer.publish(obj, serializer="freight")`` and consume with
``accept=["freight"]`` (kombu refuses content types a consumer does not accept).
kombu hands decoders ``bytes`` (or ``str`` from some transports), so the text
codec's decoder accepts UTF-8 ``bytes`` as well as ``str``.

What may decode is the serializer's business, not kombu's: pass a
``ComputeSerializer`` built with ``Policy.untrusted_input()`` (or an allowlist)
for a broker that others can publish to.  Arrays decoded by the binary codec
are read-only views of the message body unless the serializer was made with
``writable=True`` (kombu's pickle gives writable ones).
"""

from __future__ import annotations

from typing import Any

from freight.serialize import ComputeSerializer, DeserializationError

__all__ = [
    "BINARY_CONTENT_TYPE",
    "BINARY_NAME",
    "TEXT_CONTENT_TYPE",
    "TEXT_NAME",
    "register",
    "unregister",
]

BINARY_NAME = "freight"
BINARY_CONTENT_TYPE = "application/x-freight"
TEXT_NAME = "freight-text"
TEXT_CONTENT_TYPE = "application/x-freight-text"


def register(
    serializer: ComputeSerializer | None = None,
    *,
    registry: Any = None,
    binary_name: str = BINARY_NAME,
    text_name: str = TEXT_NAME,
) -> ComputeSerializer:
    """Register the binary and text codecs with kombu's registry (or
    ``registry``), encoding and decoding with ``serializer`` (a default
    ``ComputeSerializer`` if ``None``); returns the serializer.

    Registering again replaces the codecs (a new serializer takes over).
    """
    if registry is None:
        from kombu.serialization import registry as kombu_registry

        registry = kombu_registry
    serde = serializer if serializer is not None else ComputeSerializer()
    registry.register(
        binary_name,
        serde.dumps,
        serde.loads,
        content_type=BINARY_CONTENT_TYPE,
        content_encoding="binary",
    )
    registry.register(
        text_name,
        serde.serialize,
        _text_decoder(serde),
        content_type=TEXT_CONTENT_TYPE,
        content_encoding="utf-8",
    )
    return serde


def unregister(
    *,
    registry: Any = None,
    binary_name: str = BINARY_NAME,
    text_name: str = TEXT_NAME,
) -> None:
    """Remove both codecs from kombu's registry (or ``registry``)."""
    from kombu.exceptions import SerializerNotInstalled

    if registry is None:
        from kombu.serialization import registry as kombu_registry

        registry = kombu_registry
    for name in (binary_name, text_name):
        try:
            registry.unregister(name)
        except SerializerNotInstalled:  # not registered: nothing to remove
            continue


def _text_decoder(serde: ComputeSerializer) -> Any:
    def decode(body: Any) -> Any:
        if not isinstance(body, str):
            try:
                body = bytes(body).decode("utf-8")
            except UnicodeDecodeError as e:
                raise DeserializationError(
                    f"a freight text payload must be UTF-8: {e}"
                ) from e
        return serde.deserialize(body)

    return decode
