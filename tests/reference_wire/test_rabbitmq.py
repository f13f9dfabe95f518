"""freight's result messages through a real RabbitMQ (127.0.0.1:5672,
guest/guest, or $FREIGHT_TEST_AMQP_URL) to the reference ``Executor``'s real
result watcher thread: published to ``{queue_prefix}{task_group_id}``, consumed
and matched to its futures by the reference's pika consumer.

Without a broker the test is skipped, except under CI (``CI`` set and not
``0``/``false``/``no``), where an unreachable broker fails it."""

from __future__ import annotations

import platform
import types
import uuid
from collections.abc import Iterator
from typing import Any

import dill
import pytest
from amqp_helpers import AMQP_URL, broker_connection

from freight.serialize import ComputeSerializer
from freight.service.reference_dialect import (
    amqp_connection_response,
    encode_amqp_result,
    result_message_properties,
    result_queue_name,
)

SER = ComputeSerializer(strategy_data="DillDataBase64")


@pytest.fixture
def channel() -> Iterator[Any]:
    conn = broker_connection()
    try:
        yield conn.channel()
    finally:
        conn.close()


def _status(
    task_id: str, tg: str, value: Any = None, error: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task_id": task_id,
        "task_group_id": tg,
        "completion_t": "1796579027.5",
        # The worker details the reference compares with its own environment.
        "details": {
            "python_version": platform.python_version(),
            "dill_version": dill.__version__,
        },
    }
    if error:
        out.update(status="failed", exception=error)
    else:
        out.update(status="success", result=SER.serialize(value))
    return out


def test_reference_watcher_consumes_freight_results(channel: Any) -> None:
    import pika
    from globus_compute_sdk import Client
    from globus_compute_sdk.errors import TaskExecutionFailed
    from globus_compute_sdk.sdk.asynchronous.compute_future import ComputeFuture
    from globus_compute_sdk.sdk.executor import _ResultWatcher
    from globus_sdk import AccessTokenAuthorizer

    prefix = f"freight.test.{uuid.uuid4().hex[:8]}."
    tg = uuid.uuid4()
    queue = result_queue_name(prefix, str(tg))

    class StandInClient(Client):  # type: ignore[misc]
        """The reference Client with the one route the watcher calls answered
        in place (the HTTP face is tested elsewhere)."""

        def get_result_amqp_url(self) -> dict[str, str]:
            return amqp_connection_response(AMQP_URL, prefix)

    client = StandInClient(
        authorizer=AccessTokenAuthorizer("t"), do_version_check=False
    )
    # The service declares the queue before it answers the submit.
    channel.queue_declare(queue=queue, durable=True)
    try:
        ids = [str(uuid.uuid4()) for _ in range(3)]
        statuses = [
            _status(ids[0], str(tg), value=[1, "two"]),
            _status(ids[1], str(tg), error="Traceback ...\nKeyError: 'k'"),
            _status(ids[2], str(tg), value=3.5),
        ]
        # Published before the consumer attaches, as results that finish first.
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=encode_amqp_result(statuses[0]),
            properties=pika.BasicProperties(**result_message_properties(statuses[0])),
        )
        futures = [ComputeFuture(t) for t in ids]
        watcher = _ResultWatcher(tg, client, poll_period_s=0.1)
        watcher.watch_for_task_results(types.SimpleNamespace(), futures)  # type: ignore[arg-type]
        watcher.start()
        try:
            for status in statuses[1:]:
                channel.basic_publish(
                    exchange="",
                    routing_key=queue,
                    body=encode_amqp_result(status),
                    properties=pika.BasicProperties(
                        **result_message_properties(status)
                    ),
                )
            assert futures[0].result(timeout=60) == [1, "two"]
            exc = futures[1].exception(timeout=60)
            assert isinstance(exc, TaskExecutionFailed)
            assert "KeyError: 'k'" in exc.remote_data
            assert exc.completion_t == "1796579027"
            assert futures[2].result(timeout=60) == 3.5
        finally:
            watcher.shutdown(wait=True)
        assert not watcher.is_alive()
        # Every message was acknowledged: nothing is left in the queue.
        left = channel.queue_declare(queue=queue, durable=True, passive=True)
        assert left.method.message_count == 0
    finally:
        channel.queue_delete(queue=queue)
