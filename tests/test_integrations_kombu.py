"""``freight.integrations.kombu`` against the real kombu: its in-memory
transport, and RabbitMQ when one is reachable (required when ``CI`` is set)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from kombu import Connection, Exchange, Queue
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from kombu.serialization import registry

from freight.integrations import kombu as freight_kombu
from freight.serialize import ComputeSerializer, DeserializationError, Policy

AMQP_URL = os.environ.get("FREIGHT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
ACCEPT = [freight_kombu.BINARY_NAME, freight_kombu.TEXT_NAME]
#: What ``kombu.serialization.loads`` takes (a consumer maps names to these).
ACCEPT_TYPES = [freight_kombu.BINARY_CONTENT_TYPE, freight_kombu.TEXT_CONTENT_TYPE]


@pytest.fixture
def registered() -> Iterator[ComputeSerializer]:
    yield freight_kombu.register()
    freight_kombu.unregister()


def round_trip(url: str, bodies: list[tuple[Any, str]], **consume: Any) -> list[Any]:
    """Publish each ``(body, serializer)`` on a fresh queue, consume them all."""
    name = f"freight-test-{os.getpid()}-{id(bodies)}"
    exchange = Exchange(name, type="direct", auto_delete=True)
    queue = Queue(name, exchange, routing_key=name, auto_delete=True)
    received: list[Any] = []
    with Connection(url, connect_timeout=5) as conn:
        with conn.Producer() as producer:
            for body, serializer in bodies:
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=name,
                    declare=[queue],
                    serializer=serializer,
                )

        def on_message(body: Any, message: Any) -> None:
            received.append(body)
            message.ack()

        with conn.Consumer(queue, callbacks=[on_message], **consume):
            while len(received) < len(bodies):
                conn.drain_events(timeout=5)
        queue(conn.default_channel).delete()
    return received


def test_both_codecs_round_trip_over_the_memory_transport(
    registered: ComputeSerializer,
) -> None:
    array = np.arange(12.0).reshape(3, 4)
    got = round_trip(
        "memory://",
        [({"array": array, "n": 1}, "freight"), ({"text": [1, 2]}, "freight-text")],
        accept=ACCEPT,
    )
    assert np.array_equal(got[0]["array"], array) and got[0]["n"] == 1
    assert got[1] == {"text": [1, 2]}


def test_the_codecs_are_in_kombus_registry_with_their_content_types(
    registered: ComputeSerializer,
) -> None:
    ctype, encoding, payload = kombu_dumps({"a": 1}, serializer="freight")
    assert (ctype, encoding) == (freight_kombu.BINARY_CONTENT_TYPE, "binary")
    assert payload == registered.dumps({"a": 1})
    ctype, encoding, payload = kombu_dumps({"a": 1}, serializer="freight-text")
    assert (ctype, encoding) == (freight_kombu.TEXT_CONTENT_TYPE, "utf-8")
    assert kombu_loads(payload, ctype, encoding, accept=ACCEPT_TYPES) == {"a": 1}
    freight_kombu.unregister()
    assert freight_kombu.BINARY_NAME not in registry._encoders
    assert freight_kombu.TEXT_NAME not in registry._encoders


def test_the_text_decoder_takes_utf8_bytes_and_str(
    registered: ComputeSerializer,
) -> None:
    payload = registered.serialize({"é": "ü"})
    ctype = freight_kombu.TEXT_CONTENT_TYPE
    for body in (payload, payload.encode("utf-8"), bytearray(payload.encode())):
        assert kombu_loads(body, ctype, "utf-8", accept=ACCEPT_TYPES) == {"é": "ü"}
    with pytest.raises(DecodeError) as info:
        kombu_loads(b"11\n\xff\xfe", ctype, "utf-8", accept=ACCEPT_TYPES)
    assert isinstance(info.value.args[0], DeserializationError)  # kombu wraps it


def test_a_consumer_that_does_not_accept_freight_refuses_it(
    registered: ComputeSerializer,
) -> None:
    ctype, encoding, payload = kombu_dumps([1], serializer="freight")
    with pytest.raises(ContentDisallowed):
        kombu_loads(payload, ctype, encoding, accept=["json"])


def test_the_serializers_allowlist_decides_what_decodes() -> None:
    freight_kombu.register(ComputeSerializer(policy=Policy.untrusted_input()))
    try:
        pickled = ComputeSerializer().dumps({"a": np.arange(3)})  # pickle-family
        with pytest.raises(DecodeError) as info:
            kombu_loads(
                pickled,
                freight_kombu.BINARY_CONTENT_TYPE,
                "binary",
                accept=ACCEPT_TYPES,
            )
        assert isinstance(info.value.args[0], DeserializationError)  # kombu wraps it
    finally:
        freight_kombu.unregister()


def test_arrays_are_read_only_unless_the_serializer_is_writable() -> None:
    for writable in (False, True):
        freight_kombu.register(ComputeSerializer(writable=writable))
        try:
            [got] = round_trip(
                "memory://", [(np.arange(4.0), "freight")], accept=ACCEPT
            )
        finally:
            freight_kombu.unregister()
        assert np.array_equal(got, np.arange(4.0))
        assert got.flags.writeable is writable


def _broker_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


def test_round_trip_through_rabbitmq(registered: ComputeSerializer) -> None:
    if not _broker_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no AMQP broker at {AMQP_URL}")
        pytest.skip(f"no AMQP broker at {AMQP_URL} (set CI=true to require one)")
    array = np.arange(100_000.0)
    got = round_trip(
        AMQP_URL,
        [(array, "freight"), ({"k": "v"}, "freight-text")],
        accept=ACCEPT,
    )
    assert np.array_equal(got[0], array)
    assert got[1] == {"k": "v"}
