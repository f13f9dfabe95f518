"""The RabbitMQ the AMQP tests use (127.0.0.1:5672, guest/guest, or
$FREIGHT_TEST_AMQP_URL): ``broker_connection()`` opens a pika connection to it,
skipping the test when it is unreachable, except under CI (``CI`` set and not
``0``/``false``/``no``), where an unreachable broker fails the test."""

from __future__ import annotations

import os
from typing import Any

import pytest

AMQP_URL = os.environ.get(
    "FREIGHT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)


def under_ci() -> bool:
    """True when ``CI`` is set to something other than ``0``/``false``/``no``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def broker_connection() -> Any:
    """A ``pika.BlockingConnection`` to ``AMQP_URL`` (skip or fail if none)."""
    pika = pytest.importorskip("pika")
    params = pika.URLParameters(AMQP_URL)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    try:
        return pika.BlockingConnection(params)
    except Exception as e:
        if under_ci():
            pytest.fail(f"RabbitMQ at {AMQP_URL} is unreachable under CI: {e!r}")
        pytest.skip(f"RabbitMQ at {AMQP_URL} is unreachable: {e!r}")
